#!/usr/bin/env bash
# cost: 120
# vm: --disk 32M --disk 128M
# skip-columns: checkers+ftrace
# Difference storage: a file grows in portions up to the limit; tmpfs files,
# O_TMPFILE and a block device all work; overflow corrupts the snapshot,
# queues an event and fails image reads while the original keeps working;
# wrong kinds of storage, and storage written through a device of the
# snapshot (stacked on it), are refused.
. "$(dirname "$0")/lib.sh"
dev=$(disk 1)
store_dev=$(disk 2)
tmp=$(mktemp -d)
sum() { dd if="$1" bs=1M iflag=direct status=none | xxhsum -H64 - | cut -d' ' -f1; }

step "reload with a 4 MiB growth step"
rmmod blksnap
load_module diff_storage_minimum=8192

step "wrong storage is refused"
expect_eq "character device" "$(blksnap-probe create /dev/null rw 8192)" EINVAL
expect_eq "read-only file" "$(blksnap-probe create /etc/hostname ro 8192)" EBADF
expect_eq "directory fd" "$(blksnap-probe create /tmp dir 8192)" EBADF
expect_eq "socket" "$(blksnap-probe create - socket 8192)" EINVAL
expect_eq "block device without O_EXCL" "$(blksnap-probe create "$store_dev" rw 8192)" EINVAL
expect_eq "zero limit" "$(blksnap-probe create "$store_dev" rw-excl 0)" EINVAL
expect_eq "block device with O_EXCL" "$(blksnap-probe create "$store_dev" rw-excl 8192)" created

step "a file on tmpfs grows in 4 MiB portions, never past the limit"
dd if=/dev/urandom of="$dev" bs=1M count=$(($(blockdev --getsize64 "$dev") >> 20)) \
	oflag=direct status=none
before=$(sum "$dev")
: >"$tmp/store"
id=$(blksnap snapshot_create -d "$dev" -f "$tmp/store" -l 20M)
blksnap snapshot_take -i "$id"
image=$(blksnap snapshot_info -d "$dev" -f image)
expect_eq "storage before writes" "$(stat -c %s "$tmp/store")" 0
# 24 chunks of 256 KiB = 6 MiB of old data: 4 KiB of zeros at the start
# of each, O_DIRECT, in one process (an exec costs about half a second on
# the debug kernel).
pwrites=()
for i in $(seq 0 23); do pwrites+=(-c "pwrite -q -S 0 $((i * 256))k 4k"); done
xfs_io -d "${pwrites[@]}" "$dev"
sleep 1
grown=$(stat -c %s "$tmp/store")
[ "$grown" -ge $((6 << 20)) ] || fail "storage did not grow: $grown bytes"
[ $((grown % (4 << 20))) -eq 0 ] || fail "growth not in 4 MiB portions: $grown"
[ "$grown" -le $((20 << 20)) ] || fail "storage past its limit: $grown"
expect_eq "image intact" "$(sum "$image")" "$before"

