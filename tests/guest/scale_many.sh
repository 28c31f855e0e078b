#!/usr/bin/env bash
# cost: 50
# smp: 2
# columns: stock-6.1
# Many devices: 32 (null_blk disks in memory; the runner has at most 26
# virtio disks) attached and taken in one snapshot while a writer writes all
# of them in turn; the take time is reported, and every image is coherent
# with every other: record n goes to each device in order, so the newest
# record of the images never rises along that order and falls by at most
# one. Stock kernels only: 64 commands and 512 MiB of images read in
# Python, minutes on the debug kernel.
# SCALE_DEVICES (default 32) sets how many.
. "$(dirname "$0")/lib.sh"
here=$(dirname "$0")
. "$(dirname "$0")/scale-helpers.bash"
n=${SCALE_DEVICES:-32}
tmp=$(mktemp -d)

step "$n devices"
mapfile -t devs < <(nullb_many many "$n" 16)
expect_eq "devices made" "${#devs[@]}" "$n"
for d in "${devs[@]}"; do wait_for_dev "$d"; done
# The difference storage: a null_blk disk in memory too (pages only where
# written), as a file on the guest's tmpfs would grow by a whole 1 GiB step.
store=$(nullb_create manystore 1024)
wait_for_dev "$store"

step "taken together while all are written"
# Record k goes to block k % 4096 of every device in turn (they are zero
# at first: every nonzero block of an image is a record).
"$here/records.py" write "$tmp/started" "$tmp/stop" 4096 "${devs[@]}" >"$tmp/count" &
writer=$!
until [ -e "$tmp/started" ]; do
	kill -0 "$writer" 2>/dev/null || fail "the writer ended before writing 50 records"
	sleep 0.2
done
args=()
for d in "${devs[@]}"; do args+=(-d "$d"); done
t=$(now_us)
id=$(blksnap snapshot_create "${args[@]}" -f "$store" -l 1G)
create_ms=$(elapsed_ms "$t")
t=$(now_us)
blksnap snapshot_take -i "$id"
take_ms=$(elapsed_ms "$t")
touch "$tmp/stop"
wait "$writer" || fail "the writer failed"
echo "SCALE many devices=$n create_ms=$create_ms take_ms=$take_ms (with one exec)"

step "every image coherent"
images=()
for d in "${devs[@]}"; do
	expect_eq "error code of $d" "$(blksnap snapshot_info -d "$d" -f error_code)" 0
	images+=("$(blksnap snapshot_info -d "$d" -f image)")
done
"$here/records.py" coherent "$(cat "$tmp/count")" "${images[@]}" || fail "images not coherent"
blksnap snapshot_destroy -i "$id"
