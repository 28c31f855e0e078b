#!/usr/bin/env bash
# Guest side of `make bench`: where change tracking's cost goes. 4 KiB
# random direct writes (the workload of cbt.sh's second row) to a disk with
# the filter attached, tracking only, every block of the disk already
# marked (the steady state), with perf sampling the whole guest's
# CPU (cpu-clock, call chains); bench/tools/profile_split.py then gives
# each sample to one part of the write path: the interception (the ftrace
# trampoline, the handler, or the filter's callback), the tracker's lookup
# and admission, the change map mark, the count of writes in flight (its
# allocation, and the completion hook that frees it), or the rest (the
# write itself, fio, the guest). Under emulation the guest's speed drifts
# by 10-20% over seconds, which a throughput ratio of two runs cannot see
# through (cbt.sh measures side by side for that reason); a share of
# samples within one run is not affected by the drift.
# Runs once per interception the kernel offers (blkfilter where the kernel
# has the filter, and ftrace), the module reloaded for each. Prints "#"
# lines with the split and one "BENCH" row per interception: tracking's
# share of the CPU time, lower is better, target 0.01 (what the 0.99 of
# cbt.sh's rows allows).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/../tests/guest/lib.sh"
read -r -a disks <<<"$BLKSNAP_DISKS"
dev=${disks[0]}
runtime=${BENCH_PROFILE_SECS:-20}
tmp=$(mktemp -d)
export HOME=$tmp # perf keeps its build-id cache there
command -v perf >/dev/null || { echo "cbt_profile.sh: no perf (scripts/deps.sh --bench installs linux-perf)" >&2; exit 1; }

dd if=/dev/zero of="$dev" bs=1M oflag=direct status=none 2>/dev/null || true
modes=(ftrace)
grep -qw blkfilter_register /proc/kallsyms && modes=(blkfilter ftrace)
for mode in "${modes[@]}"; do
	rmmod blksnap 2>/dev/null || true
	insmod "$BLKSNAP_KO" interception="$mode"
	blksnap attach -d "$dev" >/dev/null
	# Every block marked once first: the profile is of the steady state,
	# rewrites of blocks already marked (a block's first mark in a
	# snapshot's interval takes the map's lock and is paid once).
	fio --name=mark --filename="$(fio_name "$dev")" --direct=1 --ioengine=libaio --iodepth=8 \
		--rw=write --bs=1M --output-format=terse >/dev/null
	perf record -q -o "$tmp/perf.data" -e cpu-clock -F 1000 -a -g -- \
		fio --name=w --filename="$(fio_name "$dev")" --direct=1 --ioengine=libaio --iodepth=32 \
		--rw=randwrite --bs=4k --time_based --runtime="$runtime" --output-format=terse >/dev/null 2>&1
	blksnap detach -d "$dev" >/dev/null
	awk '$4 == "[blksnap]" { print $3 }' /proc/kallsyms >"$tmp/symbols"
	perf script -i "$tmp/perf.data" -F ip,sym,dso 2>/dev/null |
		python3 "$(dirname "$0")/tools/profile_split.py" "$mode" "$(uname -r), $mode" "$tmp/symbols"
	rm -f "$tmp/perf.data"
done
rmmod blksnap 2>/dev/null || true
load_module
rm -rf "$tmp"
