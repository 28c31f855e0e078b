#!/usr/bin/env bash
# cost: 45
# columns: stock-6.1 stock-6.12 checkers
# vm: --disk 32M
# skip-columns: checkers+ftrace
# A change map kept across a module reload: `blksnap cbtsave` saves the map
# and detaches; after the reload `blksnap cbtrestore` continues the same
# generation with the same map when nothing wrote to the device since the
# save (the next `blksnap backup` is incremental and exact), and otherwise
# starts a new generation and says why (written after the save, no save,
# damaged state file, device resized; written while cbtrestore attaches;
# a partition written through its whole disk or discarded); cbtinfo tells,
# in lines a shell's eval takes. cbtsave refuses while a snapshot holds the
# device (its map reads as at the take) and while the block layer counts
# no write (queue/iostats 0), and while the device is mounted (it holds
# the device with O_EXCL). The content's fingerprint sees a write beneath
# the block layer (into a loop device's file), the identity another file
# behind the same loop device. `blksnap cbttake` takes the save aside
# without the module.
# (The kernel's own refusal of a saved map once a write passed the tracker
# is in badinput.)
# Not in the debug kernel's ftrace column: saved change maps are user space
# over the map ioctls both interceptions share; stock-6.1 and stock-6.12 run
# it with ftrace.
. "$(dirname "$0")/lib.sh"
need_modules loop
dev=$(disk 1)
name=$(basename "$dev")
tmp=$(mktemp -d)
state=$tmp/state
field() { blksnap cbtinfo -d "$1" --state-dir "$state" | sed -n "s/^$2=//p"; }
# map_byte MAPFILE BLOCK
map_byte() { od -An -tu1 -j "$2" -N1 "$1" | tr -d ' '; }
wr() { dd if=/dev/urandom of="$1" bs=4k count=1 seek="$2" oflag=direct conv=notrunc status=none; }

bk=$tmp/backup
mkdir -p "$bk"
# backup_mode: run an incremental-capable backup, print its mode.
backup_mode() {
	blksnap backup -d "$dev" -o "$bk" -f "$tmp" -l 16M --json | python3 -c \
		'import json, sys; print(json.load(sys.stdin)["mode"])'
}

step "tracked writes, a full backup (a take), more writes"
blksnap attach -d "$dev" >/dev/null
wr "$dev" 0
expect_eq "first backup" "$(backup_mode)" full
wr "$dev" 1000
bs=$(field "$dev" block_size)
blksnap readcbtmap -d "$dev" -f "$tmp/map.before"
gen=$(field "$dev" generation_id)
expect_eq "changes number" "$(field "$dev" changes_number)" 1
blk=$((1000 * 4096 / bs))
expect_eq "map byte of the write after the take" "$(map_byte "$tmp/map.before" "$blk")" 2

step "save, module reload, restore: the generation continues"
blksnap cbtsave -d "$dev" --state-dir "$state" >/dev/null
! is_attached "$dev" || fail "cbtsave left $dev attached"
[ -s "$state/$name.cbt" ] && [ -s "$state/$name.saved" ] || fail "no saved files"
rmmod blksnap
# The unit's first step, without the module: the save taken aside for the
# restore of this boot.
out=$(blksnap cbttake -d "$dev" --state-dir "$state")
boot=$(</proc/sys/kernel/random/boot_id)
expect_eq "cbttake without the module" "$out" \
	"took the saved change map of $dev to $state/taken/$boot"
[ ! -e "$state/$name.saved" ] && [ -s "$state/taken/$boot/$name.saved" ] ||
	fail "cbttake did not take the save aside"
load_module
out=$(blksnap cbtrestore -d "$dev" --state-dir "$state")
[[ $out == "restored $dev: generation_id=$gen changes_number=1" ]] || fail "restore: $out"
expect_eq "generation" "$(field "$dev" generation_id)" "$gen"
expect_eq "chain" "$(field "$dev" chain)" continued
blksnap readcbtmap -d "$dev" -f "$tmp/map.after"
cmp "$tmp/map.before" "$tmp/map.after" || fail "the restored map differs from the saved one"
[ ! -e "$state/$name.cbt" ] && [ ! -e "$state/$name.saved" ] &&
	[ -z "$(find "$state/taken" -type f)" ] || fail "saved files not consumed"

step "a write after the restore is recorded with the next number"
far=$(((7 << 20) / 4096))
wr "$dev" "$far"
blksnap readcbtmap -d "$dev" -f "$tmp/map.next"
expect_eq "map byte of a new write" "$(map_byte "$tmp/map.next" $((far * 4096 / bs)))" 2

step "the next backup is incremental and exact"
expect_eq "backup after the restore" "$(backup_mode)" incremental
cmp "$bk/$name.img" "$dev" || fail "the incremental backup differs from the device"

step "a snapshot holds the device (as a killed backup leaves it): cbtsave refuses, says what to do"
id=$(blksnap snapshot_create -d "$dev" -f "$tmp" -l 16M)
blksnap snapshot_take -i "$id"
wr "$dev" 1500
if out=$(blksnap cbtsave -d "$dev" --state-dir "$state" 2>&1); then
	fail "cbtsave with snapshot $id held succeeded: $out"
