#!/usr/bin/env bash
# cost: 110
# vm: --disk 16M
# race
# I/O in flight while a snapshot goes away, and writes to the original and
# to the image racing on the same chunks (issue 29 item 5; snapshot_races.sh
# destroys under writes to the original, removal.sh and snapshot_image.sh
# unload with no I/O in flight, image_read_fail.sh detaches under one image
# read, unplug.sh removes the disk itself). The original is dm-delay over
# the disk: its reads (the old data copy-on-write reads, the image's reads
# of chunks not copied) wait a second, so that writes held for copy-on-write
# and image reads and writes are in flight when the snapshot is detached or
# destroyed, and such writes when the module is unloaded (an open image
# holds the module; blkfilter refuses the unload while filters are
# attached, ftrace unloads). Checked by content: every write to the
# original that reported success is there, an image read that succeeds
# returns the device as at the take, and the next snapshot works.
. "$(dirname "$0")/lib.sh"
d=$(disk 1)
tmp=$(mktemp -d)
io="python3 $(dirname "$0")/inflight_io.py"
need_modules dm-delay
size=$(blockdev --getsize64 "$d")
sectors=$((size >> 9))
mb=$((1 << 20))

# delay MS: reads of the original wait MS, writes pass.
delay() {
	local table="0 $sectors delay $d 0 $1 $d 0 0"
	if dmsetup info orig >/dev/null 2>&1; then
		dmsetup reload orig --table "$table"
		dmsetup resume --noudevsync orig
	else
		dmsetup create --noudevsync orig --table "$table"
		dmsetup mknodes orig
	fi
}
delay 0
o=/dev/mapper/orig
gen 1 "$size" | dd of="$o" bs=1M oflag=direct status=none

# take: a snapshot of the original; $tmp/take is the device at the take.
take() {
	dd if="$o" of="$tmp/take" bs=1M iflag=direct status=none
	id=$(blksnap snapshot_create -d "$o" -f "$tmp" -l 64M)
	blksnap snapshot_take -i "$id"
	image=$(blksnap snapshot_info -d "$o" -f image)
}

# inflight SEED [IMAGE_IO]: with reads of the original slowed down, start
# writers to 2 MiB of the original (at 4 MiB) and, with IMAGE_IO, readers of
# 2 MiB of the image (at 8 MiB), both on chunks not copied yet, and image
# writers at 12 MiB; give them a moment to be in flight.
inflight() {
	delay 1000
	$io write "$o" $((4 * mb)) $((2 * mb)) "$1" "$tmp/failed" >"$tmp/writer.out" 2>&1 &
	writer=$!
	reader=
	if [ -n "${2:-}" ]; then
		$io read "$image" "$tmp/take" $((8 * mb)) $((2 * mb)) gone >"$tmp/reader.out" 2>&1 &
		reader=$!
		$io write "$image" $((12 * mb)) $((2 * mb)) "$1" "$tmp/ifailed" \
			>"$tmp/iwriter.out" 2>&1 &
		iwriter=$!
	fi
	sleep 1.5
}

# settled SEED WHAT: the I/O of inflight() ended: the writes to the
# original all reported success and are there; image reads returned the
# take, failed, or found the end of the removed image; image writes may
# have failed.
settled() {
	wait "$writer" || fail "$2: the writer to the original: $(<"$tmp/writer.out")"
	cat "$tmp/writer.out"
	[ ! -s "$tmp/failed" ] || fail "$2: writes to the original failed: $(wc -l <"$tmp/failed")"
	if [ -n "$reader" ]; then
		wait "$reader" || fail "$2: $(<"$tmp/reader.out")"
		cat "$tmp/reader.out"
		wait "$iwriter" || fail "$2: the image writer: $(<"$tmp/iwriter.out")"
		cat "$tmp/iwriter.out"
	fi
	delay 0
	$io verify "$o" $((4 * mb)) $((2 * mb)) "$1" "$tmp/failed" || fail "$2: writes lost"
}

# next_take_works: a new snapshot keeps its take under writes.
next_take_works() {
	take
	gen 9 $((16 * mb)) | dd of="$o" bs=1M oflag=direct status=none
	$io read "$image" "$tmp/take" 0 "$size" || fail "the next snapshot's image"
	expect_eq "next snapshot error" "$(blksnap snapshot_info -d "$o" -f error_code)" 0
	blksnap snapshot_destroy -i "$id"
}

step "writes to the original and to the image race on the same chunks"
take
# 4 MiB: 16 chunks of 256 KiB, 12 KiB blocks straddling their boundaries.
$io race "$o" "$image" "$tmp/take" 0 $((4 * mb)) race ||
	fail "the image or the original lost the race"
expect_eq "snapshot error" "$(blksnap snapshot_info -d "$o" -f error_code)" 0
# The rest of the image is the take.
$io read "$image" "$tmp/take" $((4 * mb)) $((size - 4 * mb)) || fail "the image beyond the race"
blksnap snapshot_destroy -i "$id"

step "detach with copy-on-write and image I/O in flight"
take
inflight 2 image
t0=$SECONDS
blksnap detach -d "$o"
echo "detached in $((SECONDS - t0)) s"
settled 2 detach
ev=$(blksnap snapshot_waitevent -i "$id" -t 5000)
grep -qx "event=corrupted" <<<"$ev" || fail "no corrupted event after the detach: $ev"
blksnap snapshot_destroy -i "$id"
blksnap attach -d "$o"
next_take_works

step "destroy with copy-on-write and image I/O in flight"
take
inflight 3 image
blksnap snapshot_destroy -i "$id"
settled 3 destroy
[ ! -e "$image" ] || fail "image $image left after destroy"
next_take_works

# An open image holds the module: only writes to the original can be in
# flight at an unload.
step "unload with copy-on-write in flight"
take
inflight 4
if [ "$(flavour)" = blkfilter ]; then
	rmmod blksnap 2>/dev/null && fail "rmmod succeeded with filters attached"
	settled 4 "refused unload"
	blksnap snapshot_destroy -i "$id"
	blksnap detach -d "$o"
	rmmod blksnap
else
	rmmod blksnap
	settled 4 unload
fi
[ ! -e "$image" ] || fail "image $image left after unload"
load_module
blksnap attach -d "$o"
next_take_works

blksnap detach -d "$o"
dmsetup remove --noudevsync orig
dmsetup mknodes
echo "inflight: all checks passed"
