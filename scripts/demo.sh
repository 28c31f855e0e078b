#!/usr/bin/env bash
# The demo, run inside a stock-6.12 guest by `make demo`: ext4 with files on
# a virtio disk and a writer busy on it; a snapshot taken with `blksnap`;
# blksnapfs shows it under /snap; `cp` copies image.raw, which must equal the
# image at the take; the copy mounts (loop, read-only) with the files as they
# were; the change map and the events are shown; the snapshot is destroyed.
# Then the backup job: a full backup with `blksnap backup`, files changed, an
# incremental one, and after unmount one more that equals the device; the
# restore points they left listed, a file overwritten by mistake and the
# device rolled back to the newest point, writing only what changed.
# Ends with "demo: PASS" (exit 0) or "demo: FAIL ..." (exit 1).
set -euo pipefail
disk=${BLKSNAP_DISKS%% *}
dev=${disk}1 # a 256 MiB partition: the copy goes to the guest's RAM-backed /tmp
name=$(basename "$dev")
tmp=$(mktemp -d)
orig=/mnt/orig
copy=/mnt/copy
snap=/snap
writer=""
say() { printf '%-10s %s\n' "$1:" "$2"; }
die() {
	echo "demo: FAIL ($*)"
	exit 1
}
xsum() { xxhsum -H64 - 2>/dev/null | cut -d' ' -f1; }
sums() { (cd "$1" && find . -type f -name '*.bin' | sort | xargs xxhsum -H64 2>/dev/null); }
events=""
cleanup() {
	[ -z "$writer" ] || kill "$writer" 2>/dev/null || true
	[ -z "$events" ] || kill "$events" 2>/dev/null || true
	mountpoint -q "$copy" && umount "$copy"
	mountpoint -q "$snap" && fusermount3 -u -z "$snap"
	mountpoint -q "$orig" && umount "$orig"
	return 0
}
trap cleanup EXIT
trap 'echo "demo: FAIL (line $LINENO: $BASH_COMMAND)"' ERR

dmesg -n 1 # kernel messages in dmesg only, not among the demo's lines
[ -c /dev/fuse ] || modprobe fuse
[ -e /dev/loop-control ] || modprobe loop
say kernel "$(uname -r), blksnap $(blksnap version) ($(cat /sys/module/blksnap/parameters/interception) interception)"

parted -s "$disk" mklabel gpt mkpart demo ext4 1MiB 257MiB 2>/dev/null
for i in $(seq 50); do [ -b "$dev" ] && break; sleep 0.1; done
mkfs.ext4 -q -F -E nodiscard "$dev" >/dev/null 2>&1
mkdir -p "$orig" "$copy" "$snap"
mount "$dev" "$orig"
for i in 1 2 3 4 5 6; do head -c $((i * 4 << 20)) /dev/urandom >"$orig/file$i.bin"; done
sync
sums "$orig" >"$tmp/files.sum"
say disk "$dev: ext4 with $(ls "$orig"/*.bin | wc -l) files, $(du -sh "$orig" | cut -f1)"

# The writer: appends numbered lines and rewrites a file, all the time.
(
	n=0
	while :; do
		n=$((n + 1))
		echo "line $n" >>"$orig/writer.log"
		head -c 1M /dev/urandom >"$orig/churn.bin.tmp" && mv "$orig/churn.bin.tmp" "$orig/churn.tmp"
		sync "$orig/writer.log"
		sleep 0.1
	done
) &
writer=$!
sleep 1

id=$(blksnap snapshot_create -d "$dev" -f "$tmp" -l 300M)
blksnap snapshot_take -i "$id"
image=$(blksnap snapshot_info -d "$dev" -f image)
want=$(dd if="$image" bs=1M iflag=direct status=none | xsum)
say snapshot "$id taken while the writer runs; image $image xxh64 $want"

blksnapfs "$snap"
dir=$snap/$id/$name
say blksnapfs "$snap/$id/: $(ls "$snap/$id" | tr '\n' ' ')  $name/: $(ls "$dir" | tr '\n' ' ')"
cat "$snap/$id/events" >"$tmp/events" &
events=$!

