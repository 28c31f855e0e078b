#!/usr/bin/env bash
# cost: 50
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
cat >"$tmp/writer.py" <<'PY'
import mmap, os, sys
fds = [os.open(d, os.O_WRONLY | os.O_DIRECT) for d in sys.argv[3:]]
buf = mmap.mmap(-1, 4096)
k = 0
stop = False
while not stop:  # one record more once told to stop: one after the take
    stop = os.path.exists(sys.argv[2])
    k += 1
    buf.seek(0)
    buf.write(k.to_bytes(8, "little") * 512)
    for fd in fds:
        os.pwrite(fd, buf, (k % 4096) * 4096)
    if k == 50:
        open(sys.argv[1], "w").close()
print(k)
PY
python3 "$tmp/writer.py" "$tmp/started" "$tmp/stop" "${devs[@]}" >"$tmp/count" &
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
python3 - "$(cat "$tmp/count")" "${images[@]}" <<'PY' || fail "images not coherent"
import sys
written = int(sys.argv[1])
newest = []
for p in sys.argv[2:]:
    data = open(p, "rb").read()
    newest.append(max(int.from_bytes(data[i:i + 8], "little") for i in range(0, len(data), 4096)))
print("newest record per image:", newest, "written:", written)
top = newest[0]
ok = 0 < top < written and all(x in (top, top - 1) for x in newest)
ok = ok and all(a >= b for a, b in zip(newest, newest[1:]))
sys.exit(0 if ok else 1)
PY
blksnap snapshot_destroy -i "$id"
