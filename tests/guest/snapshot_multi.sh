#!/usr/bin/env bash
# cost: 90
# vm: --disks 3 --disk-size 32M
# Several devices are taken at one instant; two snapshots live side by side;
# a snapshot destroyed while its image and original are busy goes cleanly.
. "$(dirname "$0")/lib.sh"
a=$(disk 1)
b=$(disk 2)
c=$(disk 3)
tmp=$(mktemp -d)

step "two devices written in lockstep, taken together"
# Record n goes to block n of both devices, a before b; the newest record
# of a must be the newest of b or one later, never earlier.
cat >"$tmp/lockstep.py" <<'PY'
import mmap, os, sys
a = os.open(sys.argv[1], os.O_WRONLY | os.O_DIRECT)
b = os.open(sys.argv[2], os.O_WRONLY | os.O_DIRECT)
buf = mmap.mmap(-1, 4096)
n = 0
stop = False
while not stop:  # one record more once told to stop: one after the take
    stop = os.path.exists(sys.argv[4])
    n += 1
    buf.seek(0)
    buf.write(n.to_bytes(8, "little") * 512)
    os.pwrite(a, buf, (n % 8192) * 4096)
    os.pwrite(b, buf, (n % 8192) * 4096)
    if n == 50:
        open(sys.argv[3], "w").close()
print(n)
PY
cat >"$tmp/newest.py" <<'PY'
import sys
data = open(sys.argv[1], "rb").read()
print(max(int.from_bytes(data[i:i + 8], "little") for i in range(0, len(data), 4096)))
PY
# Zeroed whole, so that every nonzero block of an image is a record.
for d in "$a" "$b"; do
	dd if=/dev/zero of="$d" bs=1M count=$(($(blockdev --getsize64 "$d") >> 20)) \
		oflag=direct status=none
done
# It writes until told to stop, the take in the middle: 50 records before
# (it says so), at least one after (however slow the guest is).
python3 "$tmp/lockstep.py" "$a" "$b" "$tmp/started" "$tmp/stop" >"$tmp/count" &
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
na=$(python3 "$tmp/newest.py" "$ia")
nb=$(python3 "$tmp/newest.py" "$ib")
echo "newest record: image a $na, image b $nb, written $(cat "$tmp/count")"
[ "$na" -gt 0 ] || fail "nothing written before the take"
[ "$na" -lt "$(cat "$tmp/count")" ] || fail "take happened after the writer ended"
[ "$na" -eq "$nb" ] || [ "$na" -eq $((nb + 1)) ] || fail "take not coherent: a=$na b=$nb"

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
