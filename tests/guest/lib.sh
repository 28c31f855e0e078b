# Shared helpers for guest tests (sourced). Tests run as root inside a QEMU
# guest started by tests/vm/run, with the module loaded and the repo's
# programs on PATH; they exit 0 on success.
set -euo pipefail

step() { printf '# %s\n' "$*"; }
fail() {
	printf 'FAIL: %s\n' "$*" >&2
	exit 1
}
expect_eq() { # what got want
	[ "$2" = "$3" ] || fail "$1: got '$2', want '$3'"
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

# Field of `blksnap-probe info DEV`.
cbt_field() { blksnap-probe info "$1" | sed -n "s/^$2=//p"; }

# Load kernel modules a test needs (no-op when built in).
need_modules() {
	local m
	for m in "$@"; do
		[ -d "/sys/module/${m//-/_}" ] || modprobe "$m" || fail "modprobe $m"
	done
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