fi
[[ $out == *"in snapshot $id"*"snapshot_destroy -i $id"*"still tracking"* ]] ||
	fail "cbtsave, snapshot held: $out"
is_attached "$dev" || fail "a refused cbtsave detached $dev"
[ ! -e "$state/$name.saved" ] || fail "a refused cbtsave saved a map"
blksnap snapshot_destroy -i "$id"

step "queue/iostats off, no write counted: cbtsave refuses; cbtrestore breaks the chain"
iostats=/sys/block/$name/queue/iostats
echo 0 >"$iostats"
if out=$(blksnap cbtsave -d "$dev" --state-dir "$state" 2>&1); then
	echo 1 >"$iostats"
	fail "cbtsave with iostats off succeeded: $out"
fi
echo 1 >"$iostats"
[[ $out == *"queue/iostats"*"still tracking"* ]] || fail "cbtsave, iostats off: $out"
is_attached "$dev" || fail "a refused cbtsave detached $dev"
blksnap cbtsave -d "$dev" --state-dir "$state" >/dev/null
echo 0 >"$iostats"
out=$(blksnap cbtrestore -d "$dev" --state-dir "$state")
echo 1 >"$iostats"
[[ $out == "chain broken for $dev, a new generation starts: "*"queue/iostats is 0"* ]] ||
	fail "restore, iostats off: $out"

step "written between save and restore: a new generation, and why, told to eval"
blksnap cbtsave -d "$dev" --state-dir "$state" >/dev/null
wr "$dev" 2000
out=$(blksnap cbtrestore -d "$dev" --state-dir "$state")
expect_eq "restore" "$out" "chain broken for $dev, a new generation starts: the device was written after the save"
[ "$(field "$dev" generation_id)" != "$gen" ] || fail "the generation continued"
chain='' chain_reason='' generation_id=''
eval "$(blksnap cbtinfo -d "$dev" --state-dir "$state")" || fail "eval of cbtinfo's output failed"
expect_eq "chain, through eval" "$chain" broken
expect_eq "chain_reason, through eval" "$chain_reason" "the device was written after the save"
expect_eq "generation_id, through eval" "$generation_id" "$(field "$dev" generation_id)"

step "written while cbtrestore attaches: counted, the chain breaks"
blksnap cbtsave -d "$dev" --state-dir "$state" >/dev/null
# strace holds cbtrestore's first ioctl of the module (the attach) for 4 s;
# a write then is neither tracked nor, with the counters read before the
# attach, counted. (The polling sleeps with a builtin: an exec costs a
# second on the debug kernel.)
strace -f -qq -o /dev/null -P /dev/blksnap-control -P "$dev" -e trace=ioctl \
	-e inject=ioctl:delay_enter=4000000:when=1 \
	blksnap cbtrestore -d "$dev" --state-dir "$state" >"$tmp/restore.out" &
