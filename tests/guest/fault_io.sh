#!/usr/bin/env bash
# cost: 70
# vm: --disk 16M --disk 32M
# skip-columns: checkers+ftrace
# I/O errors injected with device-mapper tables swapped under a held
# snapshot (dm-linear while healthy; dm-flakey, always down, or dm-error
# while failing):
#  a. below the original: reads of old data failing during copy-on-write
#     (flakey error_reads), and writes to the original failing (flakey
#     error_writes);
#  b. below the difference storage: stores failing (a file on ext4 on
#     flakey error_writes) and read-back of stored chunks failing (a storage
#     device swapped for dm-error).
# Whatever happens, checked by content: an image read that succeeds returns
# the device as at the take, block by block; a snapshot that lost data is
# marked failed (the corrupted event with its errno, image reads fail with
# EIO); every write to the original that reported success is there once
# the fault ends, and one that failed was reported to its writer; the next
# snapshot of the device works.
# Not in the debug kernel's ftrace column: the paths it fails (copy-on-write,
# the difference storage, image I/O) are the same in both interceptions; the
# debug kernel runs it with the block device filter, the stock kernels with
# ftrace.
. "$(dirname "$0")/lib.sh"
d=$(disk 1)
s=$(disk 2)
tmp=$(mktemp -d)
need_modules dm-flakey ext4
size=$(blockdev --getsize64 "$d")
sectors=$((size >> 9))
chunk=$((256 << 10))

# dm_table NAME TABLE: create NAME, or swap its table (no udev: by hand;
# no freeze of a file system on it: its sync would fail on a failing one).
dm_table() {
	if dmsetup info "$1" >/dev/null 2>&1; then
		dmsetup reload "$1" --table "$2"
		dmsetup suspend --nolockfs --noudevsync "$1"
		dmsetup resume --noudevsync "$1"
	else
		dmsetup create --noudevsync "$1" --table "$2"
		dmsetup mknodes "$1"
	fi
}
# Reads fail, writes pass (6.1's flakey has no error_reads: both fail).
read_fault="flakey $d 0 0 3600 1 error_reads"
if ! dmsetup create --noudevsync probe --table "0 8 $read_fault" 2>/dev/null; then
	read_fault="flakey $d 0 0 3600"
	echo "no error_reads in this dm-flakey: reads and writes fail together"
else
	dmsetup remove --noudevsync probe
fi
dm_table orig "0 $sectors linear $d 0"
o=/dev/mapper/orig

# write_orig SEED CHUNK COUNT: write COUNT chunks of fresh data at chunk
# CHUNK of the original, directly; record them in $tmp/expect if the
# write reports success. Returns the writer's status.
write_orig() {
	local rc=0
	gen "$1" $(($3 * chunk)) >"$tmp/w"
	dd if="$tmp/w" of="$o" bs=$chunk seek="$2" oflag=direct status=none \
		2>"$tmp/w.err" || rc=$?
	if [ $rc = 0 ]; then
		dd if="$tmp/w" of="$tmp/expect" bs=$chunk seek="$2" conv=notrunc status=none
	else
		echo "write to chunk $2 failed: $(<"$tmp/w.err")"
	fi
	return $rc
}

# check_image IMAGE: every 64 KiB block of IMAGE read directly; each one
# read must equal the same block of $tmp/take (the device at the take).
# Prints how many were read and how many failed (with their errno).
check_image() {
	python3 - "$1" "$tmp/take" <<-'EOF' || fail "image $1 returned data not on the device at the take"
		import mmap, os, sys
		bs = 65536
		fd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECT)
		take = open(sys.argv[2], "rb").read()
		buf = mmap.mmap(-1, bs)
		good = bad = wrong = 0
		errs = set()
		for off in range(0, len(take), bs):
		    try:
		        n = os.preadv(fd, [buf], off)
		    except OSError as e:
		        bad += 1
		        errs.add(e.strerror)
		        continue
		    good += 1
		    if buf[:n] != take[off:off + n] or n != bs:
		        wrong += 1
		        print("block at %d differs from the take" % off)
		print("image blocks read %d, failed %d %s" % (good, bad, sorted(errs)))
		sys.exit(1 if wrong else 0)
	EOF
}

# expect_failed ID ERRNO_RE: the snapshot is marked failed: a corrupted
# event whose error matches ERRNO_RE and equals the snapshot's error code,
# and an image read fails with EIO.
expect_failed() {
	local ev code err
	ev=$(blksnap snapshot_waitevent -i "$1" -t 5000)
	echo "$ev"
	grep -qx "event=corrupted" <<<"$ev" || fail "no corrupted event: $ev"
	grep -qx "dev_id=$(dmsetup info -c --noheadings -o major,minor orig)" \
		<<<"$ev" || fail "corrupted event for another device: $ev"
	err=$(sed -n 's/^err_code=//p' <<<"$ev")
	[[ $err =~ ^$2$ ]] || fail "corrupted with $err, want $2"
	code=$(blksnap snapshot_info -d "$o" -f error_code)
	expect_eq "error code" "$code" "$err"
	if dd if="$image" of=/dev/null bs=64k count=1 iflag=direct status=none 2>"$tmp/r.err"; then
		fail "image read succeeded on a failed snapshot"
	fi
	grep -q "Input/output error" "$tmp/r.err" || fail "image read: $(<"$tmp/r.err"), want EIO"
}

