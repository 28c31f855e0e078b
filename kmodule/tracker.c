// SPDX-License-Identifier: GPL-2.0
/*
 * The per-device filter ("tracker"): its registry, its I/O path and its
 * control commands. Both interception flavours (hook_ftrace.c on stock
 * kernels, hook_blkfilter.c on kernels with the block device filter) feed
 * bios and commands here.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt
#include <linux/blk-integrity.h>
#include <linux/capability.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <linux/xarray.h>
#include <linux/blksnap.h>
#include "cbt_map.h"
#include "compat.h"
#include "diff_area.h"
#include "hook.h"
#include "snapshot.h"
#include "tracker.h"

/* Registry: device number -> tracker. Readers use RCU; writers the mutex. */
DEFINE_MUTEX(trackers_mutex);
DEFINE_XARRAY(trackers);

static struct workqueue_struct *tracker_wq;

static void tracker_free(struct work_struct *work)
{
	struct tracker *tracker =
		container_of(to_rcu_work(work), struct tracker, free_work);

	cbt_map_destroy(tracker->cbt_map);
	put_device(&tracker->bdev->bd_device);
	kfree(tracker);
}

static void tracker_release(struct kref *kref)
{
	struct tracker *tracker = container_of(kref, struct tracker, kref);

	/*
	 * The last put may come from the I/O path: free in process context,
	 * and after a grace period, as lookups run under RCU.
	 */
	queue_rcu_work(tracker_wq, &tracker->free_work);
}

/**
 * tracker_put() - drop a reference.
 * @tracker: the tracker.
 */
void tracker_put(struct tracker *tracker)
{
	kref_put(&tracker->kref, tracker_release);
}

/**
 * tracker_create() - make a tracker for a block device.
 * @bdev: the device.
 *
 * Refuses devices whose data the module cannot copy faithfully: inline
 * encryption and integrity metadata travel outside the bio data.
 *
 * Return: the tracker with one reference, or an ERR_PTR.
 */
struct tracker *tracker_create(struct block_device *bdev)
{
	struct tracker *tracker;
	struct cbt_map *map;

	if (blk_get_integrity(bdev->bd_disk))
		return ERR_PTR(-EOPNOTSUPP);
#ifdef CONFIG_BLK_INLINE_ENCRYPTION
	if (bdev_get_queue(bdev)->crypto_profile)
		return ERR_PTR(-EOPNOTSUPP);
#endif
	tracker = kzalloc(sizeof(*tracker), GFP_KERNEL);
	if (!tracker)
		return ERR_PTR(-ENOMEM);
	map = cbt_map_create(bdev_nr_sectors(bdev));
	if (IS_ERR(map)) {
		kfree(tracker);
		return ERR_CAST(map);
	}
	kref_init(&tracker->kref);
	mutex_init(&tracker->cow_lock);
	INIT_RCU_WORK(&tracker->free_work, tracker_free);
	get_device(&bdev->bd_device);
	tracker->bdev = bdev;
	tracker->dev_id = bdev->bd_dev;
	tracker->cbt_map = map;
	return tracker;
}

/**
 * tracker_register() - publish a new tracker; it starts seeing writes.
 * @tracker: the tracker; the registry takes over its reference.
 *
 * Context: trackers_mutex held.
 * Return: 0, or -EALREADY if the device has a tracker.
 */
int tracker_register(struct tracker *tracker)
{
	lockdep_assert_held(&trackers_mutex);
	return xa_insert(&trackers, tracker->dev_id, tracker, GFP_NOIO) ==
			       -EBUSY ? -EALREADY : 0;
}

/**
 * tracker_unregister() - unpublish the tracker of a device.
 * @dev_id: the device number.
 *
 * Context: trackers_mutex held.
 * Return: the tracker with the registry's reference, or NULL.
 */
struct tracker *tracker_unregister(dev_t dev_id)
{
	lockdep_assert_held(&trackers_mutex);
	return xa_erase(&trackers, dev_id);
}

