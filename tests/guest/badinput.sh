#!/usr/bin/env bash
# cost: 20
# vm: --disks 1 --disk-size 256M
# Bad requests get a clean errno and no kernel splat; an unprivileged caller
# cannot change state, but may list a snapshot's devices; a non-root uid
# cannot open the control device, and given it, still changes nothing.
. "$(dirname "$0")/lib.sh"
dev=$(disk 1)

step "bad-input battery on $dev"
blksnap-probe badinput "$dev"

step "without CAP_SYS_ADMIN: attach refused"
out=$(setpriv --bounding-set=-sys_admin blksnap-probe attach "$dev" 2>&1) &&
	fail "attach succeeded without CAP_SYS_ADMIN"
case "$out" in
*"Operation not permitted"* | *"Permission denied"*) ;;
*) fail "unexpected error: $out" ;;
esac
is_attached "$dev" && fail "attached anyway"

step "without CAP_SYS_ADMIN: cbtdirty refused; cbtinfo allowed (ftrace)"
blksnap-probe attach "$dev"
# The block layer's BLKFILTER_CTL requires CAP_SYS_ADMIN for every command;
# the control device lets read-only commands through.
if [ "$(flavour)" = ftrace ]; then
	setpriv --bounding-set=-sys_admin blksnap-probe info "$dev" >/dev/null
else
	setpriv --bounding-set=-sys_admin blksnap-probe info "$dev" 2>/dev/null &&
		fail "BLKFILTER_CTL allowed without CAP_SYS_ADMIN"
fi
out=$(setpriv --bounding-set=-sys_admin blksnap-probe dirty "$dev" 0:8 2>&1) &&
	fail "cbtdirty succeeded without CAP_SYS_ADMIN"
case "$out" in
*"Operation not permitted"* | *"Permission denied"*) ;;
*) fail "unexpected error: $out" ;;
esac
out=$(setpriv --bounding-set=-sys_admin blksnap-probe detach "$dev" 2>&1) &&
	fail "detach succeeded without CAP_SYS_ADMIN"
blksnap-probe detach "$dev"

step "snapshot_devices and snapshot_collect: bad-input battery"
tmp=$(mktemp -d)
blksnap-probe devices "$dev" "$tmp"

step "without CAP_SYS_ADMIN: snapshot_devices allowed, snapshot_destroy refused"
id=$(blksnap snapshot_create -d "$dev" -f "$tmp" -l 64M)
expect_eq "devices listed" "$(setpriv --bounding-set=-sys_admin blksnap snapshot_devices -i "$id")" "$dev"
out=$(setpriv --bounding-set=-sys_admin blksnap snapshot_destroy -i "$id" 2>&1) &&
	fail "snapshot_destroy succeeded without CAP_SYS_ADMIN"
case "$out" in
*"Operation not permitted"*) ;;
*) fail "unexpected error: $out" ;;
esac

step "a non-root uid: no access to the control device; given it, no change"
nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }
expect_eq "control device mode" "$(stat -c %a /dev/blksnap-control)" 600
out=$(nobody blksnap snapshot_collect 2>&1) && fail "nobody opened the control device"
grep -q "Permission denied" <<<"$out" || fail "unexpected error: $out"
# An administrator may grant a group the device: the module still lets
# only CAP_SYS_ADMIN change anything.
chmod 0666 /dev/blksnap-control
expect_eq "collect as nobody" "$(nobody blksnap snapshot_collect)" "$id"
# (The test's TMPDIR is root's alone.)
nobody_tmp=$(mktemp -d -p /dev/shm)
chmod 0777 "$nobody_tmp"
for cmd in "snapshot_destroy -i $id" "snapshot_take -i $id" \
	"snapshot_create -f $nobody_tmp -l 16M"; do
	# shellcheck disable=SC2086 # the words of the command
	out=$(nobody blksnap $cmd 2>&1) && fail "nobody ran: $cmd"
	grep -q "Operation not permitted" <<<"$out" || fail "$cmd: unexpected error: $out"
done
chmod 0600 /dev/blksnap-control
rm -rf "$nobody_tmp"
expect_eq "snapshots after nobody's calls" "$(blksnap snapshot_collect)" "$id"
blksnap snapshot_destroy -i "$id"
blksnap detach -d "$dev"
echo "badinput: all checks passed"
