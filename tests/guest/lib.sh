# shellcheck shell=bash
# Shared helpers for guest tests (sourced). Tests run as root inside a QEMU
# guest started by tests/vm/run, with the module loaded and the repo's
# programs on PATH; they exit 0 on success. An exec costs about a second on
# the debug kernel under emulation: the helpers use the shell's builtins
# where they can.
set -euo pipefail

step() { printf "# %s [%ss]\n" "$*" "$SECONDS"; }
fail() {
	printf 'FAIL: %s\n' "$*" >&2
	exit 1
}
expect_eq() { # what got want
	[ "$2" = "$3" ] || fail "$1: got '$2', want '$3'"
}

# load_module [PARAM=VALUE...]: insmod the module under test with the
# parameters of this run ($BLKSNAP_MODPARAMS: interception=ftrace in the
# ftrace column of make check) and these.
load_module() {
	# shellcheck disable=SC2086
	insmod "$BLKSNAP_KO" ${BLKSNAP_MODPARAMS:-} "$@"
}

# The interception flavour the module runs with: blkfilter or ftrace.
flavour() { echo "$(</sys/module/blksnap/parameters/interception)"; }

# Is DEV attached? (the kernel's "filter" sysfs attribute on a patched
# kernel in blkfilter mode, the control device's list otherwise)
is_attached() {
	local dev=$1 sys line devno
	[ -L "$dev" ] && dev=$(readlink -f "$dev")
	sys=/sys/class/block/${dev##*/}
	if [ "$(</sys/module/blksnap/parameters/interception)" = blkfilter ]; then
		[ "$(<"$sys/filter")" = blksnap ]
	else
		devno=$(<"$sys/dev")
		while read -r line; do
			[ "$line" = "$devno" ] && return 0
		done </sys/class/misc/blksnap-control/attached
		return 1
	fi
}

# The i-th extra virtio disk (1-based).
disk() {
	local -a d
	read -r -a d <<<"${BLKSNAP_DISKS:?no extra disks}"
	echo "${d[$(($1 - 1))]}"
}

# gen SEED BYTES: reproducible pseudo-random data, AES-128-CTR of BYTES
# zeros (a stream cipher: as many bytes out as in). Fails the test, rather
# than give fewer bytes or none, when openssl is missing or fails or the
# count is short: data that is not what a test thinks it wrote would let a
# comparison pass on zeros.
gen() {
	local n
	{ n=$(head -c "$2" /dev/zero |
		openssl enc -aes-128-ctr -K "$(printf %032x "$1")" -iv "$(printf %032x 0)" | tee /dev/fd/3 | wc -c); } 3>&1 ||
		fail "gen $1 $2: openssl failed"
	[ "$n" = "$2" ] || fail "gen $1 $2: $n bytes"
}

# Field of `blksnap-probe info DEV`.
cbt_field() {
	local out line
	out=$(blksnap-probe info "$1") || return
	while IFS= read -r line; do
		[ "${line%%=*}" != "$2" ] || echo "${line#*=}"
	done <<<"$out"
}

# Load kernel modules a test needs (no-op when built in).
need_modules() {
	local m
	for m in "$@"; do
		[ -d "/sys/module/${m//-/_}" ] || modprobe "$m" || fail "modprobe $m"
	done
}

# Load scsi_debug with PARAMS and print its disk's node once it is there
# (up to 10 s). Stock kernels only: the debug kernel has no SCSI.
scsi_debug_disk() { # params...
	local s i dev=
	need_modules sd_mod
	modprobe scsi_debug "$@" || fail "modprobe scsi_debug $*"
	for ((i = 0; i < 100; i++)); do
		for s in /sys/bus/pseudo/drivers/scsi_debug/adapter*/host*/target*/*/block/*; do
			[ -e "$s" ] && dev=/dev/${s##*/}
		done
		[ -n "$dev" ] && [ -b "$dev" ] && break
		sleep 0.1
	done
	[ -b "$dev" ] || fail "no scsi_debug disk"
	echo "$dev"
}

# Wait (up to 5 s) for a block device node to appear.
wait_for_dev() {
	local i
	for ((i = 0; i < 50; i++)); do
		[ -b "$1" ] && return 0
		sleep 0.1
	done
	fail "no device $1"
}

# nullb_create NAME SIZE_MB [BLOCK_SIZE]: a memory-backed null_blk disk made
# through configfs (removable at will); prints its /dev path. Its configfs
# dir is /sys/kernel/config/nullb/NAME (power 0 + rmdir removes it).
# NULLB_MEMORY_BACKED=0: writes vanish and reads return whatever the buffer
# held, so a disk of any size costs nothing.
nullb_create() {
	local nb=/sys/kernel/config/nullb/$1 d
	local -A before=()
	[ -d /sys/module/null_blk ] || modprobe null_blk nr_devices=0 || fail "modprobe null_blk"
	[ -d /sys/kernel/config/nullb ] || mount -t configfs none /sys/kernel/config
	mkdir "$nb"
	echo "$2" >"$nb/size"
	[ -z "${3:-}" ] || echo "$3" >"$nb/blocksize"
	echo "${NULLB_MEMORY_BACKED:-1}" >"$nb/memory_backed"
	for d in /sys/block/*; do before[$d]=1; done
	echo 1 >"$nb/power"
	# The disk's name differs between kernels: find the new one.
	# devtmpfs makes the node a moment after the disk appears.
	for d in /sys/block/*; do
		[ -z "${before[$d]:-}" ] || continue
		wait_for_dev "/dev/${d##*/}"
		echo "/dev/${d##*/}"
		return 0
	done
	echo /dev/
}

# mbr FILE START COUNT [START COUNT]...: an MBR partition table of up to
# four Linux partitions (START and COUNT in 512-byte sectors) written into
# FILE (an image for `losetup -P`, or a disk, then `blockdev --rereadpt`).
mbr() {
	local f=$1 i=0 v b bytes
	shift
	while [ $# -ge 2 ]; do
		bytes='\x00\x00\x00\x00\x83\x00\x00\x00'
		for v in "$1" "$2"; do
			for b in 0 8 16 24; do bytes+=$(printf '\\x%02x' $((v >> b & 255))); done
		done
		printf '%b' "$bytes" | dd of="$f" bs=1 seek=$((446 + 16 * i)) conv=notrunc status=none
		i=$((i + 1))
		shift 2
	done
	printf '\x55\xaa' | dd of="$f" bs=1 seek=510 conv=notrunc status=none
}

# nap SECONDS: sleep without an exec (fractions allowed).
nap() { read -r -t "$1" <> <(:) || true; }

# power_cut REASON: the power fails now. Nothing is synced or unmounted:
# what the guest holds in memory (its page cache, a difference storage on
# tmpfs, the module's change maps) is lost. What its disks already completed
# is kept: tests/vm/run gives QEMU cache=unsafe, so every write QEMU
# completed is in the image file, and a flush is a no-op; a disk whose
# volatile write cache loses completed but unflushed writes, or a torn
# sector, is not emulated. The line "TEST SECONDS REASON" left in
# $BLKSNAP_RESULTS/power-cut first tells the runner that this boot ends on
# purpose and that the test's checks so far passed (tests/vm/run exits 0,
# tests/check.sh counts the boot as passed for that test); the next boot of
# a "# boots: N" test checks what the disks kept.
power_cut() {
	printf '%s %s %s\n' "${BLKSNAP_TEST:-${0##*/}}" "$SECONDS" "$*" >"$BLKSNAP_RESULTS/power-cut"
	echo b >/proc/sysrq-trigger
	sleep 60
	fail "the power cut did not end the guest"
}
