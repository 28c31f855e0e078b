#!/usr/bin/env bash
# Guest side of `make bench`: the backup job. A 1 GiB device (dm-linear over
# a virtio disk) full of random data gets a full `blksnap backup`; then 4 KiB
# are rewritten in 1% of its blocks chosen at random (the change map's
# blocks: 1% of the data changed as the map sees it), and the incremental
# backup that follows is timed against the full one, and against what a
# backup without a change map does: rsync --inplace of the snapshot's
# image.raw onto the previous full image (rsync reads both files whole to
# find what differs; --no-whole-file, as between two local files rsync
# would otherwise copy everything). Each backup ends with its data synced:
# `sync -f` of the file system it wrote to (a global sync would also walk
# every block device of the guest, 0.2-0.9 s here with nothing to write).
# Prints one "BENCH {json}" line per comparison, as speed-ups (higher is
# better): full seconds / incremental seconds, target 20 (the incremental at
# most 0.05 of the full); rsync seconds / incremental seconds. Then the
# restore points: bytes an incremental point stores / device size (target
# at most 0.02), a quick rollback / a full restore (at most 0.05; also in
# the engine alone, from the JSON of both), fio replaying the rollback's
# I/O / a full restore (what this platform allows a rollback), and dd of
# the same image / a full restore (at least 0.95).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
read -r -a disks <<<"$BLKSNAP_DISKS"
[ "${#disks[@]}" -ge 3 ] || { echo "backup.sh: needs three disks" >&2; exit 1; }
modprobe -q fuse 2>/dev/null || true
dmsetup create --noudevsync bench-bk --table "0 $((1 << 21)) linear ${disks[2]} 0"
dmsetup mknodes bench-bk
dev=/dev/mapper/bench-bk
bk=/mnt/bench-bk rs=/mnt/bench-rs snap=/snap
# The backups go to XFS with reflinks (the image and its raw restore
# points share their extents: a 2 GiB disk holds them), rsync's copy to ext4.
mkfs.xfs -q -f -m reflink=1 "${disks[0]}"
mkfs.ext4 -q -F -E nodiscard "${disks[1]}"
mkdir -p $bk $rs $snap
mount "${disks[0]}" $bk
mount "${disks[1]}" $rs
dd if=/dev/urandom of=$dev bs=1M count=1024 oflag=direct status=none
blksnap attach -d $dev >/dev/null

now() { date +%s.%N; }
# timed_backup [DIR]: one backup into DIR (default $bk), synced; prints
# "SECONDS ENGINE_SECONDS BYTES_READ MODE BYTES_STORED": the command's
# seconds, the engine's own (the `seconds` of its JSON: no program start,
# no option parsing), and the bytes its restore point stored.
timed_backup() {
	local t0 out dir=${1:-$bk}
	t0=$(now)
	out=$(blksnap backup -d $dev -o "$dir" -f /tmp -l 256M --json)
	sync -f "$dir"
	python3 -c 'import json, sys; j = json.loads(sys.argv[3])
print(float(sys.argv[2]) - float(sys.argv[1]), j["seconds"], j["bytes_read"], j["mode"], j["bytes_stored"])' "$t0" "$(now)" "$out"
}
# timed_restore ARGS...: blksnap restore ARGS --json; prints its seconds,
# the engine's own from its JSON (from finding the point to the last block
# written and checked: no exec, no option parsing), and the engine's
# phases (prepare/copy/sync/readback, seconds).
timed_restore() {
	local t0 out
	t0=$(now)
	out=$(blksnap restore "$@" --json)
	python3 -c 'import json, sys
j = json.loads(sys.argv[3])
print(float(sys.argv[2]) - float(sys.argv[1]), j["seconds"],
      "/".join("%.3f" % j["phases"][k] for k in ("prepare", "copy", "sync", "readback")))' \
		"$t0" "$(now)" "$out"
}
# timed CMD...: runs CMD; prints its seconds.
timed() {
	local t0
	t0=$(now)
	"$@" >/dev/null
	python3 -c 'import sys; print(float(sys.argv[2]) - float(sys.argv[1]))' "$t0" "$(now)"
}

