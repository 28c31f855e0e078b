#!/usr/bin/env bash
# Guest side of `make bench`: scale rows, in one guest, on null_blk disks
# (memory-backed where data must be kept, sparse - writes vanish - where only
# the size matters). Rows whose figure should be small carry "lower": their
# ratio (measured / baseline) meets the target when at most it.
#  - take of 4 devices under a write load vs FIFREEZE then FITHAW of
#    their 4 file systems under the same load, both timed inside one
#    process (bench/tools/take_time.cpp: no program start counted);
#  - take time of 8 and 32 devices vs 8 and 32 times that of one device
#    (the same way, both under a writer to all 8 or 32 devices);
#  - kernel memory per TiB copied at 256 KiB chunks (a 16 TiB device,
#    BENCH_SCALE_CHUNKS chunks copied; slab + vmalloc growth, caches dropped)
#    vs 16 MiB per TiB;
#  - change-map memory of a device of 1 GiB, 1 TiB and 64 TiB vs the
#    module's bound (two maps of tracking_block_maximum_count bytes).
set -euo pipefail
here=$(dirname "$0")
. "$here/../tests/guest/lib.sh"
. "$here/../tests/guest/scale-helpers.bash"
. "$here/lib.sh"
rounds=${BENCH_ROUNDS:-5}
cow_chunks=${BENCH_SCALE_CHUNKS:-65536}
chunk=$((256 << 10))
tmp=$(mktemp -d)

# A writer over the first 16 MiB of each device given, 4 KiB at random
# places, direct, until killed.
start_writer() {
	local args=() d
	for d in "$@"; do args+=(--name="w${d##*/}" --filename="$d"); done
	fio --eta=never --direct=1 --ioengine=psync --rw=randwrite --bs=4k --size=16M --time_based \
		--runtime=3600 --rate=1m --output=/dev/null "${args[@]}" 2>"$tmp/writer.err" &
	writer=$!
	sleep 1
}
stop_writer() {
	kill "$writer" 2>/dev/null || true
	wait "$writer" 2>/dev/null || true
	[ ! -s "$tmp/writer.err" ] || echo "# writer's stderr: $(sort "$tmp/writer.err" | uniq -c | head -n3)"
	rm -f "$tmp/writer.err"
}

echo "# scale: take of 4 devices vs fsfreeze of their file systems, both under writes"
store=$(nullb_sparse scalestore $((64 << 10)))
wait_for_dev "$store"
fsdevs=() mnts=()
for i in 1 2 3 4; do
	d=$(nullb_create "fs$i" 256)
	wait_for_dev "$d"
	mkfs.ext4 -q -F "$d"
	mkdir -p "$tmp/fs$i"
	mount "$d" "$tmp/fs$i"
	fsdevs+=("$d") mnts+=("$tmp/fs$i")
done
# Buffered writes into a file of each: dirty data for both to flush.
wargs=()
for m in "${mnts[@]}"; do wargs+=(--name="w${m##*/}" --filename="$m/load"); done
fio --eta=never --ioengine=psync --rw=randwrite --bs=4k --size=32M --time_based --runtime=3600 \
	--rate=2m --output=/dev/null "${wargs[@]}" &
writer=$!
sleep 2
freeze=() take=()
for r in $(seq "$rounds"); do
	freeze+=("$(blksnap-take-time freeze 1 "${mnts[@]}")")
	take+=("$(blksnap-take-time take 1 "$store" "${fsdevs[@]}")")
	echo "# round $r: FIFREEZE, FITHAW of 4 file systems ${freeze[-1]} ms; take of 4 devices ${take[-1]} ms"
done
stop_writer
for m in "${mnts[@]}"; do umount "$m"; done
for d in "${fsdevs[@]}"; do blksnap detach -d "$d"; done
per_round "take vs fsfreeze" "${take[*]}" "${freeze[*]}"
row_lower "scale: take of 4 devices vs FIFREEZE/FITHAW of 4 fs, writes, in process" \
	"$(median "${freeze[@]}")" "$(median "${take[@]}")" ms 1.2

echo "# scale: take time of 8 and 32 devices vs one device, under writes"
devs=()
for i in $(seq 32); do
	d=$(nullb_create "many$i" 16)
	devs+=("$d")
