#!/usr/bin/env bash
# Fetch or build the test kernels of blksnap:
#   stock-6.1       Debian's newest linux-image-6.1.0-*-amd64 (+ headers)
#   stock-6.12      Debian's newest linux-image-6.12.*+deb12-amd64 (+ headers)
#   rt-6.12         Debian's newest linux-image-6.12.*+deb12-rt-amd64 (+ headers):
#                   PREEMPT_RT (spinlocks sleep, softirqs and most interrupt
#                   handlers run in threads)
#   cloud-6.12      Debian's newest linux-image-6.12.*+deb12-cloud-amd64
#                   (+ headers): the flavour with a smaller driver set
#   stock-7.2       Debian unstable's newest linux-image-7.2.*+deb*-amd64 (its
#                   linux-base-, linux-binary-unsigned-, linux-modules-ABI),
#                   booted as it is; kdir: Debian unstable's linux-source-7.2 of
#                   the same version with Debian's .config (olddefconfig with
#                   this machine's gcc), release = Debian's ABI, modules_prepare,
#                   Debian's Module.symvers and vmlinux (linux-headers-ABI)
#   rt-7.2          the same of linux-image-7.2.*+deb*-rt-amd64 (PREEMPT_RT)
#   blkfilter-6.12  /usr/src/linux-source-6.12.tar.xz + kmodule/kernel-6.12/patches
#                   + tinyconfig + kmodule/kernel-6.12/config.fragment
#   blkfilter-7.2   Debian unstable's linux-source-7.2 (fetched into the cache)
#                   + kmodule/kernel-7.2/patches + tinyconfig
#                   + kmodule/kernel-7.2/config.fragment
#
# The checkers (lockdep, KASAN, kmemleak: the fragment's lines CHECKER_LINES
# matches) are built into one blkfilter kernel only, CHECKERS
# (BLKSNAP_CHECKERS=blkfilter-SERIES chooses another; README "Test
# kernels" says why this one): the guests run about three times slower
# under them, and such a kernel takes about twice the CPU to build. The
# other blkfilter kernels are built without those lines (the rest of their
# fragment holds), in the same cache directory's plain-obj/ and plain-out/,
# so that both builds of a series stay cached.
#
# Usage: scripts/kernels.sh ensure NAME|all
#        scripts/kernels.sh list
#        scripts/kernels.sh checkers   the kernel built with the checkers
#        scripts/kernels.sh built NAME exit status 0 when the cache holds a
#                                      finished build of NAME (of any
#                                      version: ensure may still redo it,
#                                      incrementally for blkfilter-*)
#
# Result: build/kernels/NAME (a symlink into the cache) holding
#   vmlinuz   the kernel image
#   release   its `uname -r`
#   kdir      a tree for `make -C kdir M=DIR modules`
#   modroot/  a root with lib/modules/RELEASE/ (depmod done)
#
# Cache: ${BLKSNAP_CACHE:-/var/cache/blksnap}/NAME, keyed by package version, or
# for blkfilter-* by (source version, config fragment, patches). Only the
# current build of each kernel is kept; when the archive cannot be reached,
# the cached one is used. Quiet when everything is up to date;
# prints one line per thing it does.
set -euo pipefail

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${BLKSNAP_CACHE:-/var/cache/blksnap}
OUT=$TOP/build/kernels
NAMES=(stock-6.1 stock-6.12 rt-6.12 cloud-6.12 stock-7.2 rt-7.2 blkfilter-6.12 blkfilter-7.2)
CHECKERS=${BLKSNAP_CHECKERS:-blkfilter-6.12}
CHECKER_LINES='^(# )?CONFIG_(PROVE_LOCKING|PROVE_RAW_LOCK_NESTING|DEBUG_ATOMIC_SLEEP|KASAN[A-Z_]*|DEBUG_KMEMLEAK[A-Z_]*)[= ]'
# Bump when the way a kernel is assembled changes, to force a redo.
RECIPE=1
# shellcheck source=scripts/kmod-lib.sh
. "$TOP/scripts/kmod-lib.sh"

say() { echo "kernels: $*"; }
die() { echo "kernels: error: $*" >&2; exit 1; }