read -r full full_e full_read mode _ < <(timed_backup)
[ "$mode" = full ] || { echo "backup.sh: first backup was $mode" >&2; exit 1; }
img=$(ls $bk/*.img)
cp "$img" $rs/prev.img
sync
echo 3 >/proc/sys/vm/drop_caches

# 1% of the change map's blocks, chosen at random: 4 KiB rewritten in each.
bs=$(blksnap cbtinfo -d $dev | sed -n 's/^block_size=//p')
change_1pc() {
	python3 - $dev "$bs" <<'PY'
import mmap, os, random, sys
dev, bs = sys.argv[1], int(sys.argv[2])
fd = os.open(dev, os.O_RDWR | os.O_DIRECT)
count = os.lseek(fd, 0, os.SEEK_END) // bs
buf = mmap.mmap(-1, 4096)
buf.write(os.urandom(4096))
chosen = sorted(random.sample(range(count), count // 100))
for b in chosen:
    os.pwritev(fd, [buf], b * bs)
os.close(fd)
with open("/tmp/changed_blocks", "w") as f:
    f.write("\n".join(map(str, chosen)) + "\n")
PY
}
change_1pc
echo 3 >/proc/sys/vm/drop_caches
read -r inc inc_e inc_read mode inc_stored < <(timed_backup)
[ "$mode" = incremental ] || { echo "backup.sh: second backup was $mode" >&2; exit 1; }

# The same change copied by rsync from a snapshot's image.raw.
id=$(blksnap snapshot_create -d $dev -f /tmp -l 256M)
blksnap snapshot_take -i "$id"
blksnapfs $snap
raw=$(ls -d $snap/"$id"/*/image.raw)
echo 3 >/proc/sys/vm/drop_caches
t0=$(now)
rsync --inplace --no-whole-file "$raw" $rs/prev.img
sync -f $rs
rsync_s=$(python3 -c 'import sys; print(float(sys.argv[2]) - float(sys.argv[1]))' "$t0" "$(now)")
cmp "$raw" $rs/prev.img || { echo "backup.sh: rsync's copy differs" >&2; exit 1; }
cmp "$img" $rs/prev.img || { echo "backup.sh: the incremental backup differs" >&2; exit 1; }
fusermount3 -u $snap
blksnap snapshot_destroy -i "$id"

echo "# backup: full ${full} s (read $full_read bytes), incremental ${inc} s (read $inc_read bytes)," \
	"rsync --inplace ${rsync_s} s"
# What every timed backup pays whatever it copies, in this guest: starting
# a program (emulated: a large part of a small incremental's time) and a
# sync of the target file system with nothing to write.
t0=$(now)
blksnap version >/dev/null
t1=$(now)
sync -f $bk
t2=$(now)
python3 -c 'import sys; a, b, c = map(float, sys.argv[1:])
print(f"# backup: fixed costs here: exec of blksnap version {b - a:.3f} s, an idle sync -f {c - b:.3f} s")' "$t0" "$t1" "$t2"
row "backup: 1% changed of 1 GiB, speed-up incremental vs rsync" "$inc" "$rsync_s" "x" 1