done
for d in "${devs[@]}"; do wait_for_dev "$d"; done
# Both sides under the same writer (over all n devices: a take of one
# device under a writer to it alone would see fewer writes in flight), a
# take of one and a take of n in each round, one after the other.
for n in 8 32; do
	start_writer "${devs[@]:0:n}"
	ones=() times=()
	for r in $(seq "$rounds"); do
		ones+=("$(blksnap-take-time take 1 "$store" "${devs[0]}")")
		times+=("$(blksnap-take-time take 1 "$store" "${devs[@]:0:n}")")
	done
	stop_writer
	echo "# writes to $n devices, ms per round: take of 1 ${ones[*]}; take of $n ${times[*]}"
	spread "take of 1 device, writes to $n" "${ones[*]}"
	spread "take of $n devices, writes to $n" "${times[*]}"
	row_lower "scale: take of $n devices vs $n x take of 1, writes to $n, in process" \
		"$(python3 -c "print($n * $(median "${ones[@]}"))")" "$(median "${times[@]}")" ms 1.0
done
for d in "${devs[@]}"; do blksnap detach -d "$d"; done

echo "# scale: kernel memory per chunk copied, 16 TiB device, 256 KiB chunks"
orig=$(nullb_sparse orig16t $((16 << 20)))
wait_for_dev "$orig"
id=$(blksnap snapshot_create -d "$orig" -f "$store" -l 60G)
blksnap snapshot_take -i "$id"
# A first 4096 chunks fill the buffer pool; the figure is the growth after.
touch_chunks "$orig" 0 4096 1 $chunk
settle_dev "$store"
m1=$(kmem "$tmp/slab1")
touch_chunks "$orig" 4096 "$cow_chunks" 1 $chunk
settle_dev "$store"
m2=$(kmem "$tmp/slab2")
touch_chunks "$orig" $((4096 + cow_chunks)) $((cow_chunks / 4)) 100 $chunk
settle_dev "$store"
m3=$(kmem "$tmp/slab3")
[ "$(blksnap snapshot_info -d "$orig" -f error_code)" = 0 ] || { echo "snapshot corrupted" >&2; exit 1; }
blksnap snapshot_destroy -i "$id"
blksnap detach -d "$orig"
# per_tib BEFORE AFTER CHUNKS SLABINFO-BEFORE SLABINFO-AFTER: MiB per TiB
# copied and bytes per chunk: the growth of the module's slab caches
# (slab_module) and of vmalloc.
per_tib() {
	python3 -c 'import sys; a,b,n,m,c=sys.argv[1].split(),sys.argv[2].split(),int(sys.argv[3]),int(sys.argv[4]),int(sys.argv[5])
per=(m+int(b[1])-int(a[1]))/n
print(f"{per*2**40/c/2**20:.2f} {per:.1f} {int(b[0])-int(a[0])}")' "$1" "$2" "$3" "$(slab_module "$4" "$5")" $chunk
}
read -r contig contig_b contig_slab < <(per_tib "$m1" "$m2" "$cow_chunks" "$tmp/slab1" "$tmp/slab2")
read -r spread spread_b spread_slab < <(per_tib "$m2" "$m3" $((cow_chunks / 4)) "$tmp/slab2" "$tmp/slab3")
echo "# contiguous: $cow_chunks chunks, $contig_b bytes per chunk (Slab total grew $contig_slab bytes); slab growth: $(slab_growth "$tmp/slab1" "$tmp/slab2")"
echo "# 100 chunks apart: $((cow_chunks / 4)) chunks, $spread_b bytes per chunk (Slab total grew $spread_slab bytes); slab growth: $(slab_growth "$tmp/slab2" "$tmp/slab3")"
row_lower "scale: kernel memory per TiB copied, contiguous chunks" 16 "$contig" MiB/TiB 1.0
row_lower "scale: kernel memory per TiB copied, chunks 100 apart" 16 "$spread" MiB/TiB 1.0

echo "# scale: change-map memory per device"
bound=$(cbt_bound)
for size in 1G:1024 1T:$((1 << 20)) 64T:$((64 << 20)); do
	dev=$(nullb_sparse "map${size%%:*}" "${size#*:}")
	wait_for_dev "$dev"
	before=$(kmem)
	t=$(now_us)
	blksnap attach -d "$dev" >/dev/null
	ms=$(elapsed_ms "$t")
	after=$(kmem)
	map=$(kmem_delta "$before" "$after" 3)
	echo "# ${size%%:*}: attach $ms ms, change map $map bytes, $(cbt_field "$dev" block_count) blocks" \
		"of $(cbt_field "$dev" block_size) bytes"
	blksnap detach -d "$dev"
	row_lower "scale: change-map memory of a ${size%%:*}iB device vs bound" \
		"$(python3 -c "print($bound / 2**20)")" "$(python3 -c "print($map / 2**20)")" MiB 1.0
done
