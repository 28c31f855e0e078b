#!/usr/bin/env bash
# cost: 40
# columns: stock-6.1 stock-6.12
# Devices whose data the module cannot copy faithfully are refused with
# EOPNOTSUPP, by attach and by snapshot_create, and nothing is left
# attached: a zoned device (null_blk, zoned=1) and a device with an
# integrity profile (scsi_debug with DIF type 1 and DIX). Both need drivers
# that the debug kernel (tinyconfig) does not build, hence the stock
# kernels only. A device with an inline encryption profile needs hardware
# (or a driver that fakes one, which neither kernel has): not tested.
. "$(dirname "$0")/lib.sh"
tmp=$(mktemp -d)

# refused DEV WHAT: attach and snapshot_create fail with EOPNOTSUPP.
refused() {
	local out
	out=$(blksnap attach -d "$1" 2>&1) && fail "$2: attach succeeded"
	grep -q "Operation not supported" <<<"$out" || fail "$2: attach: $out"
	! is_attached "$1" || fail "$2: attached after a refused attach"
	out=$(blksnap snapshot_create -d "$1" -f "$tmp" -l 16M 2>&1) &&
		fail "$2: snapshot_create succeeded"
	grep -q "Operation not supported" <<<"$out" || fail "$2: snapshot_create: $out"
	! is_attached "$1" || fail "$2: attached after a refused snapshot_create"
	expect_eq "$2: snapshots" "$(blksnap snapshot_collect)" ""
}

step "a zoned device"
[ -d /sys/module/null_blk ] || modprobe null_blk nr_devices=0 || fail "modprobe null_blk"
[ -d /sys/kernel/config/nullb ] || mount -t configfs none /sys/kernel/config
nb=/sys/kernel/config/nullb/zoned
mkdir "$nb"
echo 64 >"$nb/size"
echo 1 >"$nb/zoned"
echo 4 >"$nb/zone_size"
echo 1 >"$nb/memory_backed"
before=$(ls /sys/block)
echo 1 >"$nb/power"
zdev=/dev/$(comm -13 <(echo "$before") <(ls /sys/block) | head -n1)
wait_for_dev "$zdev"
expect_eq "zoned model of $zdev" "$(cat "/sys/block/${zdev#/dev/}/queue/zoned")" host-managed
refused "$zdev" "zoned $zdev"
echo 0 >"$nb/power"
rmdir "$nb"

step "a device with an integrity profile"
need_modules sd_mod
idev=$(scsi_debug_disk dev_size_mb=16 dif=1 dix=1 sector_size=512)
expect_eq "integrity of $idev" "$(cat "/sys/block/${idev#/dev/}/integrity/format")" T10-DIF-TYPE1-CRC
refused "$idev" "integrity $idev"
rmmod scsi_debug
echo "refused: all checks passed"
