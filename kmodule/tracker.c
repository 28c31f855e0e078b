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
#include <linux/hashtable.h>
#include <linux/mempool.h>
#include <linux/module.h>
#include <linux/sched/mm.h>
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
/*
 * The same trackers hashed by the address of their disk: a write to any
 * device of a disk may reach the trackers of all its devices
 * (tracker_bio_range()), and the ftrace I/O path finds them with one hash
 * and a short chain, where a lookup of the device number in an xarray
 * walks several levels (its share of the write path's CPU was measured by
 * bench/cbt_profile.sh). Readers use RCU; writers the mutex.
 */
#define TRACKERS_BY_DISK_BITS 6
static DEFINE_HASHTABLE(trackers_by_disk, TRACKERS_BY_DISK_BITS);

static struct workqueue_struct *tracker_wq;
/*
 * Counting a write never waits for memory on the I/O path: each tracker has
 * a reserve of its own, so that writes held by one device's copy-on-write
 * never starve another device, which may hold the difference storage the
 * held writes wait for (struct tracker_write).
 */
#define TRACKER_WRITE_RESERVE 64
static struct kmem_cache *tracker_write_cache;
static struct workqueue_struct *tracker_defer_wq;

static void tracker_defer_fn(struct work_struct *work);

/*
 * Let go of the device: nothing of the module refers to it afterwards, so
 * that the driver may free its disk and be unloaded. The ftrace I/O path
 * finds only registered trackers, under RCU; held writes are admitted by
 * @defer_work; everybody else holds @bdev_users.
 */
static void tracker_release_bdev(struct tracker *tracker)
{
	if (tracker->bdev_released)
		return;
	tracker->bdev_released = true;
	synchronize_rcu();
	flush_work(&tracker->defer_work);
	percpu_ref_kill(&tracker->bdev_users);
	wait_for_completion(&tracker->bdev_idle);
	percpu_ref_exit(&tracker->bdev_users);
	put_device(&tracker->bdev->bd_device);
}

static void tracker_bdev_idle(struct percpu_ref *ref)
{
	struct tracker *tracker =
		container_of(ref, struct tracker, bdev_users);

	complete(&tracker->bdev_idle);
}

/**
 * tracker_bdev_get() - use the tracker's device outside the I/O path.
 * @tracker: the tracker.
 *
 * Context: any.
 * Return: true if the device may be used until tracker_bdev_put(), false
 * if the tracker was detached (the device may be gone).
 */
bool tracker_bdev_get(struct tracker *tracker)
{
	return percpu_ref_tryget_live(&tracker->bdev_users);
}

/**
 * tracker_bdev_put() - done with the tracker's device.
 * @tracker: the tracker.
 *
 * Context: any.
 */
void tracker_bdev_put(struct tracker *tracker)
{
	percpu_ref_put(&tracker->bdev_users);
}

