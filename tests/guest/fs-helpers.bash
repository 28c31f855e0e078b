# Helpers of the blksnapfs guest tests (fs_*.sh), sourced after lib.sh.

snap=/snap
# A failing test leaves no mount behind (the module could not be unloaded).
trap 'mountpoint -q "$snap" && fusermount3 -u -z "$snap"; true' EXIT

# xxh64 of a file or device, read in 1 MiB pieces (O_DIRECT for devices);
# with SKIP and COUNT, of COUNT MiB from MiB SKIP only.
xsum() { # file [skip count]
	if [ -b "$1" ] || [ $# -eq 3 ]; then
		local args=()
		[ -b "$1" ] && args+=(iflag=direct)
		[ $# -eq 3 ] && args+=(skip="$2" count="$3")
		dd if="$1" bs=1M "${args[@]}" status=none | xxhsum -H64 - | cut -d' ' -f1
	else
		xxhsum -H64 - <"$1" | cut -d' ' -f1
	fi
}

# Wait up to 10 s for a command to succeed.
wait_until() {
	local i
	for i in $(seq 100); do
		"$@" && return 0
		sleep 0.1
	done
	return 1
}

# Start blksnapfs (daemonized) on $snap with extra ARGS.
fs_start() {
	[ -c /dev/fuse ] || need_modules fuse
	mkdir -p "$snap"
	blksnapfs "$@" "$snap" || fail "blksnapfs did not start"
	mountpoint -q "$snap" || fail "$snap is not mounted"
}

# Unmount $snap and wait for the daemon to end.
fs_stop() {
	fusermount3 -u "$snap" || fail "fusermount3 -u $snap"
	wait_until bash -c '! pidof blksnapfs >/dev/null' || fail "blksnapfs still running after unmount"
}

# Mount an ext4 file system on DEV at DIR with some files; their checksums
# go to SUMS.
make_files() { # dev dir sums
	mkfs.ext4 -q -F -E nodiscard "$1" >/dev/null 2>&1
	mkdir -p "$2"
	mount "$1" "$2"
	mkdir -p "$2/docs" "$2/data"
	local i
	# The lists in one process: an exec costs about half a second on the
	# debug kernel.
	awk -v d="$2/docs" 'BEGIN {
		for (i = 1; i <= 8; i++) {
			f = d "/list" i ".txt"
			for (j = 1; j <= i * 2000; j++) print j >f
			close(f)
		}
	}'
	for i in $(seq 1 8); do
		head -c $((i * 256 * 1024)) /dev/urandom >"$2/data/blob$i.bin"
	done
	echo "hello from the snapshot" >"$2/hello.txt"
	sync
	(cd "$2" && find . -type f ! -path './lost+found/*' | sort | xargs xxhsum -H64) >"$3"
}
