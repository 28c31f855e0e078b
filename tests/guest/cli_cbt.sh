#!/usr/bin/env bash
# columns: stock-6.1
# cost: 140
# vm: --disks 1 --disk-size 256M
# The change tracking commands of blksnap(8), through the CLI only, checked
# by content: version, attach, detach, cbtinfo (plain and JSON),
# readcbtmap against writes at known offsets, markdirtyblock with ranges and
# with a file of an ext4 on a loop device; and every error a user can hit:
# no such device, no CAP_SYS_ADMIN, bad usage (exit 2), -h on every command,
# a whole disk with partitions (attach the partitions: named).
. "$(dirname "$0")/lib.sh"
here=$(dirname "$0")
dev=$(disk 1)
tmp=$(mktemp -d)
size=$((256 << 20))
commands=(version attach detach cbtinfo readcbtmap markdirtyblock snapshot_create
	snapshot_add snapshot_info snapshot_take snapshot_destroy snapshot_collect
	snapshot_waitevent snapshot_watcher)
uuid_re='^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'

. "$(dirname "$0")/cli-helpers.bash"
# not_permitted CMD...: refused without CAP_SYS_ADMIN, exit 1.
not_permitted() {
	run setpriv --bounding-set=-sys_admin "$@"
	[ "$rc" = 1 ] || fail "'$*' without CAP_SYS_ADMIN: exit $rc, want 1 (stderr: $err)"
	case "$err" in
	*"Operation not permitted"* | *"Permission denied"*) ;;
	*) fail "'$*' without CAP_SYS_ADMIN: unexpected message '$err'" ;;
	esac
}
# info_field DEV KEY: a field of the plain cbtinfo output.
info_field() { blksnap cbtinfo -d "$1" | sed -n "s/^$2=//p"; }
map_sum() {
	blksnap readcbtmap -d "$1" -f "$tmp/sum.map"
	xxhsum -H64 - <"$tmp/sum.map" | cut -d' ' -f1
}

step "version equals the module's"
expect_eq version "$(blksnap version)" "$(modinfo -F version "$BLKSNAP_KO")"
blksnap version -j >"$tmp/version.json"
python3 - "$tmp/version.json" "$(blksnap version)" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
want = sys.argv[2]
assert d["version"] == want, d
assert "%d.%d.%d.%d" % (d["major"], d["minor"], d["revision"], d["build"]) == want, d
EOF

step "attach $dev (twice: the second is not an error)"
is_attached "$dev" && fail "$dev attached before the test"
run blksnap attach -d "$dev"
[ "$rc" = 0 ] && [ "$out" = "Attached successfully" ] && [ -z "$err" ] ||
	fail "attach: exit $rc, out '$out', err '$err'"
is_attached "$dev" || fail "$dev not attached"
gen=$(info_field "$dev" generation_id)
expect_eq "second attach" "$(blksnap attach --device "$dev")" "Already was attached"
expect_eq "generation after a second attach" "$(info_field "$dev" generation_id)" "$gen"

step "cbtinfo: plain output"
blksnap cbtinfo -d "$dev" >"$tmp/info"
expect_eq "cbtinfo keys" "$(cut -d= -f1 "$tmp/info" | tr '\n' ' ')" \
	"block_size device_capacity block_count generation_id changes_number "
bs=$(sed -n 's/^block_size=//p' "$tmp/info")
expect_eq block_size "$bs" 65536
expect_eq device_capacity "$(sed -n 's/^device_capacity=//p' "$tmp/info")" $size
expect_eq block_count "$(sed -n 's/^block_count=//p' "$tmp/info")" $((size / 65536))
expect_eq changes_number "$(sed -n 's/^changes_number=//p' "$tmp/info")" 0
[[ $gen =~ $uuid_re ]] || fail "generation_id '$gen' is not a UUID"
expect_eq "generation of the attach" "$(sed -n 's/^generation_id=//p' "$tmp/info")" "$gen"

