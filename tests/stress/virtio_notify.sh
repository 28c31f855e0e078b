#!/usr/bin/env bash
# A platform check, not a product test: do the guest's virtio disks lose a
# completion? Rounds of fio (4 KiB random direct reads and writes, deep
# queues, every virtio data disk at once, nothing of blksnap loaded), each
# given ROUND_SECS to run and NOTIFY_GRACE_SECS more to end. A round that
# does not end has a request the device completed and the guest never
# heard of (docs/performance.md, "A guest of one CPU loses I/O
# completions"; tests/vm/barrier-check is the test of its cause): the
# script dumps the block layer's view, makes one new direct read of each
# disk (its interrupt would let the guest find the lost completions) and
# says whether the stuck fio then ended. Exit status 1 on the first round
# that hung, 0 when none did.
#   tests/vm/run stock-6.12 --smp 1 --disks 4 --disk-dir /dev/shm -- \
#       tests/stress/virtio_notify.sh
set -u
rounds=${NOTIFY_ROUNDS:-20}
secs=${ROUND_SECS:-20}
grace=${NOTIFY_GRACE_SECS:-60}
mount -t debugfs none /sys/kernel/debug 2>/dev/null || true
rmmod blksnap 2>/dev/null || true
echo "possible CPUs: $(cat /sys/devices/system/cpu/possible)"
disks=()
for b in /sys/block/vd?; do
	# The data disks: the ones no file system of the guest is on.
	grep -q "^/dev/${b##*/}" /proc/mounts || disks+=("/dev/${b##*/}")
done
[ ${#disks[@]} -gt 0 ] || { echo "virtio_notify: no virtio data disk" >&2; exit 2; }
jobs=()
for d in "${disks[@]}"; do
	jobs+=(--name="${d##*/}" --filename="$d" --size=256M)
done
dump() {
	local d n f
	for d in "${disks[@]}"; do
		n=${d##*/}
		echo "== $n inflight $(cat "/sys/block/$n/inflight")"
		for f in state hctx0/state hctx0/dispatch hctx0/busy hctx0/tags requeue_list; do
			[ -e "/sys/kernel/debug/block/$n/$f" ] &&
				echo "-- $f: $(head -n 20 "/sys/kernel/debug/block/$n/$f" 2>&1)"
		done
	done
}
for round in $(seq 1 "$rounds"); do
	fio --ioengine=libaio --direct=1 --rw=randrw --bs=4k --iodepth=32 --time_based \
		--runtime="$secs" --eta=never --output=/dev/null "${jobs[@]}" &
	fio=$!
	waited=0
	while kill -0 $fio 2>/dev/null && [ $waited -lt $((secs + grace)) ]; do
		sleep 1
		waited=$((waited + 1))
	done
	if ! kill -0 $fio 2>/dev/null; then
		wait $fio || { echo "virtio_notify: fio failed in round $round" >&2; exit 2; }
		echo "round $round: ended"
		continue
	fi
	echo "round $round: fio still running $grace s after its end"
	dump
	for d in "${disks[@]}"; do
		timeout 20 dd if="$d" of=/dev/null bs=4k count=1 iflag=direct status=none ||
			echo "${d##*/}: a new read did not complete either"
	done
	sleep 5
	if kill -0 $fio 2>/dev/null; then
		echo "round $round: still stuck after a new read of each disk"
		dump
	else
		echo "round $round: a new read of each disk let it end (a lost completion interrupt)"
	fi
	exit 1
done
echo "virtio_notify: $rounds rounds of ${secs} s, none hung"
