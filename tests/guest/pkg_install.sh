#!/usr/bin/env bash
# cost: 200
# vm: --disk 32M
# columns: stock-6.1 stock-6.12
# The Debian packages as an administrator installs them (`make deb` builds
# them into build/deb/; tests/check.sh does so before the guests): dpkg -i
# of blksnap, blksnap-dkms, libblksnap1 and libblksnap-dev in the guest's
# writable root; the module through DKMS; `modprobe blksnap` as
# modules-load.d asks at boot; blksnapfs started with its unit's ExecStart
# (PID 1 here is a script, not systemd); the demo's job with the installed
# programs only (PATH without the build tree): a snapshot of a disk with
# known content, image.raw copied with cp equal to that content after the
# disk was overwritten, destroy; blksnapfs stopped as systemd stops it
# (SIGTERM: exit 0, /snap unmounted). Then `dpkg --purge` (remove, then
# purge) leaves no module loaded, no blksnap process, none of the packages' files,
# no DKMS state.
# The module is signed by DKMS with its MOK (scripts/build-dkms.sh): its
# signer and signature are checked against the key.
# The module: DKMS built it on the host, from the blksnap-dkms package, for
# this guest's kernel (scripts/build-dkms.sh, a binaries-only DKMS
# tarball); here the package's postinst loads it (TARBALL_ROOT of DKMS's
# common.postinst, see below) and `dkms install`s it into
# /lib/modules/RELEASE/updates/dkms as on an installed system. Compiling it
# inside a TCG guest would take minutes.
# `dkms install` and `dkms remove` run depmod, which reads every module of
# the kernel: over 9p under TCG, minutes each. For the length of the test
# the kernel's own modules are hidden under a tmpfs (what the test needs is
# loaded first) and the module indexes are put back after it: depmod then
# indexes the one module DKMS installs, which is what is tested.
# The build tree's module that the runner loads is unloaded first.
# dpkg runs with --no-triggers: the packages' own maintainer scripts run,
# but not the triggers they activate in other packages (libc-bin's
# ldconfig, man-db's index; both noawait, so the packages still reach
# "installed"), which scan the guest's whole root over 9p: about a minute
# under TCG. One dpkg run installs, one removes and purges: each run reads
# dpkg's database over 9p.
. "$(dirname "$0")/lib.sh"
debdir=$BLKSNAP_REPO/build/deb
tarball=$BLKSNAP_REPO/build/dkms/$BLKSNAP_KERNEL/blksnap.dkms.tar.gz
dev=$(disk 1)
name=$(basename "$dev")
rel=$(uname -r)
pkgs=(blksnap blksnap-dkms libblksnap1 libblksnap-dev)
debs=()
for p in "${pkgs[@]}"; do
	f=$(ls "$debdir/${p}"_*.deb 2>/dev/null | head -n1)
	[ -n "$f" ] || fail "no $debdir/${p}_*.deb: run make deb"
	debs+=("$f")
done
[ -f "$tarball" ] || fail "no $tarball: run scripts/build-dkms.sh $BLKSNAP_KERNEL"
# Installed programs only.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
log=$TMPDIR/pkg.log
run() { "$@" >>"$log" 2>&1 || { cat "$log"; fail "$*"; }; }
# One dpkg-query for all the packages (each run reads dpkg's database over
# 9p: about a second under TCG): "PACKAGE STATUS" lines of those dpkg knows.
statuses() { dpkg-query -W -f='${Package} ${Status}\n' "${pkgs[@]}" 2>/dev/null || true; }
# None installed, and after a purge not even their configuration.
all_absent() {
	local known
	known=$(statuses | grep -v ' not-installed$' || true)
	[ -z "$known" ] || fail "$1: $known"
}
fusepid=""
trap '[ -z "$fusepid" ] || kill "$fusepid" 2>/dev/null; unhide; true' EXIT

snap_was_there=$([ -e /snap ] && echo 1 || true)
need_modules fuse
moddir=/lib/modules/$rel
mkdir "$TMPDIR/modidx"
cp -a "$moddir"/modules.* "$TMPDIR/modidx/"
unhide() {
	! mountpoint -q "$moddir/kernel" || umount "$moddir/kernel"
	cp -a "$TMPDIR/modidx/." "$moddir/"
}

step "no blksnap installed yet"
[ ! -d /sys/module/blksnap ] || rmmod blksnap
! modprobe -q blksnap 2>/dev/null || fail "modprobe found a blksnap module before the install"
all_absent "before the install"
! command -v blksnap >/dev/null || fail "a blksnap command before the install: $(command -v blksnap)"
mount -t tmpfs -o size=16M hidden "$moddir/kernel"

step "dpkg -i ${debs[*]##*/}, the host's DKMS build in TARBALL_ROOT"
# DKMS's way to ship a prebuilt module: blksnap-dkms's postinst
# (/usr/lib/dkms/common.postinst) loads /usr/share/blksnap-dkms/
# blksnap-VERSION.dkms.tar.gz with `dkms ldtarball` instead of `dkms add`,
# and `dkms install`s what it holds for the running kernel.
version=$(dpkg-deb -f "${debs[1]}" Version)
prebuilt=/usr/share/blksnap-dkms/blksnap-$version.dkms.tar.gz
mkdir -p "${prebuilt%/*}"
cp "$tarball" "$prebuilt"
run dpkg -i --no-triggers "${debs[@]}"
expect_eq "package status" "$(statuses | sort)" "$(printf '%s install ok installed\n' "${pkgs[@]}" | sort)"
mapfile -t files < <(dpkg -L "${pkgs[@]}" | sort -u)
expect_eq "blksnap command" "$(command -v blksnap)" /usr/sbin/blksnap
expect_eq "blksnapfs command" "$(command -v blksnapfs)" /usr/sbin/blksnapfs

