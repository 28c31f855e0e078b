#!/usr/bin/env bash
# cost: 60
# columns: stock-6.1 stock-6.12 checkers
# vm: --disk 32M --disk 320M
# skip-columns: checkers+ftrace
# blksnap backup binds its state file to the image it wrote, and never
# leaves a torn image under the image's name. Into an XFS with reflink: an
# image written since the last backup (dd into it) or an older copy put
# back (cp -p) makes the next backup full, saying why; blocks changed under
# the file system (the file's identity intact) are found by the block
# checksums (--check-blocks) or by --verify=full; an incremental backup
# that runs out of space (ENOSPC) or is killed (SIGKILL) while it writes
# its reflink copy leaves the image and the state as they were, and the
# next run removes the copy. Into an ext4 (no reflink), the image is
# renamed NAME.img.partial while it is changed in place: after ENOSPC no
# image bears the image's name, the state says incomplete, and the next
# backup is full and says why. After each, the image equals the device.
# Not in the debug kernel's ftrace column: it tests the backup engine's
# image files (user space); the kernel paths under it are those every other
# test of that column runs, and stock-6.1 and stock-6.12 run it with ftrace.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/cli-helpers.bash"
dev=$(disk 1)
target=$(disk 2)
name=${dev#/dev/}
tmp=$(mktemp -d)
fs=$tmp/fs
bk=$fs/backup
img=$bk/$name.img
state=$bk/$name.state
mkdir "$tmp/store" "$fs"
mkfifo "$tmp/fifo"
read -r devno </sys/class/block/"$name"/dev
snapimage=/dev/blksnap-image_$devno
size=$(($(blockdev --getsz "$dev") * 512))
mib=$((1 << 20))
need_modules xfs ext4

# backup [ARG...]: a verified backup with JSON output; leaves $mode,
# $reason, $bytes_read and $write_path, and prints the summary line.
backup() {
	run blksnap backup -d "$dev" -o "$bk" -f "$tmp/store" -l 32M --verify --json "$@"
	[ "$rc" = 0 ] || fail "backup: exit $rc: $err"
	echo "$err"
	[[ $out =~ \"mode\":\"([a-z]+)\" ]] || fail "no mode in '$out'"
	mode=${BASH_REMATCH[1]}
	[[ $out =~ \"reason\":\"([^\"]*)\" ]] || fail "no reason in '$out'"
	reason=${BASH_REMATCH[1]}
	[[ $out =~ \"bytes_read\":([0-9]+) ]] || fail "no bytes_read in '$out'"
	bytes_read=${BASH_REMATCH[1]}
	[[ $out =~ \"write_path\":\"([a-z-]+)\" ]] || fail "no write_path in '$out'"
	write_path=${BASH_REMATCH[1]}
	[[ $out =~ \"verified\":true ]] || fail "not verified: '$out'"
}
expect_full() { # reason-part
	expect_eq mode "$mode" full
	[[ $reason == *"$1"* ]] || fail "full backup for '$reason', expected '$1'"
	expect_eq "bytes read by a full backup" "$bytes_read" "$size"
	expect_eq "write path of a full backup" "$write_path" new
}
expect_incremental() { # write-path
	expect_eq mode "$mode" incremental
	expect_eq "write path" "$write_path" "$1"
}
# The image file equals the device (no snapshot).
expect_exact() { cmp "$dev" "$img" || fail "$1: the image differs from the device"; }
# change MIB SEEK: MIB MiB of new data at SEEK MiB of the device.
change() { dd if=/dev/urandom of="$dev" bs=1M count="$1" seek="$2" oflag=direct status=none; }
# Keep the image and the state as they are, to compare after a failure.
keep() {
	cp --sparse=always "$img" "$tmp/img.before"
	cp "$state" "$tmp/state.before"
}
# The image and the state are the ones kept; no reflink copy is left.
expect_kept() { # what
	cmp "$tmp/img.before" "$img" || fail "$1: the image changed"
	cmp "$tmp/state.before" "$state" || fail "$1: the state changed"
	[ -z "$(find "$bk" -name "$name.img.new-*")" ] || fail "$1: a reflink copy is left"
	[ ! -b "$snapimage" ] || fail "$1: the snapshot is left"
}
# Fill the file system of the backup directory but for MIB MiB.
fill_but() {
	local avail
	avail=$(df -B1 --output=avail "$fs" | tail -n 1)
	fallocate -l $((avail - $1 * mib)) "$fs/fill"
}
# The byte on the target device that holds byte OFFSET of the image (a
# mapped extent), from the file's FIEMAP in 512-byte units.
physical() { # offset
	local line
	while read -r line; do
		if [[ $line =~ \[([0-9]+)\.\.([0-9]+)\]:\ ([0-9]+)\.\. ]] &&
			((BASH_REMATCH[1] * 512 <= $1 && $1 < (BASH_REMATCH[2] + 1) * 512)); then
			echo $((BASH_REMATCH[3] * 512 + $1 - BASH_REMATCH[1] * 512))
			return
		fi
	done < <(xfs_io -r -c fiemap "$img")
	fail "byte $1 of the image is not mapped"
}
# Flip byte OFFSET of the image on the device under the file system: the
# file's identity (mtime, ctime) stays; leaves $orig_block.
flip_under_fs() { # offset
	local at block
	at=$(physical "$1")
	block=$((at / 4096))
	sync
	dd if="$target" of="$tmp/block" bs=4096 skip=$block count=1 iflag=direct status=none
	cp "$tmp/block" "$tmp/orig_block"
	python3 -c 'import sys; f=open(sys.argv[1],"r+b"); f.seek(int(sys.argv[2])); b=f.read(1); f.seek(int(sys.argv[2])); f.write(bytes([b[0]^0xff]))' \
		"$tmp/block" $((at % 4096))
	dd if="$tmp/block" of="$target" bs=4096 seek=$block count=1 oflag=direct conv=notrunc \
		status=none
	echo 3 >/proc/sys/vm/drop_caches
	flipped_block=$block
}
unflip() {
	dd if="$tmp/orig_block" of="$target" bs=4096 seek="$flipped_block" count=1 oflag=direct \
		conv=notrunc status=none
	echo 3 >/proc/sys/vm/drop_caches
}

step "into an XFS with reflink: a full backup, then incrementals into a reflink copy"
mkfs.xfs -q -f -m reflink=1 "$target"
mount "$target" "$fs"
change 4 0
backup
expect_full "first backup: no state file"
ino=$(stat -c %i "$img")
change 1 8
backup
expect_incremental reflink
[[ $err == *"wrote 1.0 MiB into a reflink copy"* ]] || fail "the summary does not say reflink: $err"
[ "$(stat -c %i "$img")" != "$ino" ] || fail "the reflink copy did not replace the image"
expect_exact "after a reflink incremental"

step "(a) the image written since the last backup (dd into it): full, says why"
dd if=/dev/urandom of="$img" bs=4k count=1 seek=$((24 * 256)) conv=notrunc status=none
change 1 12
backup
expect_full "the image file changed since the last backup"
expect_exact "after the image was written"

step "(b) an older copy of the image put back (cp -p keeps its mtime): full, says why"
cp -p --sparse=always "$img" "$tmp/old.img"
change 1 13
backup
expect_incremental reflink
cp -p "$tmp/old.img" "$img"
change 1 14
backup
expect_full "the image file changed since the last backup"
[[ $reason == *ctime* ]] || fail "the reason does not name the ctime: $reason"
expect_exact "after an older copy was put back"

step "blocks changed under the file system: the block checksums find them"
flip_under_fs $((mib + 12345))
change 1 16
backup --check-blocks=100000
expect_full "is not what the last backup wrote there"
expect_exact "after a block changed under the file system"

step "--verify=full finds a block changed under the file system that was not checked"
flip_under_fs $((mib + 12345))
change 1 17
keep
run blksnap backup -d "$dev" -o "$bk" -f "$tmp/store" -l 32M --check-blocks=0 --verify=full
[ "$rc" = 1 ] || fail "--verify=full of a damaged image: exit $rc, out '$out', err '$err'"
[[ $err == *"differs from a second read of the snapshot at byte $((mib + 12345))"* ]] ||
	fail "--verify=full: $err"
[[ $err == *"the image and the state file are unchanged"* ]] || fail "--verify=full: $err"
expect_kept "--verify=full of a damaged image"
unflip
backup --verify=full --check-blocks=0
expect_incremental reflink
[[ $out =~ \"checked_blocks\":0 ]] || fail "--check-blocks=0 checked blocks: $out"
expect_exact "after --verify=full"
backup
expect_incremental none
if ! [[ $out =~ \"checked_blocks\":([1-9][0-9]*) ]]; then
	fail "the default checks no block: $out"
fi

step "(c) ENOSPC while an incremental writes its reflink copy: the image and the state stay"
change 16 8
keep
fill_but 4
run blksnap backup -d "$dev" -o "$bk" -f "$tmp/store" -l 32M
[ "$rc" = 1 ] || fail "a backup into a full file system: exit $rc, out '$out', err '$err'"
echo "$err"
[[ $err == *"No space left on device"* ]] || fail "not told as ENOSPC: $err"
[[ $err == *"the image and the state file are unchanged"* ]] || fail "what was left? $err"
expect_kept "ENOSPC in the reflink copy"
rm "$fs/fill"
backup
expect_incremental reflink
expect_exact "after ENOSPC in the reflink copy"

step "(c) SIGKILL while an incremental writes its reflink copy: the image and the state stay"
killed=
for _ in 1 2 3; do
	change 16 8
	keep
	blksnap backup -d "$dev" -o "$bk" -f "$tmp/store" -l 32M >"$tmp/bg.out" 2>"$tmp/bg.err" &
	bg=$!
	# Killed once its reflink copy is there (no fork while it waits).
	while ! compgen -G "$img.new-*" >/dev/null && kill -0 "$bg" 2>/dev/null; do :; done
	kill -KILL "$bg" 2>/dev/null || true
	wait "$bg" || true
	# Still there: killed before the copy was renamed over the image.
	if compgen -G "$img.new-*" >/dev/null; then
		killed=1
		break
	fi
	backup # it ended first: start again from a backup that did
done
[ -n "$killed" ] || fail "the backup always ended before it could be killed"
cmp "$tmp/img.before" "$img" || fail "the killed backup changed the image"
cmp "$tmp/state.before" "$state" || fail "the killed backup changed the state"
left=$(find "$bk" -name "$name.img.new-*")
backup
[ -z "$left" ] || [[ $err == *"removed $left, a copy of the image left by an interrupted backup"* ]] ||
	fail "the copy $left was not reported removed: $err"
[ -z "$(find "$bk" -name "$name.img.new-*")" ] || fail "a reflink copy is left"
expect_incremental reflink
expect_exact "after the killed backup"
umount "$fs"

step "into an ext4 (no reflink): incrementals in place, as NAME.img.partial meanwhile"
mkfs.ext4 -q -F -m 0 -E nodiscard "$target"
mount "$target" "$fs"
backup
expect_full "first backup: no state file"
change 1 2
backup
expect_incremental in-place
[[ $err == *"in place (as $name.img.partial meanwhile)"* ]] || fail "the summary: $err"
[ ! -e "$img.partial" ] || fail "a partial image is left"
expect_exact "after an in-place incremental"

step "(c) ENOSPC while an incremental writes in place: no torn image under its name"
change 8 24 # where the image has holes: the blocks must be allocated
fill_but 4
run blksnap backup -d "$dev" -o "$bk" -f "$tmp/store" -l 32M
[ "$rc" = 1 ] || fail "a backup into a full file system: exit $rc, out '$out', err '$err'"
echo "$err"
[[ $err == *"No space left on device"* ]] || fail "not told as ENOSPC: $err"
[[ $err == *"the image is left as $name.img.partial, incomplete, and the state file says so"* ]] ||
	fail "what was left? $err"
[ ! -e "$img" ] || fail "a torn image under the image's name"
[ -f "$img.partial" ] || fail "no partial image"
[ ! -b "$snapimage" ] || fail "the snapshot is left"
rm "$fs/fill"
backup
expect_full "the last backup did not finish writing the image"
[ ! -e "$img.partial" ] || fail "the partial image is left"
expect_exact "after ENOSPC in place"
umount "$fs"
blksnap detach -d "$dev"
echo "backup_image: all checks passed"
