#!/usr/bin/env bash
# cost: 30
# boots: 4
# columns: stock-6.1 stock-6.12 checkers
# vm: --disk 32M --disk 16M --disk 8M
# skip-columns: checkers+ftrace
# A change map kept across reboots by the unit itself (tests/check.sh boots
# four guests on the same disks). The guests have no systemd: each boot
# runs the ExecStartPre/ExecStart/ExecStartPost lines of the repository's
# systemd/blksnap-cbt@.service as systemd runs them at boot, and at
# shutdown its ExecStop/ExecStopPost lines when the unit is active (see
# unit_start and unit_stop), for the units enabled for the data disk and a
# second device, with /var/lib/blksnap (the unit's state directory) on the
# second disk.
# Boot 1: the units enabled, nothing saved yet: a new generation, and why;
# tracked writes and a take (a full backup); shutdown saves.
# Boot 2: the data disk continues its generation, changes number and map
# exactly; the next backup is incremental and equals the device; a new
# write has the next number. The other device was written before its unit
# started: a new generation, and why. Shutdown saves both.
# Boot 3: the module is not loaded: the unit's first step still takes the
# data disk's save aside, its restore fails and so does the unit, which
# then saves nothing at shutdown; the disk is written, untracked. The other
# device's unit does not run (as when its device is absent).
# Boot 4: both chains break, and say why: the data disk's map was taken by
# a boot that did not restore it, the other's was saved two boots ago.
# Not in the debug kernel's ftrace column: the unit's steps across boots are
# user space over the map ioctls both interceptions share; stock-6.1 and
# stock-6.12 run it with ftrace.
. "$(dirname "$0")/lib.sh"
dev=$(disk 1)
state_dev=$(disk 2)
other=$(disk 3)
mnt=/mnt/state # the second disk: the state directory and the test's files
lib=/var/lib/blksnap
unit_file=systemd/blksnap-cbt@.service
field() { blksnap cbtinfo -d "$1" | sed -n "s/^$2=//p"; }
map_byte() { od -An -tu1 -j "$2" -N1 "$1" | tr -d ' '; }
wr() { dd if=/dev/urandom of="$1" bs=4k count=1 seek="$2" oflag=direct conv=notrunc status=none; }
# backup_mode: a backup of $dev into the state disk; prints its mode.
backup_mode() {
	mkdir -p $mnt/bk
	blksnap backup -d "$dev" -o $mnt/bk -f /tmp -l 16M --json | python3 -c \
		'import json, sys; print(json.load(sys.stdin)["mode"])'
}

# The unit as systemd runs it. The [Service] keys it knows; any other (an
# Environment=, another Type) fails the test: the emulation would no longer
# be faithful.
declare -A unit_state=() # instance -> active, failed
declare -A unit_path=()  # instance -> its unescaped path
service_keys() { sed -n '/^\[Service\]/,/^\[/{/^[A-Za-z]/p}' "$unit_file"; }
while IFS= read -r line; do
	case $line in
	Type=oneshot | RemainAfterExit=yes | ExecStartPre=* | ExecStart=* | ExecStartPost=* | \
		ExecStop=* | ExecStopPost=*) ;;
	*) fail "$unit_file: '$line' is not emulated" ;;
	esac
