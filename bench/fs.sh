#!/usr/bin/env bash
# Guest side of `make bench`: sequential read of a snapshot through
# blksnapfs (image.raw, read as cp reads it: buffered, 1 MiB pieces, and
# with O_DIRECT) against the image block device and the original, side by
# side in one guest, and against libfuse's passthrough_ll and null examples.
# Disk 1 is the original, disk 2 the difference storage, disk 3 holds the
# file passthrough_ll serves.
# Prints one "BENCH {json}" line per comparison.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
read -r -a disks <<<"$BLKSNAP_DISKS"
dev=${disks[0]}
store=${disks[1]}
size_mb=${BENCH_FS_MB:-512}
rounds=${BENCH_ROUNDS:-4}
snap=/snap

# seq_read FILE DIRECT: MiB/s of one sequential pass over the first size_mb.
# Into page-aligned buffers, as cp and dd read: fio's own buffered-mode
# buffer sits 16 bytes off a page, and such a 1 MiB read spans 257 pages,
# which FUSE (at most 256 pages a request) sends as two requests.
seq_read() {
	local engine=psync depth=1
	[ "$2" = 1 ] && engine=libaio depth=8
	echo 3 >/proc/sys/vm/drop_caches
	fio --name=read --filename="$(fio_name "$1")" --direct="$2" --ioengine=$engine --iodepth=$depth \
		--rw=read --bs=1M --size="${size_mb}M" --invalidate=1 --iomem_align=4096 --output-format=json |
		python3 -c 'import json,sys; print(json.load(sys.stdin)["jobs"][0]["read"]["bw"] / 1024)'
}

[ -c /dev/fuse ] || modprobe fuse
dd if=/dev/urandom of="$dev" bs=1M count="$size_mb" oflag=direct status=none
id=$(blksnap snapshot_create -d "$dev" -f "$store" -l 2G)
blksnap snapshot_take -i "$id"
# Some copy-on-write: every 16th MiB of the original rewritten.
for i in $(seq 0 16 $((size_mb - 1))); do
	dd if=/dev/zero of="$dev" bs=1M count=1 seek="$i" oflag=direct status=none
done
image=$(blksnap snapshot_info -d "$dev" -f image)
mkdir -p "$snap"
blksnapfs "$snap"
raw=$snap/$id/$(basename "$dev")/image.raw

orig=() img=() imgb=() fs=() fsd=()
for r in $(seq "$rounds"); do
	# Each round reads in the reverse order of the one before: the guest's
	# drift over seconds (10-20% here) favours no side.
	if [ $((r % 2)) = 1 ]; then
		orig+=("$(seq_read "$dev" 1)") img+=("$(seq_read "$image" 1)")
		imgb+=("$(seq_read "$image" 0)") fs+=("$(seq_read "$raw" 0)")
		fsd+=("$(seq_read "$raw" 1)")
	else
		fsd+=("$(seq_read "$raw" 1)")
		fs+=("$(seq_read "$raw" 0)") imgb+=("$(seq_read "$image" 0)")
		img+=("$(seq_read "$image" 1)") orig+=("$(seq_read "$dev" 1)")
	fi
done
o=$(mean "${orig[@]}") i=$(mean "${img[@]}") ib=$(mean "${imgb[@]}")
f=$(mean "${fs[@]}") d=$(mean "${fsd[@]}")
per_round "fs: image.raw buffered / image device buffered" "${fs[*]}" "${imgb[*]}"
echo "fs: sequential read MiB/s: original $o, image device $i (buffered $ib)," \
	"image.raw $f (O_DIRECT $d)" >&2
row "fs: seq read, image.raw (cp-like) vs image device" "$i" "$f" "MiB/s" 0.8
# The same reader on both sides: buffered 1 MiB reads of the image device
# go through the page cache; those of image.raw go straight to the daemon.
row "fs: seq read, image.raw (cp-like) vs image device read the same way" "$ib" "$f" "MiB/s" 0.8
row "fs: seq read, image.raw O_DIRECT vs image device" "$i" "$d" "MiB/s" 0.8
row "fs: seq read, image.raw (cp-like) vs original" "$o" "$f" "MiB/s" 0.7

# Against libfuse's own examples (built by bench/run from libfuse3-dev's
# examples into $BENCH_FUSE_EXAMPLES): passthrough_ll serving the same bytes
# as a regular file on an ext4 of disk 3 (a block device node under a FUSE
# pass-through is opened by the kernel directly, so the image device itself
# cannot be served through it), and null, which answers reads with no I/O
# at all: the ceiling of any FUSE file system in this guest for a reader
# that reads the way it is compared: with O_DIRECT, each read goes to the
# daemon whole (as blksnapfs's image.raw, direct_io, does for every
# reader); a cp-like reader of null goes through the page cache in
# readahead-sized pieces, a path image.raw does not take, so null is no
# ceiling for it. Both examples run as shipped.
ex=${BENCH_FUSE_EXAMPLES:?bench/run sets it}
src=/mnt/bench-ptsrc pt=/mnt/bench-pt nul=/tmp/bench-null
mkfs.ext4 -q -F -E nodiscard "${disks[2]}"
mkdir -p $src $pt
mount "${disks[2]}" $src
dd if="$image" of=$src/image.bin bs=1M count="$size_mb" iflag=direct status=none
"$ex/passthrough_ll" -o source=$src $pt
touch $nul
"$ex/null" $nul
ptl=() nl=() fs2=() fsd2=()
for r in $(seq "$rounds"); do
	if [ $((r % 2)) = 1 ]; then
		ptl+=("$(seq_read $pt/image.bin 0)") fs2+=("$(seq_read "$raw" 0)")
		nl+=("$(seq_read $nul 1)") fsd2+=("$(seq_read "$raw" 1)")
	else
		fsd2+=("$(seq_read "$raw" 1)") nl+=("$(seq_read $nul 1)")
		fs2+=("$(seq_read "$raw" 0)") ptl+=("$(seq_read $pt/image.bin 0)")
	fi
done
p=$(mean "${ptl[@]}") n=$(mean "${nl[@]}") f2=$(mean "${fs2[@]}") d2=$(mean "${fsd2[@]}")
echo "fs: cp-like read MiB/s: image.raw $f2, passthrough_ll $p;" \
	"O_DIRECT: image.raw $d2, null $n" >&2
per_round "fs: image.raw / passthrough_ll" "${fs2[*]}" "${ptl[*]}"
per_round "fs: image.raw / null, O_DIRECT" "${fsd2[*]}" "${nl[*]}"
row "fs: seq read, image.raw vs libfuse passthrough_ll (same bytes)" "$p" "$f2" "MiB/s" 1.0
row "fs: seq read O_DIRECT, image.raw vs libfuse null (the FUSE ceiling)" "$n" "$d2" "MiB/s" 0
fusermount3 -u $pt
fusermount3 -u $nul
umount $src

fusermount3 -u "$snap"
blksnap snapshot_destroy -i "$id"
blksnap detach -d "$dev"
