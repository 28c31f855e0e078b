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
# DKMS signs the module as on a Debian machine with the kernel's headers
# (their sign-file, /usr/lib/linux-kbuild-*/scripts/sign-file there) and
# the machine's MOK, /var/lib/dkms/mok.key and mok.pub, which DKMS makes
# itself the first time. Here the MOK is build/dkms/mok.key and mok.pub
# (made by DKMS the same way, kept across builds) and sign-file the cached
# kernel's: both named in a framework.conf.d file that only this DKMS run
# sees (a private mount namespace over /etc/dkms), so the host's /etc/dkms
# and /var/lib/dkms stay untouched.
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
sign_file=$(readlink -f "$kdir")/scripts/sign-file
[ -x "$sign_file" ] || { echo "build-dkms: no $sign_file: the module cannot be signed" >&2; exit 1; }
mok=$top/build/dkms
mkdir -p "$out/etc/framework.conf.d"
cp /etc/dkms/framework.conf "$out/etc/"
printf '%s\n' "sign_file=$sign_file" "mok_signing_key=$mok/mok.key" "mok_certificate=$mok/mok.pub" \
	>"$out/etc/framework.conf.d/blksnap-test.conf"
# shellcheck disable=SC2016 # expanded by the inner shell
dkms=(unshare -m --propagation private sh -c 'mount --bind "$0" /etc/dkms && exec dkms "$@"' "$out/etc"
	--dkmstree "$out/tree" --sourcetree "$out/root/usr/src" --installtree "$out/inst"
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
grep -q "^Signing key: $mok/mok.key" "$log" && [ -f "$mok/mok.pub" ] || {
	cat "$log" >&2
	echo "build-dkms: DKMS did not sign blksnap $version for $kernel with $mok/mok.key" >&2
	exit 1
}
mv "$tarball.tmp" "$tarball"
echo "build-dkms: built build/dkms/$kernel/blksnap.dkms.tar.gz (blksnap $version, $kver)"
