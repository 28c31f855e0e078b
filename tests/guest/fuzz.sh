#!/usr/bin/env bash
# vm: --disks 2 --disk-size 64M
# cost: 200
# smp: 2
# columns: blkfilter-6.12 blkfilter-7.2 rt-6.12 rt-7.2
# The module under random and malformed requests (tests/tools/blksnap-fuzz):
# FUZZ_CALLS ioctl calls (default 100000) from two threads, mixing valid and
# random commands, lengths, pointers, snapshot ids and storage fds, on the
# control device and through the filter, while both devices are attached,
# written, and taken in snapshots, and the images read and written. The
# seed is FUZZ_SEED, else the clock's (printed: a failure replays with it).
# The fuzzer judges the answers (each command's errors within blksnap(4)'s
# list, a minimum of deep calls that succeeded); the writers to the devices
# must not see one error. Then everything the fuzzer left is undone
# with the ordinary commands, the devices work as usual (a snapshot of each
# holds its content at the take), and the module unloads (the batch checks
# that, and the kernel log). On the debug kernel, in both interceptions,
# and on PREEMPT_RT (rt-6.12: its two threads against the I/O path where
# spinlocks sleep).
. "$(dirname "$0")/lib.sh"
a=$(disk 1)
b=$(disk 2)
tmp=$(mktemp -d)
calls=${FUZZ_CALLS:-100000}
seed=${FUZZ_SEED:-$(date +%s)}
echo "fuzz: seed=$seed calls=$calls (replay: FUZZ_SEED=$seed FUZZ_CALLS=$calls)"
sum() { dd if="$1" bs=1M iflag=direct status=none | xxhsum -H64 - | cut -d' ' -f1; }

step "both devices attached and written"
blksnap attach -d "$a"
blksnap attach -d "$b"
writers=()
for d in "$a" "$b"; do
	fio --name=w --filename="$d" --rw=randwrite --bs=4k-64k --direct=1 --rate_iops=40 \
		--time_based --runtime=3600 --eta=never --output-format=json \
		--output="$tmp/fio-${d##*/}.json" &
	writers+=($!)
done

step "$calls calls of blksnap-fuzz (seed $seed)"
# It fails on an answer out of its command's list, too few deep successes,
# or fewer calls than asked (an action may make several calls, and the last
# ones of each thread finish past the count).
blksnap-fuzz "$calls" "$seed" "$tmp" "$a" "$b" >"$tmp/fuzz.out" ||
	{ cat "$tmp/fuzz.out"; fail "blksnap-fuzz judged the module's answers wrong (seed $seed)"; }
cat "$tmp/fuzz.out"
kill "${writers[@]}"
wait "${writers[@]}" 2>/dev/null || true

step "the writers saw no error and wrote"
for d in "$a" "$b"; do
	python3 - "$tmp/fio-${d##*/}.json" <<'PY' || fail "the writer to $d: see above"
import json, sys
text = open(sys.argv[1]).read()
for job in json.loads(text[text.index("{"):])["jobs"]:
    if job["error"] or job["write"]["io_bytes"] == 0:
        sys.exit(f"error {job['error']}, {job['write']['io_bytes']} bytes written")
PY
done

step "undo what the fuzzer left: its snapshots, then the filters"
for id in $(blksnap snapshot_collect); do
	blksnap snapshot_destroy -i "$id"
done
expect_eq "snapshots left" "$(blksnap snapshot_collect)" ""
for d in "$a" "$b"; do
	! is_attached "$d" || blksnap detach -d "$d"
done

step "the devices work as before: a snapshot of both holds their content"
blksnap attach -d "$a"
blksnap attach -d "$b"
want_a=$(sum "$a")
want_b=$(sum "$b")
id=$(blksnap snapshot_create -d "$a" -d "$b" -f "$tmp" -l 200M)
blksnap snapshot_take -i "$id"
dd if=/dev/urandom of="$a" bs=1M count=8 oflag=direct status=none
dd if=/dev/urandom of="$b" bs=1M count=8 seek=8 oflag=direct status=none
expect_eq "image of $a" "$(sum "$(blksnap snapshot_info -d "$a" -f image)")" "$want_a"
expect_eq "image of $b" "$(sum "$(blksnap snapshot_info -d "$b" -f image)")" "$want_b"
expect_eq "error code" "$(blksnap snapshot_info -d "$a" -f error_code)" 0
blksnap snapshot_destroy -i "$id"
blksnap detach -d "$a"
blksnap detach -d "$b"
echo "fuzz: all checks passed"
