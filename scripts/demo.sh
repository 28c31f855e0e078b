#!/usr/bin/env bash
# The demo, run inside a guest by `make demo`: for now it shows the module
# loaded and answering on its control device.
set -euo pipefail
echo "kernel:        $(uname -r)"
echo "module:        $(modinfo -F version "$BLKSNAP_KO") ($(cat /sys/module/blksnap/parameters/interception) interception)"
echo "control:       $(ls -l /dev/blksnap-control)"
echo "version ioctl: $(blksnap version)"
echo "demo: OK"