done < <(service_keys)
# exec_lines KEY: that key's command lines, in the unit's order.
exec_lines() {
	local line
	while IFS= read -r line; do
		[ "${line%%=*}" != "$1" ] || echo "${line#*=}"
	done < <(service_keys)
}
# run_line INSTANCE LINE: one command line with the specifiers of
# INSTANCE (%i the instance, %I and %f its unescaped path, %% a %); its
# status, 0 when it failed with the '-' prefix. Its output goes to
# /tmp/journal.INSTANCE. The unit's /usr/sbin/blksnap is the one under test.
run_line() {
	local inst=$1 line=$2 ignore='' w words=() out rest path
	[ -n "${unit_path[$inst]:-}" ] || unit_path[$inst]=$(systemd-escape --unescape --path "$inst")
	path=${unit_path[$inst]}
	[[ $line != -* ]] || { ignore=1 line=${line#-}; }
	[[ $line != [@:+!]* ]] || fail "unit: the prefix of '$2' is not emulated"
	[[ $line != *[\"\'\\\$]* ]] || fail "unit: quotes or variables in '$2' are not emulated"
	read -r -a words <<<"$line"
	for w in "${!words[@]}"; do
		out='' rest=${words[w]}
		while [[ $rest == *%* ]]; do
			out+=${rest%%\%*}
			rest=${rest#*%}
			case ${rest:0:1} in
			i) out+=$inst ;;
			I | f) out+=$path ;;
			%) out+=% ;;
			*) fail "unit: specifier %${rest:0:1} in '$2' is not emulated" ;;
			esac
			rest=${rest:1}
		done
		words[w]=$out$rest
	done
	[ "${words[0]}" = /usr/sbin/blksnap ] || fail "unit: runs ${words[0]}, not emulated"
	words[0]=blksnap
	echo "> ${words[*]}" >>"/tmp/journal.$inst"
	"${words[@]}" >>"/tmp/journal.$inst" 2>&1 && return 0
	echo "> exit $?${ignore:+ (ignored: '-')}" >>"/tmp/journal.$inst"
	[ -n "$ignore" ]
}
# unit_start INSTANCE: at boot, Type=oneshot: every ExecStartPre, then
# ExecStart, then ExecStartPost line, stopping at the first that fails
# (the unit failed: its ExecStopPost lines run); active otherwise
# (RemainAfterExit=yes).
unit_start() {
	local key line
	unit_state[$1]=active
	for key in ExecStartPre ExecStart ExecStartPost; do
		while IFS= read -r line; do
			run_line "$1" "$line" || { unit_state[$1]=failed; break 2; }
		done < <(exec_lines $key)
	done
	[ "${unit_state[$1]}" = active ] && return
	while IFS= read -r line; do run_line "$1" "$line" || true; done < <(exec_lines ExecStopPost)
}
# unit_stop INSTANCE: at shutdown, an active unit's ExecStop lines (to the
# first that fails), then its ExecStopPost lines; nothing for a failed one.
unit_stop() {
	local line
	[ "${unit_state[$1]:-}" = active ] || return 0
	while IFS= read -r line; do
		run_line "$1" "$line" || break
	done < <(exec_lines ExecStop)
	while IFS= read -r line; do run_line "$1" "$line" || true; done < <(exec_lines ExecStopPost)
	unit_state[$1]=inactive
}
# The instances, as `systemctl enable blksnap-cbt@$(systemd-escape --path
# DEV).service` names them; enabled ones are listed on the state disk.
instance() { systemd-escape --path "$1"; }
unit_enable() { instance "$1" >>$mnt/enabled; }
# boot [INSTANCE...]: the root file system (the state disk) mounted, then
# the enabled units started, all but the INSTANCEs (their device absent).
boot() {
	local inst
	mount "$state_dev" $mnt
	cat /proc/sys/kernel/random/boot_id >$mnt/boot.$BLKSNAP_BOOT
	mkdir -p $lib
	mount --bind $mnt/lib $lib
	[ -e $mnt/enabled ] || return 0
	while read -r inst; do
		[[ " $* " == *" $inst "* ]] || unit_start "$inst"
	done <$mnt/enabled
}
shut_down() {
	local inst
	while read -r inst; do unit_stop "$inst"; done < <(tac $mnt/enabled)
	umount $lib
	umount $mnt
}
# journal DEV: what its unit printed in this boot.
journal() { cat "/tmp/journal.$(instance "$1")" 2>/dev/null; }
# expect_unit DEV STATE
expect_unit() {
	[ "${unit_state[$(instance "$1")]:-}" = "$2" ] ||
		fail "the unit of $1 is '${unit_state[$(instance "$1")]:-not started}', not $2: $(journal "$1")"
}
# expect_broken DEV REASON: its unit started a new generation for REASON,
# which cbtinfo tells.
expect_broken() {
	expect_unit "$1" active
	[[ $(journal "$1") == *"chain broken for $1, a new generation starts: $2"* ]] ||
		fail "the unit of $1, chain broken for '$2': $(journal "$1")"
	expect_eq "chain of $1" "$(field "$1" chain)" broken
	expect_eq "chain_reason of $1" "$(field "$1" chain_reason)" "'$2'"
}

case ${BLKSNAP_BOOT:?run by tests/check.sh, boots: 4} in
1)
	step "boot 1: the units enabled, nothing saved yet: new generations, and why"
	mkdir -p $mnt
	mkfs.ext4 -q -F "$state_dev"
	mount "$state_dev" $mnt
	mkdir $mnt/lib
	unit_enable "$dev"
	unit_enable "$other"
	umount $mnt
	boot
	why="no saved change map (the last shutdown or detach did not save one)"
	expect_broken "$dev" "$why"
	expect_broken "$other" "$why"
	is_attached "$dev" || fail "the unit left $dev detached"
	step "boot 1: tracked writes and a take, then shutdown saves the maps"
	wr "$dev" 0
	expect_eq "first backup" "$(backup_mode)" full
	wr "$dev" 1000
	wr "$other" 0
	blksnap readcbtmap -d "$dev" -f $mnt/map.boot1
	blksnap cbtinfo -d "$dev" | grep -v '^chain' >$mnt/info.boot1
	shut_down
	mount "$state_dev" $mnt
	[ -s $mnt/lib/"${dev#/dev/}".saved ] && [ -s $mnt/lib/"${other#/dev/}".saved ] ||
		fail "the units saved nothing at shutdown: $(journal "$dev")"
	umount $mnt
	;;
2)
	step "boot 2: the data disk restored by its unit before any write: the generation continues"
	mkdir -p $mnt
	# Something writes to the other device before its unit runs.
	wr "$other" 5
	boot
	expect_unit "$dev" active
	gen=$(sed -n 's/^generation_id=//p' $mnt/info.boot1)
	[[ $(journal "$dev") == *"restored $dev: generation_id=$gen changes_number=1"* ]] ||
		fail "the unit of $dev: $(journal "$dev")"
	blksnap cbtinfo -d "$dev" | grep -v '^chain' | cmp - $mnt/info.boot1 ||
		fail "cbtinfo differs from boot 1"
	expect_eq "chain" "$(field "$dev" chain)" continued
	blksnap readcbtmap -d "$dev" -f /tmp/map
	cmp /tmp/map $mnt/map.boot1 || fail "the map differs from boot 1's"
	step "boot 2: the next backup is incremental and exact"
	expect_eq "backup after the reboot" "$(backup_mode)" incremental
	cmp $mnt/bk/"$(basename "$dev")".img "$dev" || fail "the backup differs from the device"
	step "boot 2: a new write has the next number"
	bs=$(field "$dev" block_size)
	wr "$dev" 2000
	blksnap readcbtmap -d "$dev" -f /tmp/map
	expect_eq "map byte of the new write" "$(map_byte /tmp/map $((2000 * 4096 / bs)))" 3
	step "boot 2: the other device, written before its unit: a new generation, and why"
	expect_broken "$other" "the device was written since boot, before the restore"
	shut_down
	;;
