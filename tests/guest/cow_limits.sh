#!/usr/bin/env bash
# cost: 110
# vm: --disk 68M --disk 192M
# skip-columns: checkers+ftrace
# Limits of copy-on-write. Module parameters out of range are refused at
# load (insmod fails with EINVAL, nothing else happens) and, for those
# writable at run time, when written. Chunks of more than one bio's worth of
# pages work: 4 MiB chunks, and 64 MiB ones grown by a small
# chunk_maximum_count_shift. (Copy-on-write under memory pressure:
# cow_pressure.sh.)
# Parts (arguments, default all): params bigchunks.
. "$(dirname "$0")/lib.sh"
dev=$(disk 1)
store_dev=$(disk 2)
tmp=$(mktemp -d)
params=/sys/module/blksnap/parameters
need_modules ext4
sum() { dd if="$1" bs=1M iflag=direct status=none | xxhsum -H64 - | cut -d' ' -f1; }
# reload [PARAM=VALUE...]: the module afresh, with these parameters.
reload() {
	local d
	for d in "$dev" "$store_dev"; do
		! is_attached "$d" || blksnap detach -d "$d"
	done
	rmmod blksnap
	load_module "$@"
}
parts=${*:-params bigchunks}
want() { [[ " $parts " == *" $1 "* ]]; }

if want params; then
	# Every refused value is tried with the module unloaded, and it is
	# loaded again once after them all (a load costs seconds under KASAN).
	step "parameters out of range are refused at load"
	rmmod blksnap
	for p in chunk_minimum_shift=40 chunk_minimum_shift=11 chunk_maximum_shift=27 \
		chunk_maximum_shift=31 "chunk_minimum_shift=20 chunk_maximum_shift=19" \
		chunk_maximum_count_shift=64 chunk_maximum_in_queue=0 \
		chunk_maximum_in_queue=1025 diff_storage_minimum=0; do
		# shellcheck disable=SC2086
		if out=$(load_module $p 2>&1); then
			fail "insmod with $p loaded"
		fi
		[[ $out == *"Invalid param"* ]] || fail "insmod with $p: $out"
		[ ! -d /sys/module/blksnap ] || fail "module left loaded after $p"
	done
	step "the largest documented values load"
	load_module chunk_minimum_shift=26 chunk_maximum_shift=26 chunk_maximum_count_shift=63 \
		chunk_maximum_in_queue=1024
	reload chunk_minimum_shift=12 chunk_maximum_shift=12 chunk_maximum_count_shift=0 \
		chunk_maximum_in_queue=1 free_diff_buffer_pool_size=0

	# On the module as loaded last (the smallest values): the run-time
	# checks do not depend on the others. Values are read with $(<FILE) and matched by bash: no process
	# per check (an exec costs about half a second on the debug kernel).
	step "run-time writable parameters refuse values out of range"
	for p in chunk_maximum_in_queue=0 chunk_maximum_in_queue=1025 \
		chunk_maximum_in_queue=x diff_storage_minimum=0 diff_storage_minimum=-1; do
		name=${p%%=*}
		was=$(<"$params/$name")
		if out=$( (echo "${p#*=}" >"$params/$name") 2>&1); then
			echo "$was" >"$params/$name"
			fail "writing $p was accepted"
		fi
		[[ $out == *"Invalid argument"* ]] || fail "writing $p: $out"
		expect_eq "$name after refused $p" "$(<"$params/$name")" "$was"
	done
	echo 8 >"$params/chunk_maximum_in_queue"
	expect_eq chunk_maximum_in_queue "$(<"$params/chunk_maximum_in_queue")" 8
	echo 16 >"$params/chunk_maximum_in_queue"
	echo 4096 >"$params/diff_storage_minimum"
	expect_eq diff_storage_minimum "$(<"$params/diff_storage_minimum")" 4096
	echo 2097152 >"$params/diff_storage_minimum"
	for name in chunk_minimum_shift chunk_maximum_shift chunk_maximum_count_shift; do
		if out=$( (echo 20 >"$params/$name") 2>&1); then
			fail "$name is writable at run time"
		fi
		[[ $out == *"Permission denied"* ]] || fail "writing $name: $out"
	done
fi

# expect_storage WHAT BYTES: the difference storage grows to BYTES, never
# past it. It grows in a worker after the copy: a write returns before the
# store, so the size is watched until it is reached (60 s at most), then
# once more a second later to see it stay. (The storage disk is twice the
# device: a full one would end the snapshot with ENOSPC.)
expect_storage() {
	local what=$1 want=$2 got end=$((SECONDS + 60))
	while got=$(stat -c %s "$tmp/s/store") && [ "$got" -lt "$want" ] &&
		[ $SECONDS -lt $end ]; do
		sleep 0.2
	done
	expect_eq "$what" "$got" "$want"
	sleep 1
	expect_eq "$what, a second later" "$(stat -c %s "$tmp/s/store")" "$want"
}