rm "$prebuilt" && rmdir "${prebuilt%/*}" # the test's own file

step "the module built by DKMS for $rel is installed"
dkms status -m blksnap -v "$version" -k "$rel" | grep -q ': installed' ||
	fail "dkms status: $(dkms status -m blksnap)"
expect_eq "module file" "$(modinfo -n blksnap)" "/lib/modules/$rel/updates/dkms/blksnap.ko"

step "the installed module is signed with the MOK DKMS signed it with"
# scripts/build-dkms.sh: DKMS's own signing, with build/dkms/mok.key (on a
# Debian machine: /var/lib/dkms/mok.key, the key users enroll with mokutil).
mok=$BLKSNAP_REPO/build/dkms/mok.pub
mod=/lib/modules/$rel/updates/dkms/blksnap.ko
cn=$(openssl x509 -inform DER -in "$mok" -noout -subject -nameopt multiline | sed -n 's/^ *commonName *= //p')
expect_eq "signer" "$(modinfo -F signer "$mod")" "$cn"
python3 tests/guest/modsig.py "$mod" "$mok" || fail "the installed module's signature"
# The check can fail: one byte changed in a copy.
cp "$mod" "$TMPDIR/changed.ko"
printf '\001' | dd of="$TMPDIR/changed.ko" bs=1 seek=4096 conv=notrunc status=none
! python3 tests/guest/modsig.py "$TMPDIR/changed.ko" "$mok" 2>/dev/null ||
	fail "a changed module still verified"
rm "$TMPDIR/changed.ko"

step "modprobe what modules-load.d lists"
mods=$(grep -v '^#' /usr/lib/modules-load.d/blksnap.conf)
expect_eq "modules-load.d" "$mods" blksnap
modprobe blksnap
[ -c /dev/blksnap-control ] || fail "/dev/blksnap-control missing after modprobe"
expect_eq "module version" "$(cat /sys/module/blksnap/version)" "$(modinfo -F version blksnap)"

step "blksnapfs started with the unit's ExecStart"
unit=/lib/systemd/system/blksnapfs.service
exec_start=$(sed -n 's/^ExecStart=//p' "$unit")
[ "${exec_start%% *}" = /usr/sbin/blksnapfs ] || fail "ExecStart: $exec_start"
# shellcheck disable=SC2086 # the unit's command line, split as systemd does
$exec_start >>"$log" 2>&1 &
fusepid=$!
for _ in $(seq 100); do
	mountpoint -q /snap && break
	kill -0 $fusepid 2>/dev/null || break
	sleep 0.1
done
mountpoint -q /snap || { cat "$log"; fail "/snap not mounted"; }

step "snapshot of $dev with known content"
size=$(blockdev --getsize64 "$dev")
gen 1 "$size" >"$TMPDIR/take.bin"
dd if="$TMPDIR/take.bin" of="$dev" bs=1M oflag=direct status=none
want=$(xxhsum -H64 <"$TMPDIR/take.bin" | cut -d' ' -f1)
rm "$TMPDIR/take.bin"
id=$(blksnap snapshot_create -d "$dev" -f "$TMPDIR" -l 32M)
run blksnap snapshot_take -i "$id"
gen 2 $((16 << 20)) | dd of="$dev" bs=1M oflag=direct status=none
image=/snap/$id/$name/image.raw
[ -f "$image" ] || fail "$image missing"
cp "$image" "$TMPDIR/copy.raw"
got=$(xxhsum -H64 <"$TMPDIR/copy.raw" | cut -d' ' -f1)
expect_eq "image.raw hash (the disk at the take)" "$got" "$want"
run blksnap snapshot_destroy -i "$id"
[ ! -e "/snap/$id" ] || fail "/snap/$id still there after destroy"
run blksnap detach -d "$dev"

step "blksnapfs stopped as systemd stops it"
kill -TERM $fusepid
st=0
wait $fusepid || st=$?
fusepid=""
expect_eq "blksnapfs exit status on SIGTERM" "$st" 0
! mountpoint -q /snap || fail "/snap still mounted"

step "dpkg --purge (remove, then purge)"
run dpkg --purge --no-triggers "${pkgs[@]}"
[ ! -d /sys/module/blksnap ] || fail "module still loaded after the removal"
! pgrep -x blksnapfs >/dev/null || fail "blksnapfs still running"
all_absent "after the purge"
left=()
for f in "${files[@]}"; do
	[ -d "$f" ] && continue # shared directories (/usr/sbin, /lib -> usr/lib, ...)
	[ -e "$f" ] || [ -L "$f" ] && left+=("$f")
done
# Made at run time: the DKMS state, the module, blksnapfs's /snap.
made=(/usr/src/blksnap-"$version" /usr/include/blksnap /usr/share/doc/blksnap
	/var/lib/dkms/blksnap "/lib/modules/$rel/updates/dkms/blksnap.ko")
[ -n "$snap_was_there" ] || made+=(/snap)
for f in "${made[@]}"; do
	[ -e "$f" ] && left+=("$f")
done
[ ${#left[@]} = 0 ] || fail "left behind: ${left[*]}"
! modprobe -n -q blksnap 2>/dev/null || fail "modprobe still finds a blksnap module"
step "done"
