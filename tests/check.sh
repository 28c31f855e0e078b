#!/usr/bin/env bash
# Run every test: host unit tests, static checks, and the guest integration
# tests on each kernel given (default: the seven of the Makefile's KERNELS,
# and blkfilter-7.2 when this machine has built it before). Ends with a line
# "skipped: N (Suite.Case, matrix:ABI-FLAVOUR, KERNEL ...)" when unit test
# cases skipped themselves, the module build matrix skipped a kernel it
# cannot build for, or a kernel of the default was left out (counted
# neither passed nor failed), a line "reruns: N (KERNEL:batchI,
# ...)" (guests run again after the emulation failed, tests/vm/run exit 5,
# before any test of theirs ended) and then one line "N passed, N failed";
# exits non-zero on any failure.
#   tests/check.sh [KERNEL...]        TESTS="name ..." narrows guest tests
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
# The blkfilter kernel built with the checkers (lockdep, KASAN, kmemleak):
# the others are built without them (scripts/kernels.sh).
checkers=$(scripts/kernels.sh checkers)
passed=0
failed=0
failures=()
reruns=()
unit_skipped=()
skipped=() # unit test cases that skipped themselves, matrix entries skipped,
# kernels of the default left out
kernels=("$@")
not_built=()
# The default: the stock kernels and the blkfilter kernel with the checkers,
# each built if need be; the other blkfilter kernel (blkfilter-7.2) only
# when this machine has built it before (scripts/kernels.sh built): its
# first build, 14 CPU-minutes, does not fit a fresh machine's 80 minutes
# beside the rest (README "How long it takes"), while a rebuild after a
# change of its patches is incremental. Left out, it is named among the
# skipped. A kernel named on the command line is always built and run.
if [ ${#kernels[@]} -eq 0 ]; then
	kernels=(stock-6.1 stock-6.12 rt-6.12 cloud-6.12 stock-7.2 rt-7.2 "$checkers")
	for k in blkfilter-6.12 blkfilter-7.2; do
		[ "$k" != "$checkers" ] || continue
		if scripts/kernels.sh built "$k"; then
			kernels+=("$k")
		else
			not_built+=("$k")
		fi
	done
fi
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

# The kernels are made ready (scripts/kernels.sh ensure, then
# scripts/build-kmod.sh) in the background while the host tests run and the
# guests of the kernels already ready start: on a fresh machine the stock
# kernels are fetched in a minute or two, while the blkfilter-* kernels are
# built from source (the one with the checkers in 19 minutes measured here
# with the stock guests and host tests beside it, README.md). A kernel is ready
# when $logdir/kernel-KERNEL.rc holds its status (log: kernel-KERNEL.log).
kernel_rc() { cat "$logdir/kernel-$1.rc" 2>/dev/null; }
prepare_kernel() {
	{ scripts/kernels.sh ensure "$1" && scripts/build-kmod.sh "$1"; } >"$logdir/kernel-$1.log" 2>&1
	echo $? >"$logdir/kernel-$1.rc.tmp" && mv "$logdir/kernel-$1.rc.tmp" "$logdir/kernel-$1.rc"
}
builds=() # the background job building the kernels from source
if [ -z "${CHECK_PLAN:-}" ]; then
	rm -f "$logdir"/kernel-*.rc
	stock=() built=()
	for k in "${kernels[@]}"; do
		case $k in
		"$checkers") built=("$k" "${built[@]}") ;;
		blkfilter-*) built+=("$k") ;;
		*) stock+=("$k") ;;
		esac
	done
	# One after another, the one with the checkers first: its guests take
	# the longest; two builds at once would make it ready later.
	if [ ${#built[@]} -gt 0 ]; then
		(for k in "${built[@]}"; do prepare_kernel "$k"; done) &
		builds+=($!)
	fi
	# The fetched ones one after another (apt-get and dpkg locks).
	(for k in "${stock[@]}"; do prepare_kernel "$k"; done) &
	# The module built against the headers of every 6.1 and 6.12 point
	# release and flavour in the archive (scripts/build-matrix.sh: fetched
	# beside the kernels, built while the userspace builds; cached by
	# source and headers), recorded after the guest tests.
	# CHECK_MATRIX=0 leaves it out.
	rm -f "$logdir/matrix.rc" "$logdir/matrix.log"
	matrix_pid=
	if [ "${CHECK_MATRIX:-1}" != 0 ]; then
		{
			scripts/build-matrix.sh >"$logdir/matrix.log" 2>&1
			echo $? >"$logdir/matrix.rc"
		} &
		matrix_pid=$!
	fi
	# What the guests and host tests run: the C++ userspace.
	log=$logdir/userspace.log
	if ! make -s userspace >"$log" 2>&1; then
		record "userspace build" 1 "$log"
		cat "$log" >&2
		wait
		echo "$passed passed, $failed failed"
		exit 1
	fi
fi
# wait_kernel KERNEL: until it is ready; its status.
wait_kernel() {
	until [ -n "$(kernel_rc "$1")" ]; do sleep 2; done
	return "$(kernel_rc "$1")"
}

if [ -z "${CHECK_PLAN:-}" ]; then
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
# A GoogleTest case that skipped itself (GTEST_SKIP) leaves its program
# passing: it is counted and named as skipped, never as passed.
mapfile -t unit_skipped < <(sed -nE 's/^\[  SKIPPED \] ([A-Za-z0-9_]+\.[A-Za-z0-9_/]+) \(.*/\1/p' \
	build/meson/meson-logs/testlog.txt 2>/dev/null | sort -u)
for t in "${unit_skipped[@]}"; do
	printf '  SKIP  unit:%s   log: %s\n' "$t" build/meson/meson-logs/testlog.txt
	skipped+=("$t")
done

echo "== install, and a program built against it"
# What a packager and a third-party program see: meson install into a
# staging root, then examples/blksnap-list.cpp built with the installed
# blksnap.pc (headers, <linux/blksnap.h> from include/blksnap/uapi, the
# shared library) and run: without the module (on the host) it must fail
# with the library's own error, which proves it linked and loaded.
log=$logdir/install.log
stage=$top/build/stage
# shellcheck disable=SC2086 # $flags: the words of pkg-config's answer
{
	rm -rf "$stage" &&
		meson install -C build/meson --destdir "$stage" --quiet &&
		pc=$(find "$stage" -name blksnap.pc | head -n1) && [ -n "$pc" ] &&
		flags=$(PKG_CONFIG_PATH=$(dirname "$pc") PKG_CONFIG_SYSROOT_DIR=$stage \
			pkg-config --cflags --libs blksnap) &&
		echo "pkg-config: $flags" &&
		c++ -std=c++20 -Wall -Wextra -Werror examples/blksnap-list.cpp $flags \
			-o "$stage/blksnap-list" &&
		lib=$(find "$stage" -name 'libblksnap.so.1' | head -n1) && [ -n "$lib" ] &&
		{ out=$(LD_LIBRARY_PATH=$(dirname "$lib") "$stage/blksnap-list" 2>&1); [ $? -eq 1 ]; } &&
		echo "$out" && grep -q "^blksnap-list: .*module" <<<"$out"
} >"$log" 2>&1
record "install" $? "$log"

echo "== static checks"
log=$logdir/lint.log
# Its sparse pass builds the module against stock-6.12's headers.
[[ " ${kernels[*]} " != *" stock-6.12 "* ]] || wait_kernel stock-6.12
scripts/lint.sh >"$log" 2>&1
record "lint" $? "$log"

fi

# Guest tests: tests/guest/NAME.sh; a line "# vm: ARGS" gives its disks
# (runner options), a line "# boots: N" makes it run in N guests one after
# another on the same disks (BLKSNAP_BOOT=1..N: a reboot), a line
# "# power-cut" says that some of its boots end in a power cut (run_boots)
# and keeps its two columns of a debug kernel in boots of their own, a line
# "# columns: C..." limits it to those columns, a line "# skip-columns:
# C..." keeps it out of those (e.g. a debug kernel's +ftrace column, for a
# test of no interception code: stock-6.1 runs its ftrace side; the word
# "checkers" there names the column of the kernel with the checkers,
# "checkers+ftrace" its +ftrace one), a
# line "# cost: SECONDS" is its time on a stock kernel (three times that on a
# debug one), used to plan, a line "# smp: 2" gives its guest two CPUs.
# A guest has one CPU otherwise: two guests of two vCPUs on two host cores
# spend a third more time (four TCG threads contending; measured, the same
# tests: 110 s vs 74 s on stock-6.12, 350 s vs 220 s on the debug kernel),
# so only the tests of real parallelism (races, the fuzzer's two threads,
# writers across a take) get two, in batches of their own.
# Columns: one per kernel, and for the kernel with the block device filter
# and the checkers ($checkers, scripts/kernels.sh checkers) a second one,
# KERNEL+ftrace, where the module runs with interception=ftrace: the stock
# kernels' interception under KASAN, lockdep and kmemleak. That column runs
# every test the kernel's own column runs (a test naming KERNEL in its
# columns runs in KERNEL+ftrace too). The other blkfilter kernel, built
# without the checkers, runs the smoke set and the race tests (as rt-6.12
# below) and the tests that name it: the same module source runs the whole
# suite under the checkers, and each series' filter patches are what it
# adds. As stock-6.12 runs the same 6.12 source,
# it runs only the tests marked "# smoke" (load, change map, snapshot,
# image.raw) and those that name it in their columns; so does cloud-6.12
# (Debian's cloud flavour of the same source: what differs is its driver
# set), and stock-7.2 (Debian unstable's own 7.2). rt-6.12
# (PREEMPT_RT: spinlocks sleep, bio completions and softirqs run in threads)
# runs the smoke set and the tests marked "# race", those whose I/O races in
# the bio and copy-on-write paths (takes, destroys, detaches and unloads
# under writes and image reads, hot-unplug, a deep image reader against
# first writes), and the tests that name it (fuzz); so does rt-7.2 (Debian
# unstable's 7.2 PREEMPT_RT).
# CHECK_ALL=1 runs every test in every column; CHECK_COLUMNS="COLUMN ..."
# only those columns.
# The tests of a kernel run in batches, several in one guest boot
# (tests/vm/batch: each with its own fresh disks, the module loaded afresh
# with its column's parameters, its leftovers undone, splats while it ran
# failing it), so that boots and kmemleak scans are paid once a batch; the
# two columns of a debug kernel share its boots (a test of KERNEL+ftrace is
# NAME@ftrace in the batch). tests/plan-batches groups them. Guests run
# CHECK_JOBS at a time (default 2): TCG guests are CPU-bound and mostly
# single-threaded, so two share two cores well.
guest_tests=()
for t in tests/guest/*.sh; do
	[ "$t" = tests/guest/lib.sh ] || guest_tests+=("$t")
done
if [ -n "${TESTS:-}" ]; then
	mapfile -t guest_tests < <(for t in $TESTS; do echo "tests/guest/$t.sh"; done)
fi
jobs_max=${CHECK_JOBS:-2}
per_test_timeout=1200
# The word "checkers" in a test's columns or skip-columns is the column of
# the kernel with the checkers ("checkers+ftrace" its +ftrace column).
header() {
	local v
	v=" $(sed -n "s/^# $1: //p" "$2" | head -n1) "
	v=${v// checkers / $checkers }
	v=${v// checkers+ftrace / $checkers+ftrace }
	v=${v# }
	echo "${v% }"
}
columns=()
for k in "${kernels[@]}"; do
	for c in "$k" "$k+ftrace"; do
		[[ $c != *+ftrace || $k == "$checkers" ]] || continue
		[ -z "${CHECK_COLUMNS:-}" ] || [[ " $CHECK_COLUMNS " == *" $c "* ]] || continue
		columns+=("$c")
	done
done
runs_on() { # column test
	local only skip
	skip=$(header skip-columns "$2")
	[ -z "$skip" ] || [[ " $skip " != *" $1 "* ]] || return 1
	[[ $1 != *+ftrace ]] || { runs_on "${1%+ftrace}" "$2"; return; }
	only=$(header columns "$2")
	[ -z "$only" ] || [[ " $only " == *" $1 "* ]] || return 1
	[ -z "$only" ] || return 0
	[ -z "${CHECK_ALL:-}" ] || return 0
	case $1 in
	stock-6.12 | cloud-6.12 | stock-7.2) grep -qx '# smoke' "$2" ;;
	rt-6.12 | rt-7.2) grep -qxE '# (smoke|race)' "$2" ;;
	"$checkers") ;;
	blkfilter-*) grep -qxE '# (smoke|race)' "$2" ;;
	esac
}
# The kernel with the checkers runs the tests about three times slower.
slowdown() { [ "$1" = "$checkers" ] && echo 3 || echo 1; }
# run_batch KERNEL SMP INDEX TEST=SIZE,... : one guest of SMP CPUs for these
# tests (TEST is NAME, or NAME@ftrace for the KERNEL+ftrace column).
run_batch() {
	local k=$1 i=$3 t name sizes args=(--smp "$2") specs=() first=1 log res rc start
	shift 3
	for t in "$@"; do
		name=${t%%=*} sizes=${t#*=}
		local n=0 s
		for s in ${sizes//,/ }; do args+=(--disk "$s"); n=$((n + 1)); done
		specs+=("$name=$first+$n")
		first=$((first + n))
	done
	log=$logdir/$k-batch$i.log
	res=$logdir/$k-batch$i.results
	start=$SECONDS
	local boots
	boots=$(header boots "tests/guest/${1%%[=@]*}.sh")
	if [ -n "$boots" ]; then
		run_boots "$k" "$i" "$boots" "${args[@]}" -- "${specs[@]}"
		return
	fi
	for attempt in 1 2; do
		rm -rf "$res"
		tests/vm/run "$k" --timeout $((per_test_timeout * $# + 300)) --results "$res" \
			"${args[@]}" -- tests/vm/batch "$per_test_timeout" "${specs[@]}" >"$log" 2>&1
		rc=$?
		# Exit 5: the emulation failed (QEMU crashed on the host, or the
		# kernel died in its own boot: TCG flaws, each seen once in
		# several hundred boots). Run the batch once more only when that
		# left no result at all: a test that ended, passed or failed, is
		# never run again to get another answer.
		[ $rc = 5 ] && [ $attempt = 1 ] && ! compgen -G "$res/batch/*.status" >/dev/null || break
		mv "$log" "$log.emulation"
		echo "reran" >"$logdir/$k-batch$i.reran"
	done
	echo "$rc $((SECONDS - start))" >"$logdir/$k-batch$i.rc"
}
# run_boots KERNEL INDEX BOOTS RUNNER-ARGS... -- SPEC...: tests of several
# boots (header "# boots: N"): N guests one after another on the same disk
# images, the tests run in each with BLKSNAP_BOOT=1..N; a test stops at the
# first boot where it fails (later boots run the others). Its log is the
# boots' logs in order. A boot that a test ended by cutting the power
# (power_cut in tests/guest/lib.sh: the runner exits 0, the guest left
# power-cut naming the test, no status) counts as passed so far for that
# test alone; any other test of the boot without a status fails.
run_boots() {
	local k=$1 i=$2 boots=$3 b rc=0 name st secs cut spec disks args=() active=()
	local -A own=() # a test's own seconds, over its boots
	shift 3
	while [ "$1" != -- ]; do args+=("$1"); shift; done
	shift
	active=("$@")
	disks=$logdir/$k-batch$i.disks
	rm -rf "$disks" "$res"
	mkdir -p "$res/batch"
	: >"$log"
	for spec in "$@"; do
		echo "1 0" >"$res/batch/${spec%%=*}.status"
		: >"$res/batch/${spec%%=*}.log"
	done
	for ((b = 1; b <= boots && ${#active[@]} > 0; b++)); do
		tests/vm/run "$k" --timeout $((per_test_timeout * ${#active[@]} + 300)) \
			--results "$res.boot$b" --disk-images "$disks" --env BLKSNAP_BOOT=$b \
			"${args[@]}" -- tests/vm/batch "$per_test_timeout" "${active[@]}" >>"$log" 2>&1
		rc=$?
		local still=()
		for spec in "${active[@]}"; do
			name=${spec%%=*}
			{
				echo "== boot $b of $boots"
				cat "$res.boot$b/batch/$name.log" 2>/dev/null
			} >>"$res/batch/$name.log"
			st=1 secs=0
			read -r st secs 2>/dev/null <"$res.boot$b/batch/$name.status" ||
				{ read -r cut secs _ 2>/dev/null <"$res.boot$b/power-cut" && [ "$cut" = "$name" ] && st=0; } ||
				st=1
			own[$name]=$((${own[$name]:-0} + ${secs:-0}))
			echo "$st ${own[$name]}" >"$res/batch/$name.status"
			[ "$rc" = 0 ] && [ "$st" = 0 ] && still+=("$spec")
		done
		active=("${still[@]}")
		[ "$rc" = 0 ] || break
	done
	rm -rf "$disks"
	echo "$rc $((SECONDS - start))" >"$logdir/$k-batch$i.rc"
}
# A column's test in a batch of its kernel: NAME, or NAME@ftrace.
pairs=()
declare -A alone=()
for t in "${guest_tests[@]}"; do
	name=$(basename "$t" .sh)
	for k in "${columns[@]}"; do
		runs_on "$k" "$t" || continue
		cost=$(header cost "$t") smp=$(header smp "$t")
		g=${k%+ftrace} id=$name
		[ "$g" = "$k" ] || id=$name@ftrace
		cost=$((${cost:-120} * $(slowdown "$g")))
		# A test of several boots pays each boot (and its leak scan):
		# about 12 s on a stock kernel (measured: 37-47 s for four).
		boots=$(header boots "$t")
		[ -z "$boots" ] || cost=$((cost + boots * 12 * $(slowdown "$g")))
		# One CPU: about two thirds of the time the cost (two) says.
		[ "${smp:-1}" != 1 ] || cost=$((cost * 2 / 3))
		pair="$g:$id:$(header vm "$t"):$cost:${smp:-1}"
		# A test of several boots (a reboot) shares its boots only with
		# itself in the other column of its kernel; one that cuts the
		# power (a line "# power-cut": a boot ends there) with nothing.
		if grep -qx '# power-cut' "$t"; then
			alone[$k:$name]+=$pair$'\n'
		elif [ -n "$(header boots "$t")" ]; then
			alone[$g:$name]+=$pair$'\n'
		else
			pairs+=("$pair")
		fi
	done
done
batches=()
if [ ${#pairs[@]} -gt 0 ]; then
	plan=$(tests/plan-batches "${pairs[@]}") && [ -n "$plan" ] ||
		record "plan of the guest batches" 1 tests/plan-batches
	[ -z "$plan" ] || mapfile -t batches <<<"$plan"
fi
for key in $(printf '%s\n' "${!alone[@]}" | sort); do
	mapfile -t group <<<"${alone[$key]%$'\n'}"
	plan=$(BATCH_MAX_COST=100000 tests/plan-batches "${group[@]}") && [ -n "$plan" ] ||
		record "plan of the guest batches" 1 tests/plan-batches
	[ -z "$plan" ] || batches+=("$plan")
done
# Longest first, those of several boots among the others: the guests start
# in this order as their kernels get ready, and a long batch planned last
# would run alone at the end.
if [ ${#batches[@]} -gt 0 ]; then
	mapfile -t batches < <(printf '%s\n' "${batches[@]}" | sort -s -t' ' -k3,3nr)
fi
if [ -n "${CHECK_PLAN:-}" ]; then # print the plan only
	printf '%s\n' "${batches[@]}"
	exit 0
fi
# pkg_install installs the Debian packages (make deb) and the module DKMS
# built from blksnap-dkms for its kernel (scripts/build-dkms.sh); lintian
# checks the packages (errors and warnings fail).
pkg_kernels=()
for b in "${batches[@]}"; do
	read -r k _smp _cost members <<<"$b"
	[[ " $members" != *" pkg_install="* ]] || pkg_kernels+=("$k")
done
if [ ${#pkg_kernels[@]} -gt 0 ]; then
	log=$logdir/deb.log
	start=$SECONDS
	(
		set -e
		# No -dbgsym packages, and no -g (stripped anyway: the same
		# packages for a minute less of compiling): not installed by the
		# test.
		DEB_BUILD_OPTIONS="${DEB_BUILD_OPTIONS:-} noddebs" \
			DEB_CFLAGS_STRIP=-g DEB_CXXFLAGS_STRIP=-g make -s deb
		lintian --fail-on error,warning build/deb/*.changes
		for k in "${pkg_kernels[@]}"; do wait_kernel "$k" && scripts/build-dkms.sh "$k"; done
	) >"$log" 2>&1
	record "deb (make deb, lintian, DKMS for ${pkg_kernels[*]}: $((SECONDS - start))s)" $? "$log"
fi
echo "== guest tests in columns ${columns[*]} (${#batches[@]} guests, $jobs_max at a time)"
for k in "${not_built[@]}"; do
	printf '  SKIP  %s (never built on this machine: make check KERNELS=%s or scripts/kernels.sh ensure %s builds it, then make check runs it)\n' "$k" "$k" "$k"
	skipped+=("$k")
done
rm -rf "$logdir"/*-batch*
# The platform: a guest of one CPU keeps its memory barriers (two short
# boots beside the first guests; tests/vm/barrier-check).
# stock-6.12 where it is named, else the first kernel without the checkers
# (a debug kernel boots and reads its kallsyms too slowly beside two other
# guests), else the one there is.
barrier_kernel=${kernels[0]}
for k in "${kernels[@]}"; do
	[ "$k" != "$checkers" ] || continue
	barrier_kernel=$k
	break
done
[[ " ${kernels[*]} " != *" stock-6.12 "* ]] || barrier_kernel="stock-6.12"
rm -f "$logdir/barrier.rc"
(
	wait_kernel "$barrier_kernel" && tests/vm/barrier-check "$barrier_kernel"
	echo $? >"$logdir/barrier.rc"
) >"$logdir/barrier.log" 2>&1 &
# Batches start in the planned order (longest first) as their kernel gets
# ready; while a kernel is still being built, it takes one of the
# $jobs_max places (a kernel build keeps both cores busy; a guest starved
# of CPU for long trips timeouts in it).
pending=()
for ((i = 1; i <= ${#batches[@]}; i++)); do pending+=("$i"); done
declare -A guests=() # pid -> batch
building() {
	local pid n=0
	for pid in "${builds[@]}"; do
		kill -0 "$pid" 2>/dev/null && n=$((n + 1))
	done
	echo $n
}
while [ ${#pending[@]} -gt 0 ]; do
	for pid in "${!guests[@]}"; do
		kill -0 "$pid" 2>/dev/null || unset "guests[$pid]"
	done
	started=""
	if [ $((${#guests[@]} + $(building))) -lt "$jobs_max" ] || [ ${#guests[@]} -eq 0 ]; then
		rest=()
		for i in "${pending[@]}"; do
			read -r k smp _cost members <<<"${batches[i - 1]}"
			rc=$(kernel_rc "$k")
			if [ -n "$started" ] || [ -z "$rc" ]; then
				rest+=("$i")
			elif [ "$rc" != 0 ]; then
				# Its kernel or module did not build: the batch's tests fail.
				echo "1 0" >"$logdir/$k-batch$i.rc"
				started=$i
			else
				# shellcheck disable=SC2086
				run_batch "$k" "$smp" "$i" $members &
				guests[$!]=$i
				started=$i
			fi
		done
		pending=("${rest[@]}")
	fi
	[ -n "$started" ] || sleep 2
done
wait
record "platform: a guest of one CPU keeps its memory barriers ($barrier_kernel, tests/vm/barrier-check)" \
	"$(cat "$logdir/barrier.rc" 2>/dev/null || echo 1)" "$logdir/barrier.log"
for k in "${kernels[@]}"; do
	[ "$(kernel_rc "$k")" = 0 ] ||
		record "$k: kernel and module (scripts/kernels.sh, build-kmod.sh)" 1 "$logdir/kernel-$k.log"
done
i=0
for b in "${batches[@]}"; do
	read -r k _smp _cost members <<<"$b"
	i=$((i + 1))
	read -r rc secs <"$logdir/$k-batch$i.rc" 2>/dev/null || { rc=1 secs=0; }
	if [ -e "$logdir/$k-batch$i.reran" ]; then
		reruns+=("$k:batch$i")
	fi
	names=()
	for t in $members; do
		id=${t%%=*} name=${id%@ftrace} col=$k
		[ "$id" = "$name" ] || col=$k+ftrace
		names+=("$id")
		log=$logdir/$col-$name.log
		if read -r st tsecs <"$logdir/$k-batch$i.results/batch/$id.status" 2>/dev/null; then
			cp "$logdir/$k-batch$i.results/batch/$id.log" "$log"
			# A randomized test's seed and size (model, fuzz), to replay it.
			seed=$(grep -aE '^(model|fuzz): seed=' "$log" | tail -n1 || true)
			record "$col:$name (${tsecs}s)${seed:+: $seed}" "$st" "$log"
		else
			echo "not run to its end: the guest of batch $i ended (see $logdir/$k-batch$i.log)" >"$log"
			record "$col:$name (not run to its end)" 1 "$log"
		fi
	done
	# The runner's own verdict on the guest: kmemleak, a splat outside any
	# test, insmod/rmmod, a guest that did not finish.
	record "$k:guest $i of ${names[*]} (${secs}s)" "$rc" "$logdir/$k-batch$i.log"
done

# The build matrix (started with the kernels) is recorded after the guests:
# on a cold cache it takes 10-15 minutes that the guests need not wait for.
record_matrix() {
	echo "== module build matrix (every 6.1 and 6.12 point release and flavour)"
	log=$logdir/matrix.log
	start=$SECONDS
	# (its job may be reaped already, by the wait for the guests)
	while [ ! -f "$logdir/matrix.rc" ] && kill -0 "$matrix_pid" 2>/dev/null; do sleep 2; done
	# Lines "ok|FAIL|skip ABI-FLAVOUR (...)", then "matrix: ..." (the summary).
	matrix_failed=0
	while read -r st name rest; do
		case $st in
		ok) record "matrix:$name $rest" 0 "$log" ;;
		FAIL)
			# "(log: L)" or "(why, log: L)": the log is the record's.
			l=$(sed -n 's/.*log: \([^)]*\))$/\1/p' <<<"$rest")
			rest=$(sed 's/,* *log: [^)]*)$/)/; s/^()$//' <<<"$rest")
			record "matrix:$name${rest:+ $rest}" 1 "${l:-$log}"
			matrix_failed=1
			;;
		skip)
			printf '  SKIP  matrix:%s %s\n' "$name" "$rest"
			skipped+=("matrix:$name")
			;;
		esac
	done < <(grep -E '^(ok|FAIL|skip) ' "$log")
	sed -n 's/^matrix: /  matrix: /p' "$log"
	echo "  (waited $((SECONDS - start)) s for it)"
	# Its own verdict, when no line failed (no headers listed, a crash).
	[ "$(cat "$logdir/matrix.rc" 2>/dev/null)" = 0 ] || [ $matrix_failed = 1 ] ||
		record "matrix (scripts/build-matrix.sh)" 1 "$log"
}
[ -z "${matrix_pid:-}" ] || record_matrix

if [ ${#failures[@]} -gt 0 ]; then
	echo "failed:"
	printf '  %s\n' "${failures[@]}"
fi
if [ ${#skipped[@]} -gt 0 ]; then
	echo "skipped: ${#skipped[@]} ($(printf '%s, ' "${skipped[@]}" | sed 's/, $//'))"
fi
if [ ${#reruns[@]} -gt 0 ]; then
	echo "reruns: ${#reruns[@]} ($(printf '%s, ' "${reruns[@]}" | sed 's/, $//'))"
else
	echo "reruns: 0"
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
