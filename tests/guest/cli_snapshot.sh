#!/usr/bin/env bash
# columns: stock-6.1
# cost: 250
# vm: --disks 3 --disk-size 256M
# The snapshot commands of blksnap(8), through the CLI only, checked by
# content: snapshot_create (several devices; storage in a directory, a file,
# a block device; limits with K/M/G), snapshot_add, snapshot_take,
# snapshot_info (plain, -f, -j), snapshot_collect, snapshot_waitevent
# (timeout and a real overflow event), snapshot_watcher (as upstream: the
# first corruption, or "The snapshot no longer exists."), snapshot_destroy;
# and the errors a user can hit: unknown or malformed UUIDs, bad limits, a
# device already in a snapshot, storage in use or on a snapshot device's
# disk, no such device, no CAP_SYS_ADMIN.
. "$(dirname "$0")/lib.sh"
d1=$(disk 1)
d2=$(disk 2)
d3=$(disk 3)
tmp=$(mktemp -d)
uuid_re='^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
nouuid=0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0

. "$(dirname "$0")/cli-helpers.bash"
# ok CMD...: CMD succeeds silently.
ok() {
	run "$@"
	[ "$rc" = 0 ] && [ -z "$out$err" ] || fail "'$*': exit $rc, out '$out', err '$err'"
}
# create ARGS...: snapshot_create must print exactly one UUID and nothing
# else; leaves it in $id.
create() {
	run blksnap snapshot_create "$@"
	[ "$rc" = 0 ] || fail "snapshot_create $*: exit $rc ($err)"
	[ -z "$err" ] || fail "snapshot_create $*: stderr '$err'"
	[[ $out =~ $uuid_re ]] || fail "snapshot_create $*: printed '$out', not one UUID"
	id=$out
}
# collect_is UUID...: snapshot_collect lists exactly these.
collect_is() {
	local want got
	want=$(printf '%s\n' "$@" | sed '/^$/d' | sort)
	got=$(blksnap snapshot_collect | sort)
	expect_eq "snapshot_collect" "$got" "$want"
}
# collect_json_is UUID...: the same with -j.
collect_json_is() {
	local want got
	want=$(printf '%s\n' "$@" | sed '/^$/d' | sort)
	got=$(blksnap snapshot_collect -j | python3 -c \
		'import json,sys; print("\n".join(sorted(json.load(sys.stdin)["snapshots"])))')
	expect_eq "snapshot_collect -j" "$got" "$want"
}
mm() { # MAJ:MIN of a block device
	local r
	slurp r "/sys/class/block/$(basename "$(readlink -f "$1")")/dev"
	echo "$r"
}
sum16() { # xxh64 of the first 16 MiB
	dd if="$1" bs=1M count=16 iflag=direct status=none | xxhsum -H64 - | cut -d' ' -f1
}
excl_free() { # can DEV be opened with O_EXCL?
	python3 -c 'import os,sys; os.close(os.open(sys.argv[1], os.O_RDONLY | os.O_EXCL))' \
		"$1" 2>/dev/null
}
# wait_exit PID: wait up to 10 s for a background job to end; its status in $wrc.
wait_exit() {
	local i
	for i in $(seq 100); do
		kill -0 "$1" 2>/dev/null || break
		sleep 0.1
	done
	kill -0 "$1" 2>/dev/null && fail "process $1 still running"
	wrc=0
	wait "$1" || wrc=$?
}

step "storage file system: ext4 on a sparse loop file; known data on $d1 and $d2"
need_modules loop ext4
truncate -s 1200M "$tmp/st.img"
loop=$(losetup -f --show "$tmp/st.img")
mkfs.ext4 -q "$loop"
st=$tmp/st
mkdir "$st"
mount -o noinit_itable "$loop" "$st"
mkdir "$st/dir"
for d in "$d1" "$d2"; do
	dd if=/dev/urandom of="$d" bs=1M count=16 oflag=direct status=none
