#!/usr/bin/env bash
# columns: stock-6.1
# cost: 130
# vm: --disks 2 --disk-size 96M
# blksnapfs life cycle: restarted while snapshots exist it shows them again;
# once daemonized it logs to syslog (/dev/log: start, stop, snapshots
# appearing and vanishing, reads failed with EIO); SIGTERM unmounts and exits
# 0 (logged to stderr in the foreground); a snapshot taken after the mount
# shows at once, and vanishes at once when destroyed;
# a lazy unmount while readers are active lets them finish, then the daemon
# ends; a snapshot destroyed while image.raw is open gives EIO, not a hang;
# --writable writes land in the snapshot image, never in the original; two
# snapshots taken at once show each its own device under its own directory.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/fs-helpers.bash"
dev=$(disk 1)
dev2=$(disk 2)
name=$(basename "$dev")
name2=$(basename "$dev2")
tmp=$(mktemp -d)

step "a snapshot of $dev with known content"
dd if=/dev/urandom of="$dev" bs=1M count=96 oflag=direct status=none
want=$(xsum "$dev")
id=$(blksnap snapshot_create -d "$dev" -f "$tmp" -l 300M)
blksnap snapshot_take -i "$id"
dd if=/dev/urandom of="$dev" bs=1M count=32 seek=16 oflag=direct status=none

step "daemon started, stopped, started again: same view; its log in syslog"
# A stand-in for the syslog daemon the guest lacks: what reaches /dev/log.
log=$tmp/syslog
rm -f /dev/log
python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind("/dev/log")
with open(sys.argv[1], "ab", buffering=0) as out:
    out.write(b"ready\n")
    while True:
        out.write(s.recv(65536).rstrip(b"\n") + b"\n")
' "$log" &
syslogd=$!
wait_until grep -qs ready "$log" || fail "no /dev/log listener"
logged() { # what: a line of blksnapfs (LOG_DAEMON) in syslog
	wait_until grep -q "^<[0-9]*>.*blksnapfs\[[0-9]*\]: $1" "$log" ||
		fail "not in syslog: $1; it has: $(tail -n 5 "$log")"
}
fs_start
expect_eq "first daemon" "$(xsum "$snap/$id/$name/image.raw")" "$want"
fs_stop
logged "blksnapfs .* started on $snap\$"
logged "snapshot $id appeared"
logged "snapshot $id: $name shown (/dev/blksnap-image_"
logged "stopped: $snap was unmounted"
grep -q "^<30>.*started on" "$log" || fail "start not logged as LOG_DAEMON|LOG_INFO: $(cat "$log")"
# As systemd stops it: SIGTERM to the daemon in the foreground; it
# unmounts, says so on stderr, and exits 0.
mkdir -p "$snap"
blksnapfs -f "$snap" 2>"$tmp/fg.err" &
fg=$!
wait_until mountpoint -q "$snap" || fail "foreground daemon did not mount"
kill -TERM "$fg"
rc=0
wait "$fg" || rc=$?
expect_eq "exit status after SIGTERM" "$rc" 0
mountpoint -q "$snap" && fail "$snap still mounted after SIGTERM"
grep -q "^blksnapfs: stopped by SIGTERM: unmounting $snap\$" "$tmp/fg.err" ||
	fail "foreground stop not on stderr: $(cat "$tmp/fg.err")"
fs_start
expect_eq "second daemon" "$(xsum "$snap/$id/$name/image.raw")" "$want"

step "a snapshot taken after the mount shows at once; destroyed, it vanishes at once"
id2=$(blksnap snapshot_create -d "$dev2" -f "$tmp" -l 100M)
blksnap snapshot_take -i "$id2"
expect_eq "root after the take" "$(ls "$snap" | tr '\n' ' ')" \
	"$(printf '%s\n' "$id" "$id2" | sort | tr '\n' ' ')"
expect_eq "size of the new image.raw" "$(stat -c %s "$snap/$id2/$name2/image.raw")" \
	"$(blockdev --getsize64 "$dev2")"
blksnap snapshot_destroy -i "$id2"
[ -e "$snap/$id2" ] && fail "$id2 still shown once destroyed"
expect_eq "root after the destroy" "$(ls "$snap")" "$id"
logged "snapshot $id2 appeared"
logged "snapshot $id2 vanished"

step "lazy unmount while readers are active: they finish, then the daemon ends"
dd if="$snap/$id/$name/image.raw" bs=64k status=none | xxhsum -H64 - | cut -d' ' -f1 >"$tmp/slow.sum" &
slow=$!
cat "$snap/$id/events" >"$tmp/events.txt" &
reader=$!
sleep 0.5
umount -l "$snap"
mountpoint -q "$snap" && fail "$snap still mounted"
wait "$slow"
expect_eq "reader across the unmount" "$(cat "$tmp/slow.sum")" "$want"
pidof blksnapfs >/dev/null || fail "daemon ended while an events reader was open"