/**
 * tracker_get_by_dev() - find the tracker of a device.
 * @dev_id: the device number.
 *
 * Return: the tracker with a new reference, or NULL.
 */
struct tracker *tracker_get_by_dev(dev_t dev_id)
{
	struct tracker *tracker;

	rcu_read_lock();
	tracker = xa_load(&trackers, dev_id);
	if (tracker && !kref_get_unless_zero(&tracker->kref))
		tracker = NULL;
	rcu_read_unlock();
	return tracker;
}

/**
 * tracker_find_by_bio() - find the tracker a bio must pass through.
 * @bio: the bio.
 *
 * A tracker left behind by a partition that was deleted has another
 * block_device than the bio and is ignored.
 *
 * Context: rcu_read_lock() held; the tracker stays valid until it is
 * released.
 * Return: the tracker, or NULL.
 */
struct tracker *tracker_find_by_bio(struct bio *bio)
{
	struct tracker *tracker = xa_load(&trackers, bio->bi_bdev->bd_dev);

	return tracker && tracker->bdev == bio->bi_bdev ? tracker : NULL;
}

/**
 * tracker_is_stale() - is the device of a tracker gone?
 * @tracker: the tracker.
 *
 * True once its disk was deleted, or its partition dropped (the partition
 * number may already belong to a new block_device).
 */
bool tracker_is_stale(struct tracker *tracker)
{
	struct block_device *bdev = tracker->bdev;
	struct gendisk *disk = bdev->bd_disk;

	if (!disk_live(disk))
		return true;
	if (!bdev_is_partition(bdev))
		return false;
	return xa_load(&disk->part_tbl, bdev_partno(bdev)) != bdev;
}

/**
 * tracker_list() - print the attached devices, one "MAJ:MIN" per line.
 * @buf:  output.
 * @size: its size.
 *
 * Return: bytes written.
 */
int tracker_list(char *buf, size_t size)
{
	struct tracker *tracker;
	unsigned long index;
	int len = 0;

	rcu_read_lock();
	xa_for_each(&trackers, index, tracker)
		len += scnprintf(buf + len, size - len, "%u:%u\n",
				 MAJOR(tracker->dev_id), MINOR(tracker->dev_id));
	rcu_read_unlock();
	return len;
}

/**
 * tracker_mark_bio() - the change tracking half of the I/O path.
 * @tracker: the tracker of the bio's device.
 * @bio:     a write, write-zeroes or discard with data sectors.
 *
 * Context: any; does not sleep.
 */
void tracker_mark_bio(struct tracker *tracker, struct bio *bio)
{
	cbt_map_mark(tracker->cbt_map, tracker_bio_sector(bio),
		     bio_sectors(bio));
}

/**
 * tracker_cow_bio() - the copy-on-write half of the I/O path.
 * @tracker: the tracker of the bio's device.
 * @bio:     a write, write-zeroes or discard with data sectors.
 *
 * Context: rcu_read_lock() held.
 * Return: true if copy-on-write took the bio, false to let it go on.
 */
bool tracker_cow_bio(struct tracker *tracker, struct bio *bio)
{
	struct diff_area *area = rcu_dereference(tracker->diff_area);

	return area && diff_area_submit_bio(area, bio);
}

/**
 * tracker_wants_cow() - must a write go through copy-on-write?
 * @tracker: the tracker of the bio's device.
 * @bio:     a write, write-zeroes or discard with data sectors.
 *
 * False with no snapshot taken, and for a write whose chunks are all saved.
 *
 * Context: rcu_read_lock() held; lockless.
 */
bool tracker_wants_cow(struct tracker *tracker, struct bio *bio)
{
	struct diff_area *area = rcu_dereference(tracker->diff_area);

	return area && diff_area_wants_bio(area, bio);
}

/**
 * tracker_submit_bio() - the filter's I/O path.
 * @tracker: the tracker of the bio's device.
 * @bio:     a bio submitted to that device.
 *
 * Writes, write-zeroes and discards mark the change map and, while a
 * snapshot is held, pass through copy-on-write; reads and flushes pass
 * untouched.
 *
 * Return: true if the tracker took the bio, false to let it go on.
 */
