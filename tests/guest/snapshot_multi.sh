#!/usr/bin/env bash
# cost: 90
# smp: 2
# vm: --disks 3 --disk-size 32M
# race
# Several devices are taken at one instant; two snapshots live side by side;
# a snapshot destroyed while its image and original are busy goes cleanly.
. "$(dirname "$0")/lib.sh"
here=$(dirname "$0")
a=$(disk 1)
b=$(disk 2)
c=$(disk 3)
tmp=$(mktemp -d)

step "two devices written in lockstep, taken together"
# Record n goes to block n of both devices, a before b; the newest record
# of a must be the newest of b or one later, never earlier.
# Zeroed whole, so that every nonzero block of an image is a record.
for d in "$a" "$b"; do
	dd if=/dev/zero of="$d" bs=1M count=$(($(blockdev --getsize64 "$d") >> 20)) \
		oflag=direct status=none
done
# It writes until told to stop, the take in the middle: 50 records before
# (it says so), at least one after (however slow the guest is).
"$here/records.py" write "$tmp/started" "$tmp/stop" 8192 "$a" "$b" >"$tmp/count" &
writer=$!
until [ -e "$tmp/started" ]; do
	kill -0 "$writer" 2>/dev/null || fail "the writer ended before writing 50 records"
	sleep 0.2
done
# Room for every chunk of both devices: the writer may touch them all.
id=$(blksnap snapshot_create -d "$a" -d "$b" -f "$tmp" -l 300M)
blksnap snapshot_take -i "$id"
touch "$tmp/stop"
wait "$writer" || fail "the writer failed"
ia=$(blksnap snapshot_info -d "$a" -f image)
ib=$(blksnap snapshot_info -d "$b" -f image)
"$here/records.py" coherent "$(cat "$tmp/count")" "$ia" "$ib" || fail "take not coherent"

step "a second snapshot of another device at the same time"
dd if=/dev/urandom of="$c" bs=1M count=32 oflag=direct status=none
csum=$(xxhsum -H64 - <"$c" | cut -d' ' -f1)
id2=$(blksnap snapshot_create -d "$c" -f "$tmp" -l 200M)
blksnap snapshot_take -i "$id2"
out=$(blksnap snapshot_add -i "$id2" -d "$a" 2>&1) && fail "device joined a second snapshot"
echo "$out"
[ "$(blksnap snapshot_collect | sort)" = "$(printf '%s\n' "$id" "$id2" | sort)" ] ||
	fail "collect does not list both snapshots"
ic=$(blksnap snapshot_info -d "$c" -f image)
dd if=/dev/urandom of="$c" bs=1M count=16 oflag=direct status=none
expect_eq "second snapshot image" "$(xxhsum -H64 - <"$ic" | cut -d' ' -f1)" "$csum"

step "destroy while the image is read and the original written"
fio --name=w --filename="$c" --rw=randwrite --bs=4k-256k --direct=1 \
	--time_based --runtime=6 --eta=never --output=/dev/null &
w=$!
fio --name=r --filename="$ic" --rw=randread --bs=4k-256k --direct=1 \
	--time_based --runtime=6 --eta=never --output=/dev/null >/dev/null 2>&1 &
r=$!
sleep 2
blksnap snapshot_destroy -i "$id2"
wait "$w" || fail "writer to the original failed"
wait "$r" || true # the reader loses its device: errors are expected
[ ! -e "$ic" ] || fail "image left behind"
blksnap snapshot_destroy -i "$id"
for d in "$a" "$b" "$c"; do blksnap detach -d "$d"; done
echo "snapshot_multi: all checks passed"
