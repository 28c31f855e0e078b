#!/usr/bin/env bash
# columns: stock-6.1
# cost: 120
# vm: --disks 2 --disk-size 512M
# The ways old data reaches and leaves the difference storage: a file on
# ext4 and on xfs (direct I/O into the image's pages), a block device (bios
# cloned to it), and a block device with 4 KiB sectors read and written by
# the image in 512-byte pieces (the page-cache path), with image writes
# between direct reads. Every image read is compared with what the image
# must hold.
. "$(dirname "$0")/lib.sh"
dev=$(disk 1)
store_dev=$(disk 2)
tmp=$(mktemp -d)
mb=16
sum() { dd if="$1" bs=1M count=$mb iflag=direct status=none | xxhsum -H64 - | cut -d' ' -f1; }
sum_buffered() { dd if="$1" bs=64k count=$((mb * 16)) status=none | xxhsum -H64 - | cut -d' ' -f1; }
sum_file() { xxhsum -H64 "$1" | cut -d' ' -f1; }

# image_writes IMAGE: the same small, unaligned writes to the image and to
# $tmp/expect (the image's expected content).
image_writes() {
	local seek
	for seek in 1 777 4099 16383 16384 24000; do
		dd if=/dev/urandom of="$tmp/piece" bs=512 count=9 status=none
		dd if="$tmp/piece" of="$1" bs=512 seek="$seek" oflag=direct status=none
		dd if="$tmp/piece" of="$tmp/expect" bs=512 seek="$seek" conv=notrunc status=none
	done
}

# check_storage STORAGE WHAT: take a snapshot with STORAGE, copy every
# chunk by overwriting the original, and check the image by direct and
# buffered reads, before and after unaligned image writes.
check_storage() {
	local id image
	dd if=/dev/urandom of="$dev" bs=1M count=$mb oflag=direct status=none
	dd if="$dev" of="$tmp/expect" bs=1M count=$mb iflag=direct status=none
	id=$(blksnap snapshot_create -d "$dev" -f "$1" -l 100M)
	blksnap snapshot_take -i "$id"
	image=$(blksnap snapshot_info -d "$dev" -f image)
	dd if=/dev/urandom of="$dev" bs=1M count=$mb oflag=direct status=none
	expect_eq "$2: image, direct reads" "$(sum "$image")" "$(sum_file "$tmp/expect")"
	image_writes "$image"
	expect_eq "$2: image after writes, direct reads" "$(sum "$image")" "$(sum_file "$tmp/expect")"
	echo 1 >/proc/sys/vm/drop_caches
	expect_eq "$2: image after writes, buffered reads" "$(sum_buffered "$image")" "$(sum_file "$tmp/expect")"
	dd if="$image" of="$tmp/piece" bs=512 skip=4099 count=9 iflag=direct status=none
	expect_eq "$2: a 512-byte-aligned direct read" "$(sum_file "$tmp/piece")" \
		"$(dd if="$tmp/expect" bs=512 skip=4099 count=9 status=none | xxhsum -H64 - | cut -d' ' -f1)"
	blksnap snapshot_destroy -i "$id"
}

for fs in ext4 xfs; do
	step "storage file on $fs: stored chunks read directly"
	mkdir -p "$tmp/m"
	if [ $fs = ext4 ]; then mkfs.ext4 -q -F "$store_dev"; else mkfs.xfs -q -f "$store_dev"; fi
	mount "$store_dev" "$tmp/m"
	: >"$tmp/m/store"
	check_storage "$tmp/m/store" "$fs file"
	rm "$tmp/m/store"
	check_storage "$tmp/m" "$fs O_TMPFILE"
	umount "$tmp/m"
done

step "a storage device: stored chunks read by bios sent to it"
check_storage "$store_dev" "block device"

step "a storage device with 4 KiB sectors, image I/O in 512-byte pieces"
nb=/sys/kernel/config/nullb/store4k
nbdev=$(nullb_create store4k 256 4096)
[ -b "$nbdev" ] || fail "no null_blk device"
expect_eq "storage sector size" "$(blockdev --getss "$nbdev")" 4096
check_storage "$nbdev" "4 KiB-sector device"
echo 0 >"$nb/power"
rmdir "$nb"

blksnap detach -d "$dev"
echo "snapshot_storage_io: all checks passed"
