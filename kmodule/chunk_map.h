/* SPDX-License-Identifier: GPL-2.0 */
#ifndef __BLKSNAP_CHUNK_MAP_H
#define __BLKSNAP_CHUNK_MAP_H

#include <linux/bits.h>
#include <linux/blkdev.h>
#include <linux/mutex.h>

/* Chunks per leaf of the map, as a power of two. */
#define CHUNK_MAP_LEAF_SHIFT 10
#define CHUNK_MAP_LEAF_CHUNKS BIT(CHUNK_MAP_LEAF_SHIFT)

/**
 * struct chunk_map - where the stored chunks of a device lie in the
 * difference storage: chunk number -> storage sector.
 * @leaves:     one word per CHUNK_MAP_LEAF_CHUNKS chunks of the device: 0, or
 *              a leaf (a sparse one, or a dense one tagged with bit 0),
 *              published with a release store. A leaf a bigger one
 *              replaces is freed after an RCU grace period.
 * @nr_leaves:  words in @leaves.
 * @slot_shift: a location is kept in slots of 2^@slot_shift sectors.
 * @lock:       serialises additions.
 * @count:      chunks in the map.
 * @bytes:      memory the map takes, @leaves included.
 *
 * A location is 32 bits: the slot number plus one, 0 meaning none. A leaf
 * starts sparse: unsorted pairs of the chunk's low bits (16 bits) and its
 * location, appended in place; it grows through the kmalloc size classes,
 * and becomes a dense array of CHUNK_MAP_LEAF_CHUNKS locations (4 KiB)
 * once a sparse one would not be smaller. A chunk takes 4 bytes in a dense
 * leaf, 6 (and what its size class leaves free) in a sparse one; the index
 * takes 8 bytes per leaf of the device.
 */
struct chunk_map {
	unsigned long *leaves;
	unsigned long nr_leaves;
	unsigned int slot_shift;
	struct mutex lock; /* see @lock above */
	unsigned long count;
	size_t bytes;
};

int chunk_map_init(struct chunk_map *map, unsigned long chunk_count,
		   unsigned int slot_shift);
void chunk_map_destroy(struct chunk_map *map);
bool chunk_map_find(struct chunk_map *map, unsigned long n, sector_t *sector);
int chunk_map_add(struct chunk_map *map, unsigned long n, sector_t sector);

#endif /* __BLKSNAP_CHUNK_MAP_H */
