// SPDX-License-Identifier: GPL-2.0
/*
 * The map of stored chunks (struct chunk_map): what copy-on-write keeps of
 * a chunk once its old data is in the difference storage, read without
 * locks in any context (the write path may run in interrupt context), and
 * added to by the store workers.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt
#include <linux/mm.h>
#include <linux/rcupdate.h>
#include <linux/slab.h>
#include "chunk_map.h"

/* Tag of a dense leaf in &chunk_map.leaves. */
#define LEAF_DENSE 1UL
#define DENSE_BYTES (CHUNK_MAP_LEAF_CHUNKS * sizeof(u32))

/**
 * struct chunk_map_sparse - a leaf with few chunks.
 * @count: entries; an entry is written before @count is raised over it
 *         with a release store, and is never changed afterwards.
 * @cap:   entries it has room for.
 * @keys:  each entry's chunk number modulo CHUNK_MAP_LEAF_CHUNKS; the
 *         entries' locations (u32) follow, from sparse_locs_offset().
 */
struct chunk_map_sparse {
	u16 count;
	u16 cap;
	u16 keys[];
};

static size_t sparse_locs_offset(unsigned int cap)
{
	return ALIGN(offsetof(struct chunk_map_sparse, keys) +
			     cap * sizeof(u16),
		     sizeof(u32));
}

static size_t sparse_bytes(unsigned int cap)
{
	return sparse_locs_offset(cap) + cap * sizeof(u32);
}

static u32 *sparse_locs(struct chunk_map_sparse *s)
{
	return (u32 *)((char *)s + sparse_locs_offset(s->cap));
}

/* Memory a sparse leaf with room for @cap entries takes. */
static size_t sparse_size(unsigned int cap)
{
	return kmalloc_size_roundup(sparse_bytes(cap));
}

/**
 * chunk_map_init() - make an empty map.
 * @map:         the map.
 * @chunk_count: chunks of the device.
 * @slot_shift:  every location added is a multiple of 2^@slot_shift
 *               sectors.
 *
 * Context: process context; allocates with GFP_KERNEL.
 * Return: 0 or -ENOMEM.
 */
int chunk_map_init(struct chunk_map *map, unsigned long chunk_count,
		   unsigned int slot_shift)
{
	size_t size;

	map->nr_leaves = DIV_ROUND_UP(chunk_count, CHUNK_MAP_LEAF_CHUNKS);
	map->leaves = kvcalloc(map->nr_leaves, sizeof(*map->leaves),
			       GFP_KERNEL);
	if (!map->leaves)
		return -ENOMEM;
	size = map->nr_leaves * sizeof(*map->leaves);
	map->bytes = is_vmalloc_addr(map->leaves) ?
			     PAGE_ALIGN(size) :
			     kmalloc_size_roundup(size);
	map->slot_shift = slot_shift;
	mutex_init(&map->lock);
	map->count = 0;
	return 0;
}

/**
 * chunk_map_destroy() - free a map.
 * @map: the map; no one looks at it any more.
 */
void chunk_map_destroy(struct chunk_map *map)
{
	unsigned long i;

	for (i = 0; i < map->nr_leaves; i++)
		kfree((void *)(map->leaves[i] & ~LEAF_DENSE));
	kvfree(map->leaves);
	mutex_destroy(&map->lock);
}

/**
 * chunk_map_find() - where is chunk @n stored?
 * @map:    the map.
 * @n:      the chunk.
 * @sector: receives its first sector in the storage, if it is in the map.
 *
 * Context: any; lockless.
 * Return: true if the chunk is in the map.
 */
bool chunk_map_find(struct chunk_map *map, unsigned long n, sector_t *sector)
{
	unsigned long i = n >> CHUNK_MAP_LEAF_SHIFT, leaf;
	unsigned int key = n & (CHUNK_MAP_LEAF_CHUNKS - 1);
	struct chunk_map_sparse *s;
	unsigned int j, count;
	u32 loc = 0;

	if (i >= map->nr_leaves)
		return false;
	rcu_read_lock();
	/* Pairs with the release stores of sparse_add(). */
	leaf = smp_load_acquire(&map->leaves[i]);
	if (leaf & LEAF_DENSE) {
		loc = READ_ONCE(((u32 *)(leaf & ~LEAF_DENSE))[key]);
	} else if (leaf) {
		s = (struct chunk_map_sparse *)leaf;
		/* The entries below @count are written (sparse_add()). */
		count = smp_load_acquire(&s->count);
		for (j = 0; j < count; j++) {
			if (s->keys[j] == key) {
				loc = sparse_locs(s)[j];
				break;
			}
		}
	}
	rcu_read_unlock();
	if (!loc)
		return false;
	*sector = (sector_t)(loc - 1) << map->slot_shift;
	return true;
}