done
m1=$(mm "$d1")
m2=$(mm "$d2")

step "snapshot_create -d DEV -f DIR: prints only a UUID, attaches the device"
collect_is
collect_json_is
create -d "$d1" -f "$st/dir" -l 64M
A=$id
is_attached "$d1" || fail "$d1 not attached by snapshot_create"
[ -z "$(ls -A "$st/dir")" ] || fail "directory storage left a name: $(ls -A "$st/dir")"
run blksnap snapshot_info -d "$d1"
expect_eq "info before take" "$out" $'error_code=0\nimage='

step "snapshot_add attaches and adds $d2"
is_attached "$d2" && fail "$d2 attached already"
ok blksnap snapshot_add -d "$d2" -i "$A"
is_attached "$d2" || fail "$d2 not attached by snapshot_add"

step "snapshot_create --file FILE (created), no devices"
create --file "$st/fileB" --limit 3072K
B=$id
[ -f "$st/fileB" ] || fail "storage file not created"
collect_is "$A" "$B"
collect_json_is "$A" "$B"

step "a device already in a snapshot: Device or resource busy, naming the snapshot"
expect_fail 1 blksnap snapshot_add -d "$d1" -i "$A" -- "$d1" "Device or resource busy" \
	"already in this snapshot ($A)"
expect_fail 1 blksnap snapshot_add -d "$d1" -i "$B" -- "$d1" "Device or resource busy" \
	"held by snapshot $A"
expect_fail 1 blksnap snapshot_create -d "$d2" -f "$st/fileX" -l 4M -- \
	"$d2" "Device or resource busy" "held by snapshot $A"
collect_is "$A" "$B"

step "no such device: exit 1 naming it; nothing left behind"
expect_fail 1 blksnap snapshot_add -d /dev/nope -i "$B" -- /dev/nope "No such file or directory"
expect_fail 1 blksnap snapshot_create -d /dev/nope -f "$st/dir" -l 4M -- \
	/dev/nope "No such file or directory"
expect_fail 1 blksnap snapshot_info -d /dev/nope -- /dev/nope "No such file or directory"
collect_is "$A" "$B"

step "without CAP_SYS_ADMIN: create, add, take, destroy refused"
for cmd in "snapshot_create -f $st/dir -l 4M" "snapshot_add -d $d3 -i $B" \
	"snapshot_take -i $A" "snapshot_destroy -i $A"; do
	read -r -a c <<<"$cmd"
	run setpriv --bounding-set=-sys_admin blksnap "${c[@]}"
	[ "$rc" = 1 ] || fail "$cmd without CAP_SYS_ADMIN: exit $rc, want 1"
	case "$err" in
	*"Operation not permitted"* | *"Permission denied"*) ;;
	*) fail "$cmd without CAP_SYS_ADMIN: unexpected message '$err'" ;;
	esac
done
collect_is "$A" "$B"
is_attached "$d3" && fail "$d3 attached without CAP_SYS_ADMIN"

step "snapshot_waitevent: result=timeout after the timeout, exit 0"
t0=$EPOCHREALTIME
ok_out=$(blksnap snapshot_waitevent -i "$A" -t 300)
t1=$EPOCHREALTIME
expect_eq "waitevent output" "$ok_out" "result=timeout"
ms=$(((${t1/./} - ${t0/./}) / 1000))
[ "$ms" -ge 290 ] || fail "snapshot_waitevent -t 300 returned after $ms ms"
expect_eq "waitevent -j" "$(blksnap snapshot_waitevent --id "$A" --timeout 1 -j)" \
	'{"result":"timeout"}'

