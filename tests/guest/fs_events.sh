#!/usr/bin/env bash
# columns: stock-6.1
# cost: 60
# vm: --disks 1 --disk-size 256M
# The events file of a snapshot: `cat events` blocks until the difference
# storage overflows (small -l limit, heavy writes), prints the corrupted
# event line, and ends when the snapshot is destroyed. A reader killed while
# waiting goes promptly. info shows the error; image.raw reads fail (EIO).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/fs-helpers.bash"
dev=$(disk 1)
name=$(basename "$dev")
tmp=$(mktemp -d)

step "snapshot with a 40 MiB limit on the difference storage"
dd if=/dev/urandom of="$dev" bs=1M count=64 oflag=direct status=none
id=$(blksnap snapshot_create -d "$dev" -f "$tmp" -l 40M)
blksnap snapshot_take -i "$id"
fs_start
events=$snap/$id/events

step "a reader killed while waiting for an event goes promptly"
cat "$events" >/dev/null &
pid=$!
sleep 1
kill -TERM "$pid"
wait_until bash -c "! kill -0 $pid 2>/dev/null" || fail "events reader still blocked after SIGTERM"

step "cat events follows the snapshot"
cat "$events" >"$tmp/events.txt" &
reader=$!
sleep 1
kill -0 "$reader" || fail "cat events ended early"
[ ! -s "$tmp/events.txt" ] || fail "an event before any write: $(cat "$tmp/events.txt")"

step "heavy writes overflow the storage"
dd if=/dev/urandom of="$dev" bs=1M count=96 oflag=direct status=none
want="corrupted dev=$(cat "/sys/class/block/$name/dev") err=-28"
wait_until grep -qx "$want" "$tmp/events.txt" || fail "no overflow event, got: $(cat "$tmp/events.txt")"
echo "event: $(head -n1 "$tmp/events.txt")"
kill -0 "$reader" || fail "cat events ended before destroy"

step "info shows the error; image.raw reads fail with EIO"
python3 - "$snap/$id/$name/info" <<'PY' || fail "info after overflow"
import json, sys
info = json.load(open(sys.argv[1]))
assert info["error_code"] == -28 and info["corrupted"], info
PY
if out=$(timeout 30 dd if="$snap/$id/$name/image.raw" of=/dev/null bs=1M count=4 2>&1); then
	fail "image.raw read succeeded on a corrupted snapshot"
fi
grep -q "Input/output error" <<<"$out" || fail "not EIO: $out"

step "destroy ends cat events"
blksnap snapshot_destroy -i "$id"
wait_until bash -c "! kill -0 $reader 2>/dev/null" || fail "cat events still running after destroy"
wait "$reader" || fail "cat events failed"
expect_eq "event lines" "$(cat "$tmp/events.txt")" "$want"

fs_stop
blksnap detach -d "$dev"
echo "fs_events: all checks passed"
