#!/usr/bin/env bash
# cost: 45
# columns: stock-6.1 stock-6.12
# vm: --disk 32M --disk 16M --disk 32M
# Restore points (blksnap backup --keep, points, restore, verify), in both
# formats the backup directory's file system picks: raw points on XFS with
# reflinks, a qcow2 chain on ext4. Ten backups with writes between them,
# --keep 4: every kept point is byte-equal to the device at its take (cmp
# of the raw file and of a read-only loop device on it; qemu-img compare
# for qcow2, whose files qemu-img check accepts), and an incremental point
# stores about what changed. A backup killed while it copies, and one
# killed while it writes its point, leave every earlier point as it was,
# and the next backup makes the next point. A quick rollback (restore
# --changed-only) makes the device equal to a point again writing only the
# blocks changed since; a full restore to another device and to a file
# equals the point; a mounted or smaller target and a rollback that cannot
# be proven are refused. blksnap verify passes, then catches a flipped
# byte in a point, and restore refuses that point.
# Not in the debug kernel's columns: it tests the backup engine (user
# space), and the kernel paths under it are those of backup_chain.sh, which
# the debug kernel runs; run by hand there when points change.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/cli-helpers.bash"
need_modules loop xfs ext4
dev=$(disk 1)
small=$(disk 2)
other=$(disk 3)
name=${dev#/dev/}
tmp=$(mktemp -d)
mkdir "$tmp/store" "$tmp/takes" "$tmp/mnt"
size=$(($(blockdev --getsz "$dev") * 512))
mib=$((1 << 20))
gen 1 "$size" | dd of="$dev" bs=1M oflag=direct status=none

# A file system for the backups on a loop device of a sparse file.
make_fs() { # type dir
	truncate -s 512M "$tmp/$1.img"
	local loop
	loop=$(losetup -f --show "$tmp/$1.img")
	case $1 in
	xfs) mkfs.xfs -q -f -m reflink=1 "$loop" ;;
	ext4) mkfs.ext4 -q -F "$loop" ;;
	esac
	mkdir -p "$2"
	mount "$loop" "$2"
}

# Writes N MiB of new data at pseudo-random 64 KiB-aligned places, synced.
change() { # seed mib
	gen "$1" $(($2 << 20)) | python3 -c '
import os, sys
dev, seed, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
data = sys.stdin.buffer.read()
fd = os.open(dev, os.O_WRONLY)
for i in range(len(data) >> 16):
    os.pwrite(fd, data[i << 16:(i + 1) << 16], (seed * 7919 + i * 131) % (size >> 16) << 16)
os.fsync(fd)
os.close(fd)' "$dev" "$1" "$size"
}

