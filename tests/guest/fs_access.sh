#!/usr/bin/env bash
# cost: 50
# vm: --disks 1 --disk-size 32M
# columns: stock-6.1 stock-6.12
# Who may read what under blksnapfs: image.raw, cbt.map and events are
# root's (0400: a read of events consumes them), info everybody's (0444),
# checked by the kernel
# (default_permissions), so -o allow_other alone opens nothing to other
# users; --group GROUP gives that group read access (with --writable, write
# access to image.raw). The limits on open files are each user's, root's
# opens not counted: a user at them leaves root's backup agent its files.
# A failed start leaves no mount point behind.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/fs-helpers.bash"
dev=$(disk 1)
name=$(basename "$dev")
tmp=$(mktemp -d)
# other: a user in no group of ours; member: one in GROUP.
other() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }
member() { setpriv --reuid=65533 --regid=65533 --groups=4242 "$@"; }
member2() { setpriv --reuid=65532 --regid=65532 --groups=4242 "$@"; }
# denied WHAT CMD...: CMD fails with "Permission denied".
denied() {
	local what=$1 out
	shift
	if out=$("$@" 2>&1 >/dev/null); then
		fail "$what was allowed"
	fi
	grep -q "Permission denied" <<<"$out" || fail "$what: $out"
}
modes() { # the mode, owner and group of the snapshot's files
	stat -c '%n %a %u %g' "$dir/image.raw" "$dir/cbt.map" "$dir/info" "$snap/$id/events" |
		sed "s|$snap/$id/||"
}

step "without the module: blksnapfs fails and makes no mount point"
rmmod blksnap
rm -rf "$snap"
if out=$(blksnapfs 2>&1); then
	fail "blksnapfs started without the module"
fi
echo "$out"
[ ! -e "$snap" ] || fail "$snap left behind by a failed start"
load_module

step "a taken snapshot, shown with -o allow_other: root's files"
dd if=/dev/urandom of="$dev" bs=1M count=8 oflag=direct status=none
id=$(blksnap snapshot_create -d "$dev" -f "$tmp" -l 64M)
blksnap snapshot_take -i "$id"
image=$(blksnap snapshot_info -d "$dev" -f image)
want=$(xsum "$image")
fs_start -o allow_other
dir=$snap/$id/$name
expect_eq "modes" "$(modes)" "$name/image.raw 400 0 0
$name/cbt.map 400 0 0
$name/info 444 0 0
events 400 0 0"
denied "image.raw read by another user" other cat "$dir/image.raw"
denied "cbt.map read by another user" other cat "$dir/cbt.map"
# (dd count=0: opened, nothing read; a read waits for the next event)
denied "events read by another user" other dd if="$snap/$id/events" count=0 status=none
other cat "$dir/info" >/dev/null || fail "info not readable by another user"
expect_eq "the tree, as another user sees it" "$(other ls "$dir" | tr '\n' ' ')" \
	"cbt.map image.raw info "
fs_stop

step "--group: members read image.raw, cbt.map and events, others still do not"
groupadd -g 4242 blksnap-readers
fs_start -o allow_other --group blksnap-readers
expect_eq "modes" "$(modes)" "$name/image.raw 440 0 4242
$name/cbt.map 440 0 4242
$name/info 444 0 4242
events 440 0 4242"
expect_eq "image.raw read by a member" "$(member xxhsum -H64 "$dir/image.raw" | cut -d' ' -f1)" \
	"$want"
member cat "$dir/cbt.map" | cmp -s - "$dir/cbt.map" || fail "cbt.map read by a member differs"
member dd if="$snap/$id/events" count=0 status=none || fail "events not open to a member"
denied "events read by another user" other dd if="$snap/$id/events" count=0 status=none
denied "image.raw read by another user" other cat "$dir/image.raw"
denied "image.raw written by a member without --writable" \
	member dd if=/dev/zero of="$dir/image.raw" bs=4k count=1 conv=notrunc status=none
fs_stop

step "--group with --writable: members write image.raw, others do not"
fs_start -o allow_other --group=4242 --writable
expect_eq "image.raw mode" "$(stat -c %a "$dir/image.raw")" 660
member dd if=/dev/zero of="$dir/image.raw" bs=4k count=1 conv=notrunc status=none ||
	fail "a member could not write image.raw"