step "snapshot_take: images of both devices, snapshot_info plain / -f / -j"
before1=$(sum16 "$d1")
before2=$(sum16 "$d2")
ok blksnap snapshot_take --id "$A"
for pair in "$d1 $m1" "$d2 $m2"; do
	set -- $pair
	img=/dev/blksnap-image_$2
	[ -b "$img" ] || fail "no image $img"
	expect_eq "image size" "$(blockdev --getsize64 "$img")" "$(blockdev --getsize64 "$1")"
	run blksnap snapshot_info -d "$1"
	expect_eq "snapshot_info $1" "$out" "error_code=0"$'\n'"image=$img"
	expect_eq "-f image" "$(blksnap snapshot_info -d "$1" -f image)" "$img"
	expect_eq "--field error_code" "$(blksnap snapshot_info --device "$1" --field error_code)" 0
	expect_eq "-j" "$(blksnap snapshot_info -d "$1" -j)" "{\"error_code\":0,\"image\":\"$img\"}"
	expect_eq "-j -f image" "$(blksnap snapshot_info -d "$1" -j -f image)" "{\"image\":\"$img\"}"
done
expect_eq "changes_number after take" \
	"$(blksnap cbtinfo -d "$d1" | sed -n 's/^changes_number=//p')" 1
expect_fail 1 blksnap snapshot_take -i "$A" -- "$A"

step "overwrite the originals: images keep the content at the take"
for d in "$d1" "$d2"; do
	dd if=/dev/urandom of="$tmp/new" bs=1M count=16 status=none
	dd if="$tmp/new" of="$d" bs=1M oflag=direct status=none
	expect_eq "original $d" "$(sum16 "$d")" "$(xxhsum -H64 - <"$tmp/new" | cut -d' ' -f1)"
done
expect_eq "image of $d1" "$(sum16 "/dev/blksnap-image_$m1")" "$before1"
expect_eq "image of $d2" "$(sum16 "/dev/blksnap-image_$m2")" "$before2"
expect_eq "error_code after writes" "$(blksnap snapshot_info -d "$d1" -f error_code)" 0

step "snapshot_watcher runs until the snapshot is destroyed (no corruption)"
blksnap snapshot_watcher -i "$A" >"$tmp/watch" 2>&1 &
watcher=$!
ok blksnap snapshot_destroy -i "$B"
collect_is "$A"
[ -f "$st/fileB" ] || fail "a named storage file was removed"
sleep 1
kill -0 "$watcher" 2>/dev/null || fail "snapshot_watcher ended early: $(cat "$tmp/watch")"
ok blksnap snapshot_destroy --id "$A"
wait_exit "$watcher"
expect_eq "watcher status" "$wrc" 0
expect_eq "watcher output" "$(cat "$tmp/watch")" \
	"Start snapshot watcher."$'\n'"The snapshot no longer exists."$'\n'"Snapshot watcher finished."
[ ! -e "/dev/blksnap-image_$m1" ] && [ ! -e "/dev/blksnap-image_$m2" ] ||
	fail "images left after destroy"
collect_is
is_attached "$d1" && is_attached "$d2" || fail "tracking ended with the snapshot"
expect_fail 1 blksnap snapshot_destroy -i "$A" -- "$A" "No such file or directory"

step "block device storage: opened O_EXCL, refused while someone holds it"
python3 -c 'import os,sys,time
os.open(sys.argv[1], os.O_RDONLY | os.O_EXCL)
print("held", flush=True)
time.sleep(120)' "$d3" >"$tmp/held" &
holder=$!
for i in $(seq 100); do
	[ -s "$tmp/held" ] && break
	sleep 0.1
done
[ -s "$tmp/held" ] || fail "could not hold $d3"
expect_fail 1 blksnap snapshot_create -d "$d1" "$d2" -f "$d3" -l 64M -- \
	"$d3" "Device or resource busy"
