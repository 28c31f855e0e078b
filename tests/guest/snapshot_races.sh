#!/usr/bin/env bash
# cost: 100
# smp: 2
# vm: --disk 32M --disk 256M
# race
# Races between snapshot operations and the I/O path that could leave an
# image or a change map wrong without any error:
#  - a device detached (or detached and attached again) between
#    snapshot_create and snapshot_take is not taken: the take fails;
#  - a device detached from a held snapshot and attached again joins no
#    other snapshot while the first one keeps its image;
#  - destroying a snapshot while another one is created and taken on one of
#    its devices leaves the new snapshot whole;
#  - raw writes in flight at each take (no file system to freeze): across
#    many takes, the change map read under each snapshot explains every
#    difference between its image and the previous one (what an incremental
#    backup relies on), and each image stays as it was at its take.
. "$(dirname "$0")/lib.sh"
a=$(disk 1)
b=$(disk 2)
tmp=$(mktemp -d)
here=$(dirname "$0")
sum() { dd if="$1" bs=1M iflag=direct status=none | xxhsum -H64 - | cut -d' ' -f1; }

step "a device detached after snapshot_create is not taken"
dd if=/dev/urandom of="$a" bs=1M count=16 oflag=direct status=none
id=$(blksnap snapshot_create -d "$a" -f "$tmp" -l 100M)
blksnap detach -d "$a"
if blksnap snapshot_take -i "$id" 2>"$tmp/err"; then
	fail "a snapshot of a detached device was taken"
fi
cat "$tmp/err"
blksnap snapshot_destroy -i "$id"

step "a device detached and attached again is not taken either"
id=$(blksnap snapshot_create -d "$a" -f "$tmp" -l 100M)
blksnap detach -d "$a"
blksnap attach -d "$a"
if blksnap snapshot_take -i "$id" 2>"$tmp/err"; then
	fail "a snapshot of a device detached and attached again was taken"
fi
cat "$tmp/err"
blksnap snapshot_destroy -i "$id"
[ -z "$(blksnap snapshot_collect)" ] || fail "snapshots left"

step "a device detached from a held snapshot joins no other until it is gone"
# The held snapshot keeps its image of the device it lost (corrupted); a
# second image of the same device cannot exist beside it.
s1=$(blksnap snapshot_create -d "$a" -f "$tmp" -l 100M)
blksnap snapshot_take -i "$s1"
blksnap detach -d "$a"
blksnap attach -d "$a"
if s2=$(blksnap snapshot_create -d "$a" -f "$tmp" -l 100M 2>"$tmp/err"); then
	blksnap snapshot_destroy -i "$s2"
	fail "a device still in a held snapshot joined another one"
fi
grep -q "busy" "$tmp/err" || fail "not refused as busy: $(cat "$tmp/err")"
blksnap snapshot_destroy -i "$s1"
s2=$(blksnap snapshot_create -d "$a" -f "$tmp" -l 100M)
blksnap snapshot_take -i "$s2"
blksnap snapshot_destroy -i "$s2"

step "destroy one snapshot while another is taken on its device"
# The first snapshot holds b before a: while b is torn down (its copy-on-
# write drains a busy writer), a is taken again by a new snapshot; tearing
# down a must not touch the new snapshot's copy-on-write. A new snapshot
# may have to wait (EBUSY) until the old one has let go of a.
s1=$(blksnap snapshot_create -d "$b" -d "$a" -f "$tmp" -l 200M)
blksnap snapshot_take -i "$s1"
fio --name=w --filename="$b" --rw=randwrite --bs=64k-256k --direct=1 \
	--ioengine=libaio --iodepth=16 --size=32M --time_based \
	--runtime=3 --eta=never --output=/dev/null &
w=$!
sleep 1
blksnap snapshot_destroy -i "$s1" &
d=$!
tries=0
until s2=$(blksnap snapshot_create -d "$a" -f "$tmp" -l 100M 2>/dev/null); do
	tries=$((tries + 1))
done
blksnap snapshot_take -i "$s2"
wait "$d" || fail "destroy of the first snapshot failed"
wait "$w" || fail "writer to $b failed"
image=$(blksnap snapshot_info -d "$a" -f image)
before=$(sum "$image")
dd if=/dev/urandom of="$a" bs=1M count=8 seek=8 oflag=direct status=none
expect_eq "image after writes ($tries busy tries)" "$(sum "$image")" "$before"
expect_eq "snapshot error" "$(blksnap snapshot_info -d "$a" -f error_code)" 0
blksnap snapshot_destroy -i "$s2"

step "raw writes in flight at each take: the change map explains every change"
# The difference storage is disk b, so that /tmp holds only the images.
blksnap detach -d "$b"
bs=$(blksnap cbtinfo -d "$a" | sed -n 's/^block_size=//p')
# A sequential writer with many writes in flight over the first 32 MiB of
# a: the writes around a take share chunks, and, at 1 MiB/s, it comes back
# to a block only after a lap of about 32 s: a block it wrote just before a
# take keeps its mark until the next take, where the check looks at it.
span=$((32 << 20))
fio --name=seq --filename="$a" --size=$span --rw=write --bs=4k \
	--ioengine=libaio --iodepth=64 --iodepth_batch_submit=16 --direct=1 \
	--rate=1m --refill_buffers --time_based --runtime=3600 --eta=never \
	--output=/dev/null &
w=$!
sleep 1
prev=""
for k in $(seq 1 "${RACE_TAKES:-3}"); do
	step "take $k ($SECONDS s)"
	id=$(blksnap snapshot_create -d "$a" -f "$b" -l 256M)
	blksnap snapshot_take -i "$id"
	image=$(blksnap snapshot_info -d "$a" -f image)
	n=$(blksnap cbtinfo -d "$a" | sed -n 's/^changes_number=//p')
	dd if="$image" of="$tmp/img.cur" bs=1M count=$((span >> 20)) \
		iflag=direct status=none
	blksnap readcbtmap -d "$a" -f "$tmp/map"
	head -c $((span / bs)) "$tmp/map" >"$tmp/map.span"
	if [ -n "$prev" ]; then
		python3 "$here/cbt_image_check.py" "$tmp/img.prev" "$tmp/img.cur" \
			"$tmp/map.span" "$bs" "$prev" ||
			fail "take $k: change map misses changes"
	fi
	expect_eq "take $k: image read again" \
		"$(dd if="$image" bs=1M count=$((span >> 20)) iflag=direct status=none |
			xxhsum -H64 - | cut -d' ' -f1)" \
		"$(xxhsum -H64 - <"$tmp/img.cur" | cut -d' ' -f1)"
	expect_eq "take $k: snapshot error" \
		"$(blksnap snapshot_info -d "$a" -f error_code)" 0
	blksnap snapshot_destroy -i "$id"
	mv "$tmp/img.cur" "$tmp/img.prev"
	prev=$n
done
kill "$w"
wait "$w" || true
[ "$prev" -ge 2 ] || fail "changes number did not advance: $prev"
blksnap detach -d "$a"
echo "snapshot_races: all checks passed"
