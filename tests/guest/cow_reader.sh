#!/usr/bin/env bash
# cost: 60
# vm: --disks 1 --disk-size 64M
# skip-columns: checkers+ftrace
# race
# A backup reader that keeps many chunks of the original in flight (fio,
# 4 x 32 reads of 1 MiB at once on the image, 16 KiB chunks: every pin bucket
# held all the time) must not starve first writes to uncopied chunks:
# they complete while the reader still runs, and the image stays as at
# the take. Before, copy-on-write waited for a moment with no read at all
# in the chunk's bucket, which a deep enough reader may never leave.
. "$(dirname "$0")/lib.sh"
tmp=$(mktemp -d)
d=$(disk 1)
rmmod blksnap
load_module chunk_minimum_shift=14 chunk_maximum_shift=14
gen 1 $((64 << 20)) >"$tmp/disk"
dd if="$tmp/disk" of="$d" bs=1M oflag=direct status=none
blksnap-probe attach "$d"
id=$(blksnap snapshot_create -d "$d" -f "$tmp" -l 128M)
blksnap snapshot_take -i "$id"
image=$(blksnap snapshot_info -d "$d" -f image)

step "first writes to uncopied chunks under a deep image reader"
# The reader runs for 120 s unless stopped: the writes must not need it
# to stop.
fio --name=reader --filename="${image//:/\\:}" --rw=randread --bs=1M --iodepth=32 --numjobs=4 \
	--ioengine=libaio --direct=1 --time_based --runtime=120 --size=64M \
	--output="$tmp/fio.out" &
reader=$!
sleep 5
kill -0 "$reader" || fail "the reader ended early: $(<"$tmp/fio.out")"
# fio separates file names with colons: the image name has one.
# 32 first writes of 4 KiB, each to its own chunk, 1 MiB apart.
cmds=()
for ((i = 0; i < 32; i++)); do
	cmds+=(-c "pwrite -q -S 0x5a $((i << 20)) 4k")
done
start=$SECONDS
xfs_io -d "${cmds[@]}" "$d"
echo "32 first writes took $((SECONDS - start)) s with the reader running"
kill -0 "$reader" || fail "the first writes completed only after the reader stopped"
kill "$reader"
wait "$reader" || true
expect_eq "error code" "$(blksnap snapshot_info -d "$d" -f error_code)" 0
cmp "$image" "$tmp/disk" || fail "the image changed under the writes"
blksnap snapshot_destroy -i "$id"
blksnap-probe detach "$d"
echo "cow_reader: all checks passed"