# Point build/kernels/NAME at DIR (only if it does not already).
link_out() {
	local name=$1 dir=$2
	mkdir -p "$OUT"
	if [ "$(readlink "$OUT/$name" 2>/dev/null || true)" != "$dir" ]; then
		ln -sfn "$dir" "$OUT/$name"
	fi
}

# Serialise work on one kernel (several runners may call ensure at once).
lock() {
	mkdir -p "$CACHE"
	exec 9>"$CACHE/.$1.lock"
	flock 9
}

hash() { sha256sum | cut -c1-16; }

# ---------------------------------------------------------------- stock ----

# Newest image package name matching REGEX, from the local apt lists.
newest_pkg() {
	apt-cache pkgnames linux-image-"$1" 2>/dev/null | grep -E "$2" | sort -V | tail -n1
}

ensure_stock() {
	local name=$1 series pkgre img abi dir
	case $name in
	stock-6.1) series=6.1.0- pkgre='^linux-image-6\.1\.0-[0-9]+-amd64-unsigned$' ;;
	stock-6.12) series=6.12. pkgre='^linux-image-6\.12\.[0-9]+\+deb12-amd64-unsigned$' ;;
	rt-6.12) series=6.12. pkgre='^linux-image-6\.12\.[0-9]+\+deb12-rt-amd64-unsigned$' ;;
	cloud-6.12) series=6.12. pkgre='^linux-image-6\.12\.[0-9]+\+deb12-cloud-amd64-unsigned$' ;;
	esac
	local base=$CACHE/$name
	mkdir -p "$base"
	img=$(newest_pkg "$series" "$pkgre")
	local current
	current=$(cat "$base/current" 2>/dev/null || true)
	if [ -z "$img" ]; then
		# No apt lists (or the archive dropped the series): keep what we have.
		[ -n "$current" ] && [ -f "$base/$current/.done" ] ||
			die "$name: no $pkgre in apt-cache (run apt-get update?)"
		say "$name: apt-cache offers nothing, keeping cached $current" >&2
		link_out "$name" "$base/$current"
		return
	fi
	abi=${img#linux-image-}
	abi=${abi%-unsigned}
	dir=$base/$abi
	if [ -f "$dir/.done" ] && [ "$(cat "$dir/.done")" = "$RECIPE" ]; then
		link_out "$name" "$dir"
		return
	fi

	say "$name: fetching $abi"
	if ! fetch_stock "$abi" "$dir.tmp" "$dir"; then
		rm -rf "$dir.tmp"
		if [ -n "$current" ] && [ -f "$base/$current/.done" ]; then
			say "$name: fetching $abi failed, keeping cached $current" >&2
			link_out "$name" "$base/$current"
			return
		fi
		die "$name: cannot fetch $abi"
	fi
	install_build "$name" "$abi"
}