step "cbtinfo -j / --json agree with the plain output"
blksnap cbtinfo -j -d "$dev" >"$tmp/info.json"
blksnap cbtinfo --json --device "$dev" >"$tmp/info2.json"
cmp -s "$tmp/info.json" "$tmp/info2.json" || fail "-j and --json differ"
expect_eq "json lines" "$(wc -l <"$tmp/info.json")" 1
python3 - "$tmp/info.json" "$tmp/info" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
plain = dict(l.rstrip("\n").split("=", 1) for l in open(sys.argv[2]))
assert list(d) == list(plain), (list(d), list(plain))
for k, v in plain.items():
    want = v if k == "generation_id" else int(v)
    assert d[k] == want, (k, d[k], want)
assert isinstance(d["generation_id"], str)
EOF

step "readcbtmap: a fresh map is all zero, one byte per block"
blksnap readcbtmap -d "$dev" -f "$tmp/map"
expect_eq "map size" "$(stat -c %s "$tmp/map")" $((size / bs))
[ -z "$(tr -d '\0' <"$tmp/map")" ] || fail "fresh map has marked blocks"
blksnap readcbtmap --device "$dev" --file "$tmp/map2"
cmp -s "$tmp/map" "$tmp/map2" || fail "--device/--file map differs"

step "writes at known offsets: exactly their blocks are marked"
: >"$tmp/written"
wr() { # OFFSET LENGTH (bytes, multiples of 512)
	dd if=/dev/urandom of="$dev" bs=512 seek=$(($1 / 512)) count=$(($2 / 512)) \
		oflag=direct conv=notrunc status=none
	echo "$1 $2" >>"$tmp/written"
}
wr 0 4096
wr $((10 * bs + 4096)) 8192
wr $((16 * bs - 4096)) 8192 # straddles blocks 15 and 16
wr $((100 << 20)) $bs
wr $((size - 512)) 512
blksnap readcbtmap -d "$dev" -f "$tmp/map"
python3 "$here/cbt_expect.py" "$tmp/map" "$bs" 1 "$tmp/written"

step "markdirtyblock -r: several ranges after one -r and repeated -r"
run blksnap markdirtyblock -d "$dev" -r 409600:1 450000:256 -r 460000:129 --ranges 500001:8
[ "$rc" = 0 ] && [ -z "$out$err" ] || fail "markdirtyblock: exit $rc, out '$out', err '$err'"
for r in "409600 1" "450000 256" "460000 129" "500001 8"; do
	set -- $r
	echo "$(($1 * 512)) $(($2 * 512))" >>"$tmp/written"
done
blksnap readcbtmap -d "$dev" -f "$tmp/map"
python3 "$here/cbt_expect.py" "$tmp/map" "$bs" 1 "$tmp/written"

step "markdirtyblock -f: a file of an ext4 on a loop device"
need_modules loop ext4
truncate -s 64M "$tmp/ext4.img"
loop=$(losetup -f --show "$tmp/ext4.img")
# A quiet file system: no lazy init, no atime updates in the background.
mkfs.ext4 -q -E lazy_itable_init=0,lazy_journal_init=0 "$loop"
mkdir "$tmp/mnt"
mount -o noatime,noinit_itable "$loop" "$tmp/mnt"
for i in 1 2 3; do # interleaved appends: a file in several extents
	dd if=/dev/urandom of="$tmp/mnt/data" bs=64k count=4 oflag=append conv=notrunc \
		status=none
	dd if=/dev/urandom of="$tmp/mnt/other$i" bs=64k count=3 status=none
	sync
done
: >"$tmp/mnt/empty"
sync
python3 "$here/fiemap_record.py" "$tmp/mnt/data" >"$tmp/extents"
[ -s "$tmp/extents" ] || fail "no extents for the file"
step "attach -d with two devices: $dev (already attached) and $loop"
blksnap attach -d "$dev" "$loop"
is_attached "$loop" || fail "$loop not attached"
expect_eq "generation of $dev after attach" "$(info_field "$dev" generation_id)" "$gen"
blksnap readcbtmap -d "$dev" -f "$tmp/map"
python3 "$here/cbt_expect.py" "$tmp/map" "$bs" 1 "$tmp/written"
lbs=$(info_field "$loop" block_size)
blksnap readcbtmap -d "$loop" -f "$tmp/lmap"
python3 "$here/cbt_expect.py" "$tmp/lmap" "$lbs" 0 "$tmp/extents" --superset ||
	fail "file blocks marked before markdirtyblock -f"
