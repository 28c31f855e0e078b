#!/usr/bin/env bash
# Guest side of `make bench`: write throughput on a virtio disk with no
# filter and with the filter attached (change tracking only), measured in
# the same guest, interleaved. Prints one "BENCH {json}" line per workload.
set -euo pipefail
dev=${BLKSNAP_DISKS%% *}
rounds=${BENCH_ROUNDS:-6}

# fio_bw NAME ARGS...: write bandwidth in MiB/s.
fio_bw() {
	fio --name="$1" --filename="$dev" --direct=1 --ioengine=libaio \
		--time_based --runtime="${BENCH_RUNTIME:-3}" --output-format=json \
		"${@:2}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["jobs"][0]["write"]["bw"] / 1024)'
}

# Blocks of four runs, none-filter-filter-none: drift in the guest, which
# spreads single figures by 10-20% here, cancels within each block. The
# figures are the means over all blocks; the "#" line gives the standard
# error of the ratio too.
workload() { # name fio-args...
	local name=$1 r base=() meas=()
	shift
	for r in $(seq "$rounds"); do
		base+=("$(fio_bw "$name" "$@")")
		blksnap attach -d "$dev" >/dev/null
		meas+=("$(fio_bw "$name" "$@")" "$(fio_bw "$name" "$@")")
		blksnap detach -d "$dev" >/dev/null
		base+=("$(fio_bw "$name" "$@")")
	done
	python3 - "$name" "${base[*]}" "${meas[*]}" <<'PY'
import json, statistics, sys
name = sys.argv[1]
base = [float(x) for x in sys.argv[2].split()]
meas = [float(x) for x in sys.argv[3].split()]
b, m = statistics.mean(base), statistics.mean(meas)
se = (m / b) * ((statistics.stdev(base) / b) ** 2 / len(base)
                + (statistics.stdev(meas) / m) ** 2 / len(meas)) ** 0.5
print(f"# {name}, MiB/s: none {base}; filter {meas}; ratio {m / b:.3f} +- {se:.3f} (1 s.e.)")
print("BENCH " + json.dumps({"name": name, "baseline": round(b, 2),
      "measured": round(m, 2), "unit": "MiB/s",
      "ratio": round(m / b, 3), "target": 0.98}))
PY
}

# Fill the disk once so that every run writes allocated blocks.
dd if=/dev/zero of="$dev" bs=1M oflag=direct status=none || true
workload "cbt: 1 MiB sequential write, filter vs none" --rw=write --bs=1M --iodepth=8
workload "cbt: 4 KiB random write, filter vs none" --rw=randwrite --bs=4k --iodepth=32