step "overflow: the limit is reached, the snapshot is corrupted"
dd if=/dev/urandom of="$tmp/new" bs=1M count=32 status=none
dd if="$tmp/new" of="$dev" bs=1M oflag=direct status=none
sleep 1
[ "$(stat -c %s "$tmp/store")" -le $((20 << 20)) ] || fail "storage past its limit"
expect_eq "error code" "$(blksnap snapshot_info -d "$dev" -f error_code)" -28
ev=$(blksnap snapshot_waitevent -i "$id" -t 1000)
echo "$ev"
grep -qx "event=corrupted" <<<"$ev" || fail "no corrupted event: $ev"
grep -qx "err_code=-28" <<<"$ev" || fail "wrong error in event: $ev"
grep -qx "dev_id=$(cat "/sys/class/block/${dev##*/}/dev")" <<<"$ev" ||
	fail "wrong device in event: $ev"
dd if="$image" of=/dev/null bs=1M count=1 iflag=direct status=none 2>/dev/null &&
	fail "image read succeeded on a corrupted snapshot"
step "the original keeps working: all writes landed"
dd if="$dev" bs=1M count=32 iflag=direct status=none | cmp - "$tmp/new" ||
	fail "original lost writes"
blksnap snapshot_destroy -i "$id"
rm -f "$tmp/store" "$tmp/new"

step "O_TMPFILE storage in a directory, and a block device"
for store in "$tmp" "$store_dev"; do
	dd if=/dev/urandom of="$dev" bs=1M count=32 oflag=direct status=none
	before=$(sum "$dev")
	id=$(blksnap snapshot_create -d "$dev" -f "$store" -l 100M)
	blksnap snapshot_take -i "$id"
	image=$(blksnap snapshot_info -d "$dev" -f image)
	dd if=/dev/urandom of="$dev" bs=1M count=32 oflag=direct status=none
	expect_eq "image on $store" "$(sum "$image")" "$before"
	blksnap snapshot_destroy -i "$id"
done
[ -z "$(ls -A "$tmp")" ] || fail "O_TMPFILE storage left a file: $(ls "$tmp")"

step "storage on the same disk as a snapshot device is refused"
parted -s "$store_dev" mklabel gpt mkpart a 1MiB 60MiB mkpart b 60MiB 120MiB
wait_for_dev "${store_dev}2"
id=$(blksnap snapshot_create -f "${store_dev}2" -l 50M)
out=$(blksnap snapshot_add -i "$id" -d "${store_dev}1" 2>&1) &&
	fail "device on the storage's disk was added"
echo "$out"
blksnap snapshot_destroy -i "$id"
blksnap detach -d "${store_dev}1"

step "storage stacked on a snapshot device is refused"
# Written through the device, the storage would copy-on-write its own
# writes: a loop device on a file of its file system, a file system on that
# loop device, a device-mapper target on it.
# stacked WHAT STORAGE: a snapshot of $dev with STORAGE is refused.
stacked() {
	local out
	if out=$(blksnap snapshot_create -d "$dev" -f "$2" -l 32M 2>&1); then
		blksnap snapshot_destroy -i "$out"
		fail "$1 on $dev accepted as storage"
	fi
	echo "$out"
	grep -q "written through $dev" <<<"$out" || fail "$1: not refused as stacked"
}
need_modules ext4 loop
mkfs.ext4 -q -F "$dev"
mkdir "$tmp/fs" "$tmp/loopfs"
mount "$dev" "$tmp/fs"
truncate -s 32M "$tmp/fs/disk.img"
loop=$(losetup --find --show "$tmp/fs/disk.img")
stacked "a loop device" "$loop"
mkfs.ext4 -q "$loop"
mount "$loop" "$tmp/loopfs"
stacked "a file on a loop device" "$tmp/loopfs/store"
umount "$tmp/loopfs"
losetup -d "$loop"
umount "$tmp/fs"
# (No udev in the guest: the node is made by hand.)
dmsetup create --noudevsync blksnap-stacked --table "0 $(blockdev --getsz "$dev") linear $dev 0"
dmsetup mknodes blksnap-stacked
[ -b /dev/mapper/blksnap-stacked ] || fail "no device-mapper node"
stacked "a device-mapper target" /dev/mapper/blksnap-stacked
dmsetup remove --noudevsync blksnap-stacked
step "storage on a btrfs spanning a snapshot device is refused"
# Its files are written through every member device; the kernel knows only
# the one in its superblock (stock kernels: the debug kernel has no btrfs).
if modprobe btrfs 2>/dev/null; then
	truncate -s 256M "$tmp/m1" "$tmp/m2"
	m1=$(losetup --find --show "$tmp/m1")
	m2=$(losetup --find --show "$tmp/m2")
	mkfs.btrfs -q -f -d single -m single "$m1" "$m2" >/dev/null
	mkdir -p "$tmp/btrfs"
	mount -t btrfs -o device="$m2" "$m1" "$tmp/btrfs"
	for m in "$m1" "$m2"; do
		if out=$(blksnap snapshot_create -d "$m" -f "$tmp/btrfs/store" -l 32M 2>&1); then
			blksnap snapshot_destroy -i "$out"
			fail "a file of a btrfs on $m1 and $m2 accepted as the storage of $m"
		fi
		echo "$out"
		rm -f "$tmp/btrfs/store"
	done
	umount "$tmp/btrfs"
	for m in "$m1" "$m2"; do
		blksnap detach -d "$m" 2>/dev/null || true
		losetup -d "$m"
	done
else
	echo "no btrfs in this kernel: step skipped"
fi
# An overlay's files are written to its upper layer's file system.
need_modules overlay
step "storage in an overlay whose upper layer is on a snapshot device is refused"
mkfs.ext4 -q -F "$dev"
mount "$dev" "$tmp/fs"
mkdir "$tmp/fs/up" "$tmp/fs/work" "$tmp/low" "$tmp/ovl"
mount -t overlay overlay \
	-o "lowerdir=$tmp/low,upperdir=$tmp/fs/up,workdir=$tmp/fs/work" "$tmp/ovl"
if out=$(blksnap snapshot_create -d "$dev" -f "$tmp/ovl/store" -l 32M 2>&1); then
	blksnap snapshot_destroy -i "$out"
	fail "a file of an overlay on $dev accepted as storage"
fi
echo "$out"
umount "$tmp/ovl"
umount "$tmp/fs"

step "storages in a loop are refused; a storage on a tracked device works"
# Snapshot 1 holds $dev and stores on ${store_dev}1; snapshot 2 would hold
# ${store_dev}1 and store on $dev: each one's copy-on-write would wait for
# the other's. Its take is refused (EDEADLK). Snapshot 1 goes on, its
# storage on a tracked device (its writes counted by a reserve of their
# own, not the one deep queues of held writes to $dev use up).
mkfs.ext4 -q -F "$dev"
mkfs.ext4 -q -F "${store_dev}1"
mkdir -p "$tmp/fs2"
mount "$dev" "$tmp/fs"
mount "${store_dev}1" "$tmp/fs2"
dd if=/dev/urandom of="$tmp/before" bs=1M count=4 status=none
cp "$tmp/before" "$tmp/fs/before"
sync
id1=$(blksnap snapshot_create -d "$dev" -f "$tmp/fs2/store1" -l 24M)
blksnap snapshot_take -i "$id1"
id2=$(blksnap snapshot_create -d "${store_dev}1" -f "$tmp/fs/store2" -l 8M)
if out=$(blksnap snapshot_take -i "$id2" 2>&1); then
	fail "a snapshot whose storage loops back through another was taken"
fi
echo "$out"
[[ $out == *"deadlock"* ]] || fail "take of a storage loop: unclear error: $out"
blksnap snapshot_destroy -i "$id2"
fio --name=deep --filename="$tmp/fs/before" --rw=randwrite --bs=4k \
	--size=4M --io_size=16M --direct=1 --ioengine=libaio --iodepth=128 \
	--output=/dev/null || fail "fio under a snapshot storing on a tracked device"
img=$(blksnap snapshot_info -d "$dev" -f image)
expect_eq "snapshot 1 error" "$(blksnap snapshot_info -d "$dev" -f error_code)" 0
mkdir -p "$tmp/img"
mount -o ro,noload "$img" "$tmp/img"
cmp -s "$tmp/fs/before" "$tmp/before" && fail "fio changed nothing"
cmp "$tmp/img/before" "$tmp/before" || fail "snapshot 1's image changed"
umount "$tmp/img"
blksnap snapshot_destroy -i "$id1"
umount "$tmp/fs2"
umount "$tmp/fs"
blksnap detach -d "${store_dev}1"
[ -z "$(blksnap snapshot_collect)" ] || fail "snapshots left"
blksnap detach -d "$dev"
echo "snapshot_storage: all checks passed"
