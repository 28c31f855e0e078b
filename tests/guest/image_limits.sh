#!/usr/bin/env bash
# cost: 20
# columns: stock-6.1 stock-6.12
# A snapshot's image has its original's block sizes, I/O hints and
# alignment, so that whatever reads or formats the image (a file system, a
# backup tool sizing its requests) sees the device it was taken from: a
# scsi_debug disk with 4 KiB physical blocks on 512-byte sectors, misaligned
# by 7 sectors, with a minimum and an optimal I/O size, and a loop device
# with 4 KiB sectors. scsi_debug is a stock-kernel driver (the debug kernel
# has none); the code under test is the same for both interceptions.
. "$(dirname "$0")/lib.sh"
tmp=$(mktemp -d)
need_modules sd_mod loop
attrs="queue/logical_block_size queue/physical_block_size queue/minimum_io_size queue/optimal_io_size alignment_offset"
limits() { # DEV: its limits, one "attr=value" a line
	local a
	for a in $attrs; do
		echo "$a=$(cat "/sys/block/${1#/dev/}/$a")"
	done
}
# same_limits DEV: the image of a snapshot of DEV has DEV's limits.
same_limits() {
	local dev=$1 id image
	blksnap attach -d "$dev"
	id=$(blksnap snapshot_create -d "$dev" -f "$tmp" -l 64M)
	blksnap snapshot_take -i "$id"
	image=$(blksnap snapshot_info -d "$dev" -f image)
	limits "$dev"
	expect_eq "limits of the image of $dev" "$(limits "$image")" "$(limits "$dev")"
	blksnap snapshot_destroy -i "$id"
	blksnap detach -d "$dev"
}

step "a scsi_debug disk: 4 KiB physical blocks, misaligned, I/O hints"
sdev=$(scsi_debug_disk dev_size_mb=32 sector_size=512 physblk_exp=3 \
	lowest_aligned=7 opt_xferlen_exp=4 opt_blks=256)
# Limits that a 512-byte default would not meet by chance.
l=$(limits "$sdev")
grep -qx "queue/physical_block_size=4096" <<<"$l" ||
	fail "scsi_debug disk has no 4 KiB physical blocks: $l"
grep -qx "queue/optimal_io_size=131072" <<<"$l" ||
	fail "scsi_debug disk has no optimal I/O size: $l"
grep -q "^alignment_offset=[1-9]" <<<"$l" || fail "scsi_debug disk is aligned: $l"
same_limits "$sdev"
rmmod scsi_debug

step "a loop device with 4 KiB sectors"
truncate -s 16M "$tmp/backing"
ldev=$(losetup --find --show --sector-size 4096 "$tmp/backing")
grep -qx "queue/logical_block_size=4096" <<<"$(limits "$ldev")" ||
	fail "$ldev has no 4 KiB sectors"
same_limits "$ldev"
losetup -d "$ldev"
echo "image_limits: all checks passed"
