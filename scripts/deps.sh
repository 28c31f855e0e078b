#!/usr/bin/env bash
# Install (idempotently) every Debian package blksnap needs to build and test.
# Prints what it installs; silent when everything is present.
set -euo pipefail

PKGS=(
	# userspace toolchain and libraries (the design card)
	build-essential g++ meson ninja-build pkg-config clang-format
	libfuse3-dev fuse3 liburing-dev libxxhash-dev xxhash libboost-dev
	libgtest-dev libgmock-dev libcli11-dev nlohmann-json3-dev uuid-dev libudev-dev
	libnbd-dev qemu-utils
	# kernel module and test kernel builds
	linux-source-6.12 bc bison flex libelf-dev libssl-dev dwarves cpio
	xz-utils zstd kmod sparse rsync
	# guests and what the tests run inside them
	qemu-system-x86 busybox-static fio xfsprogs e2fsprogs util-linux
	parted dosfstools socat gcc-12 dmsetup python3 strace btrfs-progs openssl
	stress-ng
	# lint: shell scripts, Python tools, documentation
	shellcheck python3-pyflakes mandoc groff
	# Debian packages (make deb, lintian) and DKMS (tests/guest/pkg_install)
	debhelper dh-dkms dkms dpkg-dev lintian
)
# make bench only (scripts/deps.sh --bench): the database bench/pgbench.sh
# runs in a guest, and perf profiles the write path (bench/cbt_profile.sh).
if [ "${1:-}" = --bench ]; then
	PKGS+=(postgresql linux-perf)
fi

missing=()
for p in "${PKGS[@]}"; do
	[[ $p == \#* ]] && continue
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
		missing+=("$p")
	fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "deps: installing ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
	echo "deps: must run as root to install packages" >&2
	exit 1
fi
stamp=/var/lib/apt/periodic/blksnap-update-stamp
if [ ! -f "$stamp" ] || [ -n "$(find "$stamp" -mmin +360 2>/dev/null)" ]; then
	apt-get update -qq >/dev/null
	mkdir -p "$(dirname "$stamp")" && touch "$stamp"
fi
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	"${missing[@]}" >/dev/null
echo "deps: done"