bool tracker_submit_bio(struct tracker *tracker, struct bio *bio)
{
	bool taken;

	if (!tracker_bio_changes(bio))
		return false;
	tracker_mark_bio(tracker, bio);
	rcu_read_lock();
	taken = tracker_cow_bio(tracker, bio);
	rcu_read_unlock();
	return taken;
}

/**
 * tracker_resubmit_bio() - send on a write held for copy-on-write.
 * @tracker: the tracker that took it.
 * @bio:     the bio; it does not pass through the filter again.
 */
void tracker_resubmit_bio(struct tracker *tracker, struct bio *bio)
{
#ifdef BLKSNAP_HAVE_BLKFILTER
	if (!hook_ftrace_active) {
		blkfilter_resubmit_bio(&tracker->filter, bio);
		return;
	}
#endif
	/* Called from this module's text: the ftrace hook lets it through. */
	submit_bio_noacct(bio);
}

/**
 * tracker_start_cow() - start copy-on-write (snapshot take).
 * @tracker: the tracker.
 * @area:    the copy-on-write state; the snapshot owns it.
 */
void tracker_start_cow(struct tracker *tracker, struct diff_area *area)
{
	mutex_lock(&tracker->cow_lock);
	rcu_assign_pointer(tracker->diff_area, area);
	mutex_unlock(&tracker->cow_lock);
}

/**
 * tracker_stop_cow() - stop copy-on-write; the writes it holds go on.
 * @tracker: the tracker.
 * @error:   0 (snapshot destroyed), or why the snapshot is lost.
 *
 * Context: may be called with the disk's open_mutex held (detach).
 */
void tracker_stop_cow(struct tracker *tracker, int error)
{
	struct diff_area *area;

	mutex_lock(&tracker->cow_lock);
	area = rcu_replace_pointer(tracker->diff_area, NULL,
				   lockdep_is_held(&tracker->cow_lock));
	if (area) {
		if (error)
			diff_area_corrupt(area, error);
		synchronize_rcu();
		diff_area_drain(area);
	}
	mutex_unlock(&tracker->cow_lock);
}

/**
 * tracker_detached() - the device lost its tracker.
 * @tracker: the tracker, out of the registry; the caller's reference.
 *
 * A snapshot holding the device is corrupted: the device is gone.
 */
void tracker_detached(struct tracker *tracker)
{
	tracker_stop_cow(tracker, -ENODEV);
	tracker_put(tracker);
}

static int ctl_cbtinfo(struct tracker *tracker, u8 __user *ubuf, u32 *plen)
{
	struct blksnap_cbtinfo info;

	if (*plen < sizeof(info))
		return -EINVAL;
	cbt_map_info(tracker->cbt_map, &info);
	if (copy_to_user(ubuf, &info, sizeof(info)))
		return -EFAULT;
	*plen = sizeof(info);
	return 0;
}

static int ctl_cbtmap(struct tracker *tracker, u8 __user *ubuf, u32 *plen)
{
	struct blksnap_cbtmap arg;

	if (*plen < sizeof(arg))
		return -EINVAL;
	if (copy_from_user(&arg, ubuf, sizeof(arg)))
		return -EFAULT;
	return cbt_map_read_to_user(tracker->cbt_map, arg.offset, arg.length,
				    u64_to_user_ptr(arg.buffer));
}

/* Ranges are copied in batches so that any count costs bounded memory. */
#define CBTDIRTY_BATCH 64

