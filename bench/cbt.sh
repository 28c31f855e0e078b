#!/usr/bin/env bash
# Guest side of `make bench`: write throughput of a virtio disk with the
# filter attached (change tracking only) against an identical disk with no
# filter, both written at the same time in one guest. Prints one
# "BENCH {json}" line per workload.
#
# Why at the same time: under QEMU without KVM the guest's speed drifts by
# 10-20% over seconds, so runs one after the other differ by that much
# whatever the filter does. Two disks written side by side see the same
# drift: the ratio of their figures over the same seconds spreads by ~2%.
# The rounds swap which disk has the filter, so that a difference between
# the two disks cancels out.
set -euo pipefail
read -r -a disks <<<"$BLKSNAP_DISKS"
[ "${#disks[@]}" -ge 2 ] || { echo "cbt.sh: needs two disks" >&2; exit 1; }
rounds=${BENCH_ROUNDS:-8}
runtime=${BENCH_RUNTIME:-3}

# side_by_side FILTERED PLAIN ARGS...: "filtered plain" write MiB/s of the
# same fio job run on both disks at once.
side_by_side() {
	local filtered=$1 plain=$2
	shift 2
	fio --direct=1 --ioengine=libaio --time_based --runtime="$runtime" --output-format=json \
		"$@" --name=filtered --filename="$filtered" --name=plain --filename="$plain" |
		python3 -c 'import json,sys; j={x["jobname"]: x["write"]["bw"] / 1024 for x in json.load(sys.stdin)["jobs"]}
print(j["filtered"], j["plain"])'
}

workload() { # name fio-args...
	local name=$1 r f p meas=() base=()
	shift
	for r in $(seq "$rounds"); do
		f=${disks[$((r % 2))]} p=${disks[$(((r + 1) % 2))]}
		blksnap attach -d "$f" >/dev/null
		read -r m b < <(side_by_side "$f" "$p" "$@")
		blksnap detach -d "$f" >/dev/null
		meas+=("$m") base+=("$b")
	done
	python3 - "$name" "${base[*]}" "${meas[*]}" <<'PY'
import json, statistics, sys
name = sys.argv[1]
base = [float(x) for x in sys.argv[2].split()]
meas = [float(x) for x in sys.argv[3].split()]
b, m = statistics.mean(base), statistics.mean(meas)
per_round = [x / y for x, y in zip(meas, base)]
se = statistics.stdev(per_round) / len(per_round) ** 0.5
print(f"# {name}, MiB/s: none {[round(x, 1) for x in base]};"
      f" filter {[round(x, 1) for x in meas]}; ratio {m / b:.3f},"
      f" per round {[round(x, 3) for x in per_round]} (+- {se:.3f}, 1 s.e.)")
print("BENCH " + json.dumps({"name": name, "baseline": round(b, 2),
      "measured": round(m, 2), "unit": "MiB/s",
      "ratio": round(m / b, 3), "target": 0.98}))
PY
}

# Fill both disks once so that every run writes allocated blocks.
for d in "${disks[@]:0:2}"; do
	dd if=/dev/zero of="$d" bs=1M oflag=direct status=none || true
done
workload "cbt: 1 MiB sequential write, filter vs none" --rw=write --bs=1M --iodepth=8
workload "cbt: 4 KiB random write, filter vs none" --rw=randwrite --bs=4k --iodepth=32
