#!/usr/bin/env bash
# Guest side of `make bench`: write throughput on a virtio disk with no
# filter and with the filter attached (change tracking only), measured in
# the same guest, interleaved. Prints one "BENCH {json}" line per workload.
set -euo pipefail
dev=${BLKSNAP_DISKS%% *}
rounds=${BENCH_ROUNDS:-10}

# fio_bw NAME ARGS...: write bandwidth in MiB/s.
fio_bw() {
	fio --name="$1" --filename="$dev" --direct=1 --ioengine=libaio \
		--time_based --runtime="${BENCH_RUNTIME:-4}" --output-format=json \
		"${@:2}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["jobs"][0]["write"]["bw"] / 1024)'
}

median() { python3 -c 'import statistics,sys; print(statistics.median(float(x) for x in sys.argv[1:]))' "$@"; }

# One round measures both sides back to back; odd rounds start with no
# filter, even ones with the filter, so that drift in the guest favours
# neither. The figures are the medians of the rounds.
workload() { # name fio-args...
	local name=$1 r base=() meas=()
	shift
	for r in $(seq "$rounds"); do
		if [ $((r % 2)) = 1 ]; then
			base+=("$(fio_bw "$name" "$@")")
			blksnap attach -d "$dev" >/dev/null
			meas+=("$(fio_bw "$name" "$@")")
			blksnap detach -d "$dev" >/dev/null
		else
			blksnap attach -d "$dev" >/dev/null
			meas+=("$(fio_bw "$name" "$@")")
			blksnap detach -d "$dev" >/dev/null
			base+=("$(fio_bw "$name" "$@")")
		fi
	done
	echo "# $name, MiB/s: none ${base[*]}; filter ${meas[*]}"
	python3 - "$name" "$(median "${base[@]}")" "$(median "${meas[@]}")" <<'PY'
import json, sys
name, base, meas = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
print("BENCH " + json.dumps({"name": name, "baseline": round(base, 2),
      "measured": round(meas, 2), "unit": "MiB/s",
      "ratio": round(meas / base, 3), "target": 0.98}))
PY
}

# Fill the disk once so that every run writes allocated blocks.
dd if=/dev/zero of="$dev" bs=1M oflag=direct status=none || true
workload "cbt: 1 MiB sequential write, filter vs none" --rw=write --bs=1M --iodepth=8
workload "cbt: 4 KiB random write, filter vs none" --rw=randwrite --bs=4k --iodepth=32