/*
 * Add @loc for @key to sparse leaf @i (@s, NULL if none yet): in place if
 * there is room, else in a bigger leaf, or a dense one, that replaces it.
 * Context: map->lock held.
 */
static int sparse_add(struct chunk_map *map, unsigned long i,
		      struct chunk_map_sparse *s, unsigned int key, u32 loc)
{
	unsigned int count = s ? s->count : 0, cap, j;
	struct chunk_map_sparse *new;
	size_t size;
	u32 *dense;

	if (s && count < s->cap) {
		s->keys[count] = key;
		sparse_locs(s)[count] = loc;
		/* The entry, then the count (chunk_map_find()). */
		smp_store_release(&s->count, count + 1);
		return 0;
	}
	size = kmalloc_size_roundup(sparse_bytes(count + 1));
	if (size >= DENSE_BYTES) {
		dense = kzalloc(DENSE_BYTES, GFP_NOIO);
		if (!dense)
			return -ENOMEM;
		for (j = 0; j < count; j++)
			dense[s->keys[j]] = sparse_locs(s)[j];
		dense[key] = loc;
		map->bytes += kmalloc_size_roundup(DENSE_BYTES);
		/* The leaf is filled before it is seen. */
		smp_store_release(&map->leaves[i],
				  (unsigned long)dense | LEAF_DENSE);
	} else {
		/* As many entries as the size class holds. */
		cap = (size - sparse_bytes(0)) / (sizeof(u16) + sizeof(u32));
		while (sparse_bytes(cap) > size)
			cap--;
		new = kmalloc(sparse_bytes(cap), GFP_NOIO);
		if (!new)
			return -ENOMEM;
		new->cap = cap;
		new->count = count + 1;
		if (count) {
			memcpy(new->keys, s->keys, count * sizeof(u16));
			memcpy(sparse_locs(new), sparse_locs(s),
			       count * sizeof(u32));
		}
		new->keys[count] = key;
		sparse_locs(new)[count] = loc;
		map->bytes += sparse_size(cap);
		/* The leaf is filled before it is seen. */
		smp_store_release(&map->leaves[i], (unsigned long)new);
	}
	if (s) {
		map->bytes -= sparse_size(s->cap);
		/* Lockless readers may still be in it. */
		kvfree_rcu_mightsleep(s);
	}
	return 0;
}

/**
 * chunk_map_add() - chunk @n is stored at @sector.
 * @map:    the map.
 * @n:      the chunk, not in the map yet.
 * @sector: its first sector in the storage.
 *
 * The chunk is in the map for every chunk_map_find() that starts after
 * this returns 0.
 *
 * Context: process context; sleeps; allocates with GFP_NOIO.
 * Return: 0, -ENOMEM, -EFBIG if the map cannot hold @sector, or -EINVAL
 * for a chunk beyond the device or a misaligned sector.
 */
int chunk_map_add(struct chunk_map *map, unsigned long n, sector_t sector)
{
	unsigned long i = n >> CHUNK_MAP_LEAF_SHIFT, leaf;
	unsigned int key = n & (CHUNK_MAP_LEAF_CHUNKS - 1);
	u64 slot = sector >> map->slot_shift;
	int ret = 0;

	if (i >= map->nr_leaves || (sector & ((1ULL << map->slot_shift) - 1)))
		return -EINVAL;
	if (slot >= U32_MAX)
		return -EFBIG;
	mutex_lock(&map->lock);
	leaf = map->leaves[i];
	if (leaf & LEAF_DENSE)
		WRITE_ONCE(((u32 *)(leaf & ~LEAF_DENSE))[key], slot + 1);
	else
		ret = sparse_add(map, i, (struct chunk_map_sparse *)leaf, key,
				 slot + 1);
	if (!ret)
		WRITE_ONCE(map->count, map->count + 1);
	mutex_unlock(&map->lock);
	return ret;
}
