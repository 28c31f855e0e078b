/* SPDX-License-Identifier: GPL-2.0 */
#ifndef __BLKSNAP_TRACKER_H
#define __BLKSNAP_TRACKER_H

#include <linux/blkdev.h>
#include <linux/completion.h>
#include <linux/kref.h>
#include <linux/mempool.h>
#include <linux/percpu-refcount.h>
#include <linux/bio.h>
#include <linux/workqueue.h>
#ifdef BLKSNAP_HAVE_BLKFILTER
#include <linux/blk-filter.h>
#endif

struct cbt_map;
struct diff_area;
struct snapshot;

/**
 * struct tracker - blksnap's filter on one block device.
 * @filter:    the block layer's handle (kernels with the device filter).
 * @kref:      the registry holds one reference; lookups take more.
 * @bdev:      the device; a reference to its struct device is held until
 *             the tracker is detached (tracker_detached()), not longer: the
 *             last put of a removed disk may run its driver's code, and
 *             the driver's module may be unloaded right after. Whoever
 *             uses @bdev outside the I/O path holds @bdev_users.
 * @bdev_users: tracker_bdev_get() / tracker_bdev_put(); killed at detach.
 * @bdev_idle: completed when the last user of a killed @bdev_users left.
 * @bdev_released: @bdev is no longer referenced.
 * @write_pool: reserve of &struct tracker_write for counting writes.
 * @disk_link: in the registry's hash of trackers by disk, which the ftrace
 *             I/O path searches (RCU; trackers_mutex for changes).
 * @dev_id:    its device number, the registry key.
 * @disk_dev:  the device number of its whole disk.
 * @cbt_map:   its change map.
 * @snapshot:  the snapshot it belongs to, or NULL (snapshots_mutex).
 * @diff_area: copy-on-write state while its snapshot is taken (RCU).
 * @cow_lock:  serialises starting and stopping copy-on-write, the gate and
 *             @detached.
 * @detached:  the device lost this tracker: it can no longer be taken.
 * @resizes:   times the device (or its disk) changed its size.
 * @inflight:  writes admitted by the I/O path and not completed yet.
 * @gate_lock: protects @gated and @deferred; taken in any context.
 * @gated:     a take is switching the device: new writes wait in @deferred.
 * @deferred:  writes held while gated, or that could not be admitted on the
 *             spot (no memory to count them without sleeping).
 * @defer_work: admits @deferred once the gate is open.
 * @free_work: frees the tracker in process context after a grace period.
 *
 * Created by attach, removed from the registry by detach (by the user, on
 * device removal, on partition rescan, or on module unload) and freed when
 * the last reference goes and its last admitted write has completed.
 *
 * Every write the tracker admits is counted in @inflight until it
 * completes, and marked in the change map with the number current when it
 * was admitted. A write reaches the tracker through its own device or
 * through any other device of the same disk (the whole disk, a partition)
 * whose sectors overlap the device's: tracker_bio_range(). A take closes
 * the gate, waits for @inflight to drain, then switches the change map and
 * starts copy-on-write, and opens the gate:
 * every write is thus either complete before the switch (in the image,
 * marked with the old number) or admitted after it (copied on write,
 * marked with the new number). See docs/snapshot-io.md.
 */
struct tracker {
#ifdef BLKSNAP_HAVE_BLKFILTER
	struct blkfilter filter;
#endif
	struct kref kref;
	struct block_device *bdev;
	struct percpu_ref bdev_users;
	struct completion bdev_idle;
	bool bdev_released;
	mempool_t write_pool;
	struct hlist_node disk_link;
	dev_t dev_id;
	dev_t disk_dev;
	struct cbt_map *cbt_map;
	struct snapshot *snapshot;
	struct diff_area __rcu *diff_area;
	struct mutex cow_lock; /* see @cow_lock above */
	bool detached;
	atomic_t resizes;
	atomic_t inflight;
	spinlock_t gate_lock; /* see @gate_lock above */
	bool gated;
	struct bio_list deferred;
	struct work_struct defer_work;
	struct rcu_work free_work;
};

int tracker_init(void);
void tracker_done(void);

struct tracker *tracker_create(struct block_device *bdev);
void tracker_put(struct tracker *tracker);
struct tracker *tracker_get_by_dev(dev_t dev_id);
bool tracker_is_stale(struct tracker *tracker);
bool tracker_partitioned(struct tracker *tracker);
bool tracker_bio_range(struct tracker *tracker, struct bio *bio,
		       sector_t *sector, sector_t *count);
bool trackers_admit_bio(struct bio *bio);
bool trackers_take_bio(struct bio *bio);
void tracker_resized(struct tracker *tracker);
void trackers_disk_resized(struct gendisk *disk);

int tracker_register(struct tracker *tracker);
struct tracker *tracker_unregister(dev_t dev_id);
int tracker_list(char *buf, size_t size);

/**
 * enum tracker_verdict - what the I/O path does with a write.
 * @TRACKER_PASS:  it goes on to the device.
 * @TRACKER_COW:   it must wait for copy-on-write (tracker_take_bio()).
 * @TRACKER_DEFER: it must wait for the gate (tracker_take_bio()).
 */
enum tracker_verdict {
	TRACKER_PASS,
	TRACKER_COW,
	TRACKER_DEFER,
};

bool tracker_submit_bio(struct tracker *tracker, struct bio *bio);
enum tracker_verdict tracker_admit_bio(struct tracker *tracker,
				       struct bio *bio);
bool tracker_take_bio(struct tracker *tracker, struct bio *bio);
void tracker_resubmit_bio(struct tracker *tracker, struct bio *bio);
int tracker_gate(struct tracker *tracker);
int tracker_wait_idle(struct tracker *tracker, unsigned long timeout);
void tracker_ungate(struct tracker *tracker);
int tracker_start_cow(struct tracker *tracker, struct diff_area *area);
void tracker_stop_cow(struct tracker *tracker, struct diff_area *area,
		      int error);
void tracker_detached(struct tracker *tracker);
bool tracker_bdev_get(struct tracker *tracker);
void tracker_bdev_put(struct tracker *tracker);

/* Does a bio change data (write, write-zeroes, discard with sectors)? */
static inline bool tracker_bio_changes(struct bio *bio)
{
	return op_is_write(bio_op(bio)) && bio_sectors(bio);
}

/* The first sector of a bio, relative to its (partition) device. */
static inline sector_t tracker_bio_sector(struct bio *bio)
{
	/* A partition bio may already be remapped to whole-disk sectors. */
	if (bio_flagged(bio, BIO_REMAPPED))
		return bio->bi_iter.bi_sector - bio->bi_bdev->bd_start_sect;
	return bio->bi_iter.bi_sector;
}

int tracker_ctl(struct tracker *tracker, unsigned int cmd, u8 __user *ubuf,
		u32 *plen);

extern struct mutex trackers_mutex;
extern struct xarray trackers;

#endif /* __BLKSNAP_TRACKER_H */
