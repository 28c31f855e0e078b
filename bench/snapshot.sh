#!/usr/bin/env bash
# Guest side of `make bench`: copy-on-write cost, side by side in one guest.
# Disk 1 is the original, disk 2 the difference storage (blksnap) or the
# exception store (dm-snapshot, persistent, same 256 KiB chunk size).
# Every figure is the median of BENCH_ROUNDS rounds; each round measures
# all workloads one after the other, so that load on the host spreads over
# all of them. Prints one "BENCH {json}" line per comparison.
set -euo pipefail
read -r -a disks <<<"$BLKSNAP_DISKS"
dev=${disks[0]}
store=${disks[1]}
size_mb=${BENCH_SNAP_MB:-512}
rounds=${BENCH_ROUNDS:-5}

# fio splits --filename at ':' (image names have one): escape it.
fio_name() { printf '%s' "${1//:/\\:}"; }

# One 4 KiB write in each 256 KiB chunk: every write touches a chunk once.
# touch_iops DEVICE [SECONDS]: one pass (first touch), or passes over the
# same chunks again and again for SECONDS (rewrites: a single pass of
# 2048 writes is too short to measure).
touch_iops() {
	local loop=()
	[ -z "${2:-}" ] || loop=(--time_based --runtime="$2")
	fio --name=touch --filename="$(fio_name "$1")" --direct=1 --ioengine=libaio --iodepth=16 \
		--rw=write:252k --bs=4k --size="${size_mb}M" "${loop[@]}" --output-format=json |
		python3 -c 'import json,sys; print(json.load(sys.stdin)["jobs"][0]["write"]["iops"])'
}
# seq_read_mbs DEVICE: passes over the first size_mb for 4 s (one pass takes
# a fraction of a second: too short to measure).
seq_read_mbs() {
	fio --name=read --filename="$(fio_name "$1")" --direct=1 --ioengine=libaio --iodepth=8 \
		--rw=read --bs=1M --size="${size_mb}M" --time_based --runtime=4 --output-format=json |
		python3 -c 'import json,sys; print(json.load(sys.stdin)["jobs"][0]["read"]["bw"] / 1024)'
}
# settle DEVICE: wait until nothing is written to DEVICE any more (the
# copies of the first touch are stored in the background; the rewrite pass
# must not pay for them).
settle() {
	local stat=/sys/class/block/${1##*/}/stat last="" now i
	for i in $(seq 120); do
		now=$(awk '{print $7}' "$stat")
		[ "$now" = "$last" ] && return 0
		last=$now
		sleep 0.5
	done
}
median() { python3 -c 'import statistics,sys; print(statistics.median(float(x) for x in sys.argv[1:]))' "$@"; }
row() { # name baseline measured unit target
	python3 -c 'import json,sys; n,b,m,u,t=sys.argv[1:]; b,m=float(b),float(m)
print("BENCH "+json.dumps({"name":n,"baseline":round(b,2),"measured":round(m,2),"unit":u,"ratio":round(m/b,3),"target":float(t)}))' "$@"
}

dd if=/dev/urandom of="$dev" bs=1M count="$size_mb" oflag=direct status=none
modprobe dm-snapshot
sectors=$(blockdev --getsz "$dev")

plain=() first=() again=() img_read=() orig_read=() dm_first=() dm_again=()
for r in $(seq "$rounds"); do
	# No snapshot: before the snapshot in odd rounds, after it in even
	# ones, so that drift during a round favours neither side.
	[ $((r % 2)) = 0 ] || plain+=("$(touch_iops "$dev" 4)")

	# blksnap: first touch, then the same writes again (chunks copied).
	id=$(blksnap snapshot_create -d "$dev" -f "$store" -l 2G)
	blksnap snapshot_take -i "$id"
	first+=("$(touch_iops "$dev")")
	sync
	settle "$store"
	again+=("$(touch_iops "$dev" 4)")
	image=$(blksnap snapshot_info -d "$dev" -f image)
	# Alternate which is read first: neither gains from the other's
	# warm-up.
	if [ $((r % 2)) = 1 ]; then
		img_read+=("$(seq_read_mbs "$image")")
		orig_read+=("$(seq_read_mbs "$dev")")
	else
		orig_read+=("$(seq_read_mbs "$dev")")
		img_read+=("$(seq_read_mbs "$image")")
	fi
	blksnap snapshot_destroy -i "$id"
	blksnap detach -d "$dev"
	[ $((r % 2)) = 1 ] || plain+=("$(touch_iops "$dev" 4)")

	# dm-snapshot on the same disks; no udev in the guest: make the
	# device nodes ourselves.
	dd if=/dev/zero of="$store" bs=1M count=4 oflag=direct status=none
	dmsetup create --noudevsync bench-origin --table "0 $sectors snapshot-origin $dev"
	dmsetup create --noudevsync bench-snap --table "0 $sectors snapshot $dev $store P 512"
	dmsetup mknodes
	[ -b /dev/mapper/bench-origin ] || { echo "no dm device node" >&2; exit 1; }
	dm_first+=("$(touch_iops /dev/mapper/bench-origin)")
	sync
	settle "$store"
	dm_again+=("$(touch_iops /dev/mapper/bench-origin 4)")
	dmsetup remove --noudevsync bench-snap
	dmsetup remove --noudevsync bench-origin
	echo "# round $r, 4 KiB writes/s: none ${plain[-1]}; blksnap first ${first[-1]}, rewrite ${again[-1]};" \
		"dm-snapshot first ${dm_first[-1]}, rewrite ${dm_again[-1]}; MiB/s: image ${img_read[-1]}, original ${orig_read[-1]}"
done

row "snapshot: 4 KiB rewrite of copied chunks vs no snapshot" "$(median "${plain[@]}")" "$(median "${again[@]}")" "IOPS" 0.95
row "snapshot: 4 KiB first touch, blksnap vs dm-snapshot" "$(median "${dm_first[@]}")" "$(median "${first[@]}")" "IOPS" 1.0
row "snapshot: sequential read, image vs original" "$(median "${orig_read[@]}")" "$(median "${img_read[@]}")" "MiB/s" 0.9
