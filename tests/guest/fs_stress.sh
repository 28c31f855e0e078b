#!/usr/bin/env bash
# cost: 120
# vm: --disks 1 --disk-size 64M --disk 320M
# ext4 and xfs under metadata-heavy writers (stress-ng's directory, rename
# stressors, and fsync_writer.py: small files rewritten by
# rename-replace with fsyncs, each version recorded once its fsyncs
# returned), snapshots of both taken again and again while they run (the
# take freezes both file systems). Every ext4 image: its journal clean (the
# freeze left nothing to replay) and e2fsck -fn finds nothing; every xfs
# image: its log (covered by the freeze, not clean: see below) replayed on
# a copy, xfs_repair -n finds nothing there. The ext4 image mounted
# read-only (noload) and the xfs copy hold every file fsync'd before the
# take, at that version or a newer one, and every
# file of the writer whole. FS_STRESS_TAKES takes (5, 2 on the debug
# kernel, where an exec costs six times as much).
. "$(dirname "$0")/lib.sh"
need_modules ext4 xfs loop
here=$(dirname "$0")
tmp=$(mktemp -d)
takes=5
[ "${BLKSNAP_LOCKDEP:-none}" = none ] || takes=2
takes=${FS_STRESS_TAKES:-$takes}
ext4=$(disk 1)
xfs=$(disk 2)
pids=()
stop_writers() {
	local p
	# TERM: background jobs of a script ignore SIGINT.
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	pids=()
}
trap 'stop_writers; umount /mnt/img /mnt/ext4 /mnt/xfs 2>/dev/null || true' EXIT

step "ext4 on $ext4, xfs on $xfs, writers started"
mkfs.ext4 -q -F -E nodiscard "$ext4"
mkfs.xfs -q -f -K "$xfs"
mkdir -p /mnt/ext4 /mnt/xfs /mnt/img
mount "$ext4" /mnt/ext4
mount "$xfs" /mnt/xfs
for fs in ext4 xfs; do
	mkdir -p "/mnt/$fs/churn" "/mnt/$fs/files"
	: >"$tmp/rec.$fs"
	# SCHED_IDLE: the writers take the CPU the checks of the images leave
	# (one CPU), above all in the pauses between takes.
	chrt -i 0 python3 "$here/fsync_writer.py" write "/mnt/$fs/files" "$tmp/rec.$fs" "$RANDOM" &
	pids+=($!)
done
# Until both writers have some versions fsync'd (a python start takes a
# while under emulation); then the stress-ng stressors.
for ((i = 0; i < 600; i++)); do
	[ -s "$tmp/rec.ext4" ] && [ -s "$tmp/rec.xfs" ] && break
	sleep 0.1
done
for fs in ext4 xfs; do
	chrt -i 0 stress-ng --temp-path "/mnt/$fs/churn" --dir 1 --dir-dirs 256 \
		--rename 1 --timeout 1h --quiet &
	pids+=($!)
done

for ((t = 1; t <= takes; t++)); do
	sleep 2
	step "take $t of $takes"
	# The records written so far were fsync'd before the take.
	n_ext4=$(wc -l <"$tmp/rec.ext4")
	n_xfs=$(wc -l <"$tmp/rec.xfs")
	id=$(blksnap snapshot_create -d "$ext4" -d "$xfs" -f "$tmp" -l 400M)
	blksnap snapshot_take -i "$id"
	img_ext4=$(blksnap snapshot_info -d "$ext4" -f image)
	img_xfs=$(blksnap snapshot_info -d "$xfs" -f image)

	# The freeze commits the journal and clears needs_recovery: a journal
	# to replay would mean the take did not freeze ext4.
	if dumpe2fs -h "$img_ext4" 2>/dev/null | grep -q '^Filesystem features:.*needs_recovery'; then
		fail "take $t: the ext4 image needs journal recovery"
	fi
	e2fsck -fn "$img_ext4" >"$tmp/fsck" 2>&1 || {
		cat "$tmp/fsck"
		fail "take $t: e2fsck -fn of the ext4 image"
	}
	# A freeze covers the xfs log (since Linux 5.12 with a dummy
	# transaction logging the superblock, lazy counters and all) rather
	# than writing an unmount record: the image has a log to replay, and
	# xfs_repair -n on it would ignore that log (ALERT) and report the
	# superblock's stale free counts. So the log is replayed on a copy
	# (mounted nouuid: the original has the same UUID), and xfs_repair -n
	# checks the copy, clean log and all; the image stays as it was.
	dd if="$img_xfs" of="$tmp/xfs.img" bs=4M conv=sparse status=none
	mount -t xfs -o nouuid "$tmp/xfs.img" /mnt/img
	umount /mnt/img
	xfs_repair -n "$tmp/xfs.img" >"$tmp/repair" 2>&1 || {
		cat "$tmp/repair"
		fail "take $t: xfs_repair -n of the xfs image (log replayed on a copy)"
	}
	if grep -q ALERT "$tmp/repair"; then
		cat "$tmp/repair"
		fail "take $t: the copy of the xfs image has a log to replay after a mount"
	fi

	# Mounted without writing to the image (noload: there is no journal
	# to replay, checked above).
	mount -o ro,noload "$img_ext4" /mnt/img
	python3 "$here/fsync_writer.py" check /mnt/img/files "$tmp/rec.ext4" "$n_ext4" ||
		fail "take $t: ext4 image"
	umount /mnt/img
	# The files, on the copy the log was replayed on.
	mount -t xfs -o ro,nouuid "$tmp/xfs.img" /mnt/img
	python3 "$here/fsync_writer.py" check /mnt/img/files "$tmp/rec.xfs" "$n_xfs" ||
		fail "take $t: xfs image"
	umount /mnt/img
	rm "$tmp/xfs.img"
	expect_eq "take $t: snapshot error" "$(blksnap snapshot_info -d "$ext4" -f error_code)" 0
	blksnap snapshot_destroy -i "$id"
done

step "writers stopped; the originals check clean"
stop_writers
umount /mnt/ext4 /mnt/xfs
blksnap detach -d "$ext4"
blksnap detach -d "$xfs"
e2fsck -fn "$ext4" >/dev/null 2>&1 || fail "e2fsck -fn of the original ext4"
xfs_repair -n "$xfs" >/dev/null 2>&1 || fail "xfs_repair -n of the original xfs"
echo "fs_stress: $takes takes of ext4 and xfs checked"