3)
	step "boot 3: the module not loaded: the unit's first step takes the save, the unit fails"
	rmmod blksnap
	mkdir -p $mnt
	boot "$(instance "$other")"
	expect_unit "$dev" failed
	[[ $(journal "$dev") == *"blksnap module not loaded"* ]] ||
		fail "the unit of $dev without the module: $(journal "$dev")"
	name=${dev#/dev/}
	taken=$lib/taken/$(<$mnt/boot.3)
	[ ! -e $lib/"$name".saved ] && [ -s "$taken/$name.saved" ] && [ -s "$taken/$name.cbt" ] ||
		fail "the save of $dev was not taken aside: $(journal "$dev"); $(ls -R $lib)"
	[ -s $lib/"${other#/dev/}".saved ] || fail "the save of $other (its unit not run) was taken"
	step "boot 3: the disk written untracked; shutdown saves nothing"
	wr "$dev" 3000
	shut_down
	mount "$state_dev" $mnt
	[ ! -e $mnt/lib/"$name".saved ] || fail "a failed unit saved $dev at shutdown"
	umount $mnt
	;;
4)
	step "boot 4: a new generation for both, and why"
	mkdir -p $mnt
	boot
	expect_broken "$dev" "the map saved in boot $(<$mnt/boot.2) was taken at boot \
$(<$mnt/boot.3), which did not restore it (no module, or cbtrestore failed): the device went \
a boot untracked"
	expect_broken "$other" "the map was saved in boot $(<$mnt/boot.2), not in the boot before \
this one ($(<$mnt/boot.3)): the device went a boot untracked"
	[ -z "$(find $lib/taken -type f)" ] || fail "taken files left: $(ls -R $lib/taken)"
	blksnap detach -d "$dev"
	blksnap detach -d "$other"
	umount $lib
	umount $mnt
	;;
esac
echo "cbt_reboot: boot $BLKSNAP_BOOT: all checks passed"
