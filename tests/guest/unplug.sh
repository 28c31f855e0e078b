#!/usr/bin/env bash
# vm: --disks 3 --disk-size 48M
# cost: 60
# race
# Virtio disks hot-unplugged under the module: an attached disk goes with
# its tracker; a disk in a held snapshot, unplugged while a writer writes it
# and a reader reads its image, corrupts the snapshot (event), ends the
# writer and the reader with errors rather than hangs, and the snapshot is
# destroyed as usual; the other disk of that snapshot keeps its image until
# then. Nothing is left behind: the module unloads (checked by the runner).
. "$(dirname "$0")/lib.sh"
a=$(disk 1)
b=$(disk 2)
c=$(disk 3)
tmp=$(mktemp -d)
sum() { dd if="$1" bs=1M iflag=direct status=none | xxhsum -H64 - | cut -d' ' -f1; }
devnum() { cat "/sys/class/block/$(basename "$1")/dev"; }
listed() { grep -qx "$1" /sys/class/misc/blksnap-control/attached 2>/dev/null; }
# gone PID SECONDS: the process ends within SECONDS.
gone() {
	local i
	for ((i = 0; i < $2 * 10; i++)); do
		kill -0 "$1" 2>/dev/null || return 0
		sleep 0.1
	done
	return 1
}

step "an attached disk unplugged: its tracker goes"
blksnap attach -d "$a"
num_a=$(devnum "$a")
dd if=/dev/urandom of="$a" bs=64k count=16 oflag=direct status=none
"$BLKSNAP_UNPLUG" "$a"
[ ! -e "$a" ] || fail "$a still there"
! listed "$num_a" || fail "tracker of the unplugged $a still listed as attached"

step "a disk in a held snapshot unplugged while written and its image read"
dd if=/dev/urandom of="$b" bs=1M count=32 oflag=direct status=none
dd if=/dev/urandom of="$c" bs=1M count=32 oflag=direct status=none
want_c=$(sum "$c")
id=$(blksnap snapshot_create -d "$b" -d "$c" -f "$tmp" -l 300M)
blksnap snapshot_take -i "$id"
image_b=$(blksnap snapshot_info -d "$b" -f image)
image_c=$(blksnap snapshot_info -d "$c" -f image)
fio --name=w --filename="$b" --rw=randwrite --bs=4k-128k --direct=1 --iodepth=8 \
	--ioengine=libaio --time_based --runtime=600 --eta=never --output=/dev/null \
	2>"$tmp/writer.err" &
writer=$!
(while dd if="$image_b" of=/dev/null bs=64k iflag=direct status=none; do :; done) \
	2>"$tmp/reader.err" &
reader=$!
sleep 2
"$BLKSNAP_UNPLUG" "$b"
gone "$writer" 60 || fail "the writer still runs 60 s after the unplug"
wait "$writer" && fail "the writer did not see an error"
gone "$reader" 60 || fail "the image reader still runs 60 s after the unplug"
ev=$(blksnap snapshot_waitevent -i "$id" -t 5000)
grep -qx "event=corrupted" <<<"$ev" || fail "no corruption event after the unplug: $ev"
expect_eq "image of $c, the other disk" "$(sum "$image_c")" "$want_c"

step "the snapshot is destroyed as usual; $c works on"
blksnap snapshot_destroy -i "$id"
expect_eq "snapshots left" "$(blksnap snapshot_collect)" ""
[ ! -e "$image_b" ] || fail "image $image_b left after destroy"
dd if=/dev/urandom of="$c" bs=64k count=16 oflag=direct status=none
blksnap detach -d "$c"
echo "unplug: all checks passed"
