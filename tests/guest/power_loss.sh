#!/usr/bin/env bash
# cost: 95
# boots: 4
# power-cut
# columns: stock-6.1 stock-6.12 checkers
# skip-columns: checkers+ftrace
# vm: --disk 64M --disk 384M --disk 16M --disk 32M
# Power loss (issue 29, item 3): three boots end in a power cut in the middle
# of an operation (power_cut in lib.sh: `echo b` to sysrq, no sync, no
# unmount), and the next boot checks what the disks kept, by content.
# What is emulated: everything the guest held in memory is lost (page cache,
# the difference storage on /tmp, the change maps); what QEMU completed is
# kept (tests/vm/run: cache=unsafe, every completed write is in the image
# file). Not emulated: a disk's volatile cache losing completed but unflushed
# writes, torn sectors. Disks: A (backed up), SYS (ext4: the backup
# directory, the files fsync'd, what each boot expects), LIB (the state
# directory of cbtsave, under dm-delay in boot 3 so that the cut lands
# inside the save), X (written under a held snapshot).
# The cut points: the backup's process is stopped (SIGSTOP) once it has
# read N bytes of its device (the disk's read counter), cbtsave once it has detached the
# device and not yet written its record, then the power fails.
# Boot 1: A filled; its first (full) backup cut after 8 MiB.
# Boot 2: no torn image bears the image's name; the backup is full, says
# why, and equals A. A written (24 MiB); the incremental backup cut after 6
# MiB.
# Boot 3: the earlier image is intact or not under its name; the backup is
# full (the tracker restarted), says why, and equals A. A written, tracked;
# X backed up, a snapshot of it taken and held, a writer writes X (O_DIRECT)
# and files on SYS (fsync'd), logging each chunk once done; cbtsave of A
# cut after the detach, while X is being written.
# Boot 4: cbtrestore says the chain is broken and why (no record was
# written), cbtinfo tells it; the earlier image and state are intact; the
# backup is full and equals A. Every chunk the writer logged is on X, every
# file it fsync'd holds its data; X's backup is full, says why, equals X.
# Not in the debug kernel's ftrace column: the ftrace interception runs it
# on stock-6.1 and stock-6.12 (the same 6.12 source), and what it tests is
# what user space and the disks keep across a cut.
. "$(dirname "$0")/lib.sh"
A=$(disk 1)
SYS=$(disk 2)
LIB=$(disk 3)
X=$(disk 4)
mnt=/mnt/sys
lib=/mnt/lib
bk=$mnt/bk
ex=$mnt/expect # what a boot expects of the next: sums, fsync'd
nameA=${A#/dev/}
nameX=${X#/dev/}
mkdir -p $mnt $lib

sum() { sha256sum <"$1" | cut -d' ' -f1; }
# keep NAME VALUE: for the next boot, on SYS, synced.
keep() {
	echo "$2" >"$ex/$1"
	sync "$ex/$1" "$ex"
}
# jf FILE KEY: a field of the JSON object in FILE.
jf() { python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"; }
# backup DEV OUT: a backup of DEV into $bk, its JSON in OUT.
backup() {
	blksnap backup -d "$1" -o $bk -f /tmp -l 64M --keep 2 --json >"$2" || fail "backup of $1: $(cat "$2")"
}
# expect_full OUT: a full backup that says why.
expect_full() {
	expect_eq "mode of the backup after the cut" "$(jf "$1" mode)" full
	[ -n "$(jf "$1" reason)" ] || fail "a full backup without a reason: $(cat "$1")"
	echo "full backup, reason: $(jf "$1" reason)"
}
# proc_state PID: R, S, D, T (stopped), Z..., empty once reaped.
proc_state() {
	local s
	s=$(<"/proc/$1/stat") 2>/dev/null || return 0
	s=${s##*) }
	echo "${s%% *}"
}
alive() { case $(proc_state "$1") in "" | Z | X) return 1 ;; esac; }
# read_bytes DEV: the bytes the block layer has read from the disk DEV.
read_bytes() {
	local f
	read -r -a f <"/sys/block/${1#/dev/}/stat"
	echo $((f[2] * 512))
}
# cut_backup DEV BYTES: a backup of DEV, stopped once it read BYTES of DEV
# (the disk's own read counter, polled without a fork: /proc/PID/io is not
# in every kernel), then the power cut.
cut_backup() {
	local pid r=0 f base nap_fd
	exec {nap_fd}<> <(:)
	base=$(read_bytes "$1")
	blksnap backup -d "$1" -o $bk -f /tmp -l 64M --keep 2 >/tmp/cut.out 2>&1 &
	pid=$!
	while [ "$r" -lt "$2" ] && alive $pid; do
		read -r -a f <"/sys/block/${1#/dev/}/stat"
		r=$((f[2] * 512 - base))
		read -r -t 0.005 -u $nap_fd || true
	done
	kill -STOP $pid 2>/dev/null || true
	alive $pid || fail "the backup ended ($r bytes read) before the cut at $2: $(cat /tmp/cut.out)"
	echo "backup of $1 stopped after $r bytes read; files: $(ls $bk)"
	power_cut "backup of $1 after $r bytes read"
}
mount_sys() { mount "$SYS" $mnt; }
# logged: how many chunks the writer of boot 3 logged.
logged() {
	local n=0
	[ ! -e $mnt/w/log ] || while read -r _; do n=$((n + 1)); done <$mnt/w/log
	echo $n
}

case ${BLKSNAP_BOOT:?run by tests/check.sh, boots: 4} in
1)
	step "boot 1: A filled, its first backup cut after 8 MiB"
	mkfs.ext4 -q -F "$SYS"
	mkfs.ext4 -q -F "$LIB"
	mount_sys
	mkdir -p $bk $ex $mnt/w
	gen 1 $((64 << 20)) | dd of="$A" bs=1M iflag=fullblock oflag=direct status=none
	keep A.sum "$(sum "$A")"
	cut_backup "$A" $((8 << 20))
	;;
2)
	step "boot 2: after the cut of the first backup: no torn image under its name"
	mount_sys
	[ ! -e $bk/"$nameA".img ] || fail "a torn image bears the image's name: $(ls -l $bk)"
	ls -l $bk
	step "boot 2: the backup is full, says why, and equals A"
	expect_eq "A after the cut" "$(sum "$A")" "$(<$ex/A.sum)"
	backup "$A" /tmp/b2
	expect_full /tmp/b2
	cmp $bk/"$nameA".img "$A" || fail "the backup after the cut differs from A"
	keep img.sum "$(sum $bk/"$nameA".img)"
	keep state.sum "$(sum $bk/"$nameA".state)"
	step "boot 2: A written, its incremental backup cut after 6 MiB"
	gen 2 $((24 << 20)) | dd of="$A" bs=1M seek=8 iflag=fullblock oflag=direct status=none
	keep A.sum "$(sum "$A")"
	cut_backup "$A" $((6 << 20))
	;;
3)
	step "boot 3: after the cut of an incremental backup: the earlier image intact, or not under its name"
	mount_sys
	ls -l $bk
	if [ -e $bk/"$nameA".img ]; then
		expect_eq "the earlier image" "$(sum $bk/"$nameA".img)" "$(<$ex/img.sum)"
	fi
	step "boot 3: the backup is full (the tracker restarted), says why, and equals A"
	expect_eq "A after the cut" "$(sum "$A")" "$(<$ex/A.sum)"
	backup "$A" /tmp/b3
	expect_full /tmp/b3
	cmp $bk/"$nameA".img "$A" || fail "the backup after the cut differs from A"
	keep img.sum "$(sum $bk/"$nameA".img)"
	keep state.sum "$(sum $bk/"$nameA".state)"
	step "boot 3: A written, tracked"
	gen 3 $((4 << 20)) | dd of="$A" bs=1M seek=40 iflag=fullblock oflag=direct status=none
	keep A.sum "$(sum "$A")"
	step "boot 3: X backed up, a snapshot of it held, a writer on X and SYS"
	gen 4 $((32 << 20)) | dd of="$X" bs=1M iflag=fullblock oflag=direct status=none
	backup "$X" /tmp/bx
	keep X.img.sum "$(sum $bk/"$nameX".img)"
	id=$(blksnap snapshot_create -d "$X" -f /tmp -l 64M)
	blksnap snapshot_take -i "$id"
	# Chunk I (1 MiB, its data seeded by I) at MiB I % 32 of X, and its
	# first 64 KiB in the file w/fI, fsync'd; then I in w/log, fsync'd.
	python3 - "$X" $mnt/w <<'EOF' >/tmp/writer.out 2>&1 &
