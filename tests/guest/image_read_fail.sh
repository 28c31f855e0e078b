#!/usr/bin/env bash
# cost: 30
# columns: stock-6.1 stock-6.12
# vm: --disks 1 --disk-size 32M
# A read of an image that goes to the original device (its chunk not yet
# copied) and completes after the snapshot was lost must fail: once lost,
# writes to the original no longer wait for such reads, and one may land
# first. dm-delay holds the image's read of the original for 3 s while the
# device is detached (the snapshot corrupted) and the chunk rewritten. The
# read must then end with an error or the data of the take, never with the
# new data. dm-delay is not built in the debug kernel: stock kernels only.
. "$(dirname "$0")/lib.sh"
tmp=$(mktemp -d)
d=$(disk 1)
need_modules dm-delay
sectors=$(blockdev --getsz "$d")
gen 1 $((32 << 20)) >"$tmp/old"
gen 2 65536 >"$tmp/new"
dd if="$tmp/old" of="$d" bs=1M oflag=direct status=none
# Reads wait 3 s, writes none.
dmsetup create --noudevsync slow --table "0 $sectors delay $d 0 3000 $d 0 0"
dmsetup mknodes slow
dev=/dev/mapper/slow
blksnap-probe attach "$dev"
id=$(blksnap snapshot_create -d "$dev" -f "$tmp" -l 64M)
blksnap snapshot_take -i "$id"
image=$(blksnap snapshot_info -d "$dev" -f image)

step "a read of the original in flight when the snapshot is lost"
dd if="$image" of="$tmp/got" bs=64k skip=64 count=1 iflag=direct status=none \
	2>"$tmp/read.err" &
reader=$!
sleep 1
# Detached: the snapshot is corrupted (-ENODEV), writes pass.
blksnap-probe detach "$dev"
dd if="$tmp/new" of="$dev" bs=64k seek=64 oflag=direct status=none
rc=0
wait "$reader" || rc=$?
if [ "$rc" = 0 ]; then
	cmp -s "$tmp/got" "$tmp/new" &&
		fail "the image read returned data written after the snapshot was lost"
	cmp -s "$tmp/got" <(dd if="$tmp/old" bs=64k skip=64 count=1 status=none) ||
		fail "the image read returned neither the data of the take nor an error"
	echo "the read returned the data of the take"
else
	echo "the read failed: $(<"$tmp/read.err")"
fi
blksnap snapshot_destroy -i "$id"
dmsetup remove --noudevsync slow
echo "image_read_fail: all checks passed"