tracer=$!
mkfifo "$tmp/fifo"
# The tracee: the process whose parent is strace, in $child (the debug
# kernel has no /proc/PID/task/TID/children).
find_child() {
	local p stat f
	child=
	for p in /proc/[0-9]*; do
		read -r stat 2>/dev/null <"$p/stat" || continue
		# After the command name: state, parent, ...
		read -r -a f <<<"${stat##*) }"
		if [ "${f[1]:-}" = "$1" ]; then
			child=${p#/proc/}
			return 0
		fi
	done
}
held=
for ((i = 0; i < 1000 && !held; i++)); do
	find_child "$tracer"
	# Stopped at the entry of ioctl (16) on a file of its own (fd > 2).
	if [ -n "${child:-}" ] && read -r nr fd _ 2>/dev/null <"/proc/$child/syscall" &&
		[ "$nr" = 16 ] && [ $((fd)) -gt 2 ]; then
		held=1
	else
		read -r -t 0.02 <>"$tmp/fifo" || true
	fi
done
[ -n "$held" ] || fail "cbtrestore was not seen at its attach"
wr "$dev" 2500
wait "$tracer" || fail "cbtrestore under strace failed"
expect_eq "restore" "$(<"$tmp/restore.out")" "chain broken for $dev, a new generation starts: the device was written after the save"

step "no save: a read-only state directory is refused before the detach"
mkdir "$tmp/ro"
mount -t tmpfs -o ro none "$tmp/ro"
if out=$(blksnap cbtsave -d "$dev" --state-dir "$tmp/ro" 2>&1); then
	fail "cbtsave into a read-only directory succeeded: $out"
fi
[[ $out == *"cannot write to $tmp/ro"*"still tracking"*"(Read-only file system)" ]] ||
	fail "cbtsave, read-only: $out"
is_attached "$dev" || fail "a failed cbtsave detached $dev"
umount "$tmp/ro"

step "no save: a new generation, and why"
blksnap detach -d "$dev"
out=$(blksnap cbtrestore -d "$dev" --state-dir "$state" --json)
[[ $out == *'"continued":false'*'no saved change map'* ]] || fail "restore without a save: $out"

step "damaged state file: a new generation, and why"
blksnap cbtsave -d "$dev" --state-dir "$state" >/dev/null
printf '\x55' | dd of="$state/$name.cbt" bs=1 seek=50 conv=notrunc status=none
out=$(blksnap cbtrestore -d "$dev" --state-dir "$state")
[[ $out == *"chain broken"*"checksum"* ]] || fail "damaged state: $out"

step "resized device: a new generation, and why"
truncate -s 16M "$tmp/img"
loop=$(losetup -f --show "$tmp/img")
blksnap attach -d "$loop" >/dev/null
wr "$loop" 3
blksnap cbtsave -d "$loop" --state-dir "$state" >/dev/null
truncate -s 24M "$tmp/img"
losetup -c "$loop"
out=$(blksnap cbtrestore -d "$loop" --state-dir "$state")
[[ $out == *"chain broken"*"size or tracking geometry changed"* ]] || fail "resized: $out"
blksnap detach -d "$loop"
losetup -d "$loop"

step "mounted: cbtsave refuses while the device is in use, still tracking"
truncate -s 16M "$tmp/fs.img"
mkfs.ext4 -q -F "$tmp/fs.img"
floop=$(losetup -f --show "$tmp/fs.img")
blksnap attach -d "$floop" >/dev/null
mkdir "$tmp/mnt"
mount "$floop" "$tmp/mnt"
if out=$(blksnap cbtsave -d "$floop" --state-dir "$state" 2>&1); then
	fail "cbtsave of mounted $floop succeeded: $out"
fi
[[ $out == *"it is in use: mounted"*"still tracking (Device or resource busy)" ]] ||
	fail "cbtsave, mounted: $out"
is_attached "$floop" || fail "a refused cbtsave detached $floop"
[ ! -e "$state/${floop#/dev/}.saved" ] || fail "a refused cbtsave saved a map"
umount "$tmp/mnt"

step "written beneath the block layer (into a loop device's file): the fingerprint tells"
blksnap cbtsave -d "$floop" --state-dir "$state" >/dev/null
# Into the file system's superblock, by the file: the loop device's write
# counters never move.
dd if=/dev/urandom of="$tmp/fs.img" bs=4k count=1 seek=0 conv=notrunc status=none
out=$(blksnap cbtrestore -d "$floop" --state-dir "$state")
expect_eq "restore after a write beneath" "$out" "chain broken for $floop, a new generation \
starts: the device's content is not what it was at the save (its fingerprint of sampled blocks \
differs): it was written where the write counters do not see"

step "another file behind the same loop device: not the device saved"
blksnap cbtsave -d "$floop" --state-dir "$state" >/dev/null
losetup -d "$floop"
cp --sparse=always "$tmp/fs.img" "$tmp/copy.img"
losetup "$floop" "$tmp/copy.img"
out=$(blksnap cbtrestore -d "$floop" --state-dir "$state")
[[ $out == "chain broken for $floop, a new generation starts: the device is not the one saved \
(loop/backing_file=$tmp/fs.img inode="*" loop/offset=0, now loop/backing_file=$tmp/copy.img "* ]] ||
	fail "restore with another backing file: $out"
blksnap detach -d "$floop"
losetup -d "$floop"

step "a partition written through its whole disk, or discarded, after its save: a new generation"
truncate -s 16M "$tmp/parts"
mbr "$tmp/parts" 2048 8192 10240 8192
ploop=$(losetup -f --show -P "$tmp/parts")
part=${ploop}p1
wait_for_dev "$part"
wait_for_dev "${ploop}p2"
blksnap attach -d "$part" >/dev/null
wr "$part" 1
blksnap cbtsave -d "$part" --state-dir "$state" >/dev/null
# 4 KiB into the partition, through the whole disk.
dd if=/dev/urandom of="$ploop" bs=4k count=1 seek=$((2048 / 8 + 1)) oflag=direct conv=notrunc \
	status=none
out=$(blksnap cbtrestore -d "$part" --state-dir "$state")
expect_eq "restore after a write through the whole disk" "$out" \
	"chain broken for $part, a new generation starts: the device was written after the save"
blksnap cbtsave -d "$part" --state-dir "$state" >/dev/null
wr "${ploop}p2" 1
out=$(blksnap cbtrestore -d "$part" --state-dir "$state")
[[ $out == "restored $part: "* ]] || fail "restore after a write to the other partition: $out"
blksnap cbtsave -d "$part" --state-dir "$state" >/dev/null
blkdiscard -o 65536 -l 65536 "$part"
out=$(blksnap cbtrestore -d "$part" --state-dir "$state")
expect_eq "restore after a discard" "$out" \
	"chain broken for $part, a new generation starts: the device was written after the save"
blksnap detach -d "$part"
losetup -d "$ploop"
blksnap detach -d "$dev"
echo "cbt_persist: all checks passed"
