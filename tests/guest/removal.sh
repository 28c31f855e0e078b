#!/usr/bin/env bash
# vm: --disks 1 --disk-size 256M
# Devices that go away while attached lose their filter cleanly: a deleted
# loop device, a removed null_blk device, a partition rescan; unloading the
# module with filters attached detaches them (ftrace) or is refused
# (blkfilter: attached filters hold the module).
. "$(dirname "$0")/lib.sh"
tmp=$(mktemp -d)

need_modules loop
step "loop device deleted while attached and written"
truncate -s 64M "$tmp/img"
loop=$(losetup -f --show "$tmp/img")
blksnap-probe attach "$loop"
dd if=/dev/zero of="$loop" bs=1M count=8 oflag=direct status=none &
writer=$!
wait "$writer"
losetup -d "$loop"
num=${loop#/dev/loop}
# LOOP_CTL_REMOVE deletes the disk itself.
python3 -c "import fcntl,os,sys; fd=os.open('/dev/loop-control', os.O_RDWR); fcntl.ioctl(fd, 0x4C81, int(sys.argv[1]))" "$num"
grep -qx "7:$num" /sys/class/misc/blksnap-control/attached 2>/dev/null &&
	fail "deleted loop device still listed"

step "null_blk device removed while attached and written"
nb=/sys/kernel/config/nullb/probe
dev=$(nullb_create probe 256)
[ -b "$dev" ] || fail "no null_blk device"
blksnap-probe attach "$dev"
is_attached "$dev" || fail "$dev not attached"
devnum=$(cat /sys/class/block/$(basename "$dev")/dev)
dd if=/dev/urandom of="$dev" bs=64k count=64 oflag=direct status=none &
writer=$!
echo 0 >"$nb/power"
wait "$writer" || true
rmdir "$nb"
grep -qx "$devnum" /sys/class/misc/blksnap-control/attached 2>/dev/null &&
	fail "removed null_blk device still listed"

step "partition rescan drops the partition's filter"
disk=$(disk 1)
parted -s "$disk" mklabel gpt mkpart a 1MiB 100MiB mkpart b 100MiB 200MiB
wait_for_dev "${disk}1"
blksnap-probe attach "${disk}1"
blksnap-probe attach "$disk"
is_attached "${disk}1" || fail "${disk}1 not attached"
blockdev --rereadpt "$disk"
wait_for_dev "${disk}1"
is_attached "${disk}1" && fail "${disk}1 still attached after rescan"
is_attached "$disk" || fail "whole disk lost its filter on rescan"
# The new partition can be attached again.
blksnap-probe attach "${disk}1"
dd if=/dev/zero of="${disk}1" bs=64k count=4 oflag=direct status=none
blksnap-probe detach "${disk}1"

step "unload with a filter attached"
if [ "$(flavour)" = blkfilter ]; then
	rmmod blksnap 2>/dev/null && fail "rmmod succeeded with a filter attached"
	blksnap-probe detach "$disk"
	rmmod blksnap
else
	rmmod blksnap
	dd if=/dev/zero of="$disk" bs=64k count=4 oflag=direct status=none
fi
[ ! -e /dev/blksnap-control ] || fail "control device left behind"
insmod "$BLKSNAP_KO" ${BLKSNAP_MODPARAMS:-}
echo "removal: all checks passed"