step "markdirtyblock -f on an empty file marks nothing"
before=$(map_sum "$loop")
blksnap markdirtyblock -f "$tmp/mnt/empty"
expect_eq "map after an empty file" "$(map_sum "$loop")" "$before"
step "markdirtyblock -f marks the file's extents, told as the upstream tool tells them"
run blksnap markdirtyblock -f "$tmp/mnt/data"
[ "$rc" = 0 ] && [ -z "$err" ] || fail "markdirtyblock -f: exit $rc, err '$err'"
expect_eq "markdirtyblock -f, first line" "${out%%$'\n'*}" "device path: '$loop'"
# Its ranges, in bytes, are the file's extents.
sed -n 's/^allocate range: ofs=\([0-9]*\) cnt=\([0-9]*\)$/\1 \2/p' <<<"$out" |
	while read -r o c; do echo "$((o * 512)) $((c * 512))"; done >"$tmp/told"
[ "$(wc -l <"$tmp/told")" -eq $(($(wc -l <<<"$out") - 1)) ] ||
	fail "markdirtyblock -f printed '$out'"
[ -s "$tmp/told" ] || fail "markdirtyblock -f told no range"
expect_eq "bytes told by markdirtyblock -f" "$(awk '{ n += $2 } END { print n }' "$tmp/told")" \
	"$(awk '{ n += $2 } END { print n }' "$tmp/extents")"
blksnap readcbtmap -d "$loop" -f "$tmp/lmap"
python3 "$here/cbt_expect.py" "$tmp/lmap" "$lbs" 1 "$tmp/extents" --superset
step "markdirtyblock --file on a tmpfs file (no block device) fails"
echo x >"$tmp/on-tmpfs"
expect_fail 1 blksnap markdirtyblock --file "$tmp/on-tmpfs" -- "$tmp/on-tmpfs"

step "no such device: exit 1, the device and the errno text"
for cmd in attach detach cbtinfo "readcbtmap -f $tmp/nomap" "markdirtyblock -r 0:8" \
	snapshot_info; do
	read -r -a c <<<"$cmd"
	expect_fail 1 blksnap "${c[0]}" -d /dev/nope "${c[@]:1}" -- \
		/dev/nope "No such file or directory"
done
[ ! -e "$tmp/nomap" ] || fail "readcbtmap wrote a map of no device"
run blksnap attach -d "$dev" /dev/nope
[ "$rc" = 1 ] && [ "$out" = "Already was attached" ] &&
	[ "$err" = "blksnap: attach /dev/nope: No such file or directory" ] ||
	fail "attach of $dev and /dev/nope: exit $rc, out '$out', err '$err'"
step "not a block device: exit 1, the operation, the path and the errno text"
for pair in attach:attach detach:detach cbtinfo:cbtinfo snapshot_info:snapshotinfo; do
	expect_fail 1 blksnap "${pair%:*}" -d /tmp -- "blksnap: ${pair#*:} /tmp: Block device required"
done
expect_fail 1 blksnap markdirtyblock -f "$tmp/no-file" -- "$tmp/no-file" \
	"No such file or directory"

step "without CAP_SYS_ADMIN: state-changing commands refused, nothing changes"
before=$(map_sum "$dev")
not_permitted blksnap detach -d "$dev"
is_attached "$dev" || fail "detached without CAP_SYS_ADMIN"
not_permitted blksnap markdirtyblock -d "$dev" -r 0:8
not_permitted blksnap markdirtyblock -f "$tmp/mnt/other1"
expect_eq "map after refused commands" "$(map_sum "$dev")" "$before"
umount "$tmp/mnt"
blksnap detach -d "$loop"
not_permitted blksnap attach -d "$loop"
is_attached "$loop" && fail "attached without CAP_SYS_ADMIN"

step "bad usage: exit 2, nothing on stdout"
expect_fail 2 blksnap -- "Command not found."
run blksnap help
[ "$rc" = 0 ] && [[ $out == *snapshot_watcher* ]] && [ -z "$err" ] ||
	fail "blksnap help: exit $rc, out '$out', err '$err'"