# backup: leaves the JSON line in $out and the point's id in $point.
backup() {
	run blksnap backup -d "$dev" -o "$bk" -f "$tmp/store" -l 32M --keep 4 --json
	[ "$rc" = 0 ] || fail "backup: exit $rc: $err"
	echo "$err"
	[[ $out =~ \"point\":([0-9]+) ]] || fail "no point in '$out'"
	point=${BASH_REMATCH[1]}
	[[ $out =~ \"format\":\"$fmt\" ]] || fail "not a $fmt point: '$out'"
}

# The file of point N, from blksnap points --json.
point_file() {
	blksnap points -o "$bk" --json |
		python3 -c 'import json,sys; n=int(sys.argv[1]); [print(j["path"]) for j in map(json.loads, sys.stdin) if j["point"] == n]' "$1"
}

# The point N reads as the take N.
expect_point() { # n what
	local f
	f=$(point_file "$1")
	[ -n "$f" ] || fail "$2: no point $1"
	if [ "$fmt" = raw ]; then
		cmp "$f" "$tmp/takes/$1" || fail "$2: point $1 differs from its take"
		local loop
		loop=$(losetup -f --show -r "$f")
		cmp "$loop" "$tmp/takes/$1" || fail "$2: point $1 through a loop device differs"
		losetup -d "$loop"
	else
		qemu-img check -q "$f" || fail "$2: qemu-img check of point $1"
		qemu-img compare -q -f qcow2 -F raw "$f" "$tmp/takes/$1" ||
			fail "$2: point $1 differs from its take (qemu-img compare)"
	fi
}

expect_kept() { # first last what
	local ids
	ids=$(blksnap points -o "$bk" --json | python3 -c 'import json,sys; print(*[json.loads(l)["point"] for l in sys.stdin])')
	expect_eq "$3: points kept" "$ids" "$(seq -s ' ' "$1" "$2")"
	for ((n = $1; n <= $2; n++)); do expect_point "$n" "$3"; done
}

newest() {
	blksnap points -o "$bk" --json | tail -n 1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["point"])'
}

# Starts a backup and kills it (SIGKILL) once FILE-GLOB appears; returns 1
# if the backup ended first.
kill_when() { # glob
	blksnap backup -d "$dev" -o "$bk" -f "$tmp/store" -l 32M --keep 4 >/dev/null 2>"$tmp/bg.err" &
	local bg=$! f
	while kill -0 "$bg" 2>/dev/null; do
		for f in $1; do
			if [ -e "$f" ]; then
				kill -KILL "$bg"
				wait "$bg" || true
				return 0
			fi
		done
	done
	wait "$bg" || true
	return 1
}

# POINT_FORMATS=qcow2 runs one half (while debugging it).
# kill_during SEED GLOB WHAT: 8 MiB changed, then a backup killed once GLOB
# appears (up to three tries, each backup that ended first kept as a take);
# every point kept is then as it was. Leaves the newest point in $last.
kill_during() {
	local try
	change "${1}0" 8
	for try in 1 2 3; do
		if kill_when "$2"; then
			last=$(newest)
			expect_kept $((last - 3)) "$last" "after a kill $3"
			return 0
		fi
		echo "# the backup ended before it was caught (try $try)"
		cp "$dev" "$tmp/takes/$(newest)"
		change "$1$try" 8
	done
	fail "no backup caught $3 in three tries"
}

for fmt in ${POINT_FORMATS:-raw qcow2}; do
	case $fmt in
	raw) fs=xfs ;;
	qcow2) fs=ext4 ;;
	esac
	bk=$tmp/$fs/backup
	make_fs "$fs" "$tmp/$fs"
	rm -f "$tmp/takes"/*
	blksnap detach -d "$dev" 2>/dev/null || true

	step "$fmt on $fs: ten backups with writes between, --keep 4"
	for i in $(seq 1 10); do
		[ "$i" = 1 ] || change "$i" 1
		backup
		expect_eq "point id" "$point" "$i"
		cp "$dev" "$tmp/takes/$i"
		rm -f "$tmp/takes/$((i - 4))"
		[[ $out =~ \"bytes_stored\":([0-9]+) ]] || fail "no bytes_stored in '$out'"
		if [ "$i" -gt 1 ] && [ "${BASH_REMATCH[1]}" -gt $((3 * mib)) ]; then
			fail "point $i stores ${BASH_REMATCH[1]} bytes for 1 MiB changed"
		fi
	done
	expect_kept 7 10 "after ten backups"
	[ -z "$(find "$bk/$name.points" -name '00000[1-6].*')" ] || fail "dropped points left files"

	step "$fmt: a backup killed while it copies leaves the points as they were"
	kill_during 1 "$bk/$name.img.new-* $bk/$name.img.partial" "while copying"
	backup
	expect_eq "the point after the kill" "$point" $((last + 1))
	cp "$dev" "$tmp/takes/$point"
	expect_point "$point" "after a kill while copying"

	step "$fmt: a backup killed while it writes its point leaves the points as they were"
	kill_during 2 "$bk/$name.points/*.partial" "while writing its point"
	backup
	cp "$dev" "$tmp/takes/$point"
	expect_kept $((point - 3)) "$point" "after the next backup"

	step "$fmt: a quick rollback writes only what changed since the point"
	change 31 2
	run blksnap restore -o "$bk" -d "$dev" -p "$point" --changed-only --json
	[ "$rc" = 0 ] || fail "rollback: exit $rc: $err"
	[[ $out =~ \"bytes_written\":([0-9]+) ]] || fail "no bytes_written in '$out'"
	written=${BASH_REMATCH[1]}
	cmp "$dev" "$tmp/takes/$point" || fail "the device after the rollback differs from point $point"
	# The phases are parts of the seconds, a rollback's read back among them.
	python3 -c 'import json, sys
j = json.loads(sys.argv[1])
p = j["phases"]
assert p["readback"] > 0 and p["copy"] > 0, p
assert abs(sum(p.values()) - j["seconds"]) < 0.01, (p, j["seconds"])' "$out" ||
		fail "the rollback's phases do not add up to its seconds: $out"
	if [ "$written" -lt $((2 * mib)) ] || [ "$written" -gt $((4 * mib)) ]; then
		fail "the rollback wrote $written bytes for 2 MiB changed"
	fi
	older=$((point - 2))
	run blksnap restore -o "$bk" -d "$dev" -p "$older" --changed-only --json
	[ "$rc" = 0 ] || fail "rollback to $older: exit $rc: $err"
	cmp "$dev" "$tmp/takes/$older" || fail "the device after a rollback to $older differs"
	cp "$dev" "$tmp/takes/rolled"

	step "$fmt: full restores to another device and to a file; refused targets"
	run blksnap restore -o "$bk" -d "$other" -p "$point" --json
	[ "$rc" = 0 ] || fail "restore: exit $rc: $err"
	expect_eq "bytes written by a full restore" "$(sed -E 's/.*"bytes_written":([0-9]+).*/\1/' <<<"$out")" "$size"
	cmp "$other" "$tmp/takes/$point" || fail "the restored device differs from point $point"
	run blksnap restore -o "$bk" -d "$tmp/restored.raw" -p "$older"
	[ "$rc" = 0 ] || fail "restore to a file: exit $rc: $err"
	cmp "$tmp/restored.raw" "$tmp/takes/$older" || fail "the restored file differs"
	rm "$tmp/restored.raw"
	expect_fail 1 blksnap restore -o "$bk" -d "$small" -- "smaller"
	expect_fail 1 blksnap restore -o "$bk" -d "$tmp/f" --changed-only -- "not to a file"
	expect_fail 1 blksnap restore -o "$bk" -d "$other" --changed-only -- "is not $dev"
	mkfs.ext4 -q -F "$other" && mount "$other" "$tmp/mnt"
	expect_fail 1 blksnap restore -o "$bk" -d "$other" -- "mounted or in use"
	umount "$tmp/mnt"
	blksnap detach -d "$dev"
	blksnap attach -d "$dev" >/dev/null
	expect_fail 1 blksnap restore -o "$bk" -d "$dev" --changed-only -- "restore it in full"
	cmp "$dev" "$tmp/takes/rolled" || fail "a refused rollback changed the device"

	step "$fmt: verify passes, then catches a flipped byte"
	run blksnap verify -o "$bk" --json
	[ "$rc" = 0 ] || fail "verify: exit $rc: $err"
	expect_eq "points verified" "$(grep -c '"verified":true' <<<"$out")" 4
	f=$(point_file "$point")
	if [ "$fmt" = raw ]; then
		at=$((5 * mib + 3))
	else
		# The first data cluster the newest overlay holds itself.
		at=$(qemu-img map --output=json "$f" | python3 -c 'import json,sys; print(next(m["offset"] for m in json.load(sys.stdin) if m["data"] and m["depth"] == 0 and "offset" in m) + 3)')
	fi
	byte=$(od -An -tu1 -j "$at" -N1 "$f" | tr -d ' ')
	printf "\\$(printf %03o $((byte ^ 1)))" | dd of="$f" bs=1 seek="$at" conv=notrunc status=none
	expect_fail 1 blksnap verify -o "$bk" -p "$point" -- "does not match the point's checksum"
	if [ "$fmt" = raw ]; then
		# The damage is in the second 4 MiB piece: the first is on the target.
		expect_fail 1 blksnap restore -o "$bk" -d "$other" -p "$point" -- \
			"the point is damaged (Input/output error); $((4 * mib)) bytes of $size were already written to $other, which now holds no complete point"
	else
		expect_fail 1 blksnap restore -o "$bk" -d "$other" -p "$point" -- "the point is damaged"
	fi
	run blksnap verify -o "$bk" -p "$older"
	[ "$rc" = 0 ] || fail "verify of an undamaged point: exit $rc: $err"

	umount "$tmp/$fs"
done
blksnap detach -d "$dev"
losetup -D
echo "PASS"
