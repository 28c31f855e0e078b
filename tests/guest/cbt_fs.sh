#!/usr/bin/env bash
# cost: 90
# vm: --disks 1 --disk-size 512M
# Change tracking under mounted file systems, attached while writers run:
# ext4 on a loop device and xfs on a partition of a virtio disk. Data
# written stays intact (checksums after a remount) and the map marks every
# block of the files written after attach.
. "$(dirname "$0")/lib.sh"
here=$(dirname "$0")
tmp=$(mktemp -d)

# check_fs DEV MOUNTPOINT: attach during writes, then verify data and map.
check_fs() {
	local dev=$1 mnt=$2 bs
	step "$dev: writer running while the filter attaches"
	fio --name=bg --directory="$mnt" --size=16M --bs=4k-256k --rw=randwrite \
		--ioengine=psync --direct=0 --fsync=32 --time_based --runtime=6 \
		--eta=never --output=/dev/null &
	local writer=$!
	sleep 2
	blksnap-probe attach "$dev"
	wait "$writer"
	is_attached "$dev" || fail "$dev not attached"

	step "$dev: new files written while tracked"
	mkdir -p "$mnt/new"
	# 12 files of 64 KiB .. 2 MiB, in one process (an exec costs about
	# half a second on the debug kernel).
	python3 - "$mnt/new" <<'PY'
import os, random, sys
for i in range(1, 13):
    with open(f"{sys.argv[1]}/f{i}", "wb") as f:
        f.write(os.urandom(65536 * random.randint(1, 32)))
PY
	sync
	(cd "$mnt" && xxhsum new/* bg.* >"$tmp/sums")
	python3 "$here/fiemap_record.py" "$mnt"/new/* >"$tmp/written"

	step "$dev: the map covers every block of the new files"
	bs=$(cbt_field "$dev" block_size)
	blksnap-probe map "$dev" "$tmp/map"
	python3 "$here/cbt_expect.py" "$tmp/map" "$bs" 1 "$tmp/written" --superset

	step "$dev: data intact after a remount"
	umount "$mnt"
	mount "$dev" "$mnt"
	(cd "$mnt" && xxhsum -c --quiet "$tmp/sums") || fail "checksums differ on $dev"
	umount "$mnt"
	blksnap-probe detach "$dev"
}

need_modules loop ext4 xfs
step "ext4 on a loop device"
truncate -s 64M "$tmp/loop.img"
loop=$(losetup -f --show "$tmp/loop.img")
mkfs.ext4 -q "$loop"
mkdir -p "$tmp/ext4"
mount "$loop" "$tmp/ext4"
check_fs "$loop" "$tmp/ext4"
losetup -d "$loop"

step "xfs on a partition of a virtio disk"
dev=$(disk 1)
parted -s "$dev" mklabel gpt mkpart a 1MiB 400MiB mkpart b 400MiB 100%
part=${dev}1
wait_for_dev "$part"
mkfs.xfs -q -f "$part"
mkdir -p "$tmp/xfs"
mount "$part" "$tmp/xfs"
check_fs "$part" "$tmp/xfs"
is_attached "$dev" && fail "whole disk attached although only a partition was"
echo "cbt_fs: all checks passed"
