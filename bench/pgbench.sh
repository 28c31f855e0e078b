#!/usr/bin/env bash
# Guest side of `make bench`: what a snapshot costs a database. PostgreSQL
# (Debian's) on ext4 on the first disk, pgbench's TPC-B-like transactions
# from 4 clients for BENCH_PG_SECS seconds; the third disk is the
# difference storage (blksnap) or the exception store (dm-snapshot,
# persistent, 256 KiB chunks as ours). Each round runs, one after the other:
#  - nothing attached (the baseline);
#  - tracking only (the filter attached, a change map kept);
#  - a snapshot taken just before and held (first writes to every chunk
#    are copied while pgbench runs);
#  - a dm-snapshot of the same disk (the file system mounted through its
#    origin device), the anchor row;
#  - a `blksnap backup` of the disk running while pgbench runs.
# Transactions per second of each, against nothing attached of the same
# round; medians of the rounds. Prints "BENCH {json}" lines.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
read -r -a disks <<<"$BLKSNAP_DISKS"
[ "${#disks[@]}" -ge 3 ] || { echo "pgbench.sh: needs three disks" >&2; exit 1; }
store=${disks[2]}
bin=
for b in /usr/lib/postgresql/*/bin; do bin=$b; done # the newest
[ -x "$bin/pgbench" ] || { echo "pgbench.sh: no PostgreSQL (scripts/deps.sh --bench installs it)" >&2; exit 1; }
secs=${BENCH_PG_SECS:-20}
rounds=${BENCH_ROUNDS:-3}
mnt=/mnt/bench-pg data=/mnt/bench-pg/data sock=/tmp/bench-pg bk=/mnt/bench-pg-bk
mkdir -p $mnt $sock $bk
chown postgres $sock

# The storage disk written once: the host allocates a sparse disk image's
# blocks on their first write, which must not fall on one side only.
dd if=/dev/zero of="$store" bs=1M count=$(($(blockdev --getsize64 "$store") >> 20)) \
	oflag=direct status=none
mkfs.xfs -q -f -m reflink=1 "${disks[1]}"
mount "${disks[1]}" $bk
# A 1 GiB device (dm-linear over the first disk) whose full backup fits
# the second.
dmsetup create --noudevsync bench-pg --table "0 $((1 << 21)) linear ${disks[0]} 0"
dmsetup mknodes bench-pg
dev=/dev/mapper/bench-pg
mkfs.ext4 -q -F -E nodiscard "$dev"
pg() { runuser -u postgres -- "$@"; }
mount "$dev" $mnt
chown postgres $mnt
pg "$bin/initdb" -D $data -A trust --no-sync -E UTF8 >/dev/null
# fsync on (the default): every commit waits for the disk, as in use.
cat >>$data/postgresql.conf <<EOF2
listen_addresses = ''
unix_socket_directories = '$sock'
shared_buffers = 64MB
max_wal_size = 256MB
EOF2
start() { pg "$bin/pg_ctl" -D $data -l /tmp/bench-pg.log -w start >/dev/null; }
stop() { pg "$bin/pg_ctl" -D $data -m fast -w stop >/dev/null; }
start
pg "$bin/pgbench" -h $sock -i -s "${BENCH_PG_SCALE:-8}" -q postgres 2>/dev/null
pg "$bin/psql" -h $sock -q -c checkpoint postgres
# tps: one pgbench run; prints its transactions per second.
tps() {
	pg "$bin/pgbench" -h $sock -c 4 -j 2 -T "$secs" -n postgres 2>/dev/null |
		sed -n 's/^tps = \([0-9.]*\).*/\1/p'
}
# fresh: every condition starts alike: PostgreSQL restarted with the
# guest's caches dropped, then 3 s of pgbench not counted (else the first
# condition of a round would pay for the cold caches alone).
fresh() {
	stop
	sync
	echo 3 >/proc/sys/vm/drop_caches
	start
	pg "$bin/pgbench" -h $sock -c 4 -j 2 -T 3 -n postgres >/dev/null 2>&1
}
sectors=$(blockdev --getsz "$dev")
modprobe dm-snapshot
none=() tracking=() held=() dm=() during=()
for r in $(seq "$rounds"); do
	fresh
	none+=("$(tps)")
	blksnap attach -d "$dev" >/dev/null
	fresh
	tracking+=("$(tps)")
	fresh
	id=$(blksnap snapshot_create -d "$dev" -f "$store" -l 2G)
	blksnap snapshot_take -i "$id"
	held+=("$(tps)")
	blksnap snapshot_destroy -i "$id"
	# A backup (full the first time, then incremental) while pgbench runs.
	fresh
	blksnap backup -d "$dev" -o $bk -f "$store" -l 2G --keep 1 >/tmp/bench-pg-backup.log 2>&1 &
	backup=$!
	during+=("$(tps)")
	wait $backup || { cat /tmp/bench-pg-backup.log >&2; exit 1; }
	blksnap detach -d "$dev"
	stop
	umount $mnt
	# The file system through a snapshot-origin device, warmed up; then
	# the snapshot made (the origin suspended meanwhile, as LVM does).
	dmsetup create --noudevsync bench-pg-origin --table "0 $sectors snapshot-origin $dev"
	dmsetup mknodes
	mount /dev/mapper/bench-pg-origin $mnt
	start
	fresh
	dd if=/dev/zero of="$store" bs=1M count=4 oflag=direct status=none
	dmsetup suspend bench-pg-origin
	dmsetup create --noudevsync bench-pg-snap --table "0 $sectors snapshot $dev $store P 512"
	dmsetup resume bench-pg-origin
	dm+=("$(tps)")
	stop
	umount $mnt
	dmsetup remove --noudevsync bench-pg-snap
	dmsetup remove --noudevsync bench-pg-origin
	mount "$dev" $mnt
	start
	echo "# pgbench round $r, tps: nothing attached ${none[-1]}, tracking ${tracking[-1]}," \
		"snapshot held ${held[-1]}, dm-snapshot ${dm[-1]}, during a backup ${during[-1]}"
done
stop
umount $mnt $bk
dmsetup remove --noudevsync bench-pg
per_round "pgbench: tracking / nothing" "${tracking[*]}" "${none[*]}"
per_round "pgbench: snapshot held / nothing" "${held[*]}" "${none[*]}"
per_round "pgbench: dm-snapshot / nothing" "${dm[*]}" "${none[*]}"
per_round "pgbench: during a backup / nothing" "${during[*]}" "${none[*]}"
base=$(median "${none[@]}")
row "pgbench: tps with tracking only vs nothing attached" "$base" "$(median "${tracking[@]}")" "tps" 0.99
row "pgbench: tps with a snapshot held (chunks being copied) vs nothing attached" \
	"$base" "$(median "${held[@]}")" "tps" 0.8
row "pgbench: tps with a dm-snapshot (persistent) vs nothing attached (anchor)" \
	"$base" "$(median "${dm[@]}")" "tps" 0
row "pgbench: tps while blksnap backup runs vs nothing attached" \
	"$base" "$(median "${during[@]}")" "tps" 0
