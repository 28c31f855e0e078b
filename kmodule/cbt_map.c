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

/* The largest byte of @p[0..@n). */
static u8 max_byte(const u8 *p, size_t n)
{
	u8 m = 0;

	while (n--)
		m = max(m, *p++);
	return m;
}

/*
 * The geometry and two empty maps for a device of @capacity sectors, in
 * map->next. Context: update_lock held, or the map not in use yet.
 */
static int cbt_map_alloc_next(struct cbt_map *map, sector_t capacity)
{
	unsigned int shift = cbt_block_shift(capacity);
	u64 count = DIV_ROUND_UP_ULL((u64)capacity << SECTOR_SHIFT,
				     1ULL << shift);

	if (!count || count > U32_MAX)
		return -EINVAL;
	map->next.write_map = vzalloc(count);
	map->next.read_map = vzalloc(count);
	if (!map->next.write_map || !map->next.read_map) {
		vfree(map->next.write_map);
		vfree(map->next.read_map);
		map->next.write_map = NULL;
		map->next.read_map = NULL;
		return -ENOMEM;
	}
	map->next.capacity = capacity;
	map->next.blk_shift = shift;
	map->next.blk_count = count;
	return 0;
}

static void cbt_map_free_next(struct cbt_map *map)
{
	vfree(map->next.write_map);
	vfree(map->next.read_map);
	map->next.write_map = NULL;
	map->next.read_map = NULL;
	map->next.capacity = 0;
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
	int ret;

	map = kzalloc(sizeof(*map), GFP_KERNEL);
	if (!map)
		return ERR_PTR(-ENOMEM);
	spin_lock_init(&map->lock);
	mutex_init(&map->update_lock);
	ret = cbt_map_alloc_next(map, capacity);
	if (ret) {
		kfree(map);
		return ERR_PTR(ret);
	}
	map->capacity = capacity;
	map->blk_shift = map->next.blk_shift;
	map->blk_count = map->next.blk_count;
	map->write_map = map->next.write_map;
	map->read_map = map->next.read_map;
	map->next.write_map = NULL;
	map->next.read_map = NULL;
	map->next.capacity = 0;
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
	cbt_map_free_next(map);
	vfree(map->write_map);
	vfree(map->read_map);
	kfree(map);
}

/**
 * cbt_map_prepare() - get ready for a take of a device of @capacity sectors.
 * @map:      the map.
 * @capacity: the device's size now.
 *
 * A map describes the device as it was when it was made: writes past its
 * end are not recorded. If the device was resized since, maps for the new
 * size are made here, and the next cbt_map_switch() puts them in place and
 * starts a new generation (a backup of the first take after a resize is a
 * full one). Called before the take freezes the device, as it allocates.
 *
 * Return: 0, -ENOMEM, or -EINVAL (a size the map cannot describe).
 */