# Download and unpack image + headers of kernel ABI (e.g. 6.1.0-56-amd64,
# 6.12.118+deb12-rt-amd64: its headers depend on -common-rt, not -common)
# into DIR, fix the headers up for use from there, run depmod.
fetch_stock() {
	local abi=$1 dir=$2 final=$3
	rm -rf "$dir"
	mkdir -p "$dir/debs" "$dir/root"
	# Headers: -FLAVOUR and -common(-rt) are per-ABI; linux-kbuild is linux-kbuild-6.1
	# for 6.1 and linux-kbuild-<ver> for 6.12 (take what -amd64 depends on).
	local hdr=linux-headers-$abi kbuild common deps
	deps=$(header_deps "$hdr")
	[ -n "$deps" ] || { echo "no $hdr in apt-cache" >&2; return 1; }
	read -r common kbuild <<<"$deps"
	local hver
	hver=$(pkg_version "$hdr")
	apt_download "$dir/debs" "linux-image-$abi-unsigned" "$hdr=$hver" \
		"$common=$hver" "$kbuild=$hver" || return 1
	local deb
	for deb in "$dir"/debs/*.deb; do
		dpkg-deb -x "$deb" "$dir/root"
	done
	rm -rf "$dir/debs"

	local r=$dir/root
	# The image may ship modules under /lib or /usr/lib.
	local moddir=$r/lib/modules/$abi
	[ -d "$moddir/kernel" ] || moddir=$r/usr/lib/modules/$abi
	[ -d "$moddir/kernel" ] || { echo "no modules in linux-image-$abi" >&2; return 1; }
	mkdir -p "$dir/modroot/lib/modules"
	mv "$moddir" "$dir/modroot/lib/modules/$abi" || return 1
	rm -f "$dir/modroot/lib/modules/$abi/build" "$dir/modroot/lib/modules/$abi/source"
	depmod -b "$dir/modroot" "$abi" || return 1

	# Headers: their Makefile includes the -common tree by absolute path.
	local kdir=$r/usr/src/linux-headers-$abi
	local cdir=$r/usr/src/$common
	fix_headers "$kdir" "$cdir" "$final" "$dir" || return 1
	ln -s "root/usr/src/linux-headers-$abi" "$dir/kdir"
	ln -s "root/boot/vmlinuz-$abi" "$dir/vmlinuz"
	[ -f "$dir/vmlinuz" ] || { echo "no vmlinuz in linux-image-$abi" >&2; return 1; }
	echo "$abi" >"$dir/release"
	echo "$RECIPE" >"$dir/.done"
}

# ------------------------------------------------------------ blkfilter ----

# The kernel source of SERIES: sets SRC_TAR (a tarball) and SRC_VER (its
# version). 6.12: the linux-source-6.12 package scripts/deps.sh installs.
# 7.2: Debian unstable's linux-source-7.2, which this Debian release does not
# offer: fetched with apt-get from the mirror the machine's own apt sources
# name, with the suite unstable (lists and tarball kept in $CACHE/src). When
# the archive cannot be reached, the tarball already cached is used.
source_of() {
	local series=$1
	case $series in
	6.12)
		SRC_TAR=/usr/src/linux-source-6.12.tar.xz
		[ -f "$SRC_TAR" ] || die "$SRC_TAR missing (scripts/deps.sh installs linux-source-6.12)"
		SRC_VER=$(dpkg-query -W -f='${Version}' linux-source-6.12 2>/dev/null ||
			stat -c '%s-%Y' "$SRC_TAR")
		;;
	*) fetch_unstable_source "$series" || die "linux-source-$series: none to build from" ;;
	esac
}

# apt-get and apt-cache with their own lists of Debian unstable.
apt_unstable() {
	local tool=$1 apt=$CACHE/src/apt-unstable
	shift
	APT_CONFIG=$apt/apt.conf "$tool" -o APT::Sandbox::User=root "$@"
}

# Hold the lock of the unstable lists and of the cached source tarball
# (blkfilter-7.2, stock-7.2 and rt-7.2 share them) on fd 8, until
# unstable_unlock.
unstable_lock() {
	mkdir -p "$CACHE"
	exec 8>"$CACHE/.src-unstable.lock"
	flock 8
}
unstable_unlock() { exec 8>&-; }

# Set up apt_unstable: an apt configuration of its own in $CACHE/src/apt-unstable
# naming the mirror of the machine's own apt sources with the suite unstable
# (never a mirror address of ours), its lists refreshed when older than a day.
# Fails (saying why) when the sources name no mirror; a failed refresh keeps
# the lists there are.
unstable_apt() {
	local apt=$CACHE/src/apt-unstable uri
	mkdir -p "$apt/lists/partial" "$apt/archives/partial"
	# The machine's Debian mirror: the first non-security URI of its sources.
	uri=$({
		cat /etc/apt/sources.list.d/*.sources 2>/dev/null | sed -n 's/^URIs: *//p' | tr ' ' '\n'
		cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
			sed -n 's/^deb  *\(\[[^]]*\]  *\)\{0,1\}\([^ ]*\) .*/\2/p'
	} | grep -v -e security -e '^$' | head -n1 || true)
	[ -n "$uri" ] || { say "no Debian mirror in /etc/apt/sources.list{,.d/}: cannot reach Debian unstable" >&2; return 1; }
	echo "deb $uri unstable main" >"$apt/sources.list"
	cat >"$apt/apt.conf" <<-EOF
		Dir::State "$apt";
		Dir::State::lists "$apt/lists";
		Dir::State::status "/var/lib/dpkg/status";
		Dir::Etc::sourcelist "$apt/sources.list";
		Dir::Etc::sourceparts "-";
		Dir::Cache "$apt";
	EOF
	# Lists older than a day are refreshed.
	if [ -z "$(find "$apt/lists" -maxdepth 1 -name '*Packages*' -mtime -1 2>/dev/null)" ]; then
		apt_unstable apt-get update -qq >/dev/null 2>&1 ||
			say "apt-get update of Debian unstable failed" >&2
	fi
}