expect_fail 2 blksnap nosuchcommand -- "nosuchcommand"
expect_fail 2 blksnap cbtinfo -d "$dev" --bogus -- "--bogus"
expect_fail 2 blksnap attach -x "$dev" --
for c in attach detach cbtinfo readcbtmap snapshot_info; do
	expect_fail 2 blksnap $c -- "--device"
done
expect_fail 2 blksnap readcbtmap -d "$dev" -- "--file"
expect_fail 2 blksnap markdirtyblock -d "$dev" -- "--ranges"
expect_fail 2 blksnap markdirtyblock -r 0:8 -- "--device"
expect_fail 2 blksnap markdirtyblock -- "--file"
expect_fail 2 blksnap markdirtyblock -d "$dev" -r 0:8 -f "$tmp/mnt/data" -- "--file"
for r in x 8 1:0 1: :5 -1:5 1:-5 1:2:3 0x10:1 "1 :2" 1:2x 99999999999999999999:1; do
	expect_fail 2 blksnap markdirtyblock -d "$dev" -r "$r" -- "--ranges"
done
expect_fail 2 blksnap markdirtyblock -d "$dev" -r 0:8 bad -- "bad"
expect_eq "map after bad usage" "$(map_sum "$dev")" "$before"

step "-h (or --help) on every command: exit 0, usage on stdout"
run blksnap -h
[ "$rc" = 0 ] || fail "blksnap -h: exit $rc"
for c in "${commands[@]}"; do
	[[ $out == *"$c"* ]] || fail "blksnap -h does not list $c"
done
for c in "${commands[@]}"; do
	h=-h
	case $c in attach | snapshot_create | snapshot_watcher) h=--help ;; esac
	run blksnap "$c" $h
	[ "$rc" = 0 ] || fail "$c $h: exit $rc ($err)"
	[[ $out == *"$c"* && $out == *--help* ]] || fail "$c $h: no usage: '$out'"
	case $c in version | snapshot_collect | snapshot_create) ;;
	*) [[ $out == *"-i,--id"* || $out == *"-d,--device"* ]] ||
		fail "$c -h does not describe its options: '$out'" ;;
	esac
done
run blksnap cbtinfo -h -d /dev/nope # help wins over the rest
[ "$rc" = 0 ] || fail "cbtinfo -h -d /dev/nope: exit $rc"

step "a whole disk with partitions: attach and snapshot_create name them and what to do"
truncate -s 16M "$tmp/parts.img"
mbr "$tmp/parts.img" 2048 8192 10240 8192
ploop=$(losetup -f --show -P "$tmp/parts.img")
wait_for_dev "${ploop}p2"
pname=${ploop#/dev/}
for cmd in "attach -d $ploop" "snapshot_create -d $ploop -f $tmp -l 16M"; do
	read -r -a c <<<"$cmd"
	expect_fail 1 blksnap "${c[@]}" -- "attach $ploop: " "partitions (${pname}p1, ${pname}p2)" \
		"attach the partitions instead (blksnap attach -d ${ploop}p1 ${ploop}p2)" \
		"(Device or resource busy)"
done
is_attached "$ploop" && fail "$ploop attached"
expect_eq "snapshots after the refusals" "$(blksnap snapshot_collect)" ""
losetup -d "$ploop"

step "detach: tracking ends, cbtinfo fails, a new attach is a new generation"
run blksnap detach --device "$dev"
[ "$rc" = 0 ] && [ -z "$out$err" ] || fail "detach: exit $rc, out '$out', err '$err'"
is_attached "$dev" && fail "$dev still attached"
expect_fail 1 blksnap cbtinfo -d "$dev" -- "$dev"
expect_fail 1 blksnap detach -d "$dev" -- "$dev"
blksnap attach -d "$dev"
gen2=$(info_field "$dev" generation_id)
[[ $gen2 =~ $uuid_re && $gen2 != "$gen" ]] || fail "generation after reattach: '$gen2'"
blksnap readcbtmap -d "$dev" -f "$tmp/map"
[ -z "$(tr -d '\0' <"$tmp/map")" ] || fail "map of the new generation is not empty"
blksnap detach -d "$dev"
losetup -d "$loop"
echo "cli_cbt: all checks passed in ${SECONDS}s"