# expect_original: the original holds every write that reported success
# (read directly: a failed buffered write may leave its data in the cache).
expect_original() {
	dd if="$o" bs=1M iflag=direct status=none | cmp - "$tmp/expect" ||
		fail "the original lost writes"
}

# take STORAGE: a snapshot of the original with STORAGE; the device's
# content at the take in $tmp/take; sets id and image.
take() {
	cp "$tmp/expect" "$tmp/take"
	id=$(blksnap snapshot_create -d "$o" -f "$1" -l 16M)
	blksnap snapshot_take -i "$id"
	image=$(blksnap snapshot_info -d "$o" -f image)
}

# next_take_works STORAGE: after a failure, a new snapshot holds its take
# while the original is rewritten.
next_take_works() {
	take "$1"
	write_orig 90 0 8 || fail "a write under the new snapshot failed"
	check_image "$image"
	expect_eq "new snapshot error" "$(blksnap snapshot_info -d "$o" -f error_code)" 0
	blksnap snapshot_destroy -i "$id"
}

gen 1 "$size" >"$tmp/expect"
dd if="$tmp/expect" of="$o" bs=1M oflag=direct status=none
blksnap attach -d "$o"

step "a. reads of old data fail during copy-on-write"
take "$tmp"
write_orig 2 0 4 || fail "write before the fault failed"
dm_table orig "0 $sectors $read_fault"
rc=0
write_orig 3 8 4 || rc=$?
dm_table orig "0 $sectors linear $d 0"
expect_failed "$id" -5
check_image "$image"
expect_original
[[ $read_fault == *error_reads ]] && [ $rc != 0 ] &&
	fail "a write to the original failed though only reads did"
blksnap snapshot_destroy -i "$id"
next_take_works "$tmp"

step "a. writes to the original fail"
take "$tmp"
write_orig 4 0 2 || fail "write before the fault failed"
dm_table orig "0 $sectors flakey $d 0 0 3600 1 error_writes"
write_orig 5 4 2 && fail "a write to a failing original reported success"
# Through the page cache: the error reaches fsync.
gen 6 $chunk | dd of="$o" bs=$chunk seek=12 conv=fsync status=none 2>/dev/null &&
	fail "a buffered write to a failing original synced without error"
dm_table orig "0 $sectors linear $d 0"
blockdev --flushbufs "$o"
# The failed writes changed nothing of the take: the copy-on-write of
# their chunks happened before them. Whatever the snapshot's state, an
# image read returns the take or fails.
check_image "$image"
code=$(blksnap snapshot_info -d "$o" -f error_code)
[ "$code" = 0 ] || expect_failed "$id" "-[0-9]+"
# The failed chunks hold the old or the new data: the rest is exact.
for c in 4 5 12; do
	dd if="$tmp/expect" of="$tmp/expect.any" bs=$chunk skip="$c" count=1 status=none
	dd if="$o" bs=$chunk skip="$c" count=1 iflag=direct status=none >"$tmp/got"
	cmp -s "$tmp/got" "$tmp/expect.any" ||
		dd if="$tmp/got" of="$tmp/expect" bs=$chunk seek="$c" conv=notrunc status=none
done
expect_original
blksnap snapshot_destroy -i "$id"
next_take_works "$tmp"

step "b. stores fail: the storage file on ext4 over flakey error_writes"
ss=$(($(blockdev --getsize64 "$s") >> 9))
dm_table store "0 $ss linear $s 0"
mkfs.ext4 -q -F /dev/mapper/store
mkdir "$tmp/m"
mount -o errors=continue /dev/mapper/store "$tmp/m"
: >"$tmp/m/store"
take "$tmp/m/store"
# The first copy grows the file to its limit: stores only from here on.
write_orig 7 0 2 || fail "write before the fault failed"
sync -f "$tmp/m/store"
dm_table store "0 $ss flakey $s 0 0 3600 1 error_writes"
write_orig 8 6 6 || fail "a write to the original failed when only stores did"
expect_failed "$id" "-[0-9]+"
check_image "$image"
expect_original
blksnap snapshot_destroy -i "$id"
dm_table store "0 $ss linear $s 0"
umount "$tmp/m" || true
next_take_works "$tmp"

step "b. read-back of stored chunks fails: the storage device swapped for dm-error"
dm_table store "0 $ss linear $s 0"
take /dev/mapper/store
write_orig 9 0 8 || fail "write before the fault failed"
check_image "$image"
dm_table store "0 $ss error"
rc=0
dd if="$image" of=/dev/null bs=$chunk count=8 iflag=direct status=none 2>"$tmp/r.err" || rc=$?
[ $rc != 0 ] || fail "image read of chunks stored on a failing device succeeded"
cat "$tmp/r.err"
grep -q "Input/output error" "$tmp/r.err" || fail "image read: $(<"$tmp/r.err"), want EIO"
expect_failed "$id" -5
dm_table store "0 $ss linear $s 0"
check_image "$image"
write_orig 10 8 2 || fail "a write to the original failed when the storage did"
expect_original
blksnap snapshot_destroy -i "$id"
next_take_works "$tmp"

blksnap detach -d "$o"
dmsetup remove --noudevsync orig
dmsetup remove --noudevsync store
dmsetup mknodes
echo "fault_io: all checks passed"