# unstable_version PKG: the newest version of PKG in Debian unstable's lists.
unstable_version() {
	apt_unstable apt-cache show "$1" 2>/dev/null | sed -n 's/^Version: //p' | sort -V | tail -n1
}

# fetch_unstable_source SERIES: Debian unstable's linux-source-SERIES, its
# tarball kept in $CACHE/src; sets SRC_TAR and SRC_VER. The cached one when
# the archive offers no newer one or cannot be reached; fails (saying why)
# when there is none.
fetch_unstable_source() {
	local series=$1 pkg=linux-source-$1 dir=$CACHE/src
	local ver have
	SRC_TAR=$dir/$pkg.tar.xz
	unstable_lock
	have=$(cat "$dir/$pkg.version" 2>/dev/null || true)
	unstable_apt || true
	ver=$(unstable_version "$pkg")
	if [ -z "$ver" ] || [ "$ver" = "$have" ]; then
		unstable_unlock
		[ -n "$have" ] && [ -f "$SRC_TAR" ] || { say "$pkg: not in Debian unstable's lists, none cached" >&2; return 1; }
		SRC_VER=$have
		return
	fi
	say "$pkg: fetching $ver from Debian unstable"
	rm -rf "$dir/tmp" && mkdir -p "$dir/tmp/root"
	if ! (cd "$dir/tmp" && apt_unstable apt-get download -qq "$pkg=$ver" >/dev/null) ||
		! dpkg-deb --fsys-tarfile "$dir"/tmp/*.deb | tar -x -C "$dir/tmp/root" "./usr/src/$pkg.tar.xz"; then
		rm -rf "$dir/tmp"
		unstable_unlock
		[ -n "$have" ] && [ -f "$SRC_TAR" ] ||
			{ say "$pkg: cannot fetch $ver (or no usr/src/$pkg.tar.xz in it), none cached" >&2; return 1; }
		say "$pkg: cannot fetch $ver, using the cached $have" >&2
		SRC_VER=$have
		return
	fi
	mv "$dir/tmp/root/usr/src/$pkg.tar.xz" "$SRC_TAR"
	echo "$ver" >"$dir/$pkg.version"
	rm -rf "$dir/tmp"
	unstable_unlock
	SRC_VER=$ver
}

# The config fragment lines must all hold in .config ("# X is not set" lines:
# X must not be set).
verify_config() {
	local config=$1 line sym bad=0
	while IFS= read -r line; do
		case $line in
		CONFIG_*=*)
			grep -qxF -- "$line" "$config" || {
				sym=${line%%=*}
				echo "kernels: fragment wants $line, got: $(grep -E "^(# )?${sym}[= ]" "$config" || echo unset)" >&2
				bad=1
			} ;;
		"# CONFIG_"*" is not set")
			sym=${line#\# }; sym=${sym%% *}
			if grep -q "^$sym=" "$config"; then
				echo "kernels: fragment wants $sym unset, got: $(grep "^$sym=" "$config")" >&2
				bad=1
			fi ;;
		esac
	done <"$FRAGMENT"
	return $bad
}

# ensure_blkfilter SERIES: the kernel blkfilter-SERIES, with the checkers
# when it is CHECKERS.
ensure_blkfilter() {
	local series=$1 name=blkfilter-$1 base=$CACHE/blkfilter-$1
	local src=$base/src obj=$base/obj out=$base/out log=$base/build.log
	PATCHDIR=$TOP/kmodule/kernel-$series/patches
	FRAGMENT=$TOP/kmodule/kernel-$series/config.fragment
	[ -f "$FRAGMENT" ] || die "$FRAGMENT missing"
	mkdir -p "$base"
	if [ "$name" != "$CHECKERS" ]; then
		obj=$base/plain-obj out=$base/plain-out log=$base/plain-build.log
		grep -vE "$CHECKER_LINES" "$FRAGMENT" >"$base/plain.fragment"
		FRAGMENT=$base/plain.fragment
	fi
	source_of "$series"

	local srcver=$SRC_VER patches=() p
	if [ -d "$PATCHDIR" ]; then
		while IFS= read -r p; do patches+=("$p"); done < <(
			cd "$PATCHDIR" && LC_ALL=C ls -1 -- *.patch 2>/dev/null || true)
	fi
	local patchkey fragkey key
	patchkey=$( { for p in "${patches[@]}"; do echo "$p"; cat "$PATCHDIR/$p"; done; } | hash)
	fragkey=$(hash <"$FRAGMENT")
	key="recipe=$RECIPE src=$srcver patches=$patchkey fragment=$fragkey"

	if [ -f "$out/.done" ] && [ "$(cat "$out/.done")" = "$key" ]; then
		link_out "$name" "$out"
		return
	fi

	# 1. Source tree: pristine tarball + our patches. A change of patches
	# reverses the applied ones and applies the new ones, so that only the
	# touched files get rebuilt.
	if [ "$(cat "$src/.blksnap-srcver" 2>/dev/null || true)" != "$srcver" ]; then
		say "$name: unpacking $SRC_TAR ($srcver)"
		rm -rf "$src" "$src.tmp" "$obj"
		mkdir -p "$src.tmp"
		tar -xf "$SRC_TAR" -C "$src.tmp" --strip-components=1
		mkdir "$src.tmp/.blksnap-applied"
		echo "$srcver" >"$src.tmp/.blksnap-srcver"
		mv "$src.tmp" "$src"
	fi
	if [ "$(cat "$src/.blksnap-patchkey" 2>/dev/null || echo none)" != "$patchkey" ]; then
		local applied=()
		while IFS= read -r p; do applied+=("$p"); done < <(
			cd "$src/.blksnap-applied" && LC_ALL=C ls -1 -- *.patch 2>/dev/null || true)
		local i
		for ((i = ${#applied[@]} - 1; i >= 0; i--)); do
			p=${applied[i]}
			say "$name: reverting $p"
			if ! (cd "$src" && patch -p1 -R -E -s -f --no-backup-if-mismatch \
				<".blksnap-applied/$p" >/dev/null); then
				# Tree in an unknown state: start over from the tarball next time.
				rm -f "$src/.blksnap-srcver"
				die "$name: cannot revert $p; rerun to unpack afresh"
			fi
			rm -f "$src/.blksnap-applied/$p"
		done
		rm -f "$src/.blksnap-patchkey"
		for p in "${patches[@]}"; do
			say "$name: applying $p"
			if ! (cd "$src" && patch -p1 -E -s -f --no-backup-if-mismatch \
				<"$PATCHDIR/$p"); then
				rm -f "$src/.blksnap-srcver"
				die "$name: patch $p does not apply to linux-source-$series $srcver"
			fi
			cp "$PATCHDIR/$p" "$src/.blksnap-applied/$p"
		done
		echo "$patchkey" >"$src/.blksnap-patchkey"
	fi

	# 2. Config: tinyconfig (64-bit defaults) + fragment, then olddefconfig.
	# Kconfig only touches what changed, so an unchanged result costs nothing.
	mkdir -p "$obj"
	if [ "$(cat "$obj/.blksnap-cfgkey" 2>/dev/null || true)" != "$patchkey-$fragkey" ] ||
		[ ! -f "$obj/.config" ]; then
		say "$name: configuring (tinyconfig + ${FRAGMENT#"$TOP"/}$([ "$name" = "$CHECKERS" ] || echo ", without the checkers"))"
		local tmp=$base/cfg.tmp
		rm -rf "$tmp" && mkdir -p "$tmp"
		make -s -C "$src" O="$tmp" ARCH=x86_64 tinyconfig >/dev/null
		(cd "$src" && scripts/kconfig/merge_config.sh -m -O "$tmp" \
			"$tmp/.config" "$FRAGMENT" >/dev/null)
		make -s -C "$src" O="$tmp" olddefconfig >/dev/null
		verify_config "$tmp/.config" || {
			rm -rf "$tmp"
			die "$name: config fragment not satisfied (missing dependency?)"
		}
		if ! cmp -s "$tmp/.config" "$obj/.config"; then
			cp "$tmp/.config" "$obj/.config"
		fi
		rm -rf "$tmp"
		echo "$patchkey-$fragkey" >"$obj/.blksnap-cfgkey"
	fi

	# 3. Build (incremental in the O= dir). `modules` makes Module.symvers.
	local start=$SECONDS
	say "$name: building (make -j$(nproc) bzImage modules, log $log)"
	if ! make -s -C "$src" O="$obj" -j"$(nproc)" bzImage modules >"$log" 2>&1; then
		tail -n 30 "$log" >&2
		die "$name: build failed, see $log"
	fi
	[ -f "$obj/Module.symvers" ] || die "$name: no Module.symvers"
	say "$name: built in $((SECONDS - start)) s"

	# 4. Assemble the result.
	local rel
	rel=$(make -s -C "$src" O="$obj" kernelrelease)
	rm -rf "$out.tmp" "$out"
	mkdir -p "$out.tmp/modroot"
	cp "$obj/arch/x86/boot/bzImage" "$out.tmp/vmlinuz"
	echo "$rel" >"$out.tmp/release"
	ln -s "../${obj##*/}" "$out.tmp/kdir"
	make -s -C "$src" O="$obj" INSTALL_MOD_PATH="$out.tmp/modroot" \
		modules_install >/dev/null
	mkdir -p "$out.tmp/modroot/lib/modules/$rel"
	rm -f "$out.tmp/modroot/lib/modules/$rel/build" "$out.tmp/modroot/lib/modules/$rel/source"
	depmod -b "$out.tmp/modroot" "$rel"
	echo "$key" >"$out.tmp/.done"
	mv "$out.tmp" "$out"
	link_out "$name" "$out"
}

