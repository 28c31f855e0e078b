#!/usr/bin/env bash
# cost: 90
# vm: --disks 1 --disk-size 256M
# skip-columns: checkers+ftrace
# The changes number counts takes; the map tells which blocks changed since
# any earlier take of the generation. After take 254 the number written for
# new changes is 255, the largest a map byte holds; take 255 therefore ends
# the generation: a new identifier, the number starts again at 1 and the old
# map is gone. So does the first take after the device was resized, with a
# map of the new size.
. "$(dirname "$0")/lib.sh"
dev=$(disk 1)
tmp=$(mktemp -d)
here=$(dirname "$0")
bs=65536

blksnap-probe attach "$dev"
gen=$(cbt_field "$dev" generation_id)
step "take 1: blocks written before it hold 1"
dd if=/dev/urandom of="$dev" bs=4k count=1 seek=16 oflag=direct status=none
echo "$((16 * 4096)) 4096" >"$tmp/w1"
blksnap-probe cycle "$dev" 1 "$tmp"
expect_eq changes_number "$(cbt_field "$dev" changes_number)" 1
blksnap-probe map "$dev" "$tmp/map"
python3 "$here/cbt_expect.py" "$tmp/map" "$bs" 1 "$tmp/w1"

step "take 2: a later write holds 2, the earlier one keeps 1"
dd if=/dev/urandom of="$dev" bs=4k count=1 seek=$((100 * 16)) oflag=direct status=none
blksnap-probe cycle "$dev" 1 "$tmp"
expect_eq changes_number "$(cbt_field "$dev" changes_number)" 2
blksnap-probe map "$dev" "$tmp/map"
expect_eq "block 1" "$(od -An -tu1 -j1 -N1 "$tmp/map" | tr -d ' ')" 1
expect_eq "block 100" "$(od -An -tu1 -j100 -N1 "$tmp/map" | tr -d ' ')" 2
expect_eq generation "$(cbt_field "$dev" generation_id)" "$gen"

step "takes 3 .. 254 stay in the generation"
blksnap-probe cycle "$dev" 252 "$tmp"
expect_eq changes_number "$(cbt_field "$dev" changes_number)" 254
expect_eq generation "$(cbt_field "$dev" generation_id)" "$gen"
dd if=/dev/urandom of="$dev" bs=4k count=1 seek=$((200 * 16)) oflag=direct status=none
blksnap-probe map "$dev" "$tmp/map"
expect_eq "block 100 after 254 takes" "$(od -An -tu1 -j100 -N1 "$tmp/map" | tr -d ' ')" 2
expect_eq "block 200 written after take 254" "$(od -An -tu1 -j200 -N1 "$tmp/map" | tr -d ' ')" 255

step "take 255 starts a new generation with an empty map"
blksnap-probe cycle "$dev" 1 "$tmp"
gen2=$(cbt_field "$dev" generation_id)
[ "$gen2" != "$gen" ] || fail "generation did not change after 255 takes"
expect_eq changes_number "$(cbt_field "$dev" changes_number)" 1
blksnap-probe map "$dev" "$tmp/map"
[ -z "$(tr -d '\0' <"$tmp/map")" ] || fail "map of the new generation is not empty"
blksnap-probe detach "$dev"

step "a resized device: its next take starts a generation of the new size"
need_modules loop
truncate -s 16M "$tmp/backing"
loop=$(losetup --find --show "$tmp/backing")
blksnap-probe attach "$loop"
blksnap-probe cycle "$loop" 1 "$tmp"
gen=$(cbt_field "$loop" generation_id)
truncate -s 32M "$tmp/backing"
losetup --set-capacity "$loop"
expect_eq "grown size" "$(blockdev --getsize64 "$loop")" $((32 << 20))
# A write past the old end, which the old map cannot record.
dd if=/dev/urandom of="$tmp/w" bs=4k count=1 status=none
dd if="$tmp/w" of="$loop" bs=4k seek=$((24 << 8)) oflag=direct status=none
id=$(blksnap snapshot_create -d "$loop" -f "$tmp" -l 64M)
blksnap snapshot_take -i "$id"
expect_eq "map capacity" "$(cbt_field "$loop" device_capacity)" $((32 << 20))
[ "$(cbt_field "$loop" generation_id)" != "$gen" ] ||
	fail "the generation did not change with the size"
expect_eq changes_number "$(cbt_field "$loop" changes_number)" 1
image=$(blksnap snapshot_info -d "$loop" -f image)
expect_eq "image size" "$(blockdev --getsize64 "$image")" $((32 << 20))
dd if="$image" bs=4k skip=$((24 << 8)) count=1 iflag=direct status=none |
	cmp -s - "$tmp/w" || fail "the image misses the write past the old end"
blksnap snapshot_destroy -i "$id"
blksnap-probe detach "$loop"
losetup -d "$loop"
echo "cbt_generation: all checks passed"
