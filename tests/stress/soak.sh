#!/usr/bin/env bash
# Soak (make soak): snapshots of two devices taken and destroyed in a loop
# for SOAK_SECS seconds while both originals are written, with blksnapfs and
# image device readers cut short by each destroy, snapshots that overflow
# their storage, a device detached and attached again, and the daemon
# restarted. Each cycle checks: a roomy snapshot stays intact and reads the
# same through image.raw and through the image device; a tight one ends
# corrupted with ENOSPC; no reader hangs. The runner adds the kernel's own
# checks (KASAN, lockdep, kmemleak on the kernel with the checkers,
# scripts/kernels.sh checkers) at the end.
# Runs in a guest: tests/vm/run KERNEL --disks 3 -- tests/stress/soak.sh
. "$(dirname "$0")/../guest/lib.sh"
. "$(dirname "$0")/../guest/fs-helpers.bash"
d1=$(disk 1)
d2=$(disk 2)
d3=$(disk 3)
secs=${SOAK_SECS:-300}
mb=$(($(blockdev --getsize64 "$d1") >> 20))

step "storage on ext4 ($d3), writers on $d1 and $d2 for ${secs} s"
mkfs.ext4 -q -F -E nodiscard "$d3" >/dev/null 2>&1
mkdir -p /store
mount "$d3" /store
roomy=$(($(df -m --output=avail /store | tail -n1) - 32))M
blksnap attach -d "$d1" -d "$d2"
# Few writes a second: a roomy snapshot must not fill up within a cycle.
common=(--direct=1 --rw=randwrite --time_based --runtime=$((secs + 300)) --size="${mb}M" --rate_iops=20)
fio --name=w1 --filename="$d1" "${common[@]}" --bsrange=4k-256k --ioengine=libaio --iodepth=4 >/dev/null &
w1=$!
fio --name=w2 --filename="$d2" "${common[@]}" --bsrange=4k-64k --ioengine=psync >/dev/null &
w2=$!
trap 'kill $w1 $w2 2>/dev/null || true; mountpoint -q "$snap" && fusermount3 -u -z "$snap"; true' EXIT
fs_start

# Has the snapshot of $d1 ended corrupted for want of storage?
overflowed() { [ "$(blksnap snapshot_info -d "$d1" -f error_code)" = -28 ]; }

end=$((SECONDS + secs))
i=0 cut=0 whole=0
while [ $SECONDS -lt $end ]; do
	i=$((i + 1))
	tight=$((i % 3 == 0))
	limit=$roomy
	[ $tight = 1 ] && limit=6M
	id=$(blksnap snapshot_create -d "$d1" -d "$d2" -f /store -l "$limit")
	blksnap snapshot_take -i "$id"
	raw1=$snap/$id/$(basename "$d1")/image.raw
	raw2=$snap/$id/$(basename "$d2")/image.raw
	image1=$(blksnap snapshot_info -d "$d1" -f image)
	wait_until test -e "$raw1" || fail "cycle $i: $raw1 did not appear"
	if [ $tight = 1 ]; then
		# More old data than 6 MiB holds.
		dd if=/dev/zero of="$d1" bs=1M count=32 seek=$((RANDOM % (mb - 32))) oflag=direct status=none
		wait_until overflowed || fail "cycle $i: a 6M snapshot did not overflow"
	else
		skip=$((RANDOM % (mb - 32)))
		expect_eq "cycle $i: image.raw and image device agree" \
			"$(xsum "$raw1" "$skip" 32)" "$(xsum "$image1" "$skip" 32)"
	fi
	# Readers the destroy cuts short: any end but a hang will do.
	pids=()
	timeout 120 dd if="$raw1" of=/dev/null bs=1M skip=$((RANDOM % mb)) status=none 2>/dev/null &
	pids+=($!)
	timeout 120 dd if="$raw2" of=/dev/null bs=1M iflag=direct status=none 2>/dev/null &
	pids+=($!)
	timeout 120 dd if="$image1" of=/dev/null bs=64k iflag=direct status=none 2>/dev/null &
	pids+=($!)
	timeout 120 cat "$snap/$id/events" >/dev/null 2>&1 &
	pids+=($!)
	timeout 120 cat "$snap/$id/$(basename "$d2")/cbt.map" >/dev/null 2>&1 &
	pids+=($!)
	sleep "$((RANDOM % 3)).$((RANDOM % 10))"
	if [ $tight = 0 ]; then
		expect_eq "cycle $i: roomy snapshot error" "$(blksnap snapshot_info -d "$d1" -f error_code)" 0
	fi
	blksnap snapshot_destroy -i "$id"
	for p in "${pids[@]}"; do
		rc=0
		wait "$p" || rc=$?
		[ $rc != 124 ] || fail "cycle $i: a reader hung after destroy"
		[ $rc = 0 ] && whole=$((whole + 1)) || cut=$((cut + 1))
	done
	blksnap cbtinfo -d "$d1" >/dev/null
	if [ $((i % 5)) = 0 ]; then
		blksnap detach -d "$d2"
		blksnap attach -d "$d2"
	fi
	if [ $((i % 7)) = 0 ]; then
		fs_stop
		fs_start
	fi
	echo "cycle $i ($([ $tight = 1 ] && echo tight || echo roomy)): ok; readers done $whole, cut short $cut"
done
kill $w1 $w2
wait $w1 $w2 || true
fs_stop
blksnap detach -d "$d1" -d "$d2"
umount /store
echo "soak: $i cycles in ${secs} s, readers done $whole, cut short by destroy $cut"
