#!/usr/bin/env bash
# cost: 60
# columns: stock-6.1 stock-6.12 checkers
# vm: --disk 32M --disk 32M
# skip-columns: checkers+ftrace
# blksnap backups run at the same time as other blksnap commands. A second
# backup into a directory while one runs there is refused (EBUSY, "another
# backup into this directory is running") and changes nothing of it; the
# running one ends byte-equal to the device at its take, although the
# device is written meanwhile. The same device backed up into a second
# directory while the first backup holds it is refused too (a device is in
# one snapshot at a time), changing nothing there; one after the other,
# the two directories keep independent chains, each incremental exact.
# blksnapfs shows a running backup's snapshot (image.raw equal to the
# device at the take) while the backup reads the same image, and the file
# opened there never reads other data than the take's once the backup
# destroyed its snapshot. The snapshot a backup killed with SIGKILL leaves behind is
# cleaned up while another backup runs, in both ways the CLI offers (the
# next backup into its directory, or snapshot_destroy of the identifier in
# DIR/.blksnap-snapshot): the running backup is undisturbed and exact.
# Not in the debug kernel's ftrace column: it tests concurrent user space
# (locks, leftovers, blksnapfs beside the CLI); stock-6.1 and stock-6.12 run
# it with ftrace.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/cli-helpers.bash"
. "$(dirname "$0")/fs-helpers.bash"
d1=$(disk 1)
d2=$(disk 2)
n1=${d1#/dev/}
n2=${d2#/dev/}
tmp=$(mktemp -d)
mkdir "$tmp/store"
mkfifo "$tmp/fifo"
bgs=()
# A failing test leaves no stopped backup and no mount behind.
cleanup() {
	local p
	for p in "${bgs[@]}"; do kill -CONT "$p" 2>/dev/null || true; done
	mountpoint -q "$snap" && fusermount3 -u -z "$snap"
	true
}
trap cleanup EXIT

image_of() { # dev
	local devno
	read -r devno </sys/class/block/"${1#/dev/}"/dev
	echo "/dev/blksnap-image_$devno"
}
# start_backup DEV DIR: a backup in the background ($bg), stopped (SIGSTOP)
# right after its take; $want is the device's xxh64 then (nothing writes to
# it until the caller does).
start_backup() {
	local image
	image=$(image_of "$1")
	blksnap backup -d "$1" -o "$2" -f "$tmp/store" -l 64M --verify >"$tmp/bg.out" 2>"$tmp/bg.err" &
	bg=$!
	bgs+=("$bg")
	while [ ! -b "$image" ] && kill -0 "$bg" 2>/dev/null; do :; done
	kill -STOP "$bg"
	[ -b "$image" ] || fail "backup of $1 into $2 ended before its take: $(<"$tmp/bg.err")"
	want=$(xsum "$1")
}
# finish_backup: continue $bg and expect it to succeed.
finish_backup() {
	kill -CONT "$bg"
	wait "$bg" || fail "backup: exit $?: $(<"$tmp/bg.err")"
}
# backup DEV DIR: one in the foreground, expected to succeed.
backup() {
	run blksnap backup -d "$1" -o "$2" -f "$tmp/store" -l 64M --verify
	[ "$rc" = 0 ] || fail "backup of $1 into $2: exit $rc: $err"
}
# The image of DEV in DIR has the xxh64 SUM.
expect_image() { # dev dir sum what
	expect_eq "$4" "$(xsum "$2/${1#/dev/}.img")" "$3"
}
# Write 1 MiB pieces of fresh data into DEV at MiB offsets.
scribble() { # dev seed offset...
	local dev=$1 seed=$2 o
	shift 2
	for o in "$@"; do
		gen "$((seed * 100 + o))" $((1 << 20)) | dd of="$dev" bs=1M seek="$o" oflag=direct status=none
	done
}
# A listing of DIR with every file's size and checksum.
listing() {
	local f
	for f in "$1"/* "$1"/.blksnap-snapshot; do
		[ -e "$f" ] || continue
		printf '%s %s %s\n' "${f##*/}" "$(stat -c %s "$f")" "$(xsum "$f")"
	done
}

step "both devices filled"
gen 1 $((32 << 20)) | dd of="$d1" bs=1M oflag=direct status=none
gen 2 $((32 << 20)) | dd of="$d2" bs=1M oflag=direct status=none

step "two backups into one directory: the second refused, the first exact"
start_backup "$d1" "$tmp/a"
held=$(<"$tmp/a/.blksnap-snapshot")
before=$(listing "$tmp/a")
expect_fail 1 blksnap backup -d "$d2" -o "$tmp/a" -f "$tmp/store" -l 64M -- \
	"another backup into this directory is running"
expect_fail 1 blksnap backup -d "$d1" -o "$tmp/a" -f "$tmp/store" -l 64M -- \
	"another backup into this directory is running"
echo "refused: $err"
expect_eq "the directory after the refusals" "$(listing "$tmp/a")" "$before"
expect_eq "the snapshots after the refusals" "$(blksnap snapshot_collect)" "$held"
# The device written while the first backup goes on.
scribble "$d1" 3 0 7 30 &
w=$!
finish_backup
wait "$w"
expect_image "$d1" "$tmp/a" "$want" "the first backup"
[ ! -e "$tmp/a/$n2.img" ] || fail "the refused backup left an image of $d2"
expect_eq "snapshots after the backup" "$(blksnap snapshot_collect)" ""

step "the same device into two directories at once: the second refused"
start_backup "$d1" "$tmp/b"
expect_fail 1 blksnap backup -d "$d1" -o "$tmp/c" -f "$tmp/store" -l 64M -- "busy"
echo "refused: $err"
expect_eq "the second directory after the refusal" "$(listing "$tmp/c")" ""
scribble "$d1" 4 1 &
w=$!
finish_backup
wait "$w"
expect_image "$d1" "$tmp/b" "$want" "the backup that held the device"

step "one after the other: two independent chains, each exact"
backup "$d1" "$tmp/c"
expect_image "$d1" "$tmp/c" "$(xsum "$d1")" "first backup into the second directory"
scribble "$d1" 5 2 20
backup "$d1" "$tmp/b"
[[ $out == *incremental* ]] || fail "not incremental into the first directory: $out"
expect_image "$d1" "$tmp/b" "$(xsum "$d1")" "incremental into the first directory"
scribble "$d1" 6 3 21
backup "$d1" "$tmp/c"
[[ $out == *incremental* ]] || fail "not incremental into the second directory: $out"
expect_image "$d1" "$tmp/c" "$(xsum "$d1")" "incremental into the second directory"
scribble "$d1" 7 4
backup "$d1" "$tmp/b"
[[ $out == *incremental* ]] || fail "not incremental into the first directory: $out"
expect_image "$d1" "$tmp/b" "$(xsum "$d1")" "second incremental into the first directory"

step "blksnapfs shows a running backup's snapshot, never other data once destroyed"
fs_start
scribble "$d1" 8 5 6
start_backup "$d1" "$tmp/b"
id=$(<"$tmp/b/.blksnap-snapshot")
raw=$snap/$id/$n1/image.raw
expect_eq "blksnapfs image.raw of the backup's snapshot" "$(xsum "$raw")" "$want"
# A reader holds image.raw open across the end of the backup: its reads
# then fail, or return the data of the take (the daemon's cache), never
# other data. At MiB 0 (read before), 5 (written on the device since the
# take) and 20: the take's data from the image device.
dd if="$(image_of "$d1")" of="$tmp/take" bs=1M count=21 iflag=direct status=none
cat >"$tmp/reader.py" <<'PY'
import errno, os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
take = open(sys.argv[2], "rb").read()
mib = 1 << 20
print(os.pread(fd, mib, 0) == take[:mib], flush=True)
sys.stdin.readline()
for off in (0, 5 * mib, 20 * mib):
    try:
        got = os.pread(fd, mib, off)
    except OSError as e:
        print(errno.errorcode[e.errno], end=" ")
    else:
        print("same" if got == take[off:off + mib] else "others", end=" ")
print(flush=True)
PY
coproc reader { python3 "$tmp/reader.py" "$raw" "$tmp/take"; }
# shellcheck disable=SC2154 # reader_PID: set by coproc
reader_pid=$reader_PID
read -r got <&"${reader[0]}"
expect_eq "reader's first read" "$got" True
scribble "$d1" 9 5 6 &
w=$!
finish_backup
wait "$w"
expect_image "$d1" "$tmp/b" "$want" "the backup read through blksnapfs at once"
wait_until bash -c "[ ! -e '$snap/$id' ]" || fail "$snap/$id still there after the backup"
echo >&"${reader[1]}"
read -r got <&"${reader[0]}"
echo "image.raw read after its snapshot was destroyed, MiB 0 5 20: $got"
[[ $got != *others* ]] || fail "image.raw read other data than the take's once destroyed: $got"
wait "$reader_pid" || true
fs_stop

step "a killed backup's snapshot cleaned up by the next backup into its directory while another runs"
scribble "$d1" 10 8
start_backup "$d1" "$tmp/b"
leftover=$(<"$tmp/b/.blksnap-snapshot")
kill -KILL "$bg"
wait "$bg" || true
expect_eq "the leftover snapshot" "$(blksnap snapshot_collect)" "$leftover"
start_backup "$d2" "$tmp/d"
other=$(<"$tmp/d/.blksnap-snapshot")
backup "$d1" "$tmp/b"
[[ "$out$err" == *"destroyed snapshot $leftover"* ]] || fail "no word of the leftover: $out $err"
expect_image "$d1" "$tmp/b" "$(xsum "$d1")" "the backup that cleaned up"
expect_eq "the snapshots while the other backup runs" "$(blksnap snapshot_collect)" "$other"
scribble "$d2" 11 9 &
w=$!
finish_backup
wait "$w"
expect_image "$d2" "$tmp/d" "$want" "the backup that ran meanwhile"

step "a killed backup's snapshot destroyed with snapshot_destroy while another runs"
scribble "$d1" 12 10
start_backup "$d1" "$tmp/b"
leftover=$(<"$tmp/b/.blksnap-snapshot")
kill -KILL "$bg"
wait "$bg" || true
scribble "$d2" 13 11
start_backup "$d2" "$tmp/d"
other=$(<"$tmp/d/.blksnap-snapshot")
blksnap snapshot_destroy -i "$leftover"
expect_eq "the snapshots while the other backup runs" "$(blksnap snapshot_collect)" "$other"
scribble "$d2" 14 12 &
w=$!
finish_backup
wait "$w"
expect_image "$d2" "$tmp/d" "$want" "the backup that ran meanwhile"
# The identifier file names a snapshot that is gone: the next backup into
# the directory goes on.
backup "$d1" "$tmp/b"
expect_image "$d1" "$tmp/b" "$(xsum "$d1")" "the backup after the manual cleanup"
[ ! -e "$tmp/b/.blksnap-snapshot" ] || fail ".blksnap-snapshot left after a backup"
expect_eq "snapshots at the end" "$(blksnap snapshot_collect)" ""
blksnap detach -d "$d1"
blksnap detach -d "$d2"
echo "backup_concurrent: all checks passed"
