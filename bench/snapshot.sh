#!/usr/bin/env bash
# Guest side of `make bench`: copy-on-write cost, in one guest. Disks 1 and
# 2 are two identical originals, disk 3 the difference storage (blksnap) or
# the exception store (dm-snapshot, persistent, same 256 KiB chunk size).
# Rewrites of copied chunks are measured side by side: the snapshotted
# disk and the other one (no snapshot) written at the same time, so that
# the guest's drift (10-20% over seconds under QEMU without KVM) hits both
# alike; the rounds swap the disks' roles. Image reads are measured side by
# side with reads of the original (all its chunks copied, the image reads
# come from the storage disk), and so are reads through dm-linear, for
# reference: what any stacked block device costs in this guest. First
# touch is measured one after the other against dm-snapshot, with a
# persistent and with a transient exception store (what our difference
# storage is), each timed from the first write until the storage disk is
# quiet again: blksnap stores its copies in the background, after the
# writes have completed, and a pass counts them all. Its figures are
# medians of the rounds (min/median/max printed).
# Every disk image is a sparse file on the host, and the first write to
# any of its blocks costs the host an allocation: the storage disk is
# written once before anything is measured, or that cost falls on whichever
# side writes a block first (it made the first round the slowest, and
# dm-snapshot, which came second to a fresh region of the disk, look twice
# as slow as it is).
# The two side-by-side pairs also have a solo baseline: each side alone,
# the order swapped every round (what the pair's shared vCPU cannot pull
# together, but the drift spreads).
# Prints one "BENCH {json}" line per comparison.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
read -r -a disks <<<"$BLKSNAP_DISKS"
[ "${#disks[@]}" -ge 3 ] || { echo "snapshot.sh: needs three disks" >&2; exit 1; }
store=${disks[2]}
size_mb=${BENCH_SNAP_MB:-512}
rounds=${BENCH_ROUNDS:-6}

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
# touch_settled DEVICE STORE: one first-touch pass of DEVICE; prints its
# writes per second counted from the first write until the last write to
# STORE it caused (polled every 20 ms, quiet for a second).
touch_settled() {
	local stat=/sys/class/block/${2##*/}/stat
	python3 - "$(fio_name "$1")" "$size_mb" "$stat" <<'PY'
import json, subprocess, sys, time
dev, size_mb, stat = sys.argv[1], int(sys.argv[2]), sys.argv[3]
def written():
    with open(stat) as f:
        return int(f.read().split()[6])
t0 = time.monotonic()
subprocess.run(["fio", "--name=touch", "--filename=" + dev, "--direct=1", "--ioengine=libaio",
                "--iodepth=16", "--rw=write:252k", "--bs=4k", f"--size={size_mb}M",
                "--output-format=json"], check=True, stdout=subprocess.DEVNULL)
last, last_t = written(), time.monotonic()
while time.monotonic() - last_t < 1.0:
    time.sleep(0.02)
    now = written()
    if now != last:
        last, last_t = now, time.monotonic()
print(size_mb * 4 / (last_t - t0))
PY
}
# read_mibs DEVICE: 1 MiB sequential reads for 3 s, alone; prints MiB/s.
read_mibs() {
	fio --name=read --filename="$(fio_name "$1")" --direct=1 --ioengine=libaio --iodepth=8 \
		--rw=read --bs=1M --size="${size_mb}M" --time_based --runtime=3 --output-format=json |
		python3 -c 'import json,sys; print(json.load(sys.stdin)["jobs"][0]["read"]["bw"] / 1024)'
}
# settle DEVICE: wait until nothing is written to DEVICE any more (the
# copies of the first touch are stored in the background; the rewrite pass
# must not pay for them).
settle() {
	local stat=/sys/class/block/${1##*/}/stat last="" now _
	for _ in $(seq 120); do
		now=$(awk '{print $7}' "$stat")
		[ "$now" = "$last" ] && return 0
		last=$now
		sleep 0.5
	done
}

for d in "${disks[@]:0:2}"; do
	dd if=/dev/urandom of="$d" bs=1M count="$size_mb" oflag=direct status=none
done
dd if=/dev/zero of="$store" bs=1M count=$(($(blockdev --getsize64 "$store") >> 20)) \
	oflag=direct status=none
modprobe dm-snapshot
sectors=$(blockdev --getsz "${disks[0]}")
# dm_first MODE: a first-touch pass of $dev under a dm-snapshot whose
# exception store (MODE: P persistent, N transient) is $store.
dm_first() {
	dd if=/dev/zero of="$store" bs=1M count=4 oflag=direct status=none
	dmsetup create --noudevsync bench-origin --table "0 $sectors snapshot-origin $dev"
	dmsetup create --noudevsync bench-snap --table "0 $sectors snapshot $dev $store $1 512"
	dmsetup mknodes
	[ -b /dev/mapper/bench-origin ] || { echo "no dm device node" >&2; exit 1; }
	touch_settled /dev/mapper/bench-origin "$store"
	dmsetup remove --noudevsync bench-snap
	dmsetup remove --noudevsync bench-origin
}

again_solo=() plain_solo=() img_solo=() orig_solo=()
plain=() first=() again=() img_read=() orig_read=() lin_read=() lin_orig_read=()
dm_first=() dm_again=() dm_first_n=()
for r in $(seq "$rounds"); do
	dev=${disks[$((r % 2))]} other=${disks[$(((r + 1) % 2))]}

	# blksnap: first touch, then the same writes again (chunks copied),
	# side by side with the same writes to the other disk.
	id=$(blksnap snapshot_create -d "$dev" -f "$store" -l 2G)
	blksnap snapshot_take -i "$id"
	first+=("$(touch_settled "$dev" "$store")")
	sync
	settle "$store"
	read -r a p < <(fio_pair write_iops "$dev" "$other" --iodepth=16 --rw=write:252k \
		--bs=4k --size="${size_mb}M" --runtime=4)
	again+=("$a") plain+=("$p")
	image=$(blksnap snapshot_info -d "$dev" -f image)
	# 1 MiB reads for 4 s (one pass takes a fraction of a second).
	read -r a o < <(fio_pair read_bw "$image" "$dev" --iodepth=8 --rw=read --bs=1M \
		--size="${size_mb}M" --runtime=4)
	img_read+=("$a") orig_read+=("$o")
	# Each alone.
	for side in $(ab "$r" snap plain); do
		if [ "$side" = snap ]; then
			again_solo+=("$(touch_iops "$dev" 3)")
			img_solo+=("$(read_mibs "$image")")
		else
			plain_solo+=("$(touch_iops "$other" 3)")
			orig_solo+=("$(read_mibs "$dev")")
		fi
	done
	# The same reads through the thinnest stacked device there is, dm-linear
	# (over the other disk): what stacking alone costs here.
	dmsetup create --noudevsync bench-linear --table "0 $sectors linear $other 0"
	dmsetup mknodes
	read -r a o < <(fio_pair read_bw /dev/mapper/bench-linear "$dev" --iodepth=8 --rw=read \
		--bs=1M --size="${size_mb}M" --runtime=4)
	lin_read+=("$a") lin_orig_read+=("$o")
	dmsetup remove --noudevsync bench-linear
	blksnap snapshot_destroy -i "$id"
	blksnap detach -d "$dev"

	# dm-snapshot on the same disks; no udev in the guest: make the
	# device nodes ourselves.
	dd if=/dev/zero of="$store" bs=1M count=4 oflag=direct status=none
	dmsetup create --noudevsync bench-origin --table "0 $sectors snapshot-origin $dev"
	dmsetup create --noudevsync bench-snap --table "0 $sectors snapshot $dev $store P 512"
	dmsetup mknodes
	[ -b /dev/mapper/bench-origin ] || { echo "no dm device node" >&2; exit 1; }
	# The rewrite pass goes on after the persistent store's first touch.
	dm_first+=("$(touch_settled /dev/mapper/bench-origin "$store")")
	sync
	settle "$store"
	dm_again+=("$(touch_iops /dev/mapper/bench-origin 4)")
	dmsetup remove --noudevsync bench-snap
	dmsetup remove --noudevsync bench-origin
	dm_first_n+=("$(dm_first N)")
	echo "# round $r (${dev##*/}), 4 KiB writes/s: blksnap first ${first[-1]}, rewrite ${again[-1]}" \
		"(no snapshot, same seconds: ${plain[-1]}); dm-snapshot first ${dm_first[-1]} (transient ${dm_first_n[-1]})," \
		"rewrite ${dm_again[-1]}; MiB/s: image ${img_read[-1]}, original ${orig_read[-1]};" \
		"dm-linear ${lin_read[-1]}, original ${lin_orig_read[-1]}; each alone: rewrite ${again_solo[-1]}," \
		"no snapshot ${plain_solo[-1]}, image ${img_solo[-1]}, original ${orig_solo[-1]}"
done

per_round rewrite "${again[*]}" "${plain[*]}"
per_round "image read" "${img_read[*]}" "${orig_read[*]}"
per_round "dm-linear read" "${lin_read[*]}" "${lin_orig_read[*]}"
row "snapshot: 4 KiB rewrite of copied chunks vs no snapshot" "$(mean "${plain[@]}")" "$(mean "${again[@]}")" "IOPS" 0.95
spread "rewrite, each alone, no snapshot" "${plain_solo[*]}"
spread "rewrite, each alone, snapshot" "${again_solo[*]}"
row "snapshot: 4 KiB rewrite of copied chunks vs no snapshot, each alone (medians)" \
	"$(median "${plain_solo[@]}")" "$(median "${again_solo[@]}")" "IOPS" 0.95
spread "first touch, blksnap" "${first[*]}"
spread "first touch, dm-snapshot persistent" "${dm_first[*]}"
spread "first touch, dm-snapshot transient" "${dm_first_n[*]}"
per_round "first touch vs dm-snapshot transient" "${first[*]}" "${dm_first_n[*]}"
row "snapshot: 4 KiB first touch until the storage settled, blksnap vs dm-snapshot (persistent)" \
	"$(median "${dm_first[@]}")" "$(median "${first[@]}")" "IOPS" 1.0
row "snapshot: 4 KiB first touch until the storage settled, blksnap vs dm-snapshot (transient)" \
	"$(median "${dm_first_n[@]}")" "$(median "${first[@]}")" "IOPS" 1.0
row "snapshot: sequential read, image vs original" "$(mean "${orig_read[@]}")" "$(mean "${img_read[@]}")" "MiB/s" 0.9
spread "image read, each alone, original" "${orig_solo[*]}"
spread "image read, each alone, image" "${img_solo[*]}"
row "snapshot: sequential read, image vs original, each alone (medians)" \
	"$(median "${orig_solo[@]}")" "$(median "${img_solo[@]}")" "MiB/s" 0.9
# A reference, not a goal (target 0): the cost of any stacked device here.
row "snapshot: sequential read, dm-linear vs original (reference)" "$(mean "${lin_orig_read[@]}")" \
	"$(mean "${lin_read[@]}")" "MiB/s" 0
