#!/usr/bin/env bash
# Build the blksnap module with DKMS, from the blksnap-dkms package made by
# `make deb`, for one test kernel (its headers from scripts/kernels.sh), as
# DKMS does on an installed system, and pack it as a binaries-only DKMS
# tarball for tests/guest/pkg_install.sh (which installs it with
# `dkms ldtarball` + `dkms install`: compiling inside a TCG guest takes
# minutes):
#   scripts/build-dkms.sh KERNEL
# Result: build/dkms/KERNEL/blksnap.dkms.tar.gz. DKMS runs on private trees
# under build/dkms/KERNEL (--dkmstree, --sourcetree, --installtree): the
# host's /var/lib/dkms, /usr/src and /lib/modules are not touched (the test
# guests see the host's root). Quiet when the tarball is newer than the
# package.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
kernel=${1:?usage: build-dkms.sh KERNEL}
kdir=$top/build/kernels/$kernel/kdir
out=$top/build/dkms/$kernel
tarball=$out/blksnap.dkms.tar.gz
[ -d "$kdir" ] || { echo "build-dkms: no kernel '$kernel' (run: scripts/kernels.sh ensure $kernel)" >&2; exit 1; }
mapfile -t debs < <(ls "$top"/build/deb/blksnap-dkms_*_all.deb 2>/dev/null)
[ ${#debs[@]} = 1 ] || { echo "build-dkms: want one build/deb/blksnap-dkms_*.deb (run: make deb)" >&2; exit 1; }
deb=${debs[0]}
[ ! "$tarball" -nt "$deb" ] || exit 0

kver=$(cat "$top/build/kernels/$kernel/release")
rm -rf "$out"
mkdir -p "$out/root" "$out/tree" "$out/inst"
dpkg-deb -x "$deb" "$out/root"
conf=$(ls "$out"/root/usr/src/blksnap-*/dkms.conf)
version=$(sed -n 's/^PACKAGE_VERSION="\(.*\)"$/\1/p' "$conf")
dkms=(dkms --dkmstree "$out/tree" --sourcetree "$out/root/usr/src" --installtree "$out/inst"
	-m blksnap -v "$version")
log=$out/dkms.log
{
	"${dkms[@]}" add &&
		"${dkms[@]}" build -k "$kver" --kernelsourcedir "$(readlink -f "$kdir")" &&
		"${dkms[@]}" mktarball -k "$kver" --binaries-only --archive "$tarball.tmp"
} >"$log" 2>&1 || {
	cat "$log" "$out"/tree/blksnap/*/*/*/log/make.log >&2 2>/dev/null
	echo "build-dkms: DKMS build of blksnap $version for $kernel ($kver) failed" >&2
	exit 1
}
mv "$tarball.tmp" "$tarball"
echo "build-dkms: built build/dkms/$kernel/blksnap.dkms.tar.gz (blksnap $version, $kver)"