# Two more rounds of a full backup (into a directory of its own on a fourth
# disk, removed after) and an incremental one after a new 1% change.
fulls=("$full") fulls_e=("$full_e") incs=("$inc") incs_e=("$inc_e")
if [ "${#disks[@]}" -ge 4 ]; then
	full_dir=/mnt/bench-full
	# Written once first, as every disk a row measures (docs/performance.md:
	# the host allocates a sparse disk image's blocks on their first write):
	# full backups into a never-written disk took 3-4 times as long as the
	# first one (8.8 and 6.3 s against 2.4 s in the engine, 2026-12-07).
	dd if=/dev/zero of="${disks[3]}" bs=1M oflag=direct status=none 2>/dev/null || true
	mkfs.xfs -q -f -m reflink=1 "${disks[3]}"
	mkdir -p $full_dir
	mount "${disks[3]}" $full_dir
	for round in 2 3; do
		echo 3 >/proc/sys/vm/drop_caches
		read -r f fe _ mode _ < <(timed_backup $full_dir/$round)
		[ "$mode" = full ] || { echo "backup.sh: backup into an empty directory was $mode" >&2; exit 1; }
		rm -rf "${full_dir:?}/$round"
		change_1pc
		echo 3 >/proc/sys/vm/drop_caches
		read -r i ie _ mode _ < <(timed_backup)
		[ "$mode" = incremental ] || { echo "backup.sh: backup round $round was $mode" >&2; exit 1; }
		fulls+=("$f") fulls_e+=("$fe") incs+=("$i") incs_e+=("$ie")
	done
	umount $full_dir
fi
echo "# backup rounds: full ${fulls[*]} s (engine ${fulls_e[*]}), incremental ${incs[*]} s (engine ${incs_e[*]})"
spread "backup: incremental, engine seconds" "${incs_e[*]}"
spread "backup: full, engine seconds" "${fulls_e[*]}"
per_round "backup: full / incremental, engine" "${fulls_e[*]}" "${incs_e[*]}"
# What every incremental pays whatever it copies: one with nothing changed
# since the one before (a snapshot created, taken and destroyed, the change
# map read, the image's sampled blocks checked, the state file and a
# restore point written). Full / that is the most the speed-up can be.
empties=()
for _ in 1 2 3; do
	read -r _ e _ mode _ < <(timed_backup)
	[ "$mode" = incremental ] || { echo "backup.sh: a backup with nothing changed was $mode" >&2; exit 1; }
	empties+=("$e")
done
spread "backup: incremental with nothing changed, engine seconds" "${empties[*]}"
row "backup: full vs an incremental with nothing changed, engine (reference: the most the speed-up can be here)" \
	"$(median "${empties[@]}")" "$(median "${fulls_e[@]}")" "x" 0
row "backup: 1% changed of 1 GiB, speed-up incremental vs full (median of ${#incs[@]})" \
	"$(median "${incs[@]}")" "$(median "${fulls[@]}")" "x" 20
row "backup: 1% changed of 1 GiB, speed-up incremental vs full, the engine's own seconds (--json: no exec; median of ${#incs[@]})" \
	"$(median "${incs_e[@]}")" "$(median "${fulls_e[@]}")" "x" 20

# Restore points (raw reflink copies here). What the incremental point
# stored, against the device. Three rounds of a quick rollback of a new 1%
# change and fio replaying the same I/O, each followed by a backup (a new
# point: the next rollback is of a 1% change again); then three rounds of
# a full restore of the newest point and dd of its file to the device.

