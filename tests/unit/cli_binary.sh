#!/bin/sh
# The installed-style blksnap binary: exit codes and messages through the
# real main(), on a host without the module.
blksnap=$1
fail=0
check() { # expected-rc description command...
	want=$1; what=$2; shift 2
	"$@" >/tmp/cli_binary.out.$$ 2>/tmp/cli_binary.err.$$
	rc=$?
	if [ "$rc" != "$want" ]; then
		echo "FAIL: $what: exit $rc, expected $want"; cat /tmp/cli_binary.err.$$; fail=1
	fi
}
check 0 "help" "$blksnap" -h
grep -q snapshot_watcher /tmp/cli_binary.out.$$ || { echo "FAIL: help lacks commands"; fail=1; }
check 2 "no command" "$blksnap"
check 2 "bad uuid" "$blksnap" snapshot_take -i nope
check 0 "command help" "$blksnap" snapshot_create --help
if [ ! -d /sys/module/blksnap ]; then
	check 1 "no module" "$blksnap" version
	grep -qx "blksnap: blksnap module not loaded" /tmp/cli_binary.err.$$ ||
		{ echo "FAIL: message: $(cat /tmp/cli_binary.err.$$)"; fail=1; }
fi
rm -f /tmp/cli_binary.out.$$ /tmp/cli_binary.err.$$
[ $fail = 0 ] && echo "cli binary: all checks passed"
exit $fail
