#!/usr/bin/env bash
# cost: 110
# vm: --disks 1 --disk-size 24M
# smoke
# skip-columns: checkers+ftrace
# blksnapfs shows a taken snapshot: image.raw read with cp, dd (O_DIRECT)
# and rsync equals the device at the take while the original is written;
# cbt.map equals `blksnap readcbtmap`; info describes the device; the image
# mounts (loop, read-only) with the files as they were; --page-cache gives
# the same content and shared mmap; the snapshot's
# directory goes with destroy, and a cbt.map open then fails its reads
# with EIO (never the live map); the daemon ends on unmount.
# Not in the debug kernel's ftrace column: blksnapfs's image files read the
# image devices, whose code both interceptions share; stock-6.1 runs it with
# ftrace.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/fs-helpers.bash"
need_modules loop
dev=$(disk 1)
name=$(basename "$dev")
tmp=$(mktemp -d)
orig=/mnt/orig
copy=/mnt/copy

step "ext4 with files on $dev"
make_files "$dev" "$orig" "$tmp/files.sum"

step "snapshot taken (the take freezes the mounted file system itself)"
id=$(blksnap snapshot_create -d "$dev" -f "$tmp" -l 300M)
blksnap snapshot_take -i "$id"
image=$(blksnap snapshot_info -d "$dev" -f image)
want=$(xsum "$image")

step "blksnapfs shows it"
fs_start
dir=$snap/$id/$name
expect_eq "root" "$(ls "$snap")" "$id"
expect_eq "snapshot dir" "$(ls "$snap/$id" | tr '\n' ' ')" "events $name "
expect_eq "device dir" "$(ls "$dir" | tr '\n' ' ')" "cbt.map image.raw info "
expect_eq "image.raw size" "$(stat -c %s "$dir/image.raw")" "$(blockdev --getsize64 "$dev")"

step "a writer changes the original meanwhile"
# At a bounded rate: the writer is there to change the original under the
# readers, not to take the guest's CPU from them.
fio --name=w --filename="$orig/data/blob8.bin" --rw=randwrite --bs=4k-256k --direct=1 \
	--rate_iops=20 --time_based --runtime=600 --eta=never --output=/dev/null &
writer=$!
awk -v d="$orig/docs" 'BEGIN {
	for (i = 1; i <= 8; i++) {
		f = d "/list" i ".txt"
		for (j = 5; j <= i * 3000; j++) print j >f
		close(f)
	}
}'
sync

step "cp, dd iflag=direct and rsync of image.raw equal the device at the take"
cp "$dir/image.raw" "$tmp/cp.raw"
expect_eq "cp" "$(xsum "$tmp/cp.raw")" "$want"
rm -f "$tmp/cp.raw"
expect_eq "dd iflag=direct" \
	"$(dd if="$dir/image.raw" bs=1M iflag=direct status=none | xxhsum -H64 - | cut -d' ' -f1)" "$want"
# Unaligned pieces (12345 bytes) over the first 6 MB (six chunks of the
# daemon), against the image device: one FUSE request each.
expect_eq "dd unaligned pieces" \
	"$(dd if="$dir/image.raw" bs=12345 count=500 status=none | xxhsum -H64 - | cut -d' ' -f1)" \
	"$(head -c $((12345 * 500)) "$image" | xxhsum -H64 - | cut -d' ' -f1)"
rsync "$dir/image.raw" "$tmp/rsync.raw"
expect_eq "rsync" "$(xsum "$tmp/rsync.raw")" "$want"
rm -f "$tmp/rsync.raw"

step "cbt.map equals blksnap readcbtmap"
blksnap readcbtmap -d "$dev" -f "$tmp/cbt.want"
cmp "$dir/cbt.map" "$tmp/cbt.want" || fail "cbt.map differs from readcbtmap"

step "info describes the device"
python3 - "$dir/info" "$dev" "$image" "$id" <<'PY' || fail "info"
import json, os, sys
info = json.load(open(sys.argv[1]))
st = os.stat(sys.argv[2])
assert info["device"] == sys.argv[2], info
assert (info["major"], info["minor"]) == (os.major(st.st_rdev), os.minor(st.st_rdev)), info
assert info["image"] == sys.argv[3], info
assert info["snapshot"] == sys.argv[4], info
assert info["capacity"] == 24 << 20, info
assert info["block_count"] * info["block_size"] >= info["capacity"], info
assert info["error_code"] == 0 and not info["corrupted"], info
for k in ("generation_id", "changes_number", "block_size"):
    assert k in info, k
PY

step "mount -o loop,ro image.raw shows the files as they were"
mkdir -p "$copy"
mount -o loop,ro "$dir/image.raw" "$copy"
(cd "$copy" && find . -type f ! -path './lost+found/*' | sort | xargs xxhsum -H64) >"$tmp/copy.sum"
umount "$copy"
cmp "$tmp/copy.sum" "$tmp/files.sum" || fail "files in the image differ from the take"
grep -q "hello from the snapshot" "$orig/hello.txt"

step "read-only: writes are refused"
if echo x 2>/dev/null >>"$dir/image.raw"; then fail "image.raw writable"; fi

# mmap.mmap(MAP_SHARED) of image.raw against the image device: "ok", or
# the errno name of the refusal.
shared_mmap() {
	python3 - "$1" "$image" <<'PY'
import errno, mmap, sys
n = 8 << 20
with open(sys.argv[1], "rb") as f:
    try:
        m = mmap.mmap(f.fileno(), n, mmap.MAP_SHARED, mmap.PROT_READ)
    except OSError as e:
        print(errno.errorcode[e.errno])
        sys.exit(0)
    with open(sys.argv[2], "rb") as dev:
        print("ok" if m[:n] == dev.read(n) else "differs")
PY
}
step "direct I/O by default: shared mmap refused; --page-cache: same content, mmap works"
expect_eq "shared mmap, default" "$(shared_mmap "$dir/image.raw")" ENODEV
fs_stop
fs_start --page-cache
expect_eq "cp, --page-cache" "$(xsum "$dir/image.raw")" "$want"
expect_eq "shared mmap, --page-cache" "$(shared_mmap "$dir/image.raw")" ok
fs_stop
fs_start

kill "$writer"
wait "$writer" || true
expect_eq "snapshot error" "$(blksnap snapshot_info -d "$dev" -f error_code)" 0

step "destroy: the snapshot's directory goes; a cbt.map open fails with EIO"
python3 - "$dir/cbt.map" "$id" <<'PY' || fail "cbt.map after the destroy"
import errno, os, subprocess, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
before = os.pread(fd, 4096, 0)
assert before, "cbt.map read nothing"
subprocess.run(["blksnap", "snapshot_destroy", "-i", sys.argv[2]], check=True)
try:
    after = os.pread(fd, 4096, 0)
except OSError as e:
    assert e.errno == errno.EIO, e
else:
    sys.exit("cbt.map read %d bytes once its snapshot was destroyed (%s)" %
             (len(after), "the same" if after == before else "others"))
PY
wait_until bash -c "[ ! -e '$snap/$id' ]" || fail "$snap/$id still there"
expect_eq "empty root" "$(ls "$snap")" ""

step "unmount ends the daemon"
fs_stop
umount "$orig"
blksnap detach -d "$dev"
echo "fs_image: all checks passed"