# big_chunk CHUNK_BYTES PARAM=VALUE...: with the module loaded so that the
# chunks of $dev have CHUNK_BYTES, a snapshot keeps the old data of partial
# writes to the first chunk, across chunk boundaries and to the short last
# chunk, and each copied chunk takes CHUNK_BYTES of the storage. The image
# is compared with $tmp/data, the device's content kept in a file (written
# there too), which spares a read of the whole device.
big_chunk() {
	local chunk=$1 size id image before want_size
	shift
	step "chunks of $((chunk >> 20)) MiB ($*)"
	# The storage grows in 1 MiB portions: its size is the chunks it
	# holds, plus one portion kept ahead.
	reload diff_storage_minimum=2048 "$@"
	size=$(blockdev --getsize64 "$dev")
	read -r before _ < <(xxhsum -H64 "$tmp/data")
	: >"$tmp/s/store"
	id=$(blksnap snapshot_create -d "$dev" -f "$tmp/s/store" -l 150M)
	blksnap snapshot_take -i "$id"
	image=$(blksnap snapshot_info -d "$dev" -f image)
	step "- taken; a write to the first chunk"
	gen 1 4096 >"$tmp/w1"
	dd if="$tmp/w1" of="$dev" bs=4k seek=3 oflag=direct conv=notrunc status=none
	dd if="$tmp/w1" of="$tmp/data" bs=4k seek=3 conv=notrunc status=none
	expect_storage "storage after one chunk" $((chunk + (1 << 20)))
	step "- the image compared"
	expect_eq "image after a write to the first chunk" "$(sum "$image")" "$before"
	want_size=$((chunk + (1 << 20)))
	step "- writes over a boundary and to the last chunk"
	if [ $((3 * chunk)) -lt "$size" ]; then
		# 12 KiB over the boundary of chunks 1 and 2, through the page
		# cache.
		gen 2 12288 >"$tmp/w2"
		dd if="$tmp/w2" of="$dev" bs=4k seek=$((2 * chunk / 4096 - 1)) \
			conv=notrunc,fsync status=none
		dd if="$tmp/w2" of="$tmp/data" bs=4k seek=$((2 * chunk / 4096 - 1)) \
			conv=notrunc status=none
		dd if="$dev" bs=4k skip=$((2 * chunk / 4096 - 1)) count=3 iflag=direct \
			status=none | cmp -s - "$tmp/w2" ||
			fail "write over a chunk boundary did not land"
		want_size=$((want_size + 2 * chunk))
	fi
	# The last 12 KiB of the device, in its last chunk (a short one if
	# the size is not a multiple of the chunk).
	gen 3 12288 >"$tmp/w3"
	dd if="$tmp/w3" of="$dev" bs=4k seek=$((size / 4096 - 3)) oflag=direct \
		conv=notrunc status=none
	dd if="$tmp/w3" of="$tmp/data" bs=4k seek=$((size / 4096 - 3)) conv=notrunc status=none
	want_size=$((want_size + chunk))
	dd if="$dev" bs=4k skip=$((size / 4096 - 3)) iflag=direct status=none |
		cmp -s - "$tmp/w3" || fail "write to the last chunk did not land"
	dd if="$dev" bs=4k skip=3 count=1 iflag=direct status=none |
		cmp -s - "$tmp/w1" || fail "write to the first chunk did not land"
	expect_storage "storage after the writes" "$want_size"
	step "- the image compared"
	expect_eq "image after the writes" "$(sum "$image")" "$before"
	expect_eq "error code" "$(blksnap snapshot_info -d "$dev" -f error_code)" 0
	blksnap snapshot_destroy -i "$id"
	rm "$tmp/s/store"
}

if want bigchunks; then
	step "fill the device"
	mkfs.ext4 -q -F "$store_dev"
	mkdir -p "$tmp/s"
	mount "$store_dev" "$tmp/s"
	gen 10 "$(blockdev --getsize64 "$dev")" >"$tmp/data"
	dd if="$tmp/data" of="$dev" bs=1M oflag=direct status=none
	big_chunk $((4 << 20)) chunk_minimum_shift=22 chunk_maximum_shift=22
	# 68 MiB in at most 2^1 chunks: 32 MiB would make three (the short
	# last one counts), so the chunk grows to 64 MiB, the largest: two,
	# the last one short (4 MiB) but taking a whole chunk's storage.
	big_chunk $((64 << 20)) chunk_maximum_count_shift=1 free_diff_buffer_pool_size=0
	umount "$tmp/s"
fi


for d in "$dev" "$store_dev"; do
	! is_attached "$d" || blksnap detach -d "$d"
done
echo "cow_limits: all checks passed"
