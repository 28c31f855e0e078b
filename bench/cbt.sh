#!/usr/bin/env bash
# Guest side of `make bench`: write throughput on a virtio disk with no
# filter and with the filter attached (change tracking only), measured in
# the same guest, interleaved. Prints one "BENCH {json}" line per workload.
set -euo pipefail
dev=${BLKSNAP_DISKS%% *}
rounds=${BENCH_ROUNDS:-3}

# fio_bw NAME ARGS...: write bandwidth in MiB/s.
fio_bw() {
	fio --name="$1" --filename="$dev" --direct=1 --ioengine=libaio \
		--time_based --runtime="${BENCH_RUNTIME:-8}" --output-format=json \
		"${@:2}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["jobs"][0]["write"]["bw"] / 1024)'
}

workload() { # name unit fio-args...
	local name=$1 base=0 meas=0 r b m
	shift
	for r in $(seq "$rounds"); do
		b=$(fio_bw "$name" "$@")
		blksnap attach -d "$dev" >/dev/null
		m=$(fio_bw "$name" "$@")
		blksnap detach -d "$dev" >/dev/null
		base=$(python3 -c "print($base + $b)")
		meas=$(python3 -c "print($meas + $m)")
	done
	python3 - "$name" "$base" "$meas" "$rounds" <<'PY'
import json, sys
name, base, meas, rounds = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
base, meas = base / rounds, meas / rounds
print("BENCH " + json.dumps({"name": name, "baseline": round(base, 2),
      "measured": round(meas, 2), "unit": "MiB/s",
      "ratio": round(meas / base, 3), "target": 0.98}))
PY
}

# Fill the disk once so that every run writes allocated blocks.
dd if=/dev/zero of="$dev" bs=1M oflag=direct status=none || true
workload "cbt: 1 MiB sequential write, filter vs none" --rw=write --bs=1M --iodepth=8
workload "cbt: 4 KiB random write, filter vs none" --rw=randwrite --bs=4k --iodepth=32