step "destroy ends the events reader; the daemon follows"
blksnap snapshot_destroy -i "$id"
wait_until bash -c "! kill -0 $reader 2>/dev/null" || fail "events reader still blocked"
wait_until bash -c '! pidof blksnapfs >/dev/null' || fail "daemon still running"

step "a snapshot destroyed while image.raw is open: EIO, not a hang"
id=$(blksnap snapshot_create -d "$dev" -f "$tmp" -l 300M)
blksnap snapshot_take -i "$id"
fs_start
exec 3<"$snap/$id/$name/image.raw"
dd bs=1M count=2 iflag=direct status=none <&3 >/dev/null
blksnap snapshot_destroy -i "$id"
if out=$(timeout 30 dd bs=1M count=8 skip=64 iflag=direct status=none <&3 2>&1 >/dev/null); then
	fail "read after destroy succeeded"
fi
grep -q "Input/output error" <<<"$out" || fail "not EIO after destroy: $out"
exec 3<&-
fs_stop
logged "read of /dev/blksnap-image_[0-9:]* at [0-9]* failed, EIO to the reader: read /dev/blksnap-image_"

step "--writable: writes go to the snapshot image, not the original"
orig_sum=$(xsum "$dev")
id=$(blksnap snapshot_create -d "$dev" -f "$tmp" -l 300M)
blksnap snapshot_take -i "$id"
fs_start --writable
head -c $((3 << 20)) /dev/urandom >"$tmp/patch"
dd if="$tmp/patch" of="$snap/$id/$name/image.raw" bs=1000 seek=5000 conv=notrunc status=none
cmp -n $((3 << 20)) <(dd if="$snap/$id/$name/image.raw" bs=1000 skip=5000 count=3146 status=none) "$tmp/patch" ||
	fail "image.raw does not read back the write"
image=$(blksnap snapshot_info -d "$dev" -f image)
blockdev --flushbufs "$image"
cmp -n $((3 << 20)) <(dd if="$image" bs=1000 skip=5000 count=3146 status=none) "$tmp/patch" ||
	fail "the image device does not hold the write"
expect_eq "original untouched" "$(xsum "$dev")" "$orig_sum"
fs_stop
blksnap snapshot_destroy -i "$id"

step "two snapshots taken at once: each lists its own device under its own directory"
id1=$(blksnap snapshot_create -d "$dev" -f "$tmp" -l 100M)
id2=$(blksnap snapshot_create -d "$dev2" -f "$tmp" -l 100M)
expect_eq "kernel: devices of $id1" "$(blksnap snapshot_devices -i "$id1")" "$dev"
expect_eq "kernel: devices of $id2" "$(blksnap snapshot_devices -i "$id2")" "$dev2"
blksnap snapshot_devices -i "$id2" -j | python3 -c '
import json, os, sys
d = json.load(sys.stdin)["devices"]
st = os.stat(sys.argv[1])
assert d == [{"device": sys.argv[1], "dev_id": "%d:%d" % (os.major(st.st_rdev), os.minor(st.st_rdev))}], d
' "$dev2" || fail "snapshot_devices -j"
dd if=/dev/urandom of="$dev2" bs=1M count=64 oflag=direct status=none
want1=$(xsum "$dev")
want2=$(xsum "$dev2")
blksnap snapshot_take -i "$id1"
blksnap snapshot_take -i "$id2"
dd if=/dev/urandom of="$dev" bs=1M count=8 seek=40 oflag=direct status=none
dd if=/dev/urandom of="$dev2" bs=1M count=8 seek=40 oflag=direct status=none
fs_start
expect_eq "root" "$(ls "$snap" | tr '\n' ' ')" "$(printf '%s\n' "$id1" "$id2" | sort | tr '\n' ' ')"
expect_eq "snapshot dir of $id1" "$(ls "$snap/$id1" | tr '\n' ' ')" "events $name "
expect_eq "snapshot dir of $id2" "$(ls "$snap/$id2" | tr '\n' ' ')" "events $name2 "
[ -e "$snap/devices" ] && fail "/devices still exists"
[ -e "$snap/$id1/$name2" ] && fail "$name2 under the other snapshot"
expect_eq "image.raw of $name" "$(xsum "$snap/$id1/$name/image.raw")" "$want1"
expect_eq "image.raw of $name2" "$(xsum "$snap/$id2/$name2/image.raw")" "$want2"
expect_eq "info of $name2" "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["snapshot"])' \
	"$snap/$id2/$name2/info")" "$id2"
blksnap snapshot_destroy -i "$id2"
wait_until bash -c "[ ! -e '$snap/$id2' ]" || fail "$id2 still there once destroyed"
expect_eq "the other snapshot stays" "$(ls "$snap/$id1" | tr '\n' ' ')" "events $name "
blksnap snapshot_destroy -i "$id1"
fs_stop
blksnap detach -d "$dev"
blksnap detach -d "$dev2"
kill "$syslogd"
echo "fs_lifecycle: all checks passed"