import mmap, os, random, sys
dev, wdir = sys.argv[1], sys.argv[2]
fd = os.open(dev, os.O_WRONLY | os.O_DIRECT)
buf = mmap.mmap(-1, 1 << 20)
log = os.open(wdir + "/log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
dfd = os.open(wdir, os.O_RDONLY | os.O_DIRECTORY)
for i in range(1000):
    data = random.Random(i).randbytes(1 << 20)
    f = os.open("%s/f%d" % (wdir, i), os.O_WRONLY | os.O_CREAT, 0o644)
    os.write(f, data[:65536])
    os.fsync(f)
    os.close(f)
    os.fsync(dfd)
    buf[:] = data
    os.pwrite(fd, buf, (i % 32) << 20)
    os.write(log, b"%d\n" % i)
    os.fsync(log)
EOF
	wpid=$!
	step "boot 3: once 8 chunks are logged, cbtsave of A (its state directory slowed), cut after the detach"
	while alive $wpid; do
		n=$(logged)
		[ "$n" -lt 8 ] || break
		nap 0.05
	done
	alive $wpid || fail "the writer ended: $(cat /tmp/writer.out)"
	need_modules dm-delay
	sectors=$(blockdev --getsz "$LIB")
	dmsetup create --noudevsync pl-slow --table "0 $sectors delay $LIB 0 0 $LIB 0 300"
	dmsetup mknodes
	mount /dev/mapper/pl-slow $lib
	is_attached "$A" || fail "A is not attached after its backup"
	blksnap cbtsave -d "$A" --state-dir $lib >/tmp/save.out 2>&1 &
	spid=$!
	while alive $spid && { is_attached "$A" || [ -e $lib/"$nameA".saved ]; }; do nap 0.01; done
	kill -STOP $spid 2>/dev/null || true
	alive $spid || fail "cbtsave ended before the cut: $(cat /tmp/save.out)"
	[ ! -e $lib/"$nameA".saved ] || fail "the cut missed its point: the record is written"
	alive $wpid || fail "the writer ended before the cut: $(cat /tmp/writer.out)"
	n=$(logged)
	echo "cbtsave stopped after the detach, before its record; the writer has logged $n chunks"
	power_cut "cbtsave of $A after the detach, $n chunks written under snapshot $id"
	;;
4)
	step "boot 4: cbtrestore after a cut cbtsave: the chain is broken, and why"
	mount_sys
	mount "$LIB" $lib
	ls -lR $lib
	[ ! -e $lib/"$nameA".saved ] || fail "a record was written, the cut was before it"
	out=$(blksnap cbtrestore -d "$A" --state-dir $lib)
	echo "$out"
	[[ $out == "chain broken for $A, a new generation starts: "?* ]] ||
		fail "cbtrestore after the cut: $out"
	expect_eq "cbtinfo chain" "$(blksnap cbtinfo -d "$A" --state-dir $lib | sed -n 's/^chain=//p')" broken
	reason=$(blksnap cbtinfo -d "$A" --state-dir $lib | sed -n "s/^chain_reason='\(.*\)'$/\1/p")
	expect_eq "cbtinfo chain_reason" "$reason" "${out#"chain broken for $A, a new generation starts: "}"
	step "boot 4: the earlier image and state intact; the backup is full, says why, and equals A"
	expect_eq "the earlier image" "$(sum $bk/"$nameA".img)" "$(<$ex/img.sum)"
	expect_eq "the earlier state" "$(sum $bk/"$nameA".state)" "$(<$ex/state.sum)"
	expect_eq "A after the cut" "$(sum "$A")" "$(<$ex/A.sum)"
	backup "$A" /tmp/b4
	expect_full /tmp/b4
	cmp $bk/"$nameA".img "$A" || fail "the backup after the cut differs from A"
	step "boot 4: every chunk logged is on X, every file fsync'd holds its data"
	python3 - "$X" $mnt/w <<'EOF' || fail "the writes before the cut"