int cbt_map_prepare(struct cbt_map *map, sector_t capacity)
{
	int ret = 0;

	mutex_lock(&map->update_lock);
	if (capacity != map->next.capacity)
		cbt_map_free_next(map);
	if (capacity != map->capacity && capacity != map->next.capacity)
		ret = cbt_map_alloc_next(map, capacity);
	mutex_unlock(&map->update_lock);
	return ret;
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

/*
 * Are blocks [@first, @last) all marked with the active number? A write
 * within one block, the common case, is one byte compared (memchr_inv()'s
 * call was more than half of the mark's share of the write path's CPU,
 * bench/cbt_profile.sh). Lockless: see cbt_map_mark().
 */
static bool cbt_marked(struct cbt_map *map, unsigned long first,
		       unsigned long last)
{
	u8 active = READ_ONCE(map->active);

	if (last - first > 1) {
		/* Racing with a marker under map->lock: old bytes or new. */
		return !data_race(memchr_inv(map->write_map + first, active,
					     last - first));
	}
	/* The same race, for one byte. */
	return data_race(map->write_map[first]) == active;
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

	if (unlikely(!READ_ONCE(map->touched)))
		WRITE_ONCE(map->touched, true);
	if (!cbt_blocks(map, sector, count, &first, &last))
		return;
	/*
	 * Rewrites of blocks already marked in this snapshot number are the
	 * common case: they take no lock. A take that switches the number
	 * meanwhile orders against this write no differently than if it had
	 * taken the lock just before the switch.
	 */
	if (cbt_marked(map, first, last))
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

	/* Under update_lock: a take after a resize replaces the maps. */
	mutex_lock(&map->update_lock);
	WRITE_ONCE(map->touched, true);
	if (!cbt_blocks(map, sector, count, &first, &last)) {
		mutex_unlock(&map->update_lock);
		return;
	}
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
 * 255 takes, once cbt_map_prepare() saw the device resized, or once
 * cbt_map_invalidate() was called, the generation ends: a new identifier,
 * and an empty map (of the new size).
 *
 * Context: process context; the I/O path marks nothing meanwhile (the
 * device's tracker is gated and idle), so the maps are copied with
 * interrupts enabled.
 */
void cbt_map_switch(struct cbt_map *map)
{
	u8 *old_write = NULL, *old_read = NULL;
	bool new_generation;
	unsigned long flags;
	u8 active;

	mutex_lock(&map->update_lock);
	active = map->active;
	spin_lock_irqsave(&map->lock, flags);
	new_generation = active == U8_MAX || map->next.capacity || map->invalid;
	map->invalid = false;
	spin_unlock_irqrestore(&map->lock, flags);
	if (map->next.capacity) {
		/* Resized: the maps made for the new size, empty. */
		old_write = map->write_map;
		old_read = map->read_map;
		spin_lock_irqsave(&map->lock, flags);
		WRITE_ONCE(map->capacity, map->next.capacity);
		map->blk_shift = map->next.blk_shift;
		map->blk_count = map->next.blk_count;
		map->write_map = map->next.write_map;
		map->read_map = map->next.read_map;
		spin_unlock_irqrestore(&map->lock, flags);
		map->next.write_map = NULL;
		map->next.read_map = NULL;
		map->next.capacity = 0;
		active = 1;
	} else if (new_generation) {
		memset(map->write_map, 0, map->blk_count);
		active = 1;
	}
	memcpy(map->read_map, map->write_map, map->blk_count);
	spin_lock_irqsave(&map->lock, flags);
	if (new_generation)
		uuid_gen(&map->generation_id);
	map->previous = active;
	WRITE_ONCE(map->active, active + 1);
	map->held = true;
	spin_unlock_irqrestore(&map->lock, flags);
	mutex_unlock(&map->update_lock);
	vfree(old_write);
	vfree(old_read);
}

/**
 * cbt_map_load() - continue tracking from a saved map.
 * @map:  the map of a freshly attached tracker.
 * @arg:  the saved map's description (&struct blksnap_cbtload).
 * @umap: user pointer to its @arg->block_count bytes.
 *
 * The bytes are copied from user space into a new buffer with no lock
 * held (a take needs @update_lock with every gate closed, and a fault may
 * wait for I/O), which then becomes the active copy under @lock. The old
 * active copy stays allocated as the new @read_map, so a lockless reader
 * of it in cbt_map_mark() reads valid memory; it finds there no byte equal
 * to the new number unless it also marks the new copy under @lock. A write
 * that reached the map before the switch set @touched, seen here under the
 * lock: then the load is refused, as the saved map would lose that write.
 *
 * Return: 0; -EBUSY if the map was written, marked or taken since it was
 * made; -EINVAL for another geometry, a changes number above 254, a byte
 * above it plus one, or non-zero reserved bytes; -EFAULT; -EINTR; -ENOMEM.
 */
int cbt_map_load(struct cbt_map *map, const struct blksnap_cbtload *arg,
		 const u8 __user *umap)
{
	u8 *staged, *old_read = NULL;
	unsigned long flags, done;
	int ret = 0;

	if (memchr_inv(arg->reserved, 0, sizeof(arg->reserved)) ||
	    arg->changes_number >= U8_MAX)
		return -EINVAL;
	/* Geometry first: it bounds the copy. Checked again below. */
	mutex_lock(&map->update_lock);
	if (arg->device_capacity != (u64)map->capacity << SECTOR_SHIFT ||
	    arg->block_size != 1U << map->blk_shift ||
	    arg->block_count != map->blk_count)
		ret = -EINVAL;
	mutex_unlock(&map->update_lock);
	if (ret)
		return ret;
	staged = vzalloc(arg->block_count);
	if (!staged)
		return -ENOMEM;
	for (done = 0; done < arg->block_count; done += PAGE_SIZE) {
		size_t n = min_t(size_t, PAGE_SIZE, arg->block_count - done);

		if (copy_from_user(staged + done, umap + done, n)) {
			ret = -EFAULT;
			goto out_free;
		}
		if (max_byte(staged + done, n) > arg->changes_number + 1) {
			ret = -EINVAL;
			goto out_free;
		}
		if (fatal_signal_pending(current)) {
			ret = -EINTR;
			goto out_free;
		}
		cond_resched();
	}
	mutex_lock(&map->update_lock);
	if (arg->device_capacity != (u64)map->capacity << SECTOR_SHIFT ||
	    arg->block_count != map->blk_count) {
		ret = -EINVAL;
	} else if (READ_ONCE(map->touched) || map->held || map->previous ||
		   map->next.capacity) {
		ret = -EBUSY;
	} else {
		spin_lock_irqsave(&map->lock, flags);
		if (map->touched) {
			ret = -EBUSY;
		} else {
			old_read = map->read_map;
			map->read_map = map->write_map;
			map->write_map = staged;
			staged = NULL;
			import_uuid(&map->generation_id, arg->generation_id.b);
			map->previous = arg->changes_number;
			WRITE_ONCE(map->active, arg->changes_number + 1);
			map->touched = true;
		}
		spin_unlock_irqrestore(&map->lock, flags);
	}
	mutex_unlock(&map->update_lock);
	vfree(old_read);
out_free:
	vfree(staged);
	return ret;
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
 * cbt_map_invalidate() - the map can no longer vouch for the device.
 * @map: the map.
 *
 * The next take starts a new generation, and a saved map can no longer be
 * loaded into this one.
 *
 * Context: any.
 */
void cbt_map_invalidate(struct cbt_map *map)
{
	unsigned long flags;

	spin_lock_irqsave(&map->lock, flags);
	map->invalid = true;
	WRITE_ONCE(map->touched, true);
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
 * take); otherwise the active copy. At most %CBT_MAP_READ_MAX bytes are
 * copied in one call, so that the count fits the ioctl's return value.
 *
 * Return: bytes copied (0 at the end of the map) or a negative errno:
 * -EINVAL, -EFAULT (nothing copied), -ENOMEM, -EINTR (a fatal signal).
 */
long cbt_map_read_to_user(struct cbt_map *map, u32 offset, u32 length,
			  u8 __user *ubuf)
{
	long copied = 0;
	u8 *bounce;

	if (offset > map->blk_count)
		return -EINVAL;
	length = min_t(unsigned long, length, map->blk_count - offset);
	length = min_t(u32, length, CBT_MAP_READ_MAX);
	bounce = kmalloc(PAGE_SIZE, GFP_KERNEL);
	if (!bounce)
		return -ENOMEM;
	while (copied < length) {
		size_t n = min_t(size_t, PAGE_SIZE, length - copied);

		/* No fault with the lock held: the bounce page in between. */
		mutex_lock(&map->update_lock);
		if (offset + copied + n > map->blk_count) {
			/* A take after a resize replaced the map. */
			mutex_unlock(&map->update_lock);
			break;
		}
		memcpy(bounce, (map->held ? map->read_map : map->write_map) +
				       offset + copied, n);
		mutex_unlock(&map->update_lock);
		if (copy_to_user(ubuf + copied, bounce, n)) {
			copied = -EFAULT;
			break;
		}
		copied += n;
		if (fatal_signal_pending(current)) {
			copied = -EINTR;
			break;
		}
		cond_resched();
	}
	kfree(bounce);
	return copied;
}