collect_is
kill "$holder"
wait "$holder" || true
excl_free "$d3" || fail "$d3 still held"
create -d "$d1" "$d2" -f "$d3" -l 64M
C=$id
excl_free "$d3" && fail "$d3 not held exclusively while it is the storage"
before1=$(sum16 "$d1")
ok blksnap snapshot_take -i "$C"
dd if=/dev/urandom of="$d1" bs=1M count=4 seek=2 oflag=direct status=none
expect_eq "image on block device storage" "$(sum16 "/dev/blksnap-image_$m1")" "$before1"
ok blksnap snapshot_destroy -i "$C"
excl_free "$d3" || fail "$d3 still held after destroy"

step "limits with suffixes: the storage file grows to exactly the limit"
for spec in 1G:1073741824 3072K:3145728 4194304:4194304; do
	create --device "$d1" -f "$st/lim" -l "${spec%:*}"
	ok blksnap snapshot_take -i "$id"
	dd if=/dev/urandom of="$d1" bs=64k count=1 seek=1024 oflag=direct status=none
	sync
	expect_eq "storage size for -l ${spec%:*}" "$(stat -c %s "$st/lim")" "${spec#*:}"
	ok blksnap snapshot_destroy -i "$id"
	rm "$st/lim"
done

step "overflow: -l 2M, write 8 MiB; snapshot_waitevent gets result=ok, event=corrupted, -28"
create -d "$d1" -f "$st/ovf1" -l 2M
ok blksnap snapshot_take -i "$id"
dd if=/dev/urandom of="$tmp/new" bs=1M count=8 status=none
dd if="$tmp/new" of="$d1" bs=1M seek=32 oflag=direct status=none
run blksnap snapshot_waitevent -i "$id" -t 20000
[ "$rc" = 0 ] || fail "waitevent: exit $rc ($err)"
# shellcheck disable=SC1011 # $'\n' inside the pattern, not a quote
[[ $out =~ ^result=ok$'\n'time=[0-9]+$'\n'event=corrupted$'\n'dev_id=$m1$'\n'err_code=-28$ ]] ||
	fail "waitevent printed '$out'"
expect_eq "error_code" "$(blksnap snapshot_info -d "$d1" -f error_code)" -28
run blksnap snapshot_info -d "$d1"
[[ $out == "error_code=-28"$'\n'"image="* ]] || fail "snapshot_info: '$out'"
expect_eq "storage size" "$(stat -c %s "$st/ovf1")" $((2 << 20))
expect_eq "original after overflow" \
	"$(dd if="$d1" bs=1M skip=32 count=8 iflag=direct status=none | xxhsum -H64 - | cut -d' ' -f1)" \
	"$(xxhsum -H64 - <"$tmp/new" | cut -d' ' -f1)"
expect_eq "waitevent after the event" "$(blksnap snapshot_waitevent -i "$id" -t 10)" \
	"result=timeout"
ok blksnap snapshot_destroy -i "$id"

step "overflow seen by snapshot_watcher, which ends at the first corruption"
create -d "$d2" -f "$st/ovf2" -l 2M
blksnap snapshot_watcher -i "$id" >"$tmp/watch" 2>&1 &
watcher=$!
ok blksnap snapshot_take -i "$id"
dd if=/dev/urandom of="$d2" bs=1M count=8 seek=32 oflag=direct status=none
for i in $(seq 200); do
	grep -q '^Snapshot watcher finished' "$tmp/watch" && break
	sleep 0.1
done
wait_exit "$watcher"
expect_eq "watcher status" "$wrc" 0
slurp w "$tmp/watch"
# shellcheck disable=SC2154 # w: set by slurp
[[ $w =~ ^"Start snapshot watcher."$'\n'[0-9]+" - The snapshot was corrupted for device [$m2] with error \"No space left on device\"."$'\n'"Snapshot watcher finished."$ ]] ||
	fail "watcher printed '$w'"
ok blksnap snapshot_destroy -i "$id"
collect_is

