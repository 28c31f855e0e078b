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
# the two disks cancels out. The random writes also have a solo baseline:
# each side alone, one after the other (what the pair's shared CPU cannot
# pull together, but the drift spreads).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/../tests/guest/lib.sh"
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

# solo NAME FIO-ARGS...: the pair's solo baseline. One disk written alone,
# in turn with the filter attached and with the module not even loaded
# (under ftrace interception a loaded module's hook sees every bio in the
# system, the pair's "none" side included), the order swapped every round
# (ABBA) against the drift; rounds' min, median and max, the median's ratio.
# The module is loaded on entry and on return.
solo() {
	local name=$1 r d=${disks[0]} a b meas=() base=()
	shift
	for r in $(seq "$rounds"); do
		for side in $(ab "$r" filter none); do
			if [ "$side" = filter ]; then
				blksnap attach -d "$d" >/dev/null
			else
				rmmod blksnap
			fi
			a=$(fio --direct=1 --ioengine=libaio --time_based --runtime="$runtime" "$@" \
				--name=a --filename="$d" --output-format=json |
				python3 -c 'import json,sys; print(json.load(sys.stdin)["jobs"][0]["write"]["bw"] / 1024)')
			if [ "$side" = filter ]; then
				blksnap detach -d "$d" >/dev/null
				meas+=("$a")
			else
				load_module
				base+=("$a")
			fi
		done
	done
	spread "$name, none (module not loaded)" "${base[*]}"
	spread "$name, filter" "${meas[*]}"
	row "$name" "$(median "${base[@]}")" "$(median "${meas[@]}")" "MiB/s" 0.98
}

# Fill both disks once so that every run writes allocated blocks.
for d in "${disks[@]:0:2}"; do
	dd if=/dev/zero of="$d" bs=1M oflag=direct status=none || true
done
workload "cbt: 1 MiB sequential write, filter vs none" --rw=write --bs=1M --iodepth=8
workload "cbt: 4 KiB random write, filter vs none" --rw=randwrite --bs=4k --iodepth=32
solo "cbt: 4 KiB random write, filter vs no module, each alone" --rw=randwrite --bs=4k --iodepth=32
