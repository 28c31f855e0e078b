#!/usr/bin/env bash
# cost: 40
# columns: stock-6.1 stock-6.12 checkers
# vm: --disk 32M
# skip-columns: checkers+ftrace
# blksnap backup: a full backup of a mounted ext4, then five incremental
# ones with files written between and during them: each verified against
# its snapshot, each reading only about what changed; after the last, the
# image equals the unmounted device. Then the broken chains: a damaged
# state file and a new tracker generation give a full backup that says why;
# an overflow of the difference storage fails the backup (the state as it
# was, or marked incomplete with the image renamed NAME.img.partial if it
# had begun to write: the backup directory is a tmpfs, which cannot clone
# the image); a backup killed with SIGKILL while it writes leaves no image
# under the image's name, and the next run cleans up its snapshot, is full
# and says why; SIGHUP stops a backup as SIGTERM does. Errors that say
# nothing of the chain are errors, not a full backup: an unreadable state
# file (EACCES), a symbolic link for the state file or the image (never
# followed); a full file system is told as ENOSPC. An image mounted
# read-write between two backups (as for a test restore) makes the next
# one full, saying why.
# Not in the debug kernel's ftrace column: it tests the backup engine's
# chain (user space); the kernel paths under it are those every other test
# of that column runs, and stock-6.1 and stock-6.12 run it with ftrace.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/cli-helpers.bash"
dev=$(disk 1)
name=${dev#/dev/}
tmp=$(mktemp -d)
bk=$tmp/backup
mnt=$tmp/mnt
mkdir "$tmp/store" "$mnt"
mkfifo "$tmp/fifo"
read -r devno </sys/class/block/"$name"/dev
image=/dev/blksnap-image_$devno
size=$(($(blockdev --getsz "$dev") * 512))
mib=$((1 << 20))

# backup: a verified backup with JSON output; leaves $mode, $reason and
# $bytes_read, and prints the summary line.
backup() {
	run blksnap backup -d "$dev" -o "$bk" -f "$tmp/store" -l 32M --verify --json
	[ "$rc" = 0 ] || fail "backup: exit $rc: $err"
	echo "$err"
	[[ $out =~ \"mode\":\"([a-z]+)\" ]] || fail "no mode in '$out'"
	mode=${BASH_REMATCH[1]}
	[[ $out =~ \"reason\":\"([^\"]*)\" ]] || fail "no reason in '$out'"
	reason=${BASH_REMATCH[1]}
	[[ $out =~ \"bytes_read\":([0-9]+) ]] || fail "no bytes_read in '$out'"
	bytes_read=${BASH_REMATCH[1]}
	[[ $out =~ \"verified\":true ]] || fail "not verified: '$out'"
	[[ $out =~ \"device\":\"$dev\" ]] || fail "wrong device in '$out'"
}
expect_full() { # reason-part
	expect_eq mode "$mode" full
	[[ $reason == *"$1"* ]] || fail "full backup for '$reason', expected '$1'"
	expect_eq "bytes read by a full backup" "$bytes_read" "$size"
}
# expect_incremental MIN MAX: bytes read within [MIN, MAX].
expect_incremental() {
	expect_eq mode "$mode" incremental
	if [ "$bytes_read" -lt "$1" ] || [ "$bytes_read" -gt "$2" ]; then
		fail "incremental backup read $bytes_read bytes, expected $1..$2"
	fi
}
# The image file equals the device (not mounted, no snapshot).
expect_exact() { cmp "$dev" "$bk/$name.img" || fail "$1: the image differs from the device"; }
# Start a backup in the background and stop (SIGSTOP) or kill it (SIGKILL)
# right after its take, or SECONDS later; returns 1 if the backup ended
# first.
catch_backup() { # signal limit [seconds]
	blksnap backup -d "$dev" -o "$bk" -f "$tmp/store" -l "$2" >"$tmp/bg.out" 2>"$tmp/bg.err" &
	bg=$!
	while [ ! -b "$image" ] && kill -0 "$bg" 2>/dev/null; do :; done
	# A wait without a process: nothing ever writes to the FIFO.
	[ -z "${3:-}" ] || read -r -t "$3" <>"$tmp/fifo" || true
	if kill -"$1" "$bg" 2>/dev/null && [ -b "$image" ]; then
		return 0
	fi
	kill -CONT "$bg" 2>/dev/null || true
	wait "$bg" || true
	return 1
}

step "full backup of a mounted ext4"
need_modules ext4
mkfs.ext4 -q -F -E nodiscard "$dev"
mount "$dev" "$mnt"
for i in 1 2 3; do head -c $((2 * mib)) /dev/urandom >"$mnt/base$i"; done
sync
backup
expect_full "first backup: no state file"
[ -f "$bk/$name.state" ] || fail "no state file"
expect_eq "image size" "$(stat -c %s "$bk/$name.img")" "$size"

for round in 1 2 3 4 5; do
	step "incremental $round: 1 MiB changed, a writer running during the backup"
	head -c $mib /dev/urandom >"$mnt/new$round"
	dd if=/dev/urandom of="$mnt/base$((round % 3 + 1))" bs=64k count=4 seek=$((round * 4)) \
		conv=notrunc status=none
	sync
	dd if=/dev/urandom of="$mnt/live$round" bs=16k count=64 oflag=dsync status=none &
	writer=$!
	backup
	wait "$writer"
	# At least the 1.25 MiB written before; at most that, the writer's
	# 1 MiB, and the file system's metadata and journal: far from 32 MiB.
	expect_incremental $((5 * mib / 4)) $((12 * mib))
done

step "unmounted: one more incremental, then the image equals the device"
umount "$mnt"
backup
expect_incremental 1 $((8 * mib))
expect_exact "after the chain"

step "an image mounted read-write between two backups (a test restore): full, says why"
need_modules loop
mkdir "$tmp/restore"
mount -o loop "$bk/$name.img" "$tmp/restore"
echo restored >"$tmp/restore/restored"
umount "$tmp/restore"
dd if=/dev/urandom of="$dev" bs=64k count=1 seek=400 oflag=direct status=none
backup
expect_full "the image file changed since the last backup"
expect_exact "after the image was mounted read-write"

step "a damaged state file: full backup, says why"
printf '\377' | dd of="$bk/$name.state" bs=1 seek=60 conv=notrunc status=none
backup
expect_full "state file unusable"
[[ $reason == *"checksum mismatch"* ]] || fail "reason '$reason' does not name the damage"
dd if=/dev/urandom of="$dev" bs=64k count=8 seek=100 oflag=direct status=none
backup
expect_incremental $((512 << 10)) $((512 << 10))

step "a new tracker generation (detach, attach): full backup, says why"
blksnap detach -d "$dev"
backup
expect_full "generation changed"

step "the difference storage overflows during a backup: it fails, no torn image is left"
cp "$bk/$name.state" "$tmp/state.before"
dd if=/dev/urandom of="$dev" bs=1M count=16 seek=8 oflag=direct status=none
for try in 1 2 3; do
	catch_backup STOP 2M && break
	[ "$try" != 3 ] || fail "the backup always ended before it could be stopped"
	cp "$bk/$name.state" "$tmp/state.before"
	dd if=/dev/urandom of="$dev" bs=1M count=16 seek=8 oflag=direct status=none
done
dd if=/dev/urandom of="$dev" bs=1M count=4 seek=26 oflag=direct status=none
kill -CONT "$bg"
wait "$bg" && fail "the backup of an overflowed snapshot succeeded"
msg=$(<"$tmp/bg.err")
echo "$msg"
[[ $msg == *"corrupted during the backup"*"limit of 2097152 bytes"* ]] ||
	fail "unclear overflow error: $msg"
[ ! -b "$image" ] || fail "the snapshot outlived the failed backup"
if [ -e "$bk/$name.img.partial" ]; then
	# It had begun to write the image in place.
	[[ $msg == *"the image is left as $name.img.partial, incomplete"* ]] || fail "$msg"
	[ ! -e "$bk/$name.img" ] || fail "a torn image under the image's name"
	backup
	expect_full "the last backup did not finish writing the image"
else
	[[ $msg == *"the image and the state file are unchanged"* ]] || fail "$msg"
	cmp "$tmp/state.before" "$bk/$name.state" || fail "the state changed"
	backup
	expect_incremental $((20 * mib)) $((21 * mib))
fi
expect_exact "after the overflow"

step "a backup killed with SIGKILL while it writes: no torn image under its name"
dd if=/dev/urandom of="$dev" bs=1M count=16 seek=12 oflag=direct status=none
blksnap backup -d "$dev" -o "$bk" -f "$tmp/store" -l 32M >"$tmp/bg.out" 2>"$tmp/bg.err" &
bg=$!
# Killed once it writes: the image is renamed first (no fork while it waits).
while [ ! -e "$bk/$name.img.partial" ] && kill -0 "$bg" 2>/dev/null; do :; done
kill -KILL "$bg" 2>/dev/null || fail "the backup ended before it could be killed"
wait "$bg" || true
[ ! -e "$bk/$name.img" ] || fail "an image under the image's name while it was written"
[ -e "$bk/$name.img.partial" ] || fail "no partial image"
[ -b "$image" ] || fail "the killed backup's snapshot is gone"
dd if=/dev/urandom of="$dev" bs=1M count=1 seek=30 oflag=direct status=none
backup
[[ $err == *"destroyed snapshot"*"left by an interrupted backup"* ]] ||
	fail "the leftover snapshot was not reported: $err"
expect_full "the last backup did not finish writing the image (the state file says incomplete)"
expect_exact "after the killed backup"
[ ! -e "$bk/$name.img.partial" ] || fail "the partial image is left"
[ ! -b "$image" ] || fail "a snapshot is left"
step "SIGHUP stops a backup as SIGTERM does: its snapshot destroyed, no torn image left"
cp "$bk/$name.state" "$tmp/state.before"
for try in 1 2 3; do
	dd if=/dev/urandom of="$dev" bs=1M count=16 seek=12 oflag=direct status=none
	catch_backup HUP 32M && break
	[ "$try" != 3 ] || fail "the backup always ended before SIGHUP came"
	cp "$bk/$name.state" "$tmp/state.before"
done
wait "$bg" && fail "the backup went on after SIGHUP"
msg=$(<"$tmp/bg.err")
[[ $msg == *"interrupted by a signal"* ]] || fail "after SIGHUP: $msg"
[ ! -b "$image" ] || fail "the snapshot outlived SIGHUP"
if [ -e "$bk/$name.img.partial" ]; then
	# It had begun to write in place: it says so, the next run is full.
	[[ $msg == *"the image is left as $name.img.partial"* ]] || fail "after SIGHUP: $msg"
	backup
	expect_full "the last backup did not finish writing the image"
	dd if=/dev/urandom of="$dev" bs=1M count=16 seek=12 oflag=direct status=none
	cp "$bk/$name.state" "$tmp/state.before"
fi
cmp "$tmp/state.before" "$bk/$name.state" || fail "the state changed after SIGHUP"

# refused WHAT TEXT...: a backup fails (exit 1) with each TEXT in its
# message, destroys its snapshot and leaves the state as it was.
refused() {
	local what=$1 t
	shift
	[ "$rc" = 1 ] || fail "$what: exit $rc, out '$out', err '$err'"
	for t in "$@"; do [[ $err == *"$t"* ]] || fail "$what: '$err' does not say '$t'"; done
	[ ! -b "$image" ] || fail "$what: the snapshot is left"
	cmp "$tmp/state.before" "$bk/$name.state" || fail "$what: the state changed"
}
step "an unreadable state file (EACCES) is an error, not a damaged file: no full backup"
chmod 000 "$bk/$name.state"
run setpriv --bounding-set=-dac_override,-dac_read_search \
	blksnap backup -d "$dev" -o "$bk" -f "$tmp/store" -l 32M
chmod 600 "$bk/$name.state"
refused "unreadable state file" "$name.state" "Permission denied"

step "symbolic links in the backup directory are refused, never followed"
mv "$bk/$name.state" "$tmp/state.real"
ln -s "$tmp/state.real" "$bk/$name.state"
run blksnap backup -d "$dev" -o "$bk" -f "$tmp/store" -l 32M
rm "$bk/$name.state"
mv "$tmp/state.real" "$bk/$name.state"
refused "state file as a link" "$name.state" "symbolic link"
# The image as a link in another directory with a copy of the state: a
# rename of the image itself would change its ctime, which the next backup
# would see.
mkdir "$tmp/linked"
cp "$bk/$name.state" "$tmp/linked/"
ln -s "$bk/$name.img" "$tmp/linked/$name.img"
run blksnap backup -d "$dev" -o "$tmp/linked" -f "$tmp/store" -l 32M
refused "image as a link" "$name.img" "symbolic link"

step "a backup directory on a full file system: told as ENOSPC, not as an I/O error"
mkdir "$tmp/full"
mount -t tmpfs -o size=64k none "$tmp/full"
mkdir "$tmp/full/bk"
head -c 128k /dev/zero 2>/dev/null >"$tmp/full/fill" || true
run blksnap backup -d "$dev" -o "$tmp/full/bk" -f "$tmp/store" -l 32M
umount "$tmp/full"
[[ $err != *"Input/output error"* ]] || fail "ENOSPC told as EIO: $err"
refused "full file system" "No space left on device"

step "after all these, the chain goes on: incremental and exact"
backup
expect_incremental $((16 * mib)) $((16 * mib))
expect_exact "after the refused backups"

blksnap detach -d "$dev"
echo "backup_chain: all checks passed"