step "storage on the disk of a snapshot device: Invalid argument"
parted -s "$d3" mklabel gpt mkpart a 1MiB 128MiB mkpart b 128MiB 100%
p1=${d3}1
p2=${d3}2
wait_for_dev "$p1"
wait_for_dev "$p2"
expect_fail 1 blksnap snapshot_create -d "$p1" -f "$p2" -l 16M -- "$p1" "Invalid argument"
collect_is
excl_free "$p2" || fail "$p2 still held after the refused create"
create -f "$p2" -l 16M
expect_fail 1 blksnap snapshot_add -d "$p1" -i "$id" -- "$p1" "Invalid argument"
ok blksnap snapshot_destroy -i "$id"
expect_fail 1 blksnap snapshot_create -d "$p1" -f "$d3" -l 16M -- "$p1" "Invalid argument"
expect_fail 1 blksnap snapshot_create -d "$d1" -f "$d1" -l 16M -- "$d1" "Invalid argument"
collect_is

step "unknown UUID: exit 1, the UUID and the errno text (waitevent: result=not found; watcher: as upstream, gone)"
for cmd in snapshot_take snapshot_destroy "snapshot_add -d $d1"; do
	read -r -a c <<<"$cmd"
	expect_fail 1 blksnap "${c[@]}" -i "$nouuid" -- "$nouuid" "No such file or directory"
done
run blksnap snapshot_waitevent -t 10 -i "$nouuid"
[ "$rc" = 0 ] && [ "$out" = "result=not found" ] && [ -z "$err" ] ||
	fail "waitevent of an unknown snapshot: exit $rc, out '$out', err '$err'"
run blksnap snapshot_watcher -i "$nouuid"
[ "$rc" = 0 ] && [ -z "$err" ] && [ "$out" = "Start snapshot watcher."$'\n'"The snapshot no longer exists."$'\n'"Snapshot watcher finished." ] ||
	fail "watcher of an unknown snapshot: exit $rc, out '$out', err '$err'"
collect_is

step "bad usage: exit 2"
for bad in nope "${nouuid%?}" "${nouuid}0" "${nouuid//-/}x" ""; do
	expect_fail 2 blksnap snapshot_take -i "$bad" -- "--id"
done
for cmd in snapshot_destroy "snapshot_waitevent -t 10" snapshot_watcher "snapshot_add -d $d1"; do
	read -r -a c <<<"$cmd"
	expect_fail 2 blksnap "${c[@]}" -i "${nouuid/f/g}" -- "--id"
done
for l in 1X -5 abc 5.5M "" M 1KM 0x10 5MiB 18446744073709551616 17179869184G; do
	expect_fail 2 blksnap snapshot_create -f "$st/badlim" -l "$l" -- "--limit"
done
[ ! -e "$st/badlim" ] || fail "a bad limit created the storage file"
expect_fail 2 blksnap snapshot_create -f "$st/badlim" -- "--limit"
expect_fail 2 blksnap snapshot_create -l 4M -- "--file"
expect_fail 2 blksnap snapshot_take -- "--id"
expect_fail 2 blksnap snapshot_info -d "$d1" -f size -- "--field"
expect_fail 2 blksnap snapshot_waitevent -i "$nouuid" -- "--timeout"
expect_fail 2 blksnap snapshot_waitevent -i "$nouuid" -t soon -- "--timeout"
expect_fail 2 blksnap snapshot_waitevent -i "$nouuid" -t -1 --
expect_fail 2 blksnap snapshot_collect extra --
collect_is

step "storage that cannot be used"
expect_fail 1 blksnap snapshot_create -f /dev/null -l 4M -- /dev/null
expect_fail 1 blksnap snapshot_create -f "$st/no/such/dir/file" -l 4M -- \
	"$st/no/such/dir/file" "No such file or directory"
collect_is

blksnap detach -d "$d1" "$d2" "$p1"
umount "$st"
losetup -d "$loop"
echo "cli_snapshot: all checks passed in ${SECONDS}s"
