#!/usr/bin/env bash
# cost: 30
# vm: --disks 1 --disk-size 32M
# columns: stock-6.1 stock-6.12
# Who may read what under blksnapfs: image.raw, cbt.map and events are
# root's (0400: a read of events consumes them), info everybody's (0444),
# checked by the kernel
# (default_permissions), so -o allow_other alone opens nothing to other
# users; --group GROUP gives that group read access (with --writable, write
# access to image.raw). A failed start leaves no mount point behind.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/fs-helpers.bash"
dev=$(disk 1)
name=$(basename "$dev")
tmp=$(mktemp -d)
# other: a user in no group of ours; member: one in GROUP.
other() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }
member() { setpriv --reuid=65533 --regid=65533 --groups=4242 "$@"; }
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

step "an unknown group is bad usage (exit 2)"
rc=0
out=$(blksnapfs --group no-such-group 2>&1) || rc=$?
expect_eq "exit status" "$rc" 2
grep -q "no-such-group: no such group" <<<"$out" || fail "unknown group: $out"
mountpoint -q "$snap" && fail "$snap mounted"

blksnap snapshot_destroy -i "$id"
blksnap detach -d "$dev"
echo "fs_access: all checks passed"
