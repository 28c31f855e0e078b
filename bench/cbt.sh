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
. "$(dirname "$0")/lib.sh"
read -r -a disks <<<"$BLKSNAP_DISKS"
[ "${#disks[@]}" -ge 2 ] || { echo "cbt.sh: needs two disks" >&2; exit 1; }
rounds=${BENCH_ROUNDS:-8}
runtime=${BENCH_RUNTIME:-3}

workload() { # name fio-args...
	local name=$1 r f p meas=() base=()
	shift
	for r in $(seq "$rounds"); do
		f=${disks[$((r % 2))]} p=${disks[$(((r + 1) % 2))]}
		blksnap attach -d "$f" >/dev/null
		read -r m b < <(fio_pair write_bw "$f" "$p" --runtime="$runtime" "$@")
		blksnap detach -d "$f" >/dev/null
		meas+=("$m") base+=("$b")
	done
	echo "# $name, MiB/s: none ${base[*]}; filter ${meas[*]}"
	per_round "$name" "${meas[*]}" "${base[*]}"
	row "$name" "$(mean "${base[@]}")" "$(mean "${meas[@]}")" "MiB/s" 0.98
}

# Fill both disks once so that every run writes allocated blocks.
for d in "${disks[@]:0:2}"; do
	dd if=/dev/zero of="$d" bs=1M oflag=direct status=none || true
done
workload "cbt: 1 MiB sequential write, filter vs none" --rw=write --bs=1M --iodepth=8
workload "cbt: 4 KiB random write, filter vs none" --rw=randwrite --bs=4k --iodepth=32
