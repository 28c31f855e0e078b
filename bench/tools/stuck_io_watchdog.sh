#!/usr/bin/env bash
# Guest side, for finding a write that never completes (docs/performance.md,
# "A guest of one CPU loses I/O completions"): started in the background
# beside a bench script,
#   tests/vm/run stock-6.12 ... --append sysrq_always_enabled -- \
#       bash -c 'bench/tools/stuck_io_watchdog.sh & bench/cbt.sh'
# it waits for a fio that has lived longer than STUCK_IO_SECS (60), then
# writes into $BLKSNAP_RESULTS/stuck-io.txt (the host's run dir shared/,
# readable while the guest runs) the block layer's view of every virtio
# disk (/sys/kernel/debug/block: queue and hctx state, the scheduler's
# lists, the requeue list), makes one new direct read of each disk (its
# completion interrupt would also complete requests whose interrupt was
# lost; requests held in the guest stay), and writes the same view again.
# Once: a stuck guest is then the host's to look at (QEMU's monitor: info
# virtio-queue-status; sendkey alt-sysrq-t).
out=${BLKSNAP_RESULTS:-/tmp}/stuck-io.txt
limit=${STUCK_IO_SECS:-60}
mount -t debugfs none /sys/kernel/debug 2>/dev/null || true
dump() {
	local b n f
	for b in /sys/block/vd?; do
		n=${b##*/}
		echo "== $n inflight $(cat "$b/inflight") scheduler $(cat "$b/queue/scheduler")"
		for f in state hctx0/state hctx0/dispatch hctx0/busy hctx0/flags hctx0/dispatched \
			hctx0/queued hctx0/run hctx0/active hctx0/tags hctx0/sched_tags \
			sched/dispatch0 sched/write0_fifo_list sched/read0_fifo_list sched/queued \
			sched/owned_by_driver sched/starved requeue_list; do
			[ -e "/sys/kernel/debug/block/$n/$f" ] &&
				echo "-- $f: $(head -n 40 "/sys/kernel/debug/block/$n/$f" 2>&1)"
		done
	done
	grep blksnap /proc/modules || echo "blksnap not loaded"
	for f in $(pgrep -x fio); do
		echo "stack of fio $f:"
		cat "/proc/$f/stack"
	done
}
while sleep 10; do
	for p in $(pgrep -x fio); do
		t=$(ps -o etimes= -p "$p" 2>/dev/null | tr -d ' ')
		if [ -z "$t" ] || [ "$t" -le "$limit" ]; then
			continue
		fi
		{
			echo "fio $p alive ${t} s: $(tr '\0' ' ' <"/proc/$p/cmdline")"
			dump
			echo "== one direct read of each disk"
			for b in /sys/block/vd?; do
				timeout 20 dd if="/dev/${b##*/}" of=/dev/null bs=4k count=1 iflag=direct status=none ||
					echo "${b##*/}: the read did not complete either"
			done
			sleep 5
			dump
		} >>"$out" 2>&1
		echo "stuck_io_watchdog: wrote $out" >/dev/kmsg
		exit 0
	done
done
