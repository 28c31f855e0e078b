#!/usr/bin/env bash
# cost: 65
# vm: --disks 1 --disk-size 128M
# smoke
# Change tracking on a raw virtio disk: the map marks exactly the tracking
# blocks that were written, discarded or zeroed, and no other; reads and
# flushes mark nothing; cbtdirty marks exactly its ranges; reattach starts
# a new generation.
. "$(dirname "$0")/lib.sh"
dev=$(disk 1)
size=$(blockdev --getsize64 "$dev")
tmp=$(mktemp -d)
here=$(dirname "$0")

step "attach $dev"
blksnap-probe attach "$dev"
is_attached "$dev" || fail "$dev not listed as attached"
bs=$(cbt_field "$dev" block_size)
expect_eq block_size "$bs" 65536
expect_eq device_capacity "$(cbt_field "$dev" device_capacity)" "$size"
expect_eq block_count "$(cbt_field "$dev" block_count)" $(((size + 65535) / 65536))
expect_eq changes_number "$(cbt_field "$dev" changes_number)" 0
gen1=$(cbt_field "$dev" generation_id)

step "reads and flushes mark nothing"
dd if="$dev" of=/dev/null bs=1M iflag=direct status=none
sync
blockdev --flushbufs "$dev"
blksnap-probe map "$dev" "$tmp/map"
[ -z "$(tr -d '\0' <"$tmp/map")" ] || fail "reads or flushes marked blocks"

step "random direct writes of 4 KiB .. 1 MiB"
# One process for the 40 writes (an exec costs a second on the debug
# kernel): each is logged as "OFFSET LENGTH".
python3 - "$dev" >"$tmp/written" <<'PY'
import mmap, os, random, sys
dev = os.open(sys.argv[1], os.O_WRONLY | os.O_DIRECT)
size = os.lseek(dev, 0, os.SEEK_END)
buf = mmap.mmap(-1, 1 << 20)
for _ in range(40):
    length = random.randint(1, 256) * 4096
    offset = random.randrange((size - length) // 4096 + 1) * 4096
    buf[:length] = os.urandom(length)
    if os.pwrite(dev, memoryview(buf)[:length], offset) != length:
        sys.exit("short write")
    print(offset, length)
PY
step "buffered writes and the last byte of the disk"
dd if=/dev/urandom of="$dev" bs=512 seek=$((size / 512 - 1)) count=1 status=none
echo "$((size - 512)) 512" >>"$tmp/written"
dd if=/dev/urandom of="$dev" bs=4096 seek=1000 count=3 status=none
echo "$((1000 * 4096)) $((3 * 4096))" >>"$tmp/written"
sync
blksnap-probe map "$dev" "$tmp/map"
python3 "$here/cbt_expect.py" "$tmp/map" "$bs" 1 "$tmp/written"

step "discard and write-zeroes mark their ranges"
blkdiscard -o $((size / 2)) -l $((3 << 20)) "$dev"
echo "$((size / 2)) $((3 << 20))" >>"$tmp/written"
blkdiscard -z -o $((size * 3 / 4)) -l $((1 << 20)) "$dev"
echo "$((size * 3 / 4)) $((1 << 20))" >>"$tmp/written"
blksnap-probe map "$dev" "$tmp/map"
python3 "$here/cbt_expect.py" "$tmp/map" "$bs" 1 "$tmp/written"

step "cbtdirty marks exactly its ranges"
blksnap-probe dirty "$dev" 20480:1 40960:256 100000:129
for r in "20480 1" "40960 256" "100000 129"; do
	set -- $r
	echo "$(($1 * 512)) $(($2 * 512))" >>"$tmp/written"
done
blksnap-probe map "$dev" "$tmp/map"
python3 "$here/cbt_expect.py" "$tmp/map" "$bs" 1 "$tmp/written"

step "cbtdirty with an invalid range marks none of its ranges"
out=$(blksnap-probe dirty "$dev" 200000:8 $((size / 512)):8 2>&1) &&
	fail "cbtdirty past the end accepted"
echo "$out"
blksnap-probe map "$dev" "$tmp/map"
python3 "$here/cbt_expect.py" "$tmp/map" "$bs" 1 "$tmp/written" ||
	fail "cbtdirty marked ranges of a command it refused"

step "detach, reattach: a new generation with an empty map"
blksnap-probe detach "$dev"
is_attached "$dev" && fail "$dev still attached"
dd if=/dev/urandom of="$dev" bs=4096 count=1 oflag=direct status=none
blksnap-probe attach "$dev"
gen2=$(cbt_field "$dev" generation_id)
[ "$gen1" != "$gen2" ] || fail "generation id did not change: $gen1"
blksnap-probe map "$dev" "$tmp/map"
[ -z "$(tr -d '\0' <"$tmp/map")" ] || fail "new generation map is not empty"
blksnap-probe detach "$dev"
echo "cbt_raw: all checks passed"