import os, random, sys
dev, wdir = sys.argv[1], sys.argv[2]
logged = [int(l) for l in open(wdir + "/log").read().split()]
assert logged == list(range(len(logged))), "log out of order: %s" % logged
n = len(logged)
data = lambda i: random.Random(i).randbytes(1 << 20)
with open(dev, "rb") as d:
    for off in range(32):
        d.seek(off << 20)
        got = d.read(1 << 20)
        done = [i for i in logged if i % 32 == off]
        if not done:
            continue
        last = done[-1]
        # Chunk n, in flight at the cut (its log line not written), may
        # have reached the disk, whole or in part: each 4 KiB block is then
        # the last logged chunk's or its.
        old, new = data(last), data(n) if n % 32 == off else None
        for b in range(0, 1 << 20, 4096):
            if got[b:b + 4096] != old[b:b + 4096] and (
                    new is None or got[b:b + 4096] != new[b:b + 4096]):
                sys.exit("chunk %d at MiB %d of X, logged before the cut: block %d lost"
                         % (last, off, b // 4096))
for i in logged:
    got = open("%s/f%d" % (wdir, i), "rb").read()
    if got != data(i)[:65536]:
        sys.exit("file f%d, fsync'd before the cut: %d bytes, not its data" % (i, len(got)))
print("X: %d chunks logged, all on the disk; their files intact" % n)
EOF
	step "boot 4: X's earlier image intact; its backup is full, says why, and equals X"
	expect_eq "X's earlier image" "$(sum $bk/"$nameX".img)" "$(<$ex/X.img.sum)"
	backup "$X" /tmp/b4x
	expect_full /tmp/b4x
	cmp $bk/"$nameX".img "$X" || fail "the backup of X after the cut differs from X"
	blksnap detach -d "$A"
	blksnap detach -d "$X"
	umount $lib
	umount $mnt
	;;
esac
echo "power_loss: boot $BLKSNAP_BOOT: all checks passed"
