#!/usr/bin/env bash
# vm: --disks 3 --disk-size 128M
# kernels: blkfilter-6.12
# The stock-kernel interception (ftrace) also runs on the patched kernel
# when asked (interception=ftrace), so that it is exercised under lockdep,
# KASAN and kmemleak: change tracking and coherent snapshots through it.
. "$(dirname "$0")/lib.sh"
here=$(dirname "$0")

step "reload with interception=ftrace"
rmmod blksnap
insmod "$BLKSNAP_KO" interception=ftrace
expect_eq interception "$(flavour)" ftrace
"$here/cbt_raw.sh"
"$here/snapshot_multi.sh"
echo "ftrace_hook: all checks passed"