static int ctl_cbtdirty(struct tracker *tracker, u8 __user *ubuf, u32 *plen)
{
	struct cbt_map *map = tracker->cbt_map;
	struct blksnap_sectors *batch;
	struct blksnap_sectors __user *usec;
	struct blksnap_cbtdirty arg;
	u32 done, i, n;
	int ret = 0;

	if (!capable(CAP_SYS_ADMIN))
		return -EPERM;
	if (*plen < sizeof(arg))
		return -EINVAL;
	if (copy_from_user(&arg, ubuf, sizeof(arg)))
		return -EFAULT;
	usec = u64_to_user_ptr(arg.dirty_sectors);
	batch = kmalloc_array(CBTDIRTY_BATCH, sizeof(*batch), GFP_KERNEL);
	if (!batch)
		return -ENOMEM;
	for (done = 0; done < arg.count && !ret; done += n) {
		n = min_t(u32, CBTDIRTY_BATCH, arg.count - done);
		if (copy_from_user(batch, usec + done, n * sizeof(*batch))) {
			ret = -EFAULT;
			break;
		}
		for (i = 0; i < n; i++) {
			u64 end;

			if (check_add_overflow(batch[i].offset, batch[i].count,
					       &end) ||
			    end > map->capacity) {
				ret = -EINVAL;
				break;
			}
			cbt_map_mark_dirty(map, batch[i].offset,
					   batch[i].count);
		}
		if (fatal_signal_pending(current))
			ret = -EINTR;
	}
	kfree(batch);
	return ret;
}

static int ctl_snapshotadd(struct tracker *tracker, u8 __user *ubuf,
			   u32 *plen)
{
	struct blksnap_snapshotadd arg;
	uuid_t id;

	if (!capable(CAP_SYS_ADMIN))
		return -EPERM;
	if (*plen < sizeof(arg))
		return -EINVAL;
	if (copy_from_user(&arg, ubuf, sizeof(arg)))
		return -EFAULT;
	import_uuid(&id, arg.id.b);
	return snapshot_add_device(&id, tracker);
}

static int ctl_snapshotinfo(struct tracker *tracker, u8 __user *ubuf,
			    u32 *plen)
{
	struct blksnap_snapshotinfo info;

	if (*plen < sizeof(info))
		return -EINVAL;
	snapshot_info(tracker, &info);
	if (copy_to_user(ubuf, &info, sizeof(info)))
		return -EFAULT;
	*plen = sizeof(info);
	return 0;
}

/**
 * tracker_ctl() - run a filter command (BLKFILTER_CTL's payload).
 * @tracker: the tracker of the device.
 * @cmd:     &enum blkfilter_ctl_blksnap.
 * @ubuf:    the command's user buffer.
 * @plen:    in: its size; out: the bytes the command produced.
 *
 * Return: 0 or a byte count, or a negative errno (-ENOTTY: unknown cmd).
 */
int tracker_ctl(struct tracker *tracker, unsigned int cmd, u8 __user *ubuf,
		u32 *plen)
{
	switch (cmd) {
	case blkfilter_ctl_blksnap_cbtinfo:
		return ctl_cbtinfo(tracker, ubuf, plen);
	case blkfilter_ctl_blksnap_cbtmap:
		return ctl_cbtmap(tracker, ubuf, plen);
	case blkfilter_ctl_blksnap_cbtdirty:
		return ctl_cbtdirty(tracker, ubuf, plen);
	case blkfilter_ctl_blksnap_snapshotadd:
		return ctl_snapshotadd(tracker, ubuf, plen);
	case blkfilter_ctl_blksnap_snapshotinfo:
		return ctl_snapshotinfo(tracker, ubuf, plen);
	default:
		return -ENOTTY;
	}
}

/**
 * tracker_init() - set up the registry.
 *
 * Return: 0 or a negative errno.
 */
int tracker_init(void)
{
	tracker_wq = alloc_workqueue("blksnap-tracker", WQ_MEM_RECLAIM, 0);
	return tracker_wq ? 0 : -ENOMEM;
}

/**
 * tracker_done() - wait for every tracker to be freed.
 *
 * Context: the registry is empty.
 */
void tracker_done(void)
{
	WARN_ON_ONCE(!xa_empty(&trackers));
	rcu_barrier();
	destroy_workqueue(tracker_wq);
}
