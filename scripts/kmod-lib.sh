# shellcheck shell=bash
# Shared by scripts/kernels.sh, scripts/build-kmod.sh and
# scripts/build-matrix.sh: fetching Debian's kernel header packages and
# building the module against a kernel tree. Source it; it sets nothing else.

# apt-get download PKG... into DIR (as root, no sandbox user warnings).
apt_download() {
	local dir=$1; shift
	(cd "$dir" && apt-get download -qq -o APT::Sandbox::User=root "$@" >/dev/null)
}

# header_deps PKG: the linux-headers-*-common(-rt) and linux-kbuild-* packages
# that header package PKG depends on, "COMMON KBUILD" (empty if unknown).
# linux-kbuild-6.1 is shared by every 6.1.0-N ABI: take the version that
# matches the headers.
header_deps() {
	local deps common kbuild
	deps=$(apt-cache depends "$1" 2>/dev/null) || return 0
	common=$(sed -n 's/^ *Depends: \(linux-headers-[^ ]*-common\(-rt\)\{0,1\}\)$/\1/p' <<<"$deps" | head -n1)
	kbuild=$(sed -n 's/^ *Depends: \(linux-kbuild-[^ ]*\)$/\1/p' <<<"$deps" | head -n1)
	[ -n "$common" ] && [ -n "$kbuild" ] && echo "$common $kbuild"
	return 0
}

# pkg_version PKG: the newest version of PKG apt-cache knows.
pkg_version() {
	apt-cache show "$1" 2>/dev/null | sed -n 's/^Version: //p' | sort -V | tail -n1
}

# fix_headers KDIR COMMONDIR FINAL TMP: Debian's per-flavour headers Makefile
# includes the -common tree by absolute path; point it at COMMONDIR as it
# will be once TMP (a prefix of it) is renamed to FINAL.
fix_headers() {
	local kdir=$1 cdir=$2 final=$3 tmp=$4
	[ -f "$kdir/Makefile" ] && [ -f "$cdir/Makefile" ] || { echo "bad headers layout" >&2; return 1; }
	sed -i "s|^include .*/Makefile$|include ${cdir/"$tmp"/"$final"}/Makefile|" "$kdir/Makefile"
}

# kmod_sources SRC DEST: mirror the module sources (kmodule/ without the test
# kernels' patches and config fragments, kmodule/kernel-*/) into DEST; rsync
# keeps mtimes so make rebuilds only what changed, and keeps the build
# products there.
kmod_excludes=(--exclude='kernel-*/'
	--exclude='*.o' --exclude='*.ko' --exclude='*.mod*' --exclude='.*.cmd'
	--exclude='Module.symvers' --exclude='modules.order' --exclude='.tmp*')
kmod_sources() {
	mkdir -p "$2"
	rsync -a --delete "${kmod_excludes[@]}" \
		--filter='P *.o' --filter='P *.ko' --filter='P *.mod*' --filter='P .*.cmd' \
		--filter='P Module.symvers' --filter='P modules.order' \
		"$1/" "$2/"
}

# kmod_source_hash SRC: a hash of what kmod_sources copies (names and
# contents), and of this file (how it is built).
kmod_source_hash() {
	{
		(cd "$1" && rsync -a --dry-run --out-format='%n' "${kmod_excludes[@]}" ./ /nonexistent/ |
			grep -v '/$' | LC_ALL=C sort | tr '\n' '\0' | xargs -0 sha256sum)
		sha256sum <"${BASH_SOURCE[0]}"
	} | sha256sum | cut -c1-16
}

# kmod_make KDIR SRC LOG [make args]: build the module in SRC against KDIR
# (W=1), output in LOG; compiler diagnostics fail it (the module is -Werror
# clean). Returns non-zero on failure, the log left for the caller to show.
kmod_make() {
	local kdir=$1 src=$2 log=$3
	shift 3
	make -C "$kdir" M="$src" W=1 "$@" modules >"$log" 2>&1 || return 1
	! grep -qE '(warning|error):' "$log"
}
