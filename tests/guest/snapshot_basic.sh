#!/usr/bin/env bash
# cost: 45
# vm: --disks 1 --disk-size 32M
# smoke
# A snapshot's image holds the device's content at the take, byte for byte,
# while the original is overwritten; the original ends up holding exactly
# the new writes; destroy removes the image and keeps tracking.
. "$(dirname "$0")/lib.sh"
dev=$(disk 1)
tmp=$(mktemp -d)
size=$(blockdev --getsize64 "$dev")
sum() { dd if="$1" bs=1M iflag=direct status=none | xxhsum -H64 - | cut -d' ' -f1; }

step "fill $dev with known data, keep a copy"
dd if=/dev/urandom of="$tmp/expected" bs=1M count=$((size >> 20)) status=none
dd if="$tmp/expected" of="$dev" bs=1M oflag=direct status=none
before=$(sum "$dev")
expect_eq "device written" "$before" "$(xxhsum -H64 - <"$tmp/expected" | cut -d' ' -f1)"

step "create and take a snapshot (storage: O_TMPFILE in /tmp)"
id=$(blksnap snapshot_create -d "$dev" -f "$tmp" -l 200M)
blksnap snapshot_take -i "$id"
image=$(blksnap snapshot_info -d "$dev" -f image)
[ -b "$image" ] || fail "no image device $image"
expect_eq "image size" "$(blockdev --getsize64 "$image")" "$size"
expect_eq "changes number" "$(cbt_field "$dev" changes_number)" 1

step "overwrite the original: random writes of 4 KiB .. 1 MiB"
# One process for the 60 writes: an exec costs over a second on the debug
# kernel. Each write goes to the device (O_DIRECT, from a page-aligned
# buffer) and to the same place of the expected copy.
python3 - "$dev" "$tmp/expected" <<'PY'
import mmap, os, random, sys
dev = os.open(sys.argv[1], os.O_WRONLY | os.O_DIRECT)
expected = os.open(sys.argv[2], os.O_WRONLY)
size = os.lseek(dev, 0, os.SEEK_END)
buf = mmap.mmap(-1, 1 << 20)
for _ in range(60):
    length = random.randint(1, 256) * 4096
    offset = random.randrange((size - length) // 4096 + 1) * 4096
    data = os.urandom(length)
    buf[:length] = data
    if os.pwrite(dev, memoryview(buf)[:length], offset) != length:
        sys.exit("short write to the device")
    if os.pwrite(expected, data, offset) != length:
        sys.exit("short write to the expected copy")
PY
step "the image holds the content at the take"
expect_eq "image checksum" "$(sum "$image")" "$before"
step "the original holds exactly the new writes"
expect_eq "original checksum" "$(sum "$dev")" \
	"$(xxhsum -H64 - <"$tmp/expected" | cut -d' ' -f1)"
rm -f "$tmp/expected"

step "the image is stable while the original is written concurrently"
fio --name=w --filename="$dev" --rw=randwrite --bs=4k-1m --direct=1 \
	--time_based --runtime=5 --eta=never --output=/dev/null &
writer=$!
expect_eq "image checksum under writes" "$(sum "$image")" "$before"
wait "$writer"
expect_eq "image checksum after writes" "$(sum "$image")" "$before"
expect_eq "snapshot error" "$(blksnap snapshot_info -d "$dev" -f error_code)" 0

step "destroy: the image goes, tracking stays"
blksnap snapshot_destroy -i "$id"
[ ! -e "$image" ] || fail "image $image still present"
is_attached "$dev" || fail "tracking stopped"
[ -z "$(blksnap snapshot_collect)" ] || fail "snapshots left"
blksnap detach -d "$dev"
echo "snapshot_basic: all checks passed"
