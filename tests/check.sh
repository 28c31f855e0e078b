#!/usr/bin/env bash
# Run every test: host unit tests, static checks, and the guest integration
# tests on each kernel given (default: all three). Ends with a line
# "reruns: N (KERNEL:TEST, ...)" (guest tests run again after the emulation
# failed, tests/vm/run exit 5) and then one line "N passed, N failed"; exits
# non-zero on any failure.
#   tests/check.sh [KERNEL...]        TESTS="name ..." narrows guest tests
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
kernels=("$@")
[ ${#kernels[@]} -gt 0 ] || kernels=(stock-6.1 stock-6.12 blkfilter-6.12)
passed=0
failed=0
failures=()
reruns=()
logdir=build/check
mkdir -p "$logdir"

record() { # name status log
	if [ "$2" -eq 0 ]; then
		passed=$((passed + 1))
		printf '  ok    %s\n' "$1"
	else
		failed=$((failed + 1))
		failures+=("$1 ($3)")
		printf '  FAIL  %s   log: %s\n' "$1" "$3"
	fi
}

echo "== host unit tests"
log=$logdir/unit.log
meson test -C build/meson --print-errorlogs >"$log" 2>&1
unit_status=$?
# Lines look like " 5/13 blksnap / uapi    OK    0.01s".
statuses='OK|FAIL|ERROR|TIMEOUT|SKIP|EXPECTEDFAIL|UNEXPECTEDPASS'
while IFS=$'\t' read -r name st; do
	record "unit:${name// /}" "$([ "$st" = OK ] && echo 0 || echo 1)" "$log"
done < <(sed -nE "s/^ *[0-9]+\/[0-9]+ +(.*[^ ]) +($statuses) +.*/\1\t\2/p" "$log")
# meson's own verdict counts too (a test that crashed before printing).
[ $unit_status -eq 0 ] || record "unit:meson-test" 1 "$log"

echo "== static checks"
log=$logdir/lint.log
scripts/lint.sh >"$log" 2>&1
record "lint" $? "$log"

# Guest tests: tests/guest/NAME.sh; a line "# vm: ARGS" gives runner options,
# a line "# kernels: K..." limits a test to those kernels.
# Guests run CHECK_JOBS at a time (default 2): TCG guests are CPU-bound and
# mostly single-threaded, so two share the machine's two cores well.
mapfile -t guest_tests < <(ls tests/guest/*.sh 2>/dev/null | grep -v '/lib\.sh$')
if [ -n "${TESTS:-}" ]; then
	mapfile -t guest_tests < <(for t in $TESTS; do echo "tests/guest/$t.sh"; done)
fi
jobs_max=${CHECK_JOBS:-2}
run_guest() { # kernel test
	local k=$1 t=$2 name log start rc reran=0
	name=$(basename "$t" .sh)
	log=$logdir/$k-$name.log
	read -r -a args <<<"$(sed -n 's/^# vm: //p' "$t" | head -n1)"
	start=$SECONDS
	tests/vm/run "$k" --timeout 1200 "${args[@]}" -- "$t" >"$log" 2>&1
	rc=$?
	# Exit 5: the emulation failed before the test started (QEMU crashed on
	# the host, or the kernel died in its own boot: TCG flaws, each seen
	# once in several hundred boots): not a result; run the test once more.
	if [ $rc = 5 ]; then
		reran=1
		mv "$log" "$log.emulation"
		tests/vm/run "$k" --timeout 1200 "${args[@]}" -- "$t" >"$log" 2>&1
		rc=$?
		echo "(run again after the emulation failed: $log.emulation)" >>"$log"
	fi
	echo "$rc $((SECONDS - start)) $reran" >"$logdir/$k-$name.rc"
}
# Build what the guests load before starting them in parallel.
for k in "${kernels[@]}"; do
	scripts/build-kmod.sh "$k" >/dev/null || record "$k:kmod" 1 "build/kmod/$k/build.log"
done
echo "== guest tests on ${kernels[*]} ($jobs_max at a time)"
pairs=()
runs_on() { # kernel test
	local only
	only=$(sed -n 's/^# kernels: //p' "$2" | head -n1)
	[ -z "$only" ] || [[ " $only " == *" $1 "* ]]
}
for t in "${guest_tests[@]}"; do
	for k in "${kernels[@]}"; do
		runs_on "$k" "$t" && pairs+=("$k $t")
	done
done
for p in "${pairs[@]}"; do
	read -r k t <<<"$p"
	rm -f "$logdir/$k-$(basename "$t" .sh)".{rc,log.emulation}
	while [ "$(jobs -rp | wc -l)" -ge "$jobs_max" ]; do wait -n || true; done
	run_guest "$k" "$t" &
done
wait
for k in "${kernels[@]}"; do
	for t in "${guest_tests[@]}"; do
		runs_on "$k" "$t" || continue
		name=$(basename "$t" .sh)
		read -r rc secs reran <"$logdir/$k-$name.rc" 2>/dev/null || { rc=1 secs=0 reran=0; }
		if [ "${reran:-0}" = 1 ]; then
			reruns+=("$k:$name")
			record "$k:$name (${secs}s, run twice: emulation failed)" "$rc" "$logdir/$k-$name.log"
		else
			record "$k:$name (${secs}s)" "$rc" "$logdir/$k-$name.log"
		fi
	done
done

if [ ${#failures[@]} -gt 0 ]; then
	echo "failed:"
	printf '  %s\n' "${failures[@]}"
fi
if [ ${#reruns[@]} -gt 0 ]; then
	echo "reruns: ${#reruns[@]} ($(printf '%s, ' "${reruns[@]}" | sed 's/, $//'))"
else
	echo "reruns: 0"
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
