#!/usr/bin/env bash
# Build the blksnap module for one test kernel:
#   scripts/build-kmod.sh KERNEL [make args, e.g. C=1]
# Sources are mirrored into build/kmod/KERNEL/src so that several kernels
# build side by side; the result is build/kmod/KERNEL/blksnap.ko.
# Quiet and fast when nothing changed.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
kernel=${1:?usage: build-kmod.sh KERNEL [make args]}
shift
kdir="$top/build/kernels/$kernel/kdir"
out="$top/build/kmod/$kernel"
[ -d "$kdir" ] || { echo "build-kmod: no kernel '$kernel' (run: scripts/kernels.sh ensure $kernel)" >&2; exit 1; }

mkdir -p "$out/src"
# Guests started in parallel build the same module: one at a time.
exec 9>"$out/.lock"
flock 9
# Mirror the module sources; rsync keeps mtimes so make rebuilds only what changed.
rsync -a --delete --exclude='kernel-6.12/' \
	--exclude='*.o' --exclude='*.ko' --exclude='*.mod*' --exclude='.*.cmd' \
	--exclude='Module.symvers' --exclude='modules.order' --exclude='.tmp*' \
	--filter='P *.o' --filter='P *.ko' --filter='P *.mod*' --filter='P .*.cmd' \
	--filter='P Module.symvers' --filter='P modules.order' \
	"$top/kmodule/" "$out/src/"

log="$out/build.log"
if ! make -C "$kdir" M="$out/src" W=1 "$@" modules >"$log" 2>&1; then
	cat "$log" >&2
	echo "build-kmod: build for $kernel failed" >&2
	exit 1
fi
# Compiler diagnostics fail the build: the module is -Werror clean.
if grep -E '(warning|error):' "$log" >&2; then
	echo "build-kmod: $kernel: warnings above" >&2
	exit 1
fi
if ! cmp -s "$out/src/blksnap.ko" "$out/blksnap.ko"; then
	cp "$out/src/blksnap.ko" "$out/blksnap.ko"
	echo "build-kmod: built build/kmod/$kernel/blksnap.ko"
fi
