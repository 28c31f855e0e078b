#!/usr/bin/env bash
# Guest side of `make bench`: what a snapshot costs a database. PostgreSQL
# (Debian's) on ext4 on the first disk, pgbench's TPC-B-like transactions
# from 4 clients running without a break while the conditions alternate
# with the baseline (nothing attached) in windows of BENCH_PG_SECS seconds:
#  - tracking only (the filter attached, a change map kept);
#  - a snapshot taken and held (first writes to every chunk copied);
#  - a `blksnap backup` of the disk (full: the disk is detached between);
#  - a dm-snapshot of the same disk (persistent, 256 KiB chunks as ours),
#    the anchor row: against the file system mounted through the origin
#    device alone, as dm-snapshot cannot come and go under a mounted disk.
# The third disk is the difference storage or the exception store. Each
# measured window is compared with the baseline windows on either side
# (bench/tools/windows.py): under emulation the guest's speed drifts by
# 10-20% over tens of seconds, which separate runs of pgbench would read as
# the conditions' cost. Prints "BENCH {json}" lines.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
read -r -a disks <<<"$BLKSNAP_DISKS"
[ "${#disks[@]}" -ge 3 ] || { echo "pgbench.sh: needs three disks" >&2; exit 1; }
store=${disks[2]}
bin=
for b in /usr/lib/postgresql/*/bin; do bin=$b; done # the newest
[ -x "$bin/pgbench" ] || { echo "pgbench.sh: no PostgreSQL (scripts/deps.sh --bench installs it)" >&2; exit 1; }
secs=${BENCH_PG_SECS:-10}
pairs=${BENCH_PG_WINDOWS:-8}
mnt=/mnt/bench-pg data=/mnt/bench-pg/data sock=/tmp/bench-pg bk=/mnt/bench-pg-bk
prog=/tmp/bench-pg.progress wins=/tmp/bench-pg.windows
mkdir -p $mnt $sock $bk
chown postgres $sock
: >$prog
: >$wins

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
# fsync on (the default): every commit waits for the disk, as in use. A
# checkpoint every 30 s, spread over 27 of them (the default 0.9): the
# table's pages are written all the time, as in a busy database, not in
# bursts that would fall into one window or another (nor, with the default
# 5 minutes, hardly ever: a held snapshot's copies would then be of the
# WAL alone). No autovacuum, whose runs would fall at random.
cat >>$data/postgresql.conf <<EOF2
listen_addresses = ''
unix_socket_directories = '$sock'
shared_buffers = 64MB
max_wal_size = 512MB
checkpoint_timeout = 30s
autovacuum = off
EOF2
start() { pg "$bin/pg_ctl" -D $data -l /tmp/bench-pg.log -w start >/dev/null; }
stop() { pg "$bin/pg_ctl" -D $data -m fast -w stop >/dev/null; }
start
pg "$bin/pgbench" -h $sock -i -s "${BENCH_PG_SCALE:-8}" -q postgres 2>/dev/null
checkpoint() { pg "$bin/psql" -h $sock -q -c checkpoint postgres; }
checkpoint
# load: pgbench until killed, a progress line a second; then 10 s to warm up.
load=
load() {
	pg "$bin/pgbench" -h $sock -c 4 -j 2 -T 7200 -n -P 1 --progress-timestamp \
		postgres >/dev/null 2>>$prog &
	load=$!
	sleep 10
}
unload() {
	pkill -INT -x pgbench || true
	wait $load || true
}
# window SECTION CONDITION: the condition has been set; hold it.
window() {
	local t0
	t0=$(date +%s.%N)
	sleep "$secs"
	echo "$1 $2 $t0 $(date +%s.%N)" >>$wins
}
sectors=$(blockdev --getsz "$dev")
# written: sectors written to the storage disk so far (what a held
# snapshot copied shows there).
written() { awk '{print $7}' "/sys/class/block/${store##*/}/stat"; }
copied=() dm_copied=()
modprobe dm-snapshot
load
for _ in $(seq "$pairs"); do
	window tracking base
	blksnap attach -d "$dev" >/dev/null
	window tracking on
	blksnap detach -d "$dev" >/dev/null
done
window tracking base
checkpoint
for _ in $(seq "$pairs"); do
	window held base
	id=$(blksnap snapshot_create -d "$dev" -f "$store" -l 2G)
	blksnap snapshot_take -i "$id"
	w0=$(written)
	window held on
	copied+=($((($(written) - w0) / 2048)))
	blksnap snapshot_destroy -i "$id"
	blksnap detach -d "$dev" >/dev/null
done
window held base
checkpoint
for _ in 1 2 3; do
	window backup base
	t0=$(date +%s.%N)
	blksnap backup -d "$dev" -o $bk -f "$store" -l 2G --keep 1 >/tmp/bench-pg-backup.log 2>&1 ||
		{ cat /tmp/bench-pg-backup.log >&2; exit 1; }
	echo "backup on $t0 $(date +%s.%N)" >>$wins
	blksnap detach -d "$dev" >/dev/null
done
window backup base
unload
stop
umount $mnt
# The file system through a snapshot-origin device; the snapshot made and
# removed with the origin suspended, as LVM does.
dmsetup create --noudevsync bench-pg-origin --table "0 $sectors snapshot-origin $dev"
dmsetup mknodes
mount /dev/mapper/bench-pg-origin $mnt
start
load
for _ in $(seq "$pairs"); do
	window dm-snapshot base
	dd if=/dev/zero of="$store" bs=1M count=4 oflag=direct status=none
	dmsetup suspend bench-pg-origin
	dmsetup create --noudevsync bench-pg-snap --table "0 $sectors snapshot $dev $store P 512"
	dmsetup resume bench-pg-origin
	w0=$(written)
	window dm-snapshot on
	dm_copied+=($((($(written) - w0) / 2048)))
	dmsetup suspend bench-pg-origin
	dmsetup remove --noudevsync bench-pg-snap
	dmsetup resume bench-pg-origin
done
window dm-snapshot base
unload
stop
umount $mnt $bk
dmsetup remove --noudevsync bench-pg-origin
dmsetup remove --noudevsync bench-pg
# The raw figures, for a closer look (tests/vm/run --results DIR).
[ -z "${BLKSNAP_RESULTS:-}" ] || cp $prog $wins "$BLKSNAP_RESULTS/"
python3 "$(dirname "$0")/tools/windows.py" $prog $wins >/tmp/bench-pg.ratios
grep '^#' /tmp/bench-pg.ratios
echo "# pgbench: MiB written to the storage disk in each window: held snapshot ${copied[*]};" \
	"dm-snapshot ${dm_copied[*]}"
# pg_row SECTION NAME TARGET: the section's row; its ratio is the median of
# the windows' ratios, its tps the medians of the windows.
pg_row() {
	local r base measured n
	read -r _ _ r base measured n < <(grep "^RATIO $1 " /tmp/bench-pg.ratios)
	row "pgbench: $2 ($n windows)" "$base" "$measured" tps "$3" "$r"
}
pg_row tracking "tps with tracking only vs nothing attached" 0.99
pg_row held "tps with a snapshot held (chunks being copied) vs nothing attached" 0.8
pg_row dm-snapshot "tps with a dm-snapshot (persistent) vs its origin alone (anchor)" 0
pg_row backup "tps while blksnap backup runs vs nothing attached" 0
