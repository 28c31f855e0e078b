/* SPDX-License-Identifier: GPL-2.0 */
#ifndef __BLKSNAP_CBT_MAP_H
#define __BLKSNAP_CBT_MAP_H

#include <linux/blkdev.h>
#include <linux/mutex.h>
#include <linux/sizes.h>
#include <linux/spinlock.h>
#include <linux/uuid.h>

struct blksnap_cbtinfo;
struct blksnap_cbtload;

/**
 * struct cbt_map - the change map of one block device.
 * @lock:          orders marks from the I/O path with the numbers; taken
 *                 in any context, for O(1) work only.
 * @update_lock:   serialises the switch, user marks and readers, which
 *                 copy whole maps (sleeps).
 * @blk_shift:     tracking block size, as a power of two in bytes.
 * @blk_count:     number of tracking blocks (bytes in each map).
 * @capacity:      device size in sectors when the map was made.
 * @write_map:     the active copy: each written block holds @active.
 * @read_map:      the copy frozen at the last take, read while a snapshot
 *                 is held.
 * @active:        the number written for new changes (1..255).
 * @previous:      the number of the last take in this generation (0: none).
 * @held:          a snapshot holds @read_map.
 * @touched:       a write or a user mark reached the map since it was made:
 *                 it can no longer be replaced by a saved one.
 * @invalid:       the device changed in a way no write shows (a resize):
 *                 the next switch starts a new generation.
 * @generation_id: identifier of the current tracking generation.
 * @next:          maps for the device's new size, made by
 *                 cbt_map_prepare() when it changed and put in place by
 *                 the next switch (update_lock).
 *
 * A byte of a map holds the number of the snapshot since which its block
 * changed: a backup made at take N needs the blocks whose byte is > N.
 */
struct cbt_map {
	spinlock_t lock; /* see @lock above */
	struct mutex update_lock; /* see @update_lock above */
	unsigned int blk_shift;
	unsigned long blk_count;
	sector_t capacity;
	u8 *write_map;
	u8 *read_map;
	u8 active;
	u8 previous;
	bool held;
	bool touched;
	bool invalid;
	uuid_t generation_id;
	struct {
		sector_t capacity;
		unsigned int blk_shift;
		unsigned long blk_count;
		u8 *write_map;
		u8 *read_map;
	} next;
};

/* Largest number of bytes one cbt_map_read_to_user() call copies. */
#define CBT_MAP_READ_MAX SZ_1G

struct cbt_map *cbt_map_create(sector_t capacity);
void cbt_map_destroy(struct cbt_map *map);
void cbt_map_mark(struct cbt_map *map, sector_t sector, sector_t count);
void cbt_map_mark_dirty(struct cbt_map *map, sector_t sector, sector_t count);
int cbt_map_prepare(struct cbt_map *map, sector_t capacity);
void cbt_map_switch(struct cbt_map *map);
void cbt_map_release(struct cbt_map *map);
void cbt_map_invalidate(struct cbt_map *map);
void cbt_map_info(struct cbt_map *map, struct blksnap_cbtinfo *info);
int cbt_map_load(struct cbt_map *map, const struct blksnap_cbtload *arg,
		 const u8 __user *umap);
long cbt_map_read_to_user(struct cbt_map *map, u32 offset, u32 length,
			  u8 __user *ubuf);

/* The device size the map describes, in sectors. Context: any. */
static inline sector_t cbt_map_capacity(struct cbt_map *map)
{
	return READ_ONCE(map->capacity);
}

#endif /* __BLKSNAP_CBT_MAP_H */