# ------------------------------------------------------- stock, unstable ---

# Debian unstable's own binary kernels of a series this Debian release does
# not offer (stock-7.2, rt-7.2), booted as they are. Their linux-headers and
# linux-kbuild cannot build a module here (the kbuild tools need gcc-16 and
# a newer glibc), so kdir is made from linux-source of the same version
# (fetch_unstable_source): Debian's .config (of the headers package, the one
# Debian builds external modules with), `make olddefconfig` with this
# machine's compiler, the release set to Debian's ABI (so that vermagic
# matches), `make modules_prepare`, then Debian's Module.symvers and vmlinux
# (module BTF) copied in. What olddefconfig changed is left in
# config.olddefconfig.diff beside kdir.
ensure_unstable_stock() {
	local name=$1 series flavour
	case $name in
	stock-7.2) series=7.2 flavour=amd64 ;;
	rt-7.2) series=7.2 flavour=rt-amd64 ;;
	esac
	local base=$CACHE/$name img abi ver dir key
	mkdir -p "$base"
	unstable_lock
	unstable_apt || true
	# linux-image-7.2.N+debNN-FLAVOUR (Debian 14 splits it into linux-base-,
	# linux-binary(-unsigned)- and linux-modules-ABI).
	img=$(apt_unstable apt-cache pkgnames "linux-image-$series." 2>/dev/null |
		grep -E "^linux-image-${series//./\\.}\.[0-9]+\+deb[0-9]+-$flavour\$" | sort -V | tail -n1 || true)
	ver=
	[ -z "$img" ] || ver=$(unstable_version "$img")
	unstable_unlock
	if [ -z "$ver" ]; then
		keep_cached "$name" "no linux-image-$series.*-$flavour in Debian unstable's lists"
		return
	fi
	abi=${img#linux-image-}
	dir=$base/$abi
	key="recipe=$RECIPE version=$ver"
	if [ -f "$dir/.done" ] && [ "$(cat "$dir/.done")" = "$key" ]; then
		link_out "$name" "$dir"
		return
	fi
	# The source tree must be the image's own version.
	if ! fetch_unstable_source "$series"; then
		keep_cached "$name" "no linux-source-$series for $abi"
		return
	fi
	if [ "$SRC_VER" != "$ver" ]; then
		keep_cached "$name" "linux-source-$series is $SRC_VER, $img is $ver: cannot make a matching kdir"
		return
	fi

	say "$name: fetching $abi ($ver) and preparing its kdir (log $base/build.log)"
	if ! fetch_unstable_stock "$abi" "$ver" "$dir.tmp" >"$base/build.log" 2>&1; then
		tail -n 20 "$base/build.log" >&2
		rm -rf "$dir.tmp"
		keep_cached "$name" "fetching $abi failed (log $base/build.log)"
		return
	fi
	mv "$base/build.log" "$dir.tmp/build.log"
	install_build "$name" "$abi"
}

