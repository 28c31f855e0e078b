# Helpers of the scale tests and of bench/scale.sh (sourced after lib.sh):
# kernel memory attributed to the module, huge sparse devices, timing.

# now_us: wall clock in microseconds, without a fork.
now_us() { echo "${EPOCHREALTIME/./}"; }
# elapsed_ms START_US: milliseconds since START_US (now_us).
elapsed_ms() {
	local t=${EPOCHREALTIME/./}
	python3 -c 'import sys; print(f"{(int(sys.argv[2]) - int(sys.argv[1])) / 1000:.1f}")' "$1" "$t"
}

# nullb_sparse NAME SIZE_MB: a null_blk disk whose writes vanish (of any
# size, at no cost in memory); prints its /dev path.
nullb_sparse() { NULLB_MEMORY_BACKED=0 nullb_create "$@"; }

# nullb_many PREFIX N SIZE_MB: N memory-backed null_blk disks at once
# (made through configfs like nullb_create, a fork or two for all of them);
# prints their /dev paths.
nullb_many() {
	local i nb before
	[ -d /sys/module/null_blk ] || modprobe null_blk nr_devices=0 || fail "modprobe null_blk"
	[ -d /sys/kernel/config/nullb ] || mount -t configfs none /sys/kernel/config
	before=$(ls /sys/block)
	for i in $(seq "$2"); do
		nb=/sys/kernel/config/nullb/$1$i
		mkdir "$nb"
		echo "$3" >"$nb/size"
		echo 1 >"$nb/memory_backed"
		echo 1 >"$nb/power"
	done
	comm -13 <(echo "$before") <(ls /sys/block) | sed 's|^|/dev/|'
}

# kmem: after dropping the page, dentry and inode caches, one line of kernel
# memory figures in bytes: "slab vmalloc module_vmalloc free", where slab is
# /proc/meminfo's Slab (reclaimable and not), vmalloc its VmallocUsed, and
# module_vmalloc the sum of the vmalloc areas whose caller is in the blksnap
# module (/proc/vmallocinfo): what the module itself holds in vmalloc.
# Writes /proc/slabinfo to $1 when given (per-cache attribution).
# KMEM_DROP=0: no dropping (the guest's root is the host's over 9p: every
# program run after a drop is read again, about a second).
kmem() {
	local k v _ size rest slab=0 vm=0 free=0 mod=0
	if [ "${KMEM_DROP:-1}" = 1 ]; then
		sync
		echo 3 >/proc/sys/vm/drop_caches
	fi
	[ -z "${1:-}" ] || cat /proc/slabinfo >"$1"
	while read -r k v _; do
		case $k in
		Slab:) slab=$((v * 1024)) ;;
		VmallocUsed:) vm=$((v * 1024)) ;;
		MemFree:) free=$((v * 1024)) ;;
		esac
	done </proc/meminfo
	while read -r _ size _ rest; do
		[[ " $rest " != *" [blksnap] "* ]] || mod=$((mod + size))
	done </proc/vmallocinfo
	echo "$slab $vm $mod $free"
}

# slab_growth BEFORE AFTER [N]: the N (5) slab caches that grew most between
# two /proc/slabinfo copies, as "name:+KiB" words.
slab_growth() {
	python3 - "$1" "$2" "${3:-5}" <<'PY'
import sys
def load(p):
    d = {}
    for line in open(p):
        if line.startswith(("slabinfo", "#")):
            continue
        f = line.split()
        d[f[0]] = int(f[2]) * int(f[3])  # objects allocated (num_objs) * size
    return d
a, b = load(sys.argv[1]), load(sys.argv[2])
g = sorted(((b[k] - a.get(k, 0), k) for k in b), reverse=True)[: int(sys.argv[3])]
print(" ".join(f"{k}:+{v // 1024}KiB" for v, k in g if v > 0))
PY
}

# slab_module BEFORE AFTER: the growth in bytes of the slab caches the
# module allocates from (kmalloc-*, and radix_tree_node for the xarray of
# chunks) between two /proc/slabinfo copies. Unlike the Slab total of
# /proc/meminfo, it does not net out caches that other parts of the kernel
# shrank meanwhile (dentries, inodes); other users of kmalloc still count.
slab_module() {
	python3 - "$1" "$2" <<'PY'
import sys
def load(p):
    d = {}
    for line in open(p):
        f = line.split()
        if f[0].startswith(("kmalloc-", "radix_tree_node")):
            d[f[0]] = int(f[2]) * int(f[3])
    return d
a, b = load(sys.argv[1]), load(sys.argv[2])
print(sum(b[k] - a.get(k, 0) for k in b))
PY
}

# kmem_delta "BEFORE" "AFTER" FIELD: the difference of field FIELD (1 slab,
# 2 vmalloc, 3 module vmalloc, 4 free) between two kmem lines, in bytes.
kmem_delta() {
	local -a a b
	read -r -a a <<<"$1"
	read -r -a b <<<"$2"
	echo $((b[$3 - 1] - a[$3 - 1]))
}

# cbt_bound: the most the module's change map may take per device, in
# bytes: two maps of at most tracking_block_maximum_count bytes (blksnap(4)),
# each a vmalloc area of whole pages plus a guard page.
cbt_bound() {
	local n page
	n=$(cat /sys/module/blksnap/parameters/tracking_block_maximum_count)
	page=$(getconf PAGESIZE)
	echo $((2 * ((n + page - 1) / page * page + page)))
}

# settle_dev DEVICE: wait (up to 60 s) until nothing more is written to
# DEVICE (copy-on-write stores chunks in the background).
settle_dev() {
	local stat=/sys/class/block/${1##*/}/stat last="" now
	for _ in $(seq 120); do
		read -r _ _ _ _ _ _ now _ <"$stat"
		[ "$now" = "$last" ] && return 0
		last=$now
		sleep 0.5
	done
}

# touch_chunks DEVICE FIRST_CHUNK COUNT STRIDE CHUNK_BYTES: one 4 KiB write
# in COUNT chunks of DEVICE, STRIDE chunks apart from FIRST_CHUNK on (one
# fio run): each write makes the snapshot copy one chunk.
touch_chunks() {
	local dev=$1 first=$2 count=$3 stride=$4 chunk=$5
	fio --name=touch --filename="$dev" --eta=never --direct=1 --ioengine=libaio --iodepth=16 \
		--rw=write:$(((stride * chunk - 4096) >> 10))k --bs=4k --offset=$((first * chunk)) \
		--size=$(((count - 1) * stride * chunk + 4096)) --output=/dev/null
}
