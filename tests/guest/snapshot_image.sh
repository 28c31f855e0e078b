#!/usr/bin/env bash
# cost: 90
# vm: --disk 32M --disk 320M
# Images are writable (writes land in the difference storage, never on the
# original) and mountable: ext4, and xfs with nouuid. A snapshot survives
# the removal of its device as a corrupted one, and unloading the module
# with a snapshot held cleans up (ftrace) or is refused (blkfilter).
. "$(dirname "$0")/lib.sh"
dev=$(disk 1)
x=$(disk 2)
tmp=$(mktemp -d)
need_modules ext4 xfs loop
sum() { dd if="$1" bs=1M iflag=direct status=none | xxhsum -H64 - | cut -d' ' -f1; }

step "writes to the image go to the snapshot, not the original"
dd if=/dev/urandom of="$dev" bs=1M count=32 oflag=direct status=none
orig=$(sum "$dev")
id=$(blksnap snapshot_create -d "$dev" -f "$tmp" -l 350M)
blksnap snapshot_take -i "$id"
image=$(blksnap snapshot_info -d "$dev" -f image)
dd if=/dev/urandom of="$tmp/w" bs=1M count=3 status=none
# Unaligned to chunks: part of one chunk, a whole chunk, and more.
dd if="$tmp/w" of="$image" bs=4k seek=17 count=768 oflag=direct conv=notrunc status=none
dd if="$image" bs=4k skip=17 count=768 iflag=direct status=none | cmp - "$tmp/w" ||
	fail "image does not read back what was written to it"
expect_eq "original untouched" "$(sum "$dev")" "$orig"
step "and stay there while the original is written"
dd if=/dev/urandom of="$dev" bs=1M count=24 seek=8 oflag=direct status=none
dd if="$image" bs=4k skip=17 count=768 iflag=direct status=none | cmp - "$tmp/w" ||
	fail "image lost its writes"
blksnap snapshot_destroy -i "$id"

step "ext4 and xfs images mount and show the files as they were"
mkfs.ext4 -q -F "$dev"
mkfs.xfs -q -f "$x"
mkdir -p "$tmp/e" "$tmp/x" "$tmp/ie" "$tmp/ix"
mount "$dev" "$tmp/e"
mount "$x" "$tmp/x"
for m in e x; do
	for i in 1 2 3; do dd if=/dev/urandom of="$tmp/$m/f$i" bs=64k count=16 status=none; done
	(cd "$tmp/$m" && xxhsum f1 f2 f3 >"$tmp/$m.sums")
done
id=$(blksnap snapshot_create -d "$dev" -d "$x" -f "$tmp" -l 700M)
blksnap snapshot_take -i "$id"
for m in e x; do
	rm "$tmp/$m/f2"
	dd if=/dev/urandom of="$tmp/$m/f1" bs=64k count=16 conv=notrunc status=none
	sync
done
mount -o ro,noload "$(blksnap snapshot_info -d "$dev" -f image)" "$tmp/ie"
mount -o ro,nouuid,norecovery "$(blksnap snapshot_info -d "$x" -f image)" "$tmp/ix"
(cd "$tmp/ie" && xxhsum -c --quiet "$tmp/e.sums") || fail "ext4 image content"
(cd "$tmp/ix" && xxhsum -c --quiet "$tmp/x.sums") || fail "xfs image content"
umount "$tmp/ie" "$tmp/ix"
umount "$tmp/e" "$tmp/x"
blksnap snapshot_destroy -i "$id"

step "a device removed while in a snapshot corrupts it cleanly"
nb=/sys/kernel/config/nullb/snap
nbdev=$(nullb_create snap 128)
[ -b "$nbdev" ] || fail "no null_blk device"
id=$(blksnap snapshot_create -d "$nbdev" -f "$tmp" -l 200M)
blksnap snapshot_take -i "$id"
nbimage=$(blksnap snapshot_info -d "$nbdev" -f image)
dd if=/dev/urandom of="$nbdev" bs=64k count=32 oflag=direct status=none
echo 0 >"$nb/power"
rmdir "$nb"
ev=$(blksnap snapshot_waitevent -i "$id" -t 2000)
grep -qx "event=corrupted" <<<"$ev" || fail "no event for the removed device: $ev"
dd if="$nbimage" of=/dev/null bs=64k count=1 iflag=direct status=none 2>/dev/null &&
	fail "image of a removed device still reads"
blksnap snapshot_destroy -i "$id"

step "unload with a snapshot held"
id=$(blksnap snapshot_create -d "$dev" -f "$tmp" -l 100M)
blksnap snapshot_take -i "$id"
dd if=/dev/urandom of="$dev" bs=64k count=16 oflag=direct status=none
if [ "$(flavour)" = blkfilter ]; then
	rmmod blksnap 2>/dev/null && fail "rmmod succeeded with filters attached"
	blksnap snapshot_destroy -i "$id"
	blksnap detach -d "$dev"
	blksnap detach -d "$x"
	rmmod blksnap
else
	rmmod blksnap
fi
[ ! -e "/dev/blksnap-image_$(cat "/sys/class/block/${dev##*/}/dev")" ] ||
	fail "image left after unload"
dd if=/dev/zero of="$dev" bs=64k count=16 oflag=direct status=none
load_module
echo "snapshot_image: all checks passed"
