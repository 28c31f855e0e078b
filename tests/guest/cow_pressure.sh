#!/usr/bin/env bash
# cost: 90
# columns: stock-6.1
# vm: --disk 96M --disk 192M --disk 64M
# Copy-on-write goes on when memory is short: writes under a snapshot
# complete and land, and the image keeps the old data, while a memory hog
# keeps the guest out of memory (2 MiB chunks, no free buffer kept: every
# copy allocates anew). The copy and store work have their own rescuers and
# each device a reserved chunk buffer (docs/snapshot-io.md). On stock-6.1
# only: under KASAN the hog makes the emulated guest crawl, and the code
# under test is the same on every kernel.
. "$(dirname "$0")/lib.sh"
dev=$(disk 1)
store_dev=$(disk 2)
src=$(disk 3)
tmp=$(mktemp -d)
# The OOM killer must pick the hog, never the test.
echo -1000 >/proc/self/oom_score_adj
sum() { dd if="$1" bs=1M iflag=direct status=none | xxhsum -H64 - | cut -d' ' -f1; }
# region DEV OFFSET_MB SIZE_MB: that part of DEV.
region() { dd if="$1" bs=1M skip="$2" count="$3" iflag=direct status=none; }
# reload [PARAM=VALUE...]: the module afresh, with these parameters.
reload() {
	! is_attached "$dev" || blksnap detach -d "$dev"
	rmmod blksnap
	load_module "$@"
}

# MiB of memory available (free, and page cache that can be dropped).
mem_avail() {
	local k v _
	while read -r k v _; do
		[ "$k" != MemAvailable: ] || { echo $((v >> 10)); return; }
	done </proc/meminfo
}
# The hog: takes memory, touching it, half of what is left at a time (at
# most 256 MiB, at least 1 MiB), until less than
# HOG_LEFT MiB are available (MemAvailable: free, and what reclaim can
# drop), and keeps it so; it is first in line for the OOM killer, and
# started again. The default, 16, leaves the pages of the few programs
# that run: below that, they are dropped and read back from the 9p root
# over and over, and the emulated guest crawls (soft lockups in page
# allocation, on a busy host); 0 runs the hog into the OOM killer.
hog_py='
import os, time
held = []
def avail():
    for line in open("/proc/meminfo"):
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) >> 10
LEFT = int(os.environ.get("HOG_LEFT", "16"))
while True:
    a = avail()
    if a >= LEFT:
        n = max(1, min(256, (a - LEFT) // 2))
        held.append(bytearray(b"h") * (n << 20))
    else:
        time.sleep(0.02)
'

step "writes under a snapshot while a hog keeps the guest out of memory"
# 2 MiB chunks (two bios to read each), and no free buffer kept for
# reuse: every copy allocates 512 pages anew.
reload chunk_minimum_shift=21 chunk_maximum_shift=21 free_diff_buffer_pool_size=0
gen 20 "$(blockdev --getsize64 "$dev")" |
	dd of="$dev" bs=1M oflag=direct iflag=fullblock status=none
# What the writers write, ready on the third disk: under the hog only
# dd runs, no openssl.
gen 1 $((64 << 20)) | dd of="$src" bs=1M oflag=direct iflag=fullblock status=none
before=$(sum "$dev")
id=$(blksnap snapshot_create -d "$dev" -f "$store_dev" -l 160M)
blksnap snapshot_take -i "$id"
image=$(blksnap snapshot_info -d "$dev" -f image)
kills_before=$(dmesg | grep -c "Killed process" || true)
# No compaction ahead of need: kcompactd moving pages about while the
# hog holds the memory makes the emulated guest crawl.
proactive=/proc/sys/vm/compaction_proactiveness
was_proactive=$(cat $proactive 2>/dev/null || true)
[ -z "$was_proactive" ] || echo 0 >$proactive
# The waits below read from a pipe that never delivers: no exec.
exec 9< <(exec sleep infinity)
pause=$!
: >"$tmp/hog"
(
	while [ -e "$tmp/hog" ]; do
		(echo 1000 >/proc/self/oom_score_adj && exec python3 -c "$hog_py") &
		echo $! >"$tmp/hog.pid"
		wait || true
	done
) 2>/dev/null &
hog=$!
for i in $(seq 300); do
	[ "$(mem_avail)" -gt 32 ] || break
	read -r -t 0.1 -u 9 || true
done
echo "available before the writes: $(mem_avail) MiB"
# Through the page cache (writeback copies the chunks) and direct, in
# 64 KiB pieces: partial writes of many chunks, side by side.
dd if="$src" of="$dev" bs=1M count=32 seek=8 iflag=direct conv=notrunc,fsync \
	status=none &
w1=$!
dd if="$src" of="$dev" bs=64k skip=512 count=512 seek=1024 iflag=direct \
	oflag=direct conv=notrunc status=none &
w2=$!
least=1000000
start=$SECONDS
while kill -0 $w1 2>/dev/null || kill -0 $w2 2>/dev/null; do
	avail=$(mem_avail)
	[ "$avail" -ge "$least" ] || least=$avail
	read -r -t 0.5 -u 9 || true
done
echo "writes took $((SECONDS - start)) s; least memory available: $least MiB"
wait $w1 || fail "buffered writer failed"
wait $w2 || fail "direct writer failed"
rm "$tmp/hog"
kill "$(cat "$tmp/hog.pid")" 2>/dev/null || true
wait $hog || true
exec 9<&-
kill $pause
[ -z "$was_proactive" ] || echo "$was_proactive" >$proactive
[ "$least" -le 32 ] || fail "no memory pressure: at least $least MiB were available"
kills=$(dmesg | grep "Killed process" | tail -n +$((kills_before + 1)) || true)
echo "${kills:-no OOM kill}"
! grep -v "(python3)" <<<"$kills" | grep . || fail "the OOM killer took more than the hog"
expect_eq "buffered writes" "$(region "$dev" 8 32 | xxhsum -H64 - | cut -d' ' -f1)" \
	"$(region "$src" 0 32 | xxhsum -H64 - | cut -d' ' -f1)"
expect_eq "direct writes" "$(region "$dev" 64 32 | xxhsum -H64 - | cut -d' ' -f1)" \
	"$(region "$src" 32 32 | xxhsum -H64 - | cut -d' ' -f1)"
expect_eq "error code" "$(blksnap snapshot_info -d "$dev" -f error_code)" 0
expect_eq "image under pressure" "$(sum "$image")" "$before"
blksnap snapshot_destroy -i "$id"
! is_attached "$dev" || blksnap detach -d "$dev"
echo "cow_pressure: all checks passed"
