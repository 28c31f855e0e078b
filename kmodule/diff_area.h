/* SPDX-License-Identifier: GPL-2.0 */
#ifndef __BLKSNAP_DIFF_AREA_H
#define __BLKSNAP_DIFF_AREA_H

#include <linux/bio.h>
#include <linux/blkdev.h>
#include <linux/kref.h>
#include <linux/mutex.h>
#include <linux/workqueue.h>
#include <linux/xarray.h>

struct diff_storage;
struct event_queue;
struct tracker;

enum chunk_flags {
	CHUNK_COPIED,	/* the old data is saved: in @buf or in the storage */
	CHUNK_STORED,	/* the old data is in the difference storage */
};

/**
 * struct chunk - one copy-on-write unit of a device.
 * @lock:           serialises copying, storing and image I/O of the chunk.
 * @flags:          &enum chunk_flags; only ever set, never cleared.
 * @buf:            the old data until it is stored.
 * @storage_sector: where it is stored.
 * @store_link:     entry in &diff_area.store_queue.
 */
struct chunk {
	struct mutex lock; /* see @lock above */
	unsigned long flags;
	void *buf;
	sector_t storage_sector;
	struct list_head store_link;
};

/**
 * struct diff_area - copy-on-write state of one device of a taken snapshot.
 * @tracker:     the device's tracker (the snapshot holds a reference).
 * @bdev:        the original device.
 * @ds:          the snapshot's difference storage.
 * @events:      the snapshot's event queue.
 * @chunk_shift: chunk size, as a power of two in bytes.
 * @chunk_count: number of chunks.
 * @capacity:    device size in sectors at the take.
 * @chunks:      chunk number -> &struct chunk, made on first use.
 * @lock:        protects @pending, @store_queue and @store_count.
 * @pending:     writes to the original waiting for their chunks to be saved.
 * @cow_work:    saves the chunks of @pending writes, then resubmits them.
 * @store_queue: chunks read into memory, waiting to be stored.
 * @store_count: chunks in @store_queue.
 * @store_work:  writes @store_queue to the storage.
 * @store_wait:  copy-on-write waits here while @store_count is at its limit.
 * @error:       0, or the negative errno that corrupted the snapshot.
 */
struct diff_area {
	struct tracker *tracker;
	struct block_device *bdev;
	struct diff_storage *ds;
	struct event_queue *events;
	unsigned int chunk_shift;
	unsigned long chunk_count;
	sector_t capacity;
	struct xarray chunks;
	spinlock_t lock; /* see @lock above */
	struct bio_list pending;
	struct work_struct cow_work;
	struct list_head store_queue;
	unsigned int store_count;
	struct work_struct store_work;
	wait_queue_head_t store_wait;
	int error;
};

int diff_area_init(void);
void diff_area_done(void);
struct diff_area *diff_area_create(struct tracker *tracker,
				   struct diff_storage *ds,
				   struct event_queue *events);
void diff_area_free(struct diff_area *area);
bool diff_area_submit_bio(struct diff_area *area, struct bio *bio);
void diff_area_drain(struct diff_area *area);
void diff_area_corrupt(struct diff_area *area, int error);
int diff_area_image_io(struct diff_area *area, struct bio *bio);

#endif /* __BLKSNAP_DIFF_AREA_H */
