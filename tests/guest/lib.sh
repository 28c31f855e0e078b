# Shared helpers for guest tests (sourced). Tests run as root inside a QEMU
# guest started by tests/vm/run, with the module loaded and the repo's
# programs on PATH; they exit 0 on success.
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
flavour() { cat /sys/module/blksnap/parameters/interception; }

# Is DEV attached? (the kernel's "filter" sysfs attribute on a patched
# kernel in blkfilter mode, the control device's list otherwise)
is_attached() {
	local dev=$1 sys
	sys=/sys/class/block/$(basename "$(readlink -f "$dev")")
	if [ "$(flavour)" = blkfilter ]; then
		[ "$(cat "$sys/filter")" = blksnap ]
	else
		grep -qx "$(cat "$sys/dev")" /sys/class/misc/blksnap-control/attached
	fi
}

# The i-th extra virtio disk (1-based).
disk() {
	local -a d
	read -r -a d <<<"${BLKSNAP_DISKS:?no extra disks}"
	echo "${d[$(($1 - 1))]}"
}

# gen SEED BYTES: reproducible pseudo-random data (openssl ends on SIGPIPE).
gen() {
	{ openssl enc -aes-128-ctr -K "$(printf %032x "$1")" -iv 0 -in /dev/zero 2>/dev/null ||
		true; } | head -c "$2"
}

# Field of `blksnap-probe info DEV`.
cbt_field() { blksnap-probe info "$1" | sed -n "s/^$2=//p"; }

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
	local s dev=
	need_modules sd_mod
	modprobe scsi_debug "$@" || fail "modprobe scsi_debug $*"
	for _ in $(seq 100); do
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
	for i in $(seq 50); do
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
	local nb=/sys/kernel/config/nullb/$1 before
	[ -d /sys/module/null_blk ] || modprobe null_blk nr_devices=0 || fail "modprobe null_blk"
	[ -d /sys/kernel/config/nullb ] || mount -t configfs none /sys/kernel/config
	mkdir "$nb"
	echo "$2" >"$nb/size"
	[ -z "${3:-}" ] || echo "$3" >"$nb/blocksize"
	echo "${NULLB_MEMORY_BACKED:-1}" >"$nb/memory_backed"
	before=$(ls /sys/block)
	echo 1 >"$nb/power"
	# The disk's name differs between kernels: find the new one.
	echo "/dev/$(comm -13 <(echo "$before") <(ls /sys/block) | head -n1)"
}