start=$(date +%s.%N)
cp "$dir/image.raw" "$tmp/copy.raw"
secs=$(echo "$(date +%s.%N) - $start" | bc)
got=$(xsum <"$tmp/copy.raw")
say cp "image.raw -> copy.raw, $(($(stat -c %s "$tmp/copy.raw") >> 20)) MiB in ${secs%???????} s, xxh64 $got"
[ "$got" = "$want" ] || die "the copy differs from the image at the take"

mount -o loop,ro "$tmp/copy.raw" "$copy"
sums "$copy" >"$tmp/copy.sum"
cmp -s "$tmp/files.sum" "$tmp/copy.sum" || die "files in the copy differ"
say copy "mounted ro: $(cd "$copy" && ls | tr '\n' ' ')"
say copy "files identical to the take; writer.log ends at '$(tail -n1 "$copy/writer.log")'"
kill "$writer" && wait "$writer" 2>/dev/null || true
writer=""
say original "writer.log ends at '$(tail -n1 "$orig/writer.log")' (went on after the take)"
umount "$copy"

python3 - "$dir/cbt.map" "$dir/info" <<'PY'
import collections, json, sys
data = open(sys.argv[1], "rb").read()
info = json.load(open(sys.argv[2]))
count = collections.Counter(data)
bs = info["block_size"]
parts = ", ".join(f"{n} at {v}" for v, n in sorted(count.items()))
print(f"{'cbt.map:':<10} {len(data)} blocks of {bs >> 10} KiB (changes number {info['changes_number']}): {parts}")
changed = sum(n for v, n in count.items() if v)
print(f"{'':<10} {changed} blocks ({changed * bs >> 20} MiB) written since tracking began: the incremental backup reads those")
PY
cmp -s "$dir/cbt.map" <(blksnap readcbtmap -d "$dev" -f /dev/stdout) || die "cbt.map differs from readcbtmap"

blksnap snapshot_destroy -i "$id"
for i in $(seq 50); do kill -0 "$events" 2>/dev/null || break; sleep 0.1; done
kill -0 "$events" 2>/dev/null && die "cat events did not end at destroy"
events=""
say events "$( [ -s "$tmp/events" ] && cat "$tmp/events" || echo "none while held; end of file at destroy")"
[ ! -e "$snap/$id" ] || die "$snap/$id still shown after destroy"
say destroy "snapshot gone from $snap"
fusermount3 -u "$snap"

# The backup job: a full backup, files changed, an incremental one that
# reads only what the change map marks; after unmount one more, equal to
# the device byte for byte.
bk=$tmp/backup
mkdir -p "$bk"
backup() { blksnap backup -d "$dev" -o "$bk" -f "$tmp" -l 64M 2>&1 | sed "s|$tmp/|\$tmp/|"; }
say backup "$(backup)"
for i in 1 2 3; do head -c $((1 << 20)) /dev/urandom >"$orig/new$i.bin"; done
echo "changed after the full backup" >>"$orig/writer.log"
sync
say backup "$(backup)"
umount "$orig"
say backup "$(backup)"
cmp -s "$bk/$name.img" "$dev" || die "the backup image differs from the device"
say backup "$bk/$name.img equals $dev byte for byte"

# Restore points: each backup left one (qcow2 here: /tmp cannot clone
# files); a file changed by mistake; a quick rollback to the newest point
# writes back only the blocks changed since.
blksnap points -o "$bk" | sed "s|$tmp/|\$tmp/|; s/^/points:    /"
point=$(blksnap points -o "$bk" --json | tail -n 1 | sed -E 's/.*"path":"([^"]*)".*/\1/')
mount "$dev" "$orig"
head -c $((2 << 20)) /dev/urandom >"$orig/file1.bin"
umount "$orig"
say mistake "file1.bin overwritten; the device differs from the newest point"
say rollback "$(blksnap restore -o "$bk" -d "$dev" --changed-only 2>&1)"
qemu-img compare -q -f qcow2 -F raw "$point" "$dev" || die "the device differs from the point after the rollback"
mount -o ro "$dev" "$orig"
sums "$orig" | grep -q "$(grep file1.bin "$tmp/files.sum")" || die "file1.bin is not back"
umount "$orig"
say rollback "$dev equals $(basename "$point") again; file1.bin is back"
blksnap detach -d "$dev"
echo "demo: PASS"
