#!/usr/bin/env bash
# cost: 50
# smoke
# vm: --disks 1 --disk-size 48M
# Every path to a tracked sector is tracked and copied on write: a
# partition added to a tracked whole disk after the take and written, a
# tracked partition written through its whole disk; and a device that
# shrinks and grows back (its lost tail may come back with other data)
# starts a new generation and fails a held snapshot. A partition and its
# disk both tracked each see the writes made through the other.
. "$(dirname "$0")/lib.sh"
here=$(dirname "$0")
tmp=$(mktemp -d)
d=$(disk 1)
mib=$((1 << 20))

# map_of DEV NUMBER OFFSET...: the change map of DEV must mark exactly the
# 64 KiB written at each OFFSET, with NUMBER.
map_of() {
	printf '%s 65536\n' "${@:3}" >"$tmp/record"
	blksnap-probe map "$1" "$tmp/map"
	python3 "$here/cbt_expect.py" "$tmp/map" "$(cbt_field "$1" block_size)" "$2" "$tmp/record" ||
		fail "change map of $1 misses a write at ${*:3}"
}

# take_then_add_partition: attach the whole disk, take a snapshot of it
# (sets id and image), then add partition 1: 8 MiB at 8 MiB (512-byte
# sectors).
take_then_add_partition() {
	blksnap-probe attach "$d"
	id=$(blksnap snapshot_create -d "$d" -f "$tmp" -l 64M)
	blksnap snapshot_take -i "$id"
	image=$(blksnap snapshot_info -d "$d" -f image)
	addpart "$d" 1 $((8 * 2048)) $((8 * 2048))
	wait_for_dev "${d}1"
}

step "a partition added to a tracked whole disk after the take, written"
gen 1 $((48 * mib)) >"$tmp/disk"
gen 2 65536 >"$tmp/w"
dd if="$tmp/disk" of="$d" bs=1M oflag=direct status=none
take_then_add_partition
# The write lands 1 MiB into the partition.
dd if="$tmp/w" of="${d}1" bs=64k seek=16 oflag=direct status=none
cmp -s "$tmp/w" <(dd if="$d" bs=64k skip=144 count=1 iflag=direct status=none) ||
	fail "the write through the partition did not reach the disk"
expect_eq "error code" "$(blksnap snapshot_info -d "$d" -f error_code)" 0
cmp "$image" "$tmp/disk" || fail "the image changed by a write through a new partition"
delpart "$d" 1
blksnap snapshot_destroy -i "$id"
# Take 1 froze the map: writes since hold 2.
map_of "$d" 2 $((9 * mib))
blksnap-probe detach "$d"

step "a tracked partition written through its whole disk"
parted -s "$d" mklabel gpt mkpart a 1MiB 17MiB mkpart b 17MiB 33MiB
wait_for_dev "${d}1"
wait_for_dev "${d}2"
dd if="$tmp/disk" of="${d}1" bs=1M count=16 oflag=direct status=none
blksnap-probe attach "${d}1"
id=$(blksnap snapshot_create -d "${d}1" -f "$tmp" -l 64M)
blksnap snapshot_take -i "$id"
image=$(blksnap snapshot_info -d "${d}1" -f image)
# 4 MiB into the partition, and a write to the whole disk outside it.
dd if="$tmp/w" of="$d" bs=64k seek=80 oflag=direct status=none
dd if="$tmp/w" of="$d" bs=64k seek=400 oflag=direct status=none
cmp -s "$tmp/w" <(dd if="${d}1" bs=64k skip=64 count=1 iflag=direct status=none) ||
	fail "the write through the disk did not reach the partition"
expect_eq "error code" "$(blksnap snapshot_info -d "${d}1" -f error_code)" 0
cmp "$image" <(head -c $((16 * mib)) "$tmp/disk") ||
	fail "the image of the partition changed by a write through its disk"
blksnap snapshot_destroy -i "$id"
map_of "${d}1" 2 $((4 * mib))
blksnap-probe detach "${d}1"

step "a partition added to a tracked disk and tracked too: a write through either reaches both"
delpart "$d" 2
delpart "$d" 1
dd if="$d" of="$tmp/before" bs=1M count=48 iflag=direct status=none
take_then_add_partition
blksnap-probe attach "${d}1"
# 2 MiB into the partition (10 MiB into the disk) through the partition,
# and 12 MiB into the disk (4 MiB into the partition) through the disk.
dd if="$tmp/w" of="${d}1" bs=64k seek=32 oflag=direct status=none
dd if="$tmp/w" of="$d" bs=64k seek=192 oflag=direct status=none
expect_eq "error code" "$(blksnap snapshot_info -d "$d" -f error_code)" 0
cmp "$image" "$tmp/before" || fail "the disk's image changed by a write through either device"
blksnap snapshot_destroy -i "$id"
# The partition, never taken, holds 1; the disk (whose map is read once it
# has no partitions) 2, written since take 1.
map_of "${d}1" 1 $((2 * mib)) $((4 * mib))
blksnap-probe detach "${d}1"
delpart "$d" 1
map_of "$d" 2 $((10 * mib)) $((12 * mib))
blksnap-probe detach "$d"

step "a device shrunk and grown back between two takes"
need_modules loop
gen 3 $((16 * mib)) >"$tmp/backing"
loop=$(losetup --find --show "$tmp/backing")
blksnap-probe attach "$loop"
blksnap-probe cycle "$loop" 1 "$tmp"
generation=$(cbt_field "$loop" generation_id)
truncate -s 8M "$tmp/backing"
losetup --set-capacity "$loop"
truncate -s 16M "$tmp/backing"
losetup --set-capacity "$loop"
blksnap-probe cycle "$loop" 1 "$tmp"
[ "$(cbt_field "$loop" generation_id)" != "$generation" ] ||
	fail "shrunk and grown back: the generation went on, its map misses the lost tail"
expect_eq "changes number" "$(cbt_field "$loop" changes_number)" 1

step "a device shrunk and grown back under a held snapshot"
gen 4 $((16 * mib)) >"$tmp/backing"
id=$(blksnap snapshot_create -d "$loop" -f "$tmp" -l 64M)
blksnap snapshot_take -i "$id"
image=$(blksnap snapshot_info -d "$loop" -f image)
truncate -s 8M "$tmp/backing"
losetup --set-capacity "$loop"
truncate -s 16M "$tmp/backing"
losetup --set-capacity "$loop"
err=$(blksnap snapshot_info -d "$loop" -f error_code)
if [ "$err" = 0 ]; then
	cmp -s "$image" <(gen 4 $((16 * mib))) ||
		fail "the image changed with error_code=0 after a resize"
	fail "a resize under a held snapshot left it valid"
fi
echo "error code after the resize: $err"
blksnap snapshot_destroy -i "$id"
blksnap-probe detach "$loop"
losetup -d "$loop"
echo "partition_paths: all checks passed"
