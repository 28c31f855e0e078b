#!/usr/bin/env bash
# cost: 20
# columns: stock-6.1
# vm: --disk 512M
# The difference storage grows in many steps under a writer: a file on
# ext4 (disk 1), with a growth step of 16 MiB, to past 320 MiB while a
# writer rewrites one chunk after another of a device stamped before the
# take; the writer sees the file grow between its writes, the file grows in
# whole steps, and the image reads back every stamp and nothing else.
# Stock kernels only: the debug guest moves 4-7 MB/s, a minute and more
# for this much data. `make bench` runs it past 4 GiB (SCALE_STORAGE_MB
# and SCALE_STEP_MB set the size and the step).
. "$(dirname "$0")/lib.sh"
target_mb=${SCALE_STORAGE_MB:-320}
step_mb=${SCALE_STEP_MB:-16}
chunk=$((256 << 10))
nchunks=$((target_mb * 4 + 8))
tmp=$(mktemp -d)

step "a device of $nchunks chunks, each stamped"
echo $((step_mb << 11)) >/sys/module/blksnap/parameters/diff_storage_minimum
dev=$(nullb_create scaleorig $(((nchunks + 3) / 4 + 4)))
wait_for_dev "$dev"
mkfs.ext4 -q -F "$(disk 1)"
mkdir "$tmp/mnt"
mount "$(disk 1)" "$tmp/mnt"
python3 - "$dev" "$nchunks" $chunk <<'PY'
import mmap, os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_DIRECT)
buf = mmap.mmap(-1, 4096)
for i in range(int(sys.argv[2])):
    buf.seek(0)
    buf.write((i + 1).to_bytes(8, "little") * 512)
    os.pwrite(fd, buf, i * int(sys.argv[3]))
os.fsync(fd)
PY

step "taken; a writer rewrites every chunk while the storage grows"
store=$tmp/mnt/store
: >"$store"
id=$(blksnap snapshot_create -d "$dev" -f "$store" -l $(((target_mb + 4 * step_mb) << 20)))
blksnap snapshot_take -i "$id"
image=$(blksnap snapshot_info -d "$dev" -f image)
start=$SECONDS
# One 4 KiB write at 8 KiB into each chunk; every 16 chunks, the size of
# the storage file as the writer sees it.
python3 - "$dev" "$nchunks" $chunk "$store" >"$tmp/sizes" <<'PY'
import mmap, os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_DIRECT)
buf = mmap.mmap(-1, 4096)
buf.write(b"\xa5" * 4096)
sizes = []
for i in range(int(sys.argv[2])):
    os.pwrite(fd, buf, i * int(sys.argv[3]) + 8192)
    if i % 16 == 0:
        s = os.stat(sys.argv[4]).st_size
        if not sizes or sizes[-1] != s:
            sizes.append(s)
print(" ".join(str(s) for s in sizes))
PY
[ "$(blksnap snapshot_info -d "$dev" -f error_code)" = 0 ] || fail "snapshot corrupted"
sync
final=$(stat -c %s "$store")
read -r -a sizes <"$tmp/sizes"
echo "SCALE storage final_mib=$((final >> 20)) step_mib=$step_mb steps=$((final / (step_mb << 20)))" \
	"sizes_seen_by_writer=${#sizes[@]} seconds=$((SECONDS - start))"
[ "$final" -ge $((target_mb << 20)) ] || fail "storage only $final bytes"
[ $((final % (step_mb << 20))) -eq 0 ] || fail "storage $final not in whole steps"
[ "${#sizes[@]}" -ge $((target_mb / step_mb / 2)) ] ||
	fail "the writer saw the storage grow only ${#sizes[@]} times: ${sizes[*]}"
for s in "${sizes[@]}"; do
	[ $((s % (step_mb << 20))) -eq 0 ] || fail "storage size $s not in whole steps"
done

step "the image reads back every stamp, the original every write"
python3 - "$image" "$dev" "$nchunks" $chunk <<'PY' || fail "image content wrong"
import os, sys
img, dev, n, chunk = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
zero = bytes(chunk - 4096)
bad = 0
with open(img, "rb") as f, open(dev, "rb") as d:
    for i in range(n):
        b = f.read(chunk)
        if b[:4096] != (i + 1).to_bytes(8, "little") * 512 or b[4096:] != zero:
            bad += 1
            if bad < 5:
                print(f"image chunk {i} wrong", file=sys.stderr)
        d.seek(i * chunk + 8192)
        if d.read(4096) != b"\xa5" * 4096:
            print(f"original chunk {i} lacks the write", file=sys.stderr)
            sys.exit(1)
print(f"{n} chunks checked, {bad} wrong")
sys.exit(1 if bad else 0)
PY
blksnap snapshot_destroy -i "$id"
umount "$tmp/mnt"