# rollback_iolog POINT: a fio iolog of a rollback's I/O: each block
# change_1pc changed read from POINT, written to the device and read back.
rollback_iolog() {
	python3 - "$1" $dev "$bs" <<'PY'
import sys
point, dev, bs = sys.argv[1], sys.argv[2], int(sys.argv[3])
blocks = [int(x) for x in open("/tmp/changed_blocks")]
print("fio version 2 iolog")
for f in (point, dev):
    print(f, "add")
for f in (point, dev):
    print(f, "open")
for f, op in ((point, "read"), (dev, "write"), (dev, "read")):
    for b in blocks:
        print(f, op, b * bs, bs)
for f in (point, dev):
    print(f, "close")
PY
}
rollbacks=() rollbacks_engine=() floors=() restores=() restores_engine=() dds=()
for round in 1 2 3; do
	change_1pc
	echo 3 >/proc/sys/vm/drop_caches
	read -r rollback rollback_engine phases < <(timed_restore -o $bk -d $dev --changed-only)
	cmp "$img" $dev || { echo "backup.sh: the device differs from the point after a rollback" >&2; exit 1; }
	point=$(blksnap points -o $bk --json | tail -n 1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["path"])')
	# The floor of that rollback on this platform: its I/O all in flight
	# (io_uring, depth 64), nothing checked; fio's own runtime, no exec.
	rollback_iolog "$point" >/tmp/rollback.iolog
	echo 3 >/proc/sys/vm/drop_caches
	floor=$(fio --name=rollback-io --read_iolog=/tmp/rollback.iolog --replay_no_stall=1 \
		--ioengine=io_uring --iodepth=64 --direct=1 --output-format=json |
		python3 -c 'import json,sys; print(json.load(sys.stdin)["jobs"][0]["job_runtime"] / 1000)')
	rollbacks+=("$rollback") rollbacks_engine+=("$rollback_engine") floors+=("$floor")
	echo "# points round $round: rollback ${rollback} s (${rollback_engine} s in the engine:" \
		"prepare/copy/sync/readback $phases s), fio replaying its I/O ${floor} s"
	# fio wrote what it wrote: the next rollback is of a new point.
	timed_backup >/dev/null
done
# The full restores after: each rewrites the whole device, and marks it
# changed.
for round in 1 2 3; do
	echo 3 >/proc/sys/vm/drop_caches
	read -r restore restore_engine _ < <(timed_restore -o $bk -d $dev)
	echo 3 >/proc/sys/vm/drop_caches
	dd_s=$(timed dd if="$point" of=$dev bs=1M oflag=direct status=none)
	restores+=("$restore") restores_engine+=("$restore_engine") dds+=("$dd_s")
	echo "# points round $round: full restore ${restore} s (${restore_engine} s in the engine), dd ${dd_s} s"
done
# Where a full restore's time goes: reading the point and checking every
# block's xxh64 (blksnap verify), and the hashing alone (xxhsum, cached).
echo 3 >/proc/sys/vm/drop_caches
verify_s=$(timed blksnap verify -o $bk -p "$(basename "$point" .raw)")
cat "$point" >/dev/null
hash_s=$(timed xxhsum -H64 "$point")
echo "# points: incremental point stored $inc_stored bytes; verify (read and check) ${verify_s} s," \
	"xxhsum -H64 of the cached point ${hash_s} s"
per_round "points: rollback / full restore, engine" "${rollbacks_engine[*]}" "${restores_engine[*]}"
per_round "points: fio replay / full restore, engine" "${floors[*]}" "${restores_engine[*]}"
row_lower "points: stored bytes of an incremental point (1% changed) / device size" \
	$((1 << 30)) "$inc_stored" "bytes" 0.02
row_lower "points: quick rollback of a 1% change / full restore, seconds (median of 3)" \
	"$(median "${restores[@]}")" "$(median "${rollbacks[@]}")" "x" 0.05
row_lower "points: quick rollback / full restore, the engine's own seconds (--json: no exec; median of 3)" \
	"$(median "${restores_engine[@]}")" "$(median "${rollbacks_engine[@]}")" "x" 0.05
row_lower "points: fio replaying a rollback's I/O (io_uring, depth 64, nothing checked) / full restore, engine: the floor here" \
	"$(median "${restores_engine[@]}")" "$(median "${floors[@]}")" "x" 0.05
row_lower "points: quick rollback in the engine / fio replaying its I/O (median of 3)" \
	"$(median "${floors[@]}")" "$(median "${rollbacks_engine[@]}")" "x" 2
row "points: full restore speed vs dd of the same image to the same device (median of 3)" \
	"$(median "${restores[@]}")" "$(median "${dds[@]}")" "x" 0.95

blksnap detach -d $dev >/dev/null
umount $bk $rs
dmsetup remove --noudevsync bench-bk