# install_build NAME ABI: NAME's build of ABI, made in $CACHE/NAME/ABI.tmp,
# becomes the current one (linked from build/kernels); older builds go.
install_build() {
	local name=$1 abi=$2 base=$CACHE/$1 old
	rm -rf "${base:?}/$abi"
	mv "$base/$abi.tmp" "$base/$abi"
	echo "$abi" >"$base/current"
	link_out "$name" "$base/$abi"
	for old in "$base"/*/; do
		old=${old%/}
		[ "$old" = "$base/$abi" ] && continue
		say "$name: removing old ${old##*/}"
		rm -rf "$old"
	done
}

# keep_cached NAME WHY: link NAME's cached build, saying WHY it is kept;
# fail when there is none.
keep_cached() {
	local name=$1 why=$2 current
	current=$(cat "$CACHE/$name/current" 2>/dev/null || true)
	[ -n "$current" ] && [ -f "$CACHE/$name/$current/.done" ] || die "$name: $why"
	say "$name: $why, keeping cached $current" >&2
	link_out "$name" "$CACHE/$name/$current"
}

# fetch_unstable_stock ABI VERSION DIR: kernel image, modules and kdir of
# Debian unstable's kernel ABI into DIR (SRC_TAR: the matching source).
fetch_unstable_stock() {
	local abi=$1 ver=$2 dir=$3 p pkgs=()
	rm -rf "$dir"
	mkdir -p "$dir/debs" "$dir/root"
	# The image: linux-image-ABI-unsigned where it exists, else what
	# linux-image-ABI depends on (linux-base-, linux-binary-, linux-modules-ABI;
	# linux-binary-unsigned-ABI rather than the signed linux-binary-ABI).
	if [ -n "$(unstable_version "linux-image-$abi-unsigned")" ]; then
		pkgs=("linux-image-$abi-unsigned")
	else
		while IFS= read -r p; do
			[ "$p" = "linux-binary-$abi" ] && [ -n "$(unstable_version "linux-binary-unsigned-$abi")" ] &&
				p=linux-binary-unsigned-$abi
			pkgs+=("$p")
		done < <(apt_unstable apt-cache depends "linux-image-$abi=$ver" 2>/dev/null |
			sed -n "s/^ *Depends: \(linux-[a-z-]*-$abi\)\$/\1/p")
		[ ${#pkgs[@]} -gt 0 ] || { echo "linux-image-$abi depends on no linux-*-$abi" >&2; return 1; }
	fi
	# The headers: only their .config, Module.symvers and vmlinux are used.
	pkgs+=("linux-headers-$abi")
	local want=()
	for p in "${pkgs[@]}"; do want+=("$p=$ver"); done
	echo "fetching ${want[*]}"
	(cd "$dir/debs" && apt_unstable apt-get download -qq "${want[@]}") || return 1
	local deb
	for deb in "$dir"/debs/*.deb; do
		dpkg-deb -x "$deb" "$dir/root" || return 1
	done
	rm -rf "$dir/debs"

	local r=$dir/root moddir hdr=$dir/root/usr/src/linux-headers-$abi f vmlinuz=
	moddir=$r/lib/modules/$abi
	[ -d "$moddir/kernel" ] || moddir=$r/usr/lib/modules/$abi
	[ -d "$moddir/kernel" ] || { echo "no modules of $abi in ${pkgs[*]}" >&2; return 1; }
	for f in "$r/boot/vmlinuz-$abi" "$moddir/vmlinuz" "$moddir/vmlinuz.unsigned"; do
		[ -f "$f" ] && vmlinuz=$f
	done
	[ -n "$vmlinuz" ] || { echo "no vmlinuz of $abi in ${pkgs[*]}" >&2; return 1; }
	for f in .config Module.symvers vmlinux; do
		[ -f "$hdr/$f" ] || { echo "no $f in linux-headers-$abi" >&2; return 1; }
	done
	mv "$vmlinuz" "$dir/vmlinuz" || return 1

	# kdir: the source, Debian's config, the release made Debian's ABI.
	local k=$dir/kdir kver rel
	echo "unpacking $SRC_TAR"
	mkdir -p "$k"
	tar -xf "$SRC_TAR" -C "$k" --strip-components=1 || return 1
	kver=$(make -s -C "$k" kernelversion) || return 1
	[[ $abi == "$kver"[+-]* ]] || { echo "$abi is not of linux-source's $kver" >&2; return 1; }
	cp "$hdr/.config" "$dir/config.debian" && cp "$hdr/.config" "$k/.config" &&
		"$k/scripts/config" --file "$k/.config" --set-str LOCALVERSION "${abi#"$kver"}" \
			--disable LOCALVERSION_AUTO &&
		make -s -C "$k" olddefconfig || return 1
	rel=$(make -s -C "$k" kernelrelease) || return 1
	[ "$rel" = "$abi" ] || { echo "kdir's release is $rel, not $abi" >&2; return 1; }
	# What this machine's compiler changed (the CONFIG_CC_*, tool versions).
	diff "$dir/config.debian" "$k/.config" | grep '^[<>] ' >"$dir/config.olddefconfig.diff" || true
	echo "make modules_prepare"
	make -s -C "$k" -j"$(nproc)" modules_prepare || return 1
	# Debian's exported symbols (modpost), and its vmlinux for the module's
	# BTF (split against the kernel's own).
	cp "$hdr/Module.symvers" "$hdr/vmlinux" "$k/" || return 1
	# A module build reads no driver, sound or documentation source: keep only
	# their Kconfig and Makefiles (1.2 GB less).
	find "$k/drivers" "$k/sound" "$k/Documentation" -type f \
		! -name 'Kconfig*' ! -name 'Makefile*' ! -name 'Kbuild*' -delete || return 1

	# modroot: Debian's modules as they are (.ko.xz: this machine's kmod reads
	# them).
	mkdir -p "$dir/modroot/lib/modules"
	mv "$moddir" "$dir/modroot/lib/modules/$abi" || return 1
	rm -f "$dir/modroot/lib/modules/$abi/build" "$dir/modroot/lib/modules/$abi/source"
	depmod -b "$dir/modroot" "$abi" || return 1
	rm -rf "$dir/root"
	echo "$abi" >"$dir/release"
	echo "recipe=$RECIPE version=$ver" >"$dir/.done"
}

# ------------------------------------------------------------------ main ---

# built NAME: whether the cache holds a finished build of NAME (its variant
# with or without the checkers, as CHECKERS says).
built() {
	local name=$1 current
	case $name in
	blkfilter-*)
		if [ "$name" = "$CHECKERS" ]; then
			[ -f "$CACHE/$name/out/.done" ]
		else
			[ -f "$CACHE/$name/plain-out/.done" ]
		fi
		;;
	stock-* | rt-* | cloud-*)
		current=$(cat "$CACHE/$name/current" 2>/dev/null) && [ -n "$current" ] &&
			[ -f "$CACHE/$name/$current/.done" ]
		;;
	*) die "unknown kernel '$name' (known: ${NAMES[*]})" ;;
	esac
}

ensure() {
	local name=$1
	case $name in
	stock-6.1 | stock-6.12 | rt-6.12 | cloud-6.12) lock "$name"; ensure_stock "$name" ;;
	stock-7.2 | rt-7.2) lock "$name"; ensure_unstable_stock "$name" ;;
	blkfilter-6.12 | blkfilter-7.2) lock "$name"; ensure_blkfilter "${name#blkfilter-}" ;;
	*) die "unknown kernel '$name' (known: ${NAMES[*]} all)" ;;
	esac
	exec 9>&-
}

usage() {
	echo "usage: $0 ensure NAME|all    NAME: ${NAMES[*]}" >&2
	echo "       $0 list" >&2
	echo "       $0 checkers" >&2
	echo "       $0 built NAME" >&2
	exit 2
}

[ $# -ge 1 ] || usage
case $1 in
ensure)
	[ $# -eq 2 ] || usage
	if [ "$2" = all ]; then
		for n in "${NAMES[@]}"; do ensure "$n"; done
	else
		ensure "$2"
	fi
	;;
list) printf '%s\n' "${NAMES[@]}" ;;
checkers) echo "$CHECKERS" ;;
built)
	[ $# -eq 2 ] || usage
	built "$2"
	;;
*) usage ;;
esac
