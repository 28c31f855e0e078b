// SPDX-License-Identifier: GPL-2.0
/*
 * Change tracking (CBT): one byte per tracking block, two copies.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <linux/vmalloc.h>
#include <linux/blksnap.h>
#include "cbt_map.h"
#include "params.h"

/* The smallest power-of-two block giving at most the maximum count. */
static unsigned int cbt_block_shift(sector_t capacity)
{
	u64 bytes = (u64)capacity << SECTOR_SHIFT;
	unsigned int shift = tracking_block_minimum_shift;

	while (shift < tracking_block_maximum_shift &&
	       DIV_ROUND_UP_ULL(bytes, 1ULL << shift) >
		       tracking_block_maximum_count)
		shift++;
	return shift;
}

/**
 * cbt_map_create() - allocate the change map of a device.
 * @capacity: device size in sectors.
 *
 * Return: the map, or an ERR_PTR.
 */
struct cbt_map *cbt_map_create(sector_t capacity)
{
	struct cbt_map *map;
	u64 count;

	map = kzalloc(sizeof(*map), GFP_KERNEL);
	if (!map)
		return ERR_PTR(-ENOMEM);
	spin_lock_init(&map->lock);
	mutex_init(&map->update_lock);
	map->capacity = capacity;
	map->blk_shift = cbt_block_shift(capacity);
	count = DIV_ROUND_UP_ULL((u64)capacity << SECTOR_SHIFT,
				 1ULL << map->blk_shift);
	if (!count || count > U32_MAX) {
		kfree(map);
		return ERR_PTR(-EINVAL);
	}
	map->blk_count = count;
	map->write_map = vzalloc(map->blk_count);
	map->read_map = vzalloc(map->blk_count);
	if (!map->write_map || !map->read_map) {
		cbt_map_destroy(map);
		return ERR_PTR(-ENOMEM);
	}
	map->active = 1;
	uuid_gen(&map->generation_id);
	return map;
}

/**
 * cbt_map_destroy() - free a change map.
 * @map: the map.
 */
void cbt_map_destroy(struct cbt_map *map)
{
	vfree(map->write_map);
	vfree(map->read_map);
	kfree(map);
}

/* Block range [*first, *last) of a sector range, clipped to the map. */
static bool cbt_blocks(struct cbt_map *map, sector_t sector, sector_t count,
		       unsigned long *first, unsigned long *last)
{
	unsigned int shift = map->blk_shift - SECTOR_SHIFT;

	if (!count || sector >= map->capacity)
		return false;
	count = min(count, map->capacity - sector);
	*first = sector >> shift;
	*last = (sector + count + (1ULL << shift) - 1) >> shift;
	return true;
}

/**
 * cbt_map_mark() - record a write.
 * @map:    the map.
 * @sector: first sector written.
 * @count:  number of sectors.
 *
 * Called on the I/O path, in any context.
 */
void cbt_map_mark(struct cbt_map *map, sector_t sector, sector_t count)
{
	unsigned long first, last, flags;

	if (!cbt_blocks(map, sector, count, &first, &last))
		return;
	/*
	 * Rewrites of blocks already marked in this snapshot number are the
	 * common case: they take no lock. A take that switches the number
	 * meanwhile orders against this write no differently than if it had
	 * taken the lock just before the switch.
	 */
	if (!data_race(memchr_inv(map->write_map + first,
				  READ_ONCE(map->active), last - first)))
		return;
	spin_lock_irqsave(&map->lock, flags);
	memset(map->write_map + first, map->active, last - first);
	spin_unlock_irqrestore(&map->lock, flags);
}

/**
 * cbt_map_mark_dirty() - mark a range changed on user request.
 * @map:    the map.
 * @sector: first sector.
 * @count:  number of sectors.
 *
 * Marks the active copy and, while a snapshot is held, the frozen copy too,
 * so that both the current backup and the next one include the range.
 */
