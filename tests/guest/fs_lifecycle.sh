#!/usr/bin/env bash
# vm: --disks 2 --disk-size 256M
# blksnapfs life cycle: restarted while snapshots exist it shows them again;
# a lazy unmount while readers are active lets them finish, then the daemon
# ends; a snapshot destroyed while image.raw is open gives EIO, not a hang;
# --writable writes land in the snapshot image, never in the original; two
# snapshots show their devices under /devices.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/fs-helpers.bash"
dev=$(disk 1)
dev2=$(disk 2)
name=$(basename "$dev")
name2=$(basename "$dev2")
tmp=$(mktemp -d)

step "a snapshot of $dev with known content"
dd if=/dev/urandom of="$dev" bs=1M count=256 oflag=direct status=none
want=$(xsum "$dev")
id=$(blksnap snapshot_create -d "$dev" -f "$tmp" -l 300M)
blksnap snapshot_take -i "$id"
dd if=/dev/urandom of="$dev" bs=1M count=32 seek=16 oflag=direct status=none

step "daemon started, stopped, started again: same view"
fs_start
expect_eq "first daemon" "$(xsum "$snap/$id/$name/image.raw")" "$want"
fs_stop
fs_start
expect_eq "second daemon" "$(xsum "$snap/$id/$name/image.raw")" "$want"

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
if out=$(timeout 30 dd bs=1M count=8 skip=100 iflag=direct status=none <&3 2>&1 >/dev/null); then
	fail "read after destroy succeeded"
fi
grep -q "Input/output error" <<<"$out" || fail "not EIO after destroy: $out"
exec 3<&-
fs_stop

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

step "two snapshots: devices under /devices"
id1=$(blksnap snapshot_create -d "$dev" -f "$tmp" -l 100M)
id2=$(blksnap snapshot_create -d "$dev2" -f "$tmp" -l 100M)
blksnap snapshot_take -i "$id1"
blksnap snapshot_take -i "$id2"
fs_start
expect_eq "root" "$(ls "$snap" | sort | tr '\n' ' ')" \
	"$(printf '%s\n' "$id1" "$id2" devices | sort | tr '\n' ' ')"
expect_eq "devices" "$(ls "$snap/devices" | tr '\n' ' ')" "$name $name2 "
expect_eq "snapshot dir" "$(ls "$snap/$id1")" "events"
expect_eq "image of $name2" "$(xsum "$snap/devices/$name2/image.raw")" \
	"$(xsum "$(blksnap snapshot_info -d "$dev2" -f image)")"
blksnap snapshot_destroy -i "$id2"
wait_until bash -c "[ ! -e '$snap/devices' ]" || fail "/devices still there with one snapshot"
expect_eq "one snapshot again" "$(ls "$snap/$id1")" "$(printf 'events\n%s' "$name")"
blksnap snapshot_destroy -i "$id1"
fs_stop
blksnap detach -d "$dev"
blksnap detach -d "$dev2"
echo "fs_lifecycle: all checks passed"
