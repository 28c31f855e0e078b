#!/usr/bin/env bash
# cost: 30
# smoke
# A seeded random workload checked against a reference model
# (tests/tools/model.py): writes, discards, attach/detach, takes and
# destroys of snapshots, writes to their images, storages that overflow,
# over loop devices, the partitions of a partitioned one (written through
# its whole disk too, a third one added and deleted, attached or held),
# dm-linear and null_blk; change maps saved and restored (cbtsave,
# cbtrestore), sometimes written behind the tracker's back; backups, full
# and incremental, sometimes with an edited image; loop devices resized, the
# module reloaded; I/O errors injected below the dm device and below a
# difference storage on a dm device (dm-flakey failing reads or writes,
# dm-error); ext4 on a loop device of its own, written with fsyncs while
# snapshots of it are held (every image e2fsck-clean, holding exactly the
# files durable at its take); every image, device and change map compared by content
# with what the model says they hold. MODEL_SEED and MODEL_OPS choose the
# run (a seed from the clock and 100 operations when unset, 40 on the debug
# kernel, where an exec costs six times as much: the frequent read-only
# requests, change maps, snapshot errors and events, are ioctls from
# Python, tests/tools/blksnap_ioctl.py, no exec); a failure prints its
# seed, and the same seed replays it (MODEL_VERBOSE=1 prints every
# operation).
. "$(dirname "$0")/lib.sh"
need_modules loop dm-mod dm-flakey ext4
tmp=$(mktemp -d)
seed=${MODEL_SEED:-$(date +%s)}
default_ops=100
[ "${BLKSNAP_LOCKDEP:-none}" = none ] || default_ops=40
ops=${MODEL_OPS:-$default_ops}
python3 "$(dirname "$0")/../tools/model.py" "$seed" "$ops" "$tmp" | tee "$tmp/out"
# Its last line, "model: seed=S ops=N checks=M failures=F", ends the test's output.
tail -n1 "$tmp/out" | grep -q ' failures=0$' || fail "model: seed $seed failed"