void cbt_map_mark_dirty(struct cbt_map *map, sector_t sector, sector_t count)
{
	unsigned long first, last, flags;

	if (!cbt_blocks(map, sector, count, &first, &last))
		return;
	mutex_lock(&map->update_lock);
	spin_lock_irqsave(&map->lock, flags);
	memset(map->write_map + first, map->active, last - first);
	if (map->held)
		memset(map->read_map + first, map->previous, last - first);
	spin_unlock_irqrestore(&map->lock, flags);
	mutex_unlock(&map->update_lock);
}

/**
 * cbt_map_switch() - freeze the map for a snapshot being taken.
 * @map: the map.
 *
 * The active copy becomes the readable one and a new number starts. After
 * 255 takes the generation ends: a new identifier, and an empty map.
 *
 * Context: process context; the I/O path marks nothing meanwhile (the
 * device's tracker is gated and idle), so the maps are copied with
 * interrupts enabled.
 */
void cbt_map_switch(struct cbt_map *map)
{
	unsigned long flags;
	u8 active;

	mutex_lock(&map->update_lock);
	active = map->active;
	if (active == U8_MAX) {
		memset(map->write_map, 0, map->blk_count);
		active = 1;
	}
	memcpy(map->read_map, map->write_map, map->blk_count);
	spin_lock_irqsave(&map->lock, flags);
	if (map->active == U8_MAX)
		uuid_gen(&map->generation_id);
	map->previous = active;
	WRITE_ONCE(map->active, active + 1);
	map->held = true;
	spin_unlock_irqrestore(&map->lock, flags);
	mutex_unlock(&map->update_lock);
}

/**
 * cbt_map_release() - the snapshot holding the frozen copy is gone.
 * @map: the map.
 */
void cbt_map_release(struct cbt_map *map)
{
	unsigned long flags;

	spin_lock_irqsave(&map->lock, flags);
	map->held = false;
	spin_unlock_irqrestore(&map->lock, flags);
}

/**
 * cbt_map_info() - describe the map.
 * @map:  the map.
 * @info: filled in.
 */
void cbt_map_info(struct cbt_map *map, struct blksnap_cbtinfo *info)
{
	unsigned long flags;

	memset(info, 0, sizeof(*info));
	spin_lock_irqsave(&map->lock, flags);
	info->device_capacity = (u64)map->capacity << SECTOR_SHIFT;
	info->block_size = 1U << map->blk_shift;
	info->block_count = map->blk_count;
	export_uuid(info->generation_id.b, &map->generation_id);
	info->changes_number = map->previous;
	spin_unlock_irqrestore(&map->lock, flags);
}

/**
 * cbt_map_read_to_user() - copy part of the map to user space.
 * @map:    the map.
 * @offset: first byte.
 * @length: number of bytes wanted.
 * @ubuf:   user buffer.
 *
 * While a snapshot is held the frozen copy is read (the history up to the
 * take); otherwise the active copy.
 *
 * Return: bytes copied (0 at the end of the map) or a negative errno.
 */
long cbt_map_read_to_user(struct cbt_map *map, u32 offset, u32 length,
			  u8 __user *ubuf)
{
	long copied = 0;
	u8 *bounce;

	if (offset > map->blk_count)
		return -EINVAL;
	length = min_t(unsigned long, length, map->blk_count - offset);
	bounce = kmalloc(PAGE_SIZE, GFP_KERNEL);
	if (!bounce)
		return -ENOMEM;
	while (copied < length) {
		size_t n = min_t(size_t, PAGE_SIZE, length - copied);

		/* No fault with the lock held: the bounce page in between. */
		mutex_lock(&map->update_lock);
		memcpy(bounce, (map->held ? map->read_map : map->write_map) +
				       offset + copied, n);
		mutex_unlock(&map->update_lock);
		if (copy_to_user(ubuf + copied, bounce, n)) {
			copied = -EFAULT;
			break;
		}
		copied += n;
		cond_resched();
	}
	kfree(bounce);
	return copied;
}
