#!/usr/bin/env bash
# Build the blksnap module for one test kernel:
#   scripts/build-kmod.sh KERNEL [make args, e.g. C=1]
# Sources are mirrored into build/kmod/KERNEL/src so that several kernels
# build side by side; the result is build/kmod/KERNEL/blksnap.ko.
# Quiet and fast when nothing changed.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/kmod-lib.sh
. "$top/scripts/kmod-lib.sh"
kernel=${1:?usage: build-kmod.sh KERNEL [make args]}
shift
kdir="$top/build/kernels/$kernel/kdir"
out="$top/build/kmod/$kernel"
[ -d "$kdir" ] || { echo "build-kmod: no kernel '$kernel' (run: scripts/kernels.sh ensure $kernel)" >&2; exit 1; }

mkdir -p "$out/src"
# Guests started in parallel build the same module: one at a time.
exec 9>"$out/.lock"
flock 9
# A kernel of the same name built another way (a blkfilter kernel with or
# without the checkers, scripts/kernels.sh) has the same release but other
# structure layouts: the module is built afresh for it.
stamp="$(readlink -f "$kdir") $(sha256sum <"$kdir/.config" | cut -c1-16)"
if [ "$(cat "$out/.kernel" 2>/dev/null || true)" != "$stamp" ]; then
	rm -rf "$out/src" "$out/blksnap.ko"
	mkdir -p "$out/src"
	echo "$stamp" >"$out/.kernel"
fi
# Mirror the module sources (make rebuilds only what changed).
kmod_sources "$top/kmodule" "$out/src"

log="$out/build.log"
if ! kmod_make "$kdir" "$out/src" "$log" "$@"; then
	# Compiler diagnostics fail the build: the module is -Werror clean.
	cat "$log" >&2
	echo "build-kmod: build for $kernel failed (or warned)" >&2
	exit 1
fi
if ! cmp -s "$out/src/blksnap.ko" "$out/blksnap.ko"; then
	cp "$out/src/blksnap.ko" "$out/blksnap.ko"
	echo "build-kmod: built build/kmod/$kernel/blksnap.ko"
fi
