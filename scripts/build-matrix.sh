#!/usr/bin/env bash
# Build the module (not boot it) against the headers of every Debian point
# release and flavour of the 6.1 and 6.12 series the archive offers now:
# the packages linux-headers-ABI-FLAVOUR that apt-cache lists, ABI 6.1.0-N or
# 6.12.N+deb12, FLAVOUR amd64, rt-amd64 or cloud-amd64.
#
# Usage: scripts/build-matrix.sh [REGEX]   (only the ABI-FLAVOURs matching)
#
# Prints one line per ABI-flavour, then a summary:
#   ok 6.1.0-57-rt-amd64 (12 s)
#   ok 6.1.0-57-rt-amd64 (cached: same source and headers)
#   FAIL 6.1.0-57-rt-amd64 (log: build/matrix/6.1.0-57-rt-amd64/build.log)
#   skip 6.1.0-57-rt-amd64 (reason)
#   matrix: N ok (N cached), N failed, N skipped
# and exits non-zero if any failed.
#
# Headers: each one's linux-headers-ABI-FLAVOUR, its -common (or -common-rt)
# and linux-kbuild-* packages (apt-get download, as scripts/kernels.sh),
# unpacked and fixed up in ${BLKSNAP_CACHE:-/var/cache/blksnap}/headers/
# ABI-FLAVOUR, keyed by the header package version; what the archive no longer
# offers is removed. A build is `make M=... W=1 modules` as
# scripts/build-kmod.sh (kmod-lib.sh; warnings fail it), in
# build/matrix/ABI-FLAVOUR. A success is remembered in the cache keyed by the
# hash of the module sources and the header package version: when both are
# unchanged it is not built again (the line says "cached").
# MATRIX_JOBS builds run at once (default: the number of CPUs), each make -j1,
# while the next headers are fetched.
set -euo pipefail

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/kmod-lib.sh
. "$TOP/scripts/kmod-lib.sh"
CACHE=${BLKSNAP_CACHE:-/var/cache/blksnap}
HDRS=$CACHE/headers
OUT=$TOP/build/matrix
JOBS=${MATRIX_JOBS:-$(nproc)}
FILTER=${1:-}
# Bump when the way headers are assembled changes, to force a refetch.
RECIPE=1
PKG_RE='^linux-headers-(6\.1\.0-[0-9]+|6\.12\.[0-9]+\+deb12)-(amd64|rt-amd64|cloud-amd64)$'

die() { echo "build-matrix: error: $*" >&2; exit 1; }

mkdir -p "$HDRS" "$OUT"
# One run at a time over the shared cache (other worktrees, runners).
exec 9>"$CACHE/.headers.lock"
flock 9

names=()
while IFS= read -r pkg; do
	names+=("${pkg#linux-headers-}")
