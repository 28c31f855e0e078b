#!/usr/bin/env bash
# cost: 5
# smoke
# The module loads, answers on its control device, and unloads cleanly.
. "$(dirname "$0")/lib.sh"

step "control device"
[ -c /dev/blksnap-control ] || fail "/dev/blksnap-control missing"

step "version ioctl matches the module's version"
want_version=$(modinfo -F version "$BLKSNAP_KO")
expect_eq version "$(blksnap-probe version)" "$want_version"

step "interception flavour"
case "$BLKSNAP_KERNEL ${BLKSNAP_MODPARAMS:-}" in
*interception=ftrace*) want=ftrace ;;
blkfilter-*) want=blkfilter ;;
*) want=ftrace ;;
esac
expect_eq interception "$(flavour)" "$want"

step "unload and reload"
rmmod blksnap
[ ! -e /dev/blksnap-control ] || fail "control device left behind"
load_module
expect_eq "version after reload" "$(blksnap-probe version)" "$want_version"
