#!/usr/bin/env bash
# cost: 20
# boots: 3
# columns: stock-6.1 stock-6.12 blkfilter-6.12
# vm: --disk 32M --disk 16M
# A change map kept across reboots (tests/check.sh boots three guests on
# the same disks): the first boot tracks writes and a take on the data disk,
# then saves the map to a state directory on the second disk as the
# shutdown unit does (cbtsave after the file systems are unmounted). The
# second boot restores it before anything touches the data disk: the
# generation, changes number and map continue exactly, the next backup is
# incremental and equals the device, and a new write is recorded with the
# next number; it saves again. In the third boot the data
# disk is written before the restore: a new generation starts, and
# cbtrestore and cbtinfo say why.
. "$(dirname "$0")/lib.sh"
dev=$(disk 1)
state_dev=$(disk 2)
state=/mnt/state
field() { blksnap cbtinfo -d "$1" --state-dir "$state" | sed -n "s/^$2=//p"; }
map_byte() { od -An -tu1 -j "$2" -N1 "$1" | tr -d ' '; }
wr() { dd if=/dev/urandom of="$1" bs=4k count=1 seek="$2" oflag=direct conv=notrunc status=none; }
mkdir -p $state
# backup_mode: a backup into the state disk; prints its mode.
backup_mode() {
	mkdir -p $state/bk
	blksnap backup -d "$dev" -o $state/bk -f /tmp -l 16M --json | python3 -c \
		'import json, sys; print(json.load(sys.stdin)["mode"])'
}

case ${BLKSNAP_BOOT:?run by tests/check.sh, boots: 3} in
1)
	step "boot 1: tracked writes and a take, then the map saved"
	mkfs.ext4 -q -F "$state_dev"
	mount "$state_dev" $state
	blksnap attach -d "$dev" >/dev/null
	wr "$dev" 0
	expect_eq "first backup" "$(backup_mode)" full
	wr "$dev" 1000
	blksnap readcbtmap -d "$dev" -f $state/map.boot1
	blksnap cbtinfo -d "$dev" >$state/info.boot1
	blksnap cbtsave -d "$dev" --state-dir $state >/dev/null
	umount $state
	;;
2)
	step "boot 2: restored before any write: the generation continues"
	mount "$state_dev" $state
	out=$(blksnap cbtrestore -d "$dev" --state-dir $state)
	gen=$(sed -n 's/^generation_id=//p' $state/info.boot1)
	[[ $out == "restored $dev: generation_id=$gen changes_number=1" ]] || fail "restore: $out"
	blksnap cbtinfo -d "$dev" | cmp - $state/info.boot1 || fail "cbtinfo differs from boot 1"
	expect_eq "chain" "$(field "$dev" chain)" continued
	blksnap readcbtmap -d "$dev" -f /tmp/map
	cmp /tmp/map $state/map.boot1 || fail "the map differs from boot 1's"
	step "boot 2: the next backup is incremental and exact"
	expect_eq "backup after the reboot" "$(backup_mode)" incremental
	cmp $state/bk/"$(basename "$dev")".img "$dev" || fail "the backup differs from the device"
	step "boot 2: a new write has the next number; saved again"
	bs=$(field "$dev" block_size)
	wr "$dev" 2000
	blksnap readcbtmap -d "$dev" -f /tmp/map
	expect_eq "map byte of the new write" "$(map_byte /tmp/map $((2000 * 4096 / bs)))" 3
	blksnap cbtsave -d "$dev" --state-dir $state >/dev/null
	umount $state
	;;
3)
	step "boot 3: written before the restore: a new generation, and why"
	mount "$state_dev" $state
	wr "$dev" 3000
	out=$(blksnap cbtrestore -d "$dev" --state-dir $state)
	why="the device was written since boot, before the restore"
	expect_eq "restore" "$out" "chain broken for $dev, a new generation starts: $why"
	gen=$(sed -n 's/^generation_id=//p' $state/info.boot1)
	[ "$(field "$dev" generation_id)" != "$gen" ] || fail "the generation continued"
	expect_eq "chain" "$(field "$dev" chain)" broken
	expect_eq "chain_reason" "$(field "$dev" chain_reason)" "'$why'"
	blksnap detach -d "$dev"
	umount $state
	;;
esac
echo "cbt_reboot: boot $BLKSNAP_BOOT: all checks passed"
