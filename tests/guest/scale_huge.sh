#!/usr/bin/env bash
# cost: 50
# columns: stock-6.1
# Huge devices (null_blk disks whose writes vanish: any size for free).
# Attaching a 64 TiB device costs the change map only: the module's vmalloc
# growth stays within two maps of tracking_block_maximum_count bytes. A
# taken snapshot of a 16 TiB device, chunks rewritten after the take: the
# kernel memory the snapshot holds per chunk copied (growth of the kmalloc
# and radix_tree_node slab caches, and of vmalloc, caches dropped before
# each reading; the Slab total is printed too), for contiguous chunks and for chunks
# 100 apart (1% of the device), reported per chunk and per TiB copied.
# Stock kernels only: the debug kernel's KASAN redzones and kmemleak
# metadata would make the memory figures its own, not the module's.
# SCALE_CHUNKS (default 2048) sets how many chunks each phase copies.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/scale-helpers.bash"
chunks=${SCALE_CHUNKS:-2048}
chunk=$((256 << 10)) # the chunk of a 16 TiB device by default (blksnap(4))
tib=$((1 << 40))

step "attach a 1 GiB and a 64 TiB device: change-map memory"
bound=$(cbt_bound)
blksnap version >/dev/null
t=$(now_us)
blksnap version >/dev/null
echo "SCALE exec_reference ms=$(elapsed_ms "$t") (blksnap version: what any command costs here)"
for size_mb in 1024 $((64 << 20)); do
	dev=$(nullb_sparse "huge$size_mb" "$size_mb")
	wait_for_dev "$dev"
	# The module's own vmalloc areas are exact: no need to drop caches.
	before=$(KMEM_DROP=0 kmem)
	t=$(now_us)
	blksnap attach -d "$dev" >/dev/null
	ms=$(elapsed_ms "$t")
	after=$(KMEM_DROP=0 kmem)
	is_attached "$dev" || fail "$dev not attached"
	map=$(kmem_delta "$before" "$after" 3)
	blocks=$(cbt_field "$dev" block_count)
	echo "SCALE attach size_mb=$size_mb ms=$ms change_map_bytes=$map blocks=$blocks" \
		"slab_delta=$(kmem_delta "$before" "$after" 1) vmalloc_delta=$(kmem_delta "$before" "$after" 2)"
	[ "$map" -gt 0 ] || fail "no change map in vmalloc for $size_mb MiB"
	[ "$map" -le "$bound" ] || fail "change map of $size_mb MiB: $map bytes, bound $bound"
	# One byte per block, two maps.
	[ "$map" -ge $((2 * blocks)) ] || fail "change map $map bytes for $blocks blocks"
	blksnap detach -d "$dev"
done

step "snapshot of a 16 TiB device: kernel memory per chunk copied"
orig=$(nullb_sparse orig16t $((16 << 20)))
store=$(nullb_sparse store $((1 << 20)))
wait_for_dev "$orig"
wait_for_dev "$store"
tmp=$(mktemp -d)
mpre=$(kmem)
id=$(blksnap snapshot_create -d "$orig" -f "$store" -l 1000G)
blksnap snapshot_take -i "$id"
m0=$(kmem "$tmp/slab0")
echo "SCALE taken_16tib slab_delta=$(kmem_delta "$mpre" "$m0" 1)" \
	"vmalloc_delta=$(kmem_delta "$mpre" "$m0" 2) free_delta=$(kmem_delta "$mpre" "$m0" 4)"
# Phase 1 (a quarter as many) fills the free buffer pool and the per-device structures; the
# figures per chunk are the growth of the phases after it.
touch_chunks "$orig" 0 $((chunks / 4)) 1 $chunk
settle_dev "$store"
m1=$(kmem "$tmp/slab1")
step "$((2 * chunks)) contiguous chunks"
touch_chunks "$orig" "$chunks" $((2 * chunks)) 1 $chunk
settle_dev "$store"
m2=$(kmem "$tmp/slab2")
step "$chunks chunks 100 apart"
# Then chunks 100 apart, past the contiguous ones: 1% of the device's
# chunks, each alone in its part of the chunk index.
touch_chunks "$orig" $((4 * chunks)) "$chunks" 100 $chunk
settle_dev "$store"
m3=$(kmem "$tmp/slab3")
[ "$(blksnap snapshot_info -d "$orig" -f error_code)" = 0 ] || fail "snapshot corrupted"
report() { # name before after chunks slabinfo-before slabinfo-after
	python3 - "$1" "$2" "$3" "$4" "$(slab_module "$5" "$6")" $chunk $tib <<'PY'
import sys
name, a, b = sys.argv[1], sys.argv[2].split(), sys.argv[3].split()
n, mod, chunk, tib = (int(x) for x in sys.argv[4:8])
slab, vm = int(b[0]) - int(a[0]), int(b[1]) - int(a[1])
per = (mod + vm) / n
print(f"SCALE cow_memory {name} chunks={n} chunk_kib={chunk >> 10} slab_delta={slab} "
      f"module_caches_delta={mod} vmalloc_delta={vm} bytes_per_chunk={per:.1f} "
      f"mib_per_tib_copied={per * tib / chunk / 2**20:.1f}")
PY
}
report "first" "$m0" "$m1" $((chunks / 4)) "$tmp/slab0" "$tmp/slab1"
echo "# slab growth: $(slab_growth "$tmp/slab0" "$tmp/slab1")"
report "contiguous" "$m1" "$m2" $((2 * chunks)) "$tmp/slab1" "$tmp/slab2"
echo "# slab growth: $(slab_growth "$tmp/slab1" "$tmp/slab2")"
report "spread_1pct" "$m2" "$m3" "$chunks" "$tmp/slab2" "$tmp/slab3"
echo "# slab growth: $(slab_growth "$tmp/slab2" "$tmp/slab3")"

step "destroy: the memory is given back"
blksnap snapshot_destroy -i "$id"
blksnap detach -d "$orig"
m4=$(kmem)
echo "SCALE after_destroy slab_vs_before_take=$(kmem_delta "$m0" "$m4" 1)" \
	"module_vmalloc=$(read -r _ _ v _ <<<"$m4" && echo "$v")"