done < <(apt-cache pkgnames linux-headers-6. 2>/dev/null | grep -E "$PKG_RE" | sort -V)
[ ${#names[@]} -gt 0 ] ||
	die "apt-cache lists no linux-headers of 6.1 or 6.12 (run apt-get update, or scripts/deps.sh)"

# Keep only what the archive offers now.
for d in "$HDRS"/*/; do
	[ -d "$d" ] || continue
	d=${d%/}
	[[ " ${names[*]} " == *" ${d##*/} "* ]] && continue
	echo "build-matrix: removing ${d##*/} (no longer in the archive)"
	rm -rf "$d"
done

srckey=$(kmod_source_hash "$TOP/kmodule")

# What each needs, from the archive's lists (a few batched apt-cache calls):
# the newest version of its headers, its -common(-rt) and linux-kbuild-*
# packages. linux-kbuild-6.1 is one package for every 6.1.0-N ABI and the
# archive keeps only its newest versions: take the headers' version if it
# has it, else the newest (what apt installs with those headers).
declare -A hver=() common=() kbuild=() kver=()
versions() { # PKG...: "PKG VERSION" lines, every version
	printf '%s\n' "$@" | xargs apt-cache show 2>/dev/null |
		awk '/^Package: / { p = $2 } /^Version: / { print p, $2 }' | sort -k1,1 -k2,2V
}
while read -r p v; do hver[${p#linux-headers-}]=$v; done < <(versions "${names[@]/#/linux-headers-}")
while read -r p c k; do
	common[${p#linux-headers-}]=$c kbuild[${p#linux-headers-}]=$k
done < <(printf 'linux-headers-%s\n' "${names[@]}" | xargs apt-cache depends 2>/dev/null | awk '
	/^[^ ]/ { p = $1 }
	/^ *Depends: linux-headers-.*-common(-rt)?$/ { c[p] = $2 }
	/^ *Depends: linux-kbuild-/ { k[p] = $2 }
	END { for (p in c) if (p in k) print p, c[p], k[p] }')
declare -A kall=()
mapfile -t kpkgs < <(printf '%s\n' "${kbuild[@]}" | sort -u)
while read -r p v; do kall[$p]+=" $v "; done < <(versions "${kpkgs[@]}")
for name in "${names[@]}"; do
	k=${kbuild[$name]:-} v=${hver[$name]:-}
	[ -n "$k" ] || continue
	if [[ ${kall[$k]:-} == *" $v "* ]]; then
		kver[$name]=$v
	else
		kver[$name]=$(tr ' ' '\n' <<<"${kall[$k]:-}" | sed '/^$/d' | tail -n1)
	fi
done

# fetch NAME KEY: the headers of NAME (ABI-FLAVOUR) in $HDRS/NAME, unless
# there already with KEY (the versions). Output (apt, errors) on stdout.
fetch() {
	local name=$1 key=$2 dir=$HDRS/$1 want
	want="recipe=$RECIPE $key"
	[ "$(cat "$dir/.done" 2>/dev/null || true)" != "$want" ] || return 0
	local tmp=$dir.tmp hdr=linux-headers-$name c=${common[$name]:-} k=${kbuild[$name]:-}
	[ -n "$c" ] && [ -n "$k" ] && [ -n "${kver[$name]:-}" ] ||
		{ echo "$hdr: no -common or linux-kbuild dependency in apt-cache"; return 1; }
	rm -rf "$tmp" && mkdir -p "$tmp/debs" "$tmp/root"
	apt_download "$tmp/debs" "$hdr=${hver[$name]}" "$c=${hver[$name]}" "$k=${kver[$name]}" ||
		return 1
	local deb
	for deb in "$tmp"/debs/*.deb; do
		dpkg-deb -x "$deb" "$tmp/root" || return 1
	done
	rm -rf "$tmp/debs" "$tmp/root/usr/share/doc" "$tmp/root/lib" "$tmp/root/usr/lib/modules"
	fix_headers "$tmp/root/usr/src/$hdr" "$tmp/root/usr/src/$c" "$dir" "$tmp" || return 1
	ln -s "root/usr/src/$hdr" "$tmp/kdir"
	echo "$want" >"$tmp/.done"
	rm -rf "$dir"
	mv "$tmp" "$dir"
}

# The compiler the headers' kernel was built with: the machine must have it
# (kbuild uses it, and a module built by another compiler may not load).
compiler_missing() {
	local kdir=$1 cc
	cc=$(sed -n 's/^CONFIG_CC_VERSION_TEXT="\([^ ]*\) .*/\1/p' "$kdir/.config" 2>/dev/null)
	[ -n "$cc" ] || { echo "no CONFIG_CC_VERSION_TEXT in the headers' .config"; return 0; }
	case $cc in
	*gcc*) ;;
	*) echo "headers built with $cc, not gcc"; return 0 ;;
	esac
	command -v "$cc" >/dev/null || { echo "headers built with $cc, not installed here"; return 0; }
	return 1
}

# build NAME KEY: its line in $OUT/NAME/line.
build() {
	local name=$1 dir=$HDRS/$1 out=$OUT/$1 key start why
	key="src=$srckey $2"
	if grep -qxF "$key" "$dir/ok" 2>/dev/null; then
		echo "ok $name (cached: same source and headers)" >"$out/line"
		return
	fi
	if why=$(compiler_missing "$dir/kdir"); then
		echo "skip $name ($why)" >"$out/line"
		return
	fi
	start=$SECONDS
	kmod_sources "$TOP/kmodule" "$out/src"
	if kmod_make "$dir/kdir" "$out/src" "$out/build.log" -j1; then
		# The last few sources that built here.
		{ grep -vxF "$key" "$dir/ok" 2>/dev/null | tail -n 7 || true; echo "$key"; } >"$dir/ok.tmp"
		mv "$dir/ok.tmp" "$dir/ok"
		echo "ok $name ($((SECONDS - start)) s)" >"$out/line"
	else
		echo "FAIL $name (log: ${out#"$TOP"/}/build.log)" >"$out/line"
	fi
}

for name in "${names[@]}"; do
	[ -z "$FILTER" ] || [[ $name =~ $FILTER ]] || continue
	out=$OUT/$name
	mkdir -p "$out"
	rm -f "$out/line"
	key="headers=${hver[$name]:-} kbuild=${kver[$name]:-}"
	if ! fetch "$name" "$key" >"$out/fetch.log" 2>&1; then
		rm -rf "$HDRS/$name.tmp"
		echo "FAIL $name (cannot fetch linux-headers-$name ${hver[$name]:-}, log: ${out#"$TOP"/}/fetch.log)" >"$out/line"
		cat "$out/line"
		continue
	fi
	while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n || true; done
	(build "$name" "$key"; cat "$out/line") &
done
wait

ok=0 cached=0 failed=0 skipped=0
for name in "${names[@]}"; do
	[ -z "$FILTER" ] || [[ $name =~ $FILTER ]] || continue
	line=$(cat "$OUT/$name/line" 2>/dev/null || echo "FAIL $name (no result)")
	case $line in
	"ok "*"(cached:"*) ok=$((ok + 1)) cached=$((cached + 1)) ;;
	"ok "*) ok=$((ok + 1)) ;;
	"skip "*) skipped=$((skipped + 1)) ;;
	*) failed=$((failed + 1)) ;;
	esac
done
echo "matrix: $ok ok ($cached cached), $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
