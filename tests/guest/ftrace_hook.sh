#!/usr/bin/env bash
# vm: --disks 3 --disk-size 256M
# kernels: blkfilter-6.12
# The stock-kernel interception (ftrace) also runs on the patched kernel
# when asked (interception=ftrace), so that it is exercised under lockdep,
# KASAN and kmemleak: change tracking, coherent snapshots, the races of a
# take and the removal of devices through it.
. "$(dirname "$0")/lib.sh"
here=$(dirname "$0")

step "reload with interception=ftrace"
rmmod blksnap
insmod "$BLKSNAP_KO" interception=ftrace
expect_eq interception "$(flavour)" ftrace
"$here/cbt_raw.sh"
"$here/snapshot_multi.sh"
RACE_TAKES=2 "$here/snapshot_races.sh"
BLKSNAP_MODPARAMS=interception=ftrace "$here/removal.sh"
expect_eq "interception after removal's reload" "$(flavour)" ftrace
echo "ftrace_hook: all checks passed"