static void tracker_free(struct work_struct *work)
{
	struct tracker *tracker =
		container_of(to_rcu_work(work), struct tracker, free_work);

	/* Held writes are admitted; admitted writes refer to it until done. */
	tracker_release_bdev(tracker);
	flush_work(&tracker->defer_work);
	wait_var_event(&tracker->inflight, !atomic_read(&tracker->inflight));
	cbt_map_destroy(tracker->cbt_map);
	mempool_exit(&tracker->write_pool);
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

static bool bdev_partitioned(struct block_device *bdev)
{
	unsigned long index = 1;

	return !bdev_is_partition(bdev) &&
	       xa_find(&bdev->bd_disk->part_tbl, &index, ULONG_MAX,
		       XA_PRESENT) != NULL;
}

/**
 * tracker_partitioned() - is the tracker's device a whole disk that has
 * partitions?
 * @tracker: the tracker.
 *
 * Writes sent through a partition are tracked and copied on write for the
 * whole disk too (tracker_bio_range()), but a take freezes only the file
 * system on the device it takes, not those on the partitions: the image
 * of such a disk would hold file systems caught mid-write. Such a whole
 * disk is refused at attach; one that gains partitions later can no
 * longer be read or taken (-EBUSY).
 *
 * Context: any.
 */
bool tracker_partitioned(struct tracker *tracker)
{
	bool ret;

	/* Detached: its device may be gone; a take fails anyway (-ENODEV). */
	if (!tracker_bdev_get(tracker))
		return false;
	ret = bdev_partitioned(tracker->bdev);
	tracker_bdev_put(tracker);
	return ret;
}

/**
 * tracker_create() - make a tracker for a block device.
 * @bdev: the device.
 *
 * Refuses devices whose data the module cannot copy faithfully: inline
 * encryption and integrity metadata travel outside the bio data, and a
 * zoned device's writes cannot be held back and reordered. A whole disk
 * with partitions is refused too (tracker_partitioned()).
 *
 * Return: the tracker with one reference, or an ERR_PTR: -EOPNOTSUPP,
 * -EBUSY (partitions), -ENOMEM.
 */
struct tracker *tracker_create(struct block_device *bdev)
{
	struct tracker *tracker;
	struct cbt_map *map;

	if (blk_get_integrity(bdev->bd_disk) || bdev_is_zoned(bdev))
		return ERR_PTR(-EOPNOTSUPP);
#ifdef CONFIG_BLK_INLINE_ENCRYPTION
	if (bdev_get_queue(bdev)->crypto_profile)
		return ERR_PTR(-EOPNOTSUPP);
#endif
	tracker = kzalloc(sizeof(*tracker), GFP_KERNEL);
	if (!tracker)
		return ERR_PTR(-ENOMEM);
	if (bdev_partitioned(bdev)) {
		pr_info("%pg has partitions: attach them instead of the whole disk\n",
			bdev);
		kfree(tracker);
		return ERR_PTR(-EBUSY);
	}
	map = cbt_map_create(bdev_nr_sectors(bdev));
	if (IS_ERR(map)) {
		kfree(tracker);
		return ERR_CAST(map);
	}
	if (mempool_init_slab_pool(&tracker->write_pool, TRACKER_WRITE_RESERVE,
				   tracker_write_cache))
		goto fail_map;
	if (percpu_ref_init(&tracker->bdev_users, tracker_bdev_idle, 0,
			    GFP_KERNEL))
		goto fail_pool;
	init_completion(&tracker->bdev_idle);
	kref_init(&tracker->kref);
	mutex_init(&tracker->cow_lock);
	atomic_set(&tracker->inflight, 0);
	atomic_set(&tracker->resizes, 0);
	spin_lock_init(&tracker->gate_lock);
	bio_list_init(&tracker->deferred);
	INIT_WORK(&tracker->defer_work, tracker_defer_fn);
	INIT_RCU_WORK(&tracker->free_work, tracker_free);
	get_device(&bdev->bd_device);
	tracker->bdev = bdev;
	tracker->dev_id = bdev->bd_dev;
	tracker->disk_dev = disk_devt(bdev->bd_disk);
	tracker->cbt_map = map;
	return tracker;
fail_pool:
	mempool_exit(&tracker->write_pool);
fail_map:
	cbt_map_destroy(map);
	kfree(tracker);
	return ERR_PTR(-ENOMEM);
}

/**
 * tracker_register() - publish a new tracker; it starts seeing writes.
 * @tracker: the tracker; the registry takes over its reference.
 *
 * Context: trackers_mutex held.
 * Return: 0, -EALREADY if the device has a tracker, or -ENOMEM.
 */
int tracker_register(struct tracker *tracker)
{
	int ret;

	lockdep_assert_held(&trackers_mutex);
	ret = xa_insert(&trackers, tracker->dev_id, tracker, GFP_NOIO);
	if (ret)
		return ret == -EBUSY ? -EALREADY : ret;
	hash_add_rcu(trackers_by_disk, &tracker->disk_link,
		     (unsigned long)tracker->bdev->bd_disk);
	return 0;
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
	struct tracker *tracker;

	lockdep_assert_held(&trackers_mutex);
	tracker = xa_erase(&trackers, dev_id);
	if (!tracker)
		return NULL;
	/* Readers may still walk past it until a grace period has gone. */
	hash_del_rcu(&tracker->disk_link);
	return tracker;
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
 * tracker_bio_range() - the sectors of a tracker's device that a bio writes.
 * @tracker: the tracker.
 * @bio:     a write to its device, or to another device of its disk.
 * @sector:  the first sector, relative to the tracker's device.
 * @count:   the number of sectors.
 *
 * A write to a partition changes sectors of its whole disk, and a write to
 * the whole disk, or to a partition that overlaps another (one added
 * later, BLKPG), may change a partition's. Such a write counts for every
 * tracker whose sectors it overlaps: the sectors the device has now or had
 * at its last take, as it may have shrunk since and grow back later.
 *
 * Context: any.
 * Return: true if the bio writes sectors of the device.
 */
bool tracker_bio_range(struct tracker *tracker, struct bio *bio,
		       sector_t *sector, sector_t *count)
{
	struct block_device *bdev = bio->bi_bdev;
	sector_t first, end, start, span;

	if (bdev == tracker->bdev) {
		*sector = tracker_bio_sector(bio);
		*count = bio_sectors(bio);
		return *count;
	}
	if (bdev->bd_disk != tracker->bdev->bd_disk)
		return false;
	first = bio->bi_iter.bi_sector;
	if (!bio_flagged(bio, BIO_REMAPPED))
		first += bdev->bd_start_sect;
	end = first + bio_sectors(bio);
	start = tracker->bdev->bd_start_sect;
	span = max(bdev_nr_sectors(tracker->bdev),
		   cbt_map_capacity(tracker->cbt_map));
	first = max(first, start);
	end = min(end, start + span);
	if (first >= end)
		return false;
	*sector = first - start;
	*count = end - first;
	return true;
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

/*
 * Admitted writes. The I/O path counts every write it lets pass in
 * &tracker.inflight until the write completes, by putting itself in front
 * of the bio's completion: the block layer lets a stacking driver save and
 * restore bi_end_io (see bio_endio()). A take waits for the count to drain
 * with the gate closed (tracker_gate()), so that no write admitted before
 * the switch of the change map lands after copy-on-write has started.
 */
struct tracker_write {
	bio_end_io_t *end_io;
	void *private;
	struct tracker *tracker;
};

static void tracker_write_endio(struct bio *bio)
{
	struct tracker_write *tw = bio->bi_private;
	struct tracker *tracker = tw->tracker;

	bio->bi_end_io = tw->end_io;
	bio->bi_private = tw->private;
	mempool_free(tw, &tracker->write_pool);
	bio_endio(bio);
	/*
	 * Last: the tracker may be freed once the count is zero, and
	 * wake_up_var() only hashes the address.
	 */
	if (atomic_dec_and_test(&tracker->inflight))
		wake_up_var(&tracker->inflight);
}

/*
 * Is @bio counted in @tracker's writes in flight? A write to a partition
 * that overlaps several trackers (the partition's, its whole disk's) is
 * counted by each: the completions nest.
 */
static bool tracker_counts(struct tracker *tracker, struct bio *bio)
{
	bio_end_io_t *end_io = bio->bi_end_io;
	void *private = bio->bi_private;

	while (end_io == tracker_write_endio) {
		struct tracker_write *tw = private;

		if (tw->tracker == tracker)
			return true;
		end_io = tw->end_io;
		private = tw->private;
	}
	return false;
}

static void tracker_count(struct tracker *tracker, struct bio *bio,
			  struct tracker_write *tw)
{
	tw->end_io = bio->bi_end_io;
	tw->private = bio->bi_private;
	tw->tracker = tracker;
	bio->bi_end_io = tracker_write_endio;
	bio->bi_private = tw;
	atomic_inc(&tracker->inflight);
}

/**
 * tracker_admit_bio() - the lockless half of the write path.
 * @tracker: the tracker of the bio's device, or of another device of its
 *           disk.
 * @bio:     a write, write-zeroes or discard with data sectors.
 *
 * A write that reaches none of the device's sectors passes. A write not
 * yet counted is counted until it completes, unless the gate is closed or
 * no memory is at hand without waiting: it must then wait in
 * tracker_take_bio(). A counted write is marked in the change map and
 * passes, unless copy-on-write must save its chunks first. Admitting a
 * write again changes nothing: a write may reach the tracker twice (a
 * resubmission after another tracker of its disk held it).
 *
 * Context: rcu_read_lock() held, any context; does not sleep.
 * Return: &enum tracker_verdict.
 */
enum tracker_verdict tracker_admit_bio(struct tracker *tracker,
				       struct bio *bio)
{
	struct diff_area *area;
	sector_t sector, count;

	if (!tracker_bio_range(tracker, bio, &sector, &count))
		return TRACKER_PASS;
	if (!tracker_counts(tracker, bio)) {
		struct tracker_write *tw;

		/*
		 * Pairs with the release in tracker_ungate(): once the gate
		 * is seen open, the new map number and copy-on-write are seen.
		 */
		if (smp_load_acquire(&tracker->gated))
			return TRACKER_DEFER;
		tw = mempool_alloc(&tracker->write_pool,
				   GFP_NOWAIT | __GFP_NOWARN);
		if (!tw)
			return TRACKER_DEFER;
		tracker_count(tracker, bio, tw);
	}
	cbt_map_mark(tracker->cbt_map, sector, count);
	area = rcu_dereference(tracker->diff_area);
	return area && diff_area_wants_bio(area, bio) ? TRACKER_COW :
							TRACKER_PASS;
}

/* Hold @bio until the gate opens; tracker_defer_fn() admits it then. */
static void tracker_defer(struct tracker *tracker, struct bio *bio)
{
	unsigned long flags;
	bool gated;

	spin_lock_irqsave(&tracker->gate_lock, flags);
	bio_list_add(&tracker->deferred, bio);
	gated = tracker->gated;
	spin_unlock_irqrestore(&tracker->gate_lock, flags);
	if (!gated)
		queue_work(tracker_defer_wq, &tracker->defer_work);
}

/**
 * tracker_take_bio() - hold a write that tracker_admit_bio() did not pass.
 * @tracker: the tracker of the bio's device.
 * @bio:     the write.
 *
 * A write not counted waits for the gate; a counted one goes to
 * copy-on-write, if a snapshot still holds the device.
 *
 * Context: rcu_read_lock() held, any context; does not sleep.
 * Return: true if the bio was taken (it goes on later), false to let it go.
 */
bool tracker_take_bio(struct tracker *tracker, struct bio *bio)
{
	struct diff_area *area;

	if (!tracker_counts(tracker, bio)) {
		tracker_defer(tracker, bio);
		return true;
	}
	area = rcu_dereference(tracker->diff_area);
	return area && diff_area_submit_bio(area, bio);
}

/* Admit the writes held while the gate was closed, in process context. */
static void tracker_defer_fn(struct work_struct *work)
{
	struct tracker *tracker =
		container_of(work, struct tracker, defer_work);
	unsigned int noio = memalloc_noio_save();
	struct tracker_write *tw = NULL;
	struct bio *bio;
	bool taken;

	for (;;) {
		/* A mempool allocation that may wait never fails. */
		if (!tw)
			tw = mempool_alloc(&tracker->write_pool, GFP_NOIO);
		rcu_read_lock();
		spin_lock_irq(&tracker->gate_lock);
		bio = tracker->gated ? NULL : bio_list_pop(&tracker->deferred);
		spin_unlock_irq(&tracker->gate_lock);
		if (!bio) {
			rcu_read_unlock();
			break;
		}
		if (!tracker_counts(tracker, bio)) {
			tracker_count(tracker, bio, tw);
			tw = NULL;
		}
		taken = tracker_admit_bio(tracker, bio) == TRACKER_COW &&
			tracker_take_bio(tracker, bio);
		rcu_read_unlock();
		if (!taken)
			tracker_resubmit_bio(tracker, bio);
	}
	if (tw)
		mempool_free(tw, &tracker->write_pool);
	memalloc_noio_restore(noio);
}

/**
 * tracker_submit_bio() - the filter's I/O path.
 * @tracker: the tracker of the bio's device.
 * @bio:     a bio submitted to that device.
 *
 * Writes, write-zeroes and discards are counted, mark the change map and,
 * while a snapshot is held, pass through copy-on-write; reads and flushes
 * pass untouched.
 *
 * Return: true if the tracker took the bio, false to let it go on.
 */
bool tracker_submit_bio(struct tracker *tracker, struct bio *bio)
{
	bool taken = false;

	if (!tracker_bio_changes(bio))
		return false;
	rcu_read_lock();
	if (tracker_admit_bio(tracker, bio) != TRACKER_PASS)
		taken = tracker_take_bio(tracker, bio);
	rcu_read_unlock();
	return taken;
}

/*
 * A write to a device of a disk may reach the trackers of all its devices:
 * the disk's and its partitions', a deleted partition's left behind
 * included (its sectors are still the disk's). They are in one chain of
 * trackers_by_disk, with those of any other disk hashed there too.
 */
#define trackers_of_disk(disk) \
	(&trackers_by_disk[hash_min((unsigned long)(disk), HASH_BITS(trackers_by_disk))])

/**
 * trackers_admit_bio() - the lockless half of the write path, for every
 * tracker a bio reaches (interception by ftrace).
 * @bio: a bio.
 *
 * Return: true if a tracker wants to hold the write: trackers_take_bio().
 * Context: rcu_read_lock() held, any context; does not sleep.
 */
bool trackers_admit_bio(struct bio *bio)
{
	struct gendisk *disk = bio->bi_bdev->bd_disk;
	struct tracker *tracker;

	if (!tracker_bio_changes(bio))
		return false;
	hlist_for_each_entry_rcu(tracker, trackers_of_disk(disk), disk_link)
		if (tracker->bdev->bd_disk == disk &&
		    tracker_admit_bio(tracker, bio) != TRACKER_PASS)
			return true;
	return false;
}

/**
 * trackers_take_bio() - admit a write at every tracker it reaches, and
 * let the first one that must hold it take it (interception by ftrace).
 * @bio: a bio.
 *
 * The tracker that takes it sends it on later with tracker_resubmit_bio(),
 * which brings it here again: the trackers it did not reach yet admit it
 * then, those that did admit it again, which changes nothing.
 *
 * Return: true if a tracker took the bio.
 * Context: rcu_read_lock() held, any context; does not sleep.
 */
bool trackers_take_bio(struct bio *bio)
{
	struct gendisk *disk = bio->bi_bdev->bd_disk;
	struct tracker *tracker;

	if (!tracker_bio_changes(bio))
		return false;
	hlist_for_each_entry_rcu(tracker, trackers_of_disk(disk), disk_link)
		if (tracker->bdev->bd_disk == disk &&
		    tracker_admit_bio(tracker, bio) != TRACKER_PASS &&
		    tracker_take_bio(tracker, bio))
			return true;
	return false;
}

/**
 * tracker_resubmit_bio() - send on a write held for copy-on-write.
 * @tracker: the tracker that took it.
 * @bio:     the bio; it does not pass through this tracker again, but the
 *           other trackers of its disk see it.
 */
void tracker_resubmit_bio(struct tracker *tracker, struct bio *bio)
{
	bool taken;

#ifdef BLKSNAP_HAVE_BLKFILTER
	if (!hook_ftrace_active) {
		blkfilter_resubmit_bio(&tracker->filter, bio);
		return;
	}
#endif
	/*
	 * Called from this module's text, the ftrace hook lets it through:
	 * the trackers it reaches are asked here. This one passes it now.
	 */
	rcu_read_lock();
	taken = trackers_take_bio(bio);
	rcu_read_unlock();
	if (!taken)
		submit_bio_noacct(bio);
}

/**
 * tracker_resized() - the tracker's device, or its whole disk, changed its
 * size.
 * @tracker: the tracker.
 *
 * A device that shrinks and grows back may hold other data in the sectors
 * it lost, written by nobody the tracker saw (a loop device's backing
 * file, a new device-mapper table): the change map starts a new generation
 * at the next take, and a snapshot holding the device is lost (-ERANGE).
 * A partition that keeps its size and still fits its disk is not touched.
 *
 * Context: any; does not sleep.
 */
void tracker_resized(struct tracker *tracker)
{
	struct block_device *bdev = tracker->bdev;
	struct diff_area *area;

	if (bdev_is_partition(bdev) &&
	    bdev_nr_sectors(bdev) == cbt_map_capacity(tracker->cbt_map) &&
	    bdev->bd_start_sect + bdev_nr_sectors(bdev) <=
		    get_capacity(bdev->bd_disk))
		return;
	pr_info("device %u:%u resized: its change map starts a new generation\n",
		MAJOR(tracker->dev_id), MINOR(tracker->dev_id));
	cbt_map_invalidate(tracker->cbt_map);
	atomic_inc(&tracker->resizes);
	/* Pairs with the barrier in tracker_start_cow(). */
	smp_mb__after_atomic();
	rcu_read_lock();
	area = rcu_dereference(tracker->diff_area);
	if (area)
		diff_area_corrupt(area, -ERANGE);
	rcu_read_unlock();
}

/**
 * trackers_disk_resized() - a disk changed its size (interception by
 * ftrace).
 * @disk: the disk.
 *
 * Context: any; does not sleep.
 */
void trackers_disk_resized(struct gendisk *disk)
{
	struct tracker *tracker;

	rcu_read_lock();
	hlist_for_each_entry_rcu(tracker, trackers_of_disk(disk), disk_link)
		if (tracker->bdev->bd_disk == disk)
			tracker_resized(tracker);
	rcu_read_unlock();
}

/**
 * tracker_gate() - close the gate: new writes wait (snapshot take).
 * @tracker: the tracker.
 *
 * Writes admitted before are still in flight: call synchronize_rcu(), then
 * tracker_wait_idle(). Writes that arrive meanwhile are held until
 * tracker_ungate().
 *
 * Return: 0, -ENODEV if the device lost the tracker, or -EBUSY if it is a
 * whole disk that has partitions now.
 */
int tracker_gate(struct tracker *tracker)
{
	int ret = 0;

	mutex_lock(&tracker->cow_lock);
	if (tracker->detached) {
		ret = -ENODEV;
	} else if (tracker_partitioned(tracker)) {
		ret = -EBUSY;
	} else {
		spin_lock_irq(&tracker->gate_lock);
		WRITE_ONCE(tracker->gated, true);
		spin_unlock_irq(&tracker->gate_lock);
	}
	mutex_unlock(&tracker->cow_lock);
	return ret;
}

/**
 * tracker_wait_idle() - wait for the writes admitted before the gate.
 * @tracker: the tracker, gated, after a grace period.
 * @timeout: longest wait, in jiffies.
 *
 * Return: 0, or -ETIMEDOUT if writes were still in flight (for instance
 * a loop device whose backing file lies on a frozen file system).
 */
int tracker_wait_idle(struct tracker *tracker, unsigned long timeout)
{
	if (!wait_var_event_timeout(&tracker->inflight,
				    !atomic_read(&tracker->inflight), timeout))
		return -ETIMEDOUT;
	return 0;
}

/**
 * tracker_ungate() - open the gate; the writes held meanwhile go on.
 * @tracker: the tracker.
 */
void tracker_ungate(struct tracker *tracker)
{
	bool held;

	spin_lock_irq(&tracker->gate_lock);
	/* Pairs with the acquire in tracker_admit_bio(). */
	smp_store_release(&tracker->gated, false);
	held = !bio_list_empty(&tracker->deferred);
	spin_unlock_irq(&tracker->gate_lock);
	if (held)
		queue_work(tracker_defer_wq, &tracker->defer_work);
}

/**
 * tracker_start_cow() - switch the change map and start copy-on-write.
 * @tracker: the tracker, gated and idle (snapshot take).
 * @area:    the copy-on-write state; the snapshot owns it.
 *
 * Return: 0, or -ENODEV if the device lost the tracker.
 */
int tracker_start_cow(struct tracker *tracker, struct diff_area *area)
{
	int ret = 0;

	mutex_lock(&tracker->cow_lock);
	if (tracker->detached) {
		ret = -ENODEV;
	} else {
		cbt_map_switch(tracker->cbt_map);
		rcu_assign_pointer(tracker->diff_area, area);
		/*
		 * A resize since the area was made: the device is not what
		 * the take saw. Pairs with the barrier in tracker_resized():
		 * one of the two sees the other.
		 */
		smp_mb();
		if (atomic_read(&tracker->resizes) != area->resizes)
			diff_area_corrupt(area, -ERANGE);
	}
	mutex_unlock(&tracker->cow_lock);
	return ret;
}

/**
 * tracker_stop_cow() - stop copy-on-write; the writes it holds go on.
 * @tracker: the tracker.
 * @area:    stop only this area's copy-on-write; NULL: whichever runs.
 * @error:   0 (snapshot destroyed), or why the snapshot is lost.
 *
 * Context: may be called with the disk's open_mutex held (detach).
 */
void tracker_stop_cow(struct tracker *tracker, struct diff_area *area,
		      int error)
{
	struct diff_area *cur;

	mutex_lock(&tracker->cow_lock);
	cur = rcu_dereference_protected(tracker->diff_area,
					lockdep_is_held(&tracker->cow_lock));
	if (cur && (!area || cur == area)) {
		RCU_INIT_POINTER(tracker->diff_area, NULL);
		if (error)
			diff_area_corrupt(cur, error);
		synchronize_rcu();
		diff_area_drain(cur);
	}
	mutex_unlock(&tracker->cow_lock);
}

/**
 * tracker_detached() - the device lost its tracker.
 * @tracker: the tracker, out of the registry; the caller's reference.
 *
 * A snapshot holding the device is corrupted, and one not taken yet can
 * no longer be: the device is gone, or another tracker may see its writes.
 * The device is let go before this returns (tracker_release_bdev()): the
 * disk's driver may free it and be unloaded next.
 *
 * Context: process context; waits for the users of the device (a take,
 * image reads of the original, copy-on-write reads) to finish.
 */
void tracker_detached(struct tracker *tracker)
{
	mutex_lock(&tracker->cow_lock);
	tracker->detached = true;
	mutex_unlock(&tracker->cow_lock);
	tracker_stop_cow(tracker, NULL, -ENODEV);
	tracker_ungate(tracker);
	tracker_release_bdev(tracker);
	tracker_put(tracker);
}

static int ctl_cbtinfo(struct tracker *tracker, u8 __user *ubuf, u32 *plen)
{
	struct blksnap_cbtinfo info;

	if (*plen < sizeof(info))
		return -EINVAL;
	if (tracker_partitioned(tracker))
		return -EBUSY;
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
	if (tracker_partitioned(tracker))
		return -EBUSY;
	if (copy_from_user(&arg, ubuf, sizeof(arg)))
		return -EFAULT;
	return cbt_map_read_to_user(tracker->cbt_map, arg.offset, arg.length,
				    u64_to_user_ptr(arg.buffer));
}

/* Ranges are copied in batches so that any count costs bounded memory. */
#define CBTDIRTY_BATCH 64

/*
 * One pass over the ranges of a cbtdirty command: check them all, or mark
 * them. Marking checks again: user space may have changed a range since,
 * and marking more than asked only makes a backup read more.
 */
static int cbtdirty_pass(struct cbt_map *map,
			 struct blksnap_sectors __user *usec, u32 count,
			 struct blksnap_sectors *batch, bool mark)
{
	u32 done, i, n;

	for (done = 0; done < count; done += n) {
		n = min_t(u32, CBTDIRTY_BATCH, count - done);
		if (copy_from_user(batch, usec + done, n * sizeof(*batch)))
			return -EFAULT;
		for (i = 0; i < n; i++) {
			u64 end;

			if (check_add_overflow(batch[i].offset, batch[i].count,
					       &end) ||
			    end > cbt_map_capacity(map))
				return -EINVAL;
			if (mark)
				cbt_map_mark_dirty(map, batch[i].offset,
						   batch[i].count);
		}
		if (fatal_signal_pending(current))
			return -EINTR;
		cond_resched();
	}
	return 0;
}

static int ctl_cbtdirty(struct tracker *tracker, u8 __user *ubuf, u32 *plen)
{
	struct blksnap_sectors *batch;
	struct blksnap_sectors __user *usec;
	struct blksnap_cbtdirty arg;
	int ret;

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
	/* Nothing is marked unless every range is valid. */
	ret = cbtdirty_pass(tracker->cbt_map, usec, arg.count, batch, false);
	if (!ret)
		ret = cbtdirty_pass(tracker->cbt_map, usec, arg.count, batch,
				    true);
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

static int ctl_cbtload(struct tracker *tracker, u8 __user *ubuf, u32 *plen)
{
	struct blksnap_cbtload arg;

	if (!capable(CAP_SYS_ADMIN))
		return -EPERM;
	if (*plen < sizeof(arg))
		return -EINVAL;
	if (tracker_partitioned(tracker))
		return -EBUSY;
	if (copy_from_user(&arg, ubuf, sizeof(arg)))
		return -EFAULT;
	return cbt_map_load(tracker->cbt_map, &arg, u64_to_user_ptr(arg.map));
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
	case blkfilter_ctl_blksnap_cbtload:
		return ctl_cbtload(tracker, ubuf, plen);
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
	int ret;

	tracker_write_cache = KMEM_CACHE(tracker_write, 0);
	if (!tracker_write_cache)
		return -ENOMEM;
	ret = -ENOMEM;
	tracker_wq = alloc_workqueue("blksnap-tracker",
				     WQ_MEM_RECLAIM | BLKSNAP_WQ_PERCPU, 0);
	if (!tracker_wq)
		goto fail_cache;
	/* Held writes are writeback: they have a rescuer of their own. */
	tracker_defer_wq = alloc_workqueue("blksnap-defer",
					   WQ_MEM_RECLAIM | BLKSNAP_WQ_PERCPU, 0);
	if (!tracker_defer_wq)
		goto fail_wq;
	return 0;
fail_wq:
	destroy_workqueue(tracker_wq);
fail_cache:
	kmem_cache_destroy(tracker_write_cache);
	return ret;
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
	/* Every tracker is freed, so every write it admitted completed. */
	destroy_workqueue(tracker_wq);
	destroy_workqueue(tracker_defer_wq);
	kmem_cache_destroy(tracker_write_cache);
}