expect_eq "the image after a member's write" \
	"$(dd if="$image" bs=4k count=1 iflag=direct status=none | tr -d '\0' | wc -c)" 0
denied "image.raw written by another user" \
	other dd if=/dev/zero of="$dir/image.raw" bs=4k count=1 conv=notrunc status=none
fs_stop

step "open-file limits are each user's: a user at them, root still opens image.raw"
# hold [USER-CMD...] FILE MAX: in the background, open FILE until an open
# fails (at most MAX times) and keep what opened open until release; sets
# held to "COUNT ERROR" (ERROR: the errno name of the open that failed, or
# none). Its own descriptor limit is raised first: a refusal is the daemon's.
hold_py='import errno, os, resource, sys
hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
fds, err = [], "none"
for _ in range(int(sys.argv[2])):
    try:
        fds.append(os.open(sys.argv[1], os.O_RDONLY))
    except OSError as e:
        err = errno.errorcode[e.errno]
        break
print(len(fds), err, flush=True)
sys.stdin.read()'
hold_fds=() hold_pids=() holds=0
hold() {
	local n=$((++holds)) fd
	mkfifo "$tmp/hold$n"
	(
		for fd in "${hold_fds[@]}"; do exec {fd}>&-; done
		"${@:1:$#-2}" python3 -c "$hold_py" "${@: -2}" <"$tmp/hold$n" >"$tmp/held$n"
	) &
	hold_pids+=($!)
	exec {fd}>"$tmp/hold$n"
	hold_fds+=("$fd")
	while [ ! -s "$tmp/held$n" ] && kill -0 "${hold_pids[-1]}" 2>/dev/null; do sleep 0.1; done
	held=$(<"$tmp/held$n")
	[ -n "$held" ] || fail "the opens of ${*: -2:1} failed"
}
# release: the last hold closes its files and ends.
release() {
	local fd=${hold_fds[-1]}
	exec {fd}>&-
	wait "${hold_pids[-1]}"
	unset 'hold_fds[-1]' 'hold_pids[-1]'
}
# The holders' (and the daemon's) hard limit on descriptors above the
# daemon's limits.
hard=$(ulimit -Hn)
[ "$hard" = unlimited ] || [ "$hard" -ge 4096 ] || ulimit -Hn 4096
want=$(xsum "$image") # as the member wrote it above
fs_start -o allow_other --group blksnap-readers
hold member "$dir/image.raw" 70
expect_eq "a member's opens of image.raw" "$held" "64 EMFILE"
# Before, the 64 were everybody's: root's open failed with EMFILE here.
got=$(xsum "$dir/image.raw" 2>"$tmp/err") ||
	fail "root could not read image.raw while a member held 64: $(<"$tmp/err")"
expect_eq "image.raw read by root while a member holds 64" "$got" "$want"
expect_eq "image.raw read by another member meanwhile" \
	"$(member2 xxhsum -H64 "$dir/image.raw" | cut -d' ' -f1)" "$want"
hold "$dir/image.raw" 80
expect_eq "root's opens of image.raw (not counted) meanwhile" "$held" "80 none"
release
release
# events: each user's 16, and at most 16 of all users but root together
# (a waiting reader holds one of the 32 request threads); root's not.
hold member "$snap/$id/events" 20
expect_eq "a member's opens of events" "$held" "16 EMFILE"
hold "$snap/$id/events" 20
expect_eq "root's opens of events meanwhile" "$held" "20 none"
release
hold member2 "$snap/$id/events" 1
expect_eq "another member's open of events meanwhile" "$held" "0 EMFILE"
release
release
# (The 1024 cbt.map and info files of each user: the unit tests; 2000
# opens would take a minute here.)
fs_stop

step "an unknown group is bad usage (exit 2)"
rc=0
out=$(blksnapfs --group no-such-group 2>&1) || rc=$?
expect_eq "exit status" "$rc" 2
grep -q "no-such-group: no such group" <<<"$out" || fail "unknown group: $out"
mountpoint -q "$snap" && fail "$snap mounted"

blksnap snapshot_destroy -i "$id"
blksnap detach -d "$dev"
echo "fs_access: all checks passed"
