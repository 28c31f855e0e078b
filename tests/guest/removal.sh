#!/usr/bin/env bash
# cost: 60
# vm: --disks 1 --disk-size 256M
# Devices that go away while attached lose their filter cleanly: a deleted
# loop device, a removed null_blk device, a driver unloaded, a partition
# rescan; unloading the module with filters attached detaches them (ftrace)
# or is refused (blkfilter: attached filters hold the module).
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

step "a loop device that loses its backing file loses its filter and snapshot"
# LOOP_CLR_FD changes the medium: what the tracker and the snapshot knew
# of the old backing file no longer applies (both interception flavours).
truncate -s 64M "$tmp/img2"
loop=$(losetup -f --show "$tmp/img2")
dd if=/dev/urandom of="$loop" bs=1M count=8 oflag=direct status=none
id=$(blksnap snapshot_create -d "$loop" -f "$tmp" -l 64M)
blksnap snapshot_take -i "$id"
image=$(blksnap snapshot_info -d "$loop" -f image)
dd if="$image" of=/dev/null bs=1M count=1 iflag=direct status=none
losetup -d "$loop"
is_attached "$loop" && fail "$loop still attached after LOOP_CLR_FD"
dd if="$image" of=/dev/null bs=1M count=1 iflag=direct status=none 2>/dev/null &&
	fail "image readable after its device lost its medium"
blksnap snapshot_destroy -i "$id"

step "null_blk device removed while attached and written"
nb=/sys/kernel/config/nullb/probe
dev=$(nullb_create probe 256)
[ -b "$dev" ] || fail "no null_blk device"
blksnap-probe attach "$dev"
is_attached "$dev" || fail "$dev not attached"
devnum=$(cat "/sys/class/block/${dev##*/}/dev")
# The writer gets the device already open: opened by name, it could come
# after the removal and create a regular file in /dev instead.
exec 7<>"$dev"
dd if=/dev/urandom bs=64k count=64 oflag=direct status=none >&7 2>/dev/null &
writer=$!
exec 7>&-
echo 0 >"$nb/power"
wait "$writer" || true
[ ! -e "$dev" ] || [ -b "$dev" ] || fail "$dev is no longer a block device node"
rmdir "$nb"
grep -qx "$devnum" /sys/class/misc/blksnap-control/attached 2>/dev/null &&
	fail "removed null_blk device still listed"

step "a driver unloaded while its disks are tracked and one is taken"
# A tracker does not pin its disk's driver: the disks go with the module
# (zram, a module in every column), their trackers with them, and a
# snapshot holding one is lost (-ENODEV), its image failing reads.
# Under KASAN (the debug kernel) nothing may touch the freed disks.
modprobe -r zram 2>/dev/null || true
modprobe zram num_devices=2 || fail "modprobe zram"
for z in zram0 zram1; do
	wait_for_dev /dev/$z
	echo 64M >/sys/block/$z/disksize
	dd if=/dev/urandom of=/dev/$z bs=1M count=64 oflag=direct status=none
	blksnap-probe attach /dev/$z
done
zdev=$(cat /sys/class/block/zram0/dev)
id=$(blksnap snapshot_create -d /dev/zram0 -f "$tmp" -l 64M)
blksnap snapshot_take -i "$id"
image=$(blksnap snapshot_info -d /dev/zram0 -f image)
dd if=/dev/urandom of=/dev/zram0 bs=1M count=4 oflag=direct status=none
cmp -s -n $((4 << 20)) "$image" /dev/zram0 && fail "the image followed a write"
# An image reader in flight when the driver goes.
dd if="$image" of=/dev/null bs=64k iflag=direct status=none 2>/dev/null &
reader=$!
modprobe -r zram || fail "zram not unloaded under attached trackers"
wait "$reader" || true
[ ! -e /sys/module/zram ] || fail "zram still loaded"
for z in "$zdev" "$(cat /sys/class/block/zram1/dev 2>/dev/null || echo none)"; do
	grep -qx "$z" /sys/class/misc/blksnap-control/attached &&
		fail "device $z of the unloaded driver still attached"
done
out=$(blksnap snapshot_waitevent -i "$id" -t 10000)
# zram empties a disk (capacity 0: -ERANGE) before it deletes it (-ENODEV):
# the first error is the one kept.
# shellcheck disable=SC1011 # $'\n' inside the pattern, not a quote
[[ $out =~ event=corrupted$'\n'dev_id=$zdev$'\n'err_code=-(19|34)$ ]] ||
	fail "no corruption event for the lost device: '$out'"
dd if="$image" of=/dev/null bs=64k count=1 iflag=direct status=none 2>/dev/null &&
	fail "the image of a device whose driver is gone was read"
blksnap snapshot_destroy -i "$id"
# The driver comes back: its disks are new, nothing is attached to them.
modprobe zram num_devices=1 || fail "zram reloaded"
wait_for_dev /dev/zram0
is_attached /dev/zram0 && fail "a new zram0 inherited the old tracker"
modprobe -r zram

step "a whole disk that gains partitions can no longer be read or taken"
# A take freezes the file system of the device it takes only, not those of
# the partitions: refused (partition_paths.sh: such writes are tracked).
disk=$(disk 1)
blksnap-probe attach "$disk"
id=$(blksnap snapshot_create -d "$disk" -f /tmp -l 64M)
parted -s "$disk" mklabel gpt mkpart a 1MiB 100MiB mkpart b 100MiB 200MiB
wait_for_dev "${disk}1"
out=$(blksnap snapshot_take -i "$id" 2>&1) && fail "whole disk with partitions taken"
echo "$out"
[[ $out == *"busy"* ]] || fail "take: unclear error: $out"
blksnap snapshot_destroy -i "$id"
out=$(blksnap cbtinfo -d "$disk" 2>&1) && fail "change map of a whole disk with partitions read"
echo "$out"
blksnap-probe detach "$disk"

step "a whole disk with partitions is refused at attach"
out=$(blksnap-probe attach "$disk" 2>&1) && fail "whole disk with partitions attached"
echo "$out"
[[ $out == *"busy"* ]] || fail "attach: unclear error: $out"
is_attached "$disk" && fail "whole disk listed as attached"

step "partition rescan drops the partition's filter"
blksnap-probe attach "${disk}1"
is_attached "${disk}1" || fail "${disk}1 not attached"
blockdev --rereadpt "$disk"
wait_for_dev "${disk}1"
is_attached "${disk}1" && fail "${disk}1 still attached after rescan"
# The new partition can be attached again.
blksnap-probe attach "${disk}1"
dd if=/dev/zero of="${disk}1" bs=64k count=4 oflag=direct status=none
blksnap-probe detach "${disk}1"

step "a partition deleted with BLKPG loses its filter"
blksnap-probe attach "${disk}2"
devnum=$(cat "/sys/class/block/$(basename "$disk")2/dev")
delpart "$disk" 2
grep -qx "$devnum" /sys/class/misc/blksnap-control/attached 2>/dev/null &&
	fail "deleted partition still listed as attached"
[ ! -e "/sys/class/block/$(basename "$disk")2" ] || fail "partition 2 not deleted"

step "unload with a filter attached"
blksnap-probe attach "${disk}1"
if [ "$(flavour)" = blkfilter ]; then
	rmmod blksnap 2>/dev/null && fail "rmmod succeeded with a filter attached"
	blksnap-probe detach "${disk}1"
	rmmod blksnap
else
	rmmod blksnap
	dd if=/dev/zero of="${disk}1" bs=64k count=4 oflag=direct status=none
fi
[ ! -e /dev/blksnap-control ] || fail "control device left behind"
load_module
echo "removal: all checks passed"
