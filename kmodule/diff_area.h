/* SPDX-License-Identifier: GPL-2.0 */
#ifndef __BLKSNAP_DIFF_AREA_H
#define __BLKSNAP_DIFF_AREA_H

#include <linux/bio.h>
#include <linux/blkdev.h>
#include <linux/kref.h>
#include <linux/mutex.h>
#include <linux/workqueue.h>
#include <linux/xarray.h>
#include "diff_buffer.h"

struct diff_storage;
struct event_queue;
struct tracker;

enum chunk_flags {
	CHUNK_COPIED,	/* the old data is saved: in @buf or in the storage */
	CHUNK_STORED,	/* the old data is in the difference storage */
	CHUNK_WRITABLE,	/* copied, and no image read of the original is left:
			 * writes to the original pass
			 */
	CHUNK_PLACED,	/* @storage_sector is its place in the storage */
};

/*
 * Image reads of chunks not yet copied go to the original device without
 * the chunk lock. Such a read pins a counter (chunk number modulo this) for
 * its duration; copy-on-write lets a write reach a chunk only once the
 * counter is zero after the chunk was copied.
 */
#define DIFF_AREA_READER_BUCKETS 64

/* Copy-on-write workers per device: first writes to distinct chunks are
 * saved in parallel.
 */
#define DIFF_AREA_COW_WORKERS 8
/* Store workers per device: chunks are written to the storage in parallel. */
#define DIFF_AREA_STORE_WORKERS 4

/**
 * struct chunk - one copy-on-write unit of a device.
 * @lock:           serialises copying, storing and image I/O of the chunk.
 * @flags:          &enum chunk_flags; only ever set, never cleared.
 * @buf:            the old data until it is stored.
 * @storage_sector: where it is stored (once CHUNK_PLACED).
 * @store_link:     entry in &diff_area.store_queue.
 */
struct chunk {
	struct mutex lock; /* see @lock above */
	unsigned long flags;
	struct diff_buffer *buf;
	sector_t storage_sector;
	struct list_head store_link;
};

/**
 * struct diff_area_worker - a copy-on-write worker of a device.
 * @work: the work item.
 * @area: its device's area.
 */
struct diff_area_worker {
	struct work_struct work;
	struct diff_area *area;
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
 * @lock:        protects @pending, @store_queue and @store_count. Taken with
 *               interrupts off: diff_area_submit_bio() takes it in whatever
 *               context a bio is submitted from, softirq or hardirq
 *               included (with spin_lock_irqsave(), as interrupts may be off
 *               already), and a holder it interrupted on the same CPU would
 *               never release it. The workers, in process context with
 *               interrupts on, use spin_lock_irq(). Only list and counter
 *               updates run under it.
 * @pending:     writes to the original waiting for their chunks to be saved.
 * @order_lock:  a worker holds it while it takes a write from @pending and
 *               places the write's chunks in the storage: chunks lie in the
 *               storage in the order writes arrived.
 * @cow_workers: save the chunks of @pending writes, then resubmit them.
 * @cow_next:    the worker to queue next (round robin).
 * @readers:     image reads of the original in flight, by chunk bucket.
 * @readers_wait: copy-on-write waits here for @readers to drain.
 * @store_queue: chunks read into memory, waiting to be stored.
 * @store_count: chunks in @store_queue.
 * @store_workers: write @store_queue to the storage.
 * @store_next:  the store worker to queue next.
 * @pool:        free chunk buffers.
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
	struct mutex order_lock; /* see @order_lock above */
	struct diff_area_worker cow_workers[DIFF_AREA_COW_WORKERS];
	atomic_t cow_next;
	atomic_t readers[DIFF_AREA_READER_BUCKETS];
	wait_queue_head_t readers_wait;
	struct list_head store_queue;
	unsigned int store_count;
	struct diff_area_worker store_workers[DIFF_AREA_STORE_WORKERS];
	atomic_t store_next;
	struct diff_buffer_pool pool;
	wait_queue_head_t store_wait;
	int error;
};

int diff_area_init(void);
void diff_area_done(void);
struct diff_area *diff_area_create(struct tracker *tracker,
				   struct diff_storage *ds,
				   struct event_queue *events);
void diff_area_free(struct diff_area *area);
bool diff_area_wants_bio(struct diff_area *area, struct bio *bio);
bool diff_area_submit_bio(struct diff_area *area, struct bio *bio);
void diff_area_drain(struct diff_area *area);
void diff_area_corrupt(struct diff_area *area, int error);
bool diff_area_pin_original(struct diff_area *area, unsigned long n);
void diff_area_unpin_original(struct diff_area *area, unsigned long first,
			      unsigned long last);
bool diff_area_chunk_stored(struct diff_area *area, unsigned long n,
			    sector_t *storage_sector);
int diff_area_chunk_io(struct diff_area *area, unsigned long n, size_t offset,
		       struct bio *bio, struct bvec_iter *iter, size_t len);

static inline sector_t diff_area_chunk_sectors(struct diff_area *area)
{
	return 1ULL << (area->chunk_shift - SECTOR_SHIFT);
}

static inline unsigned long diff_area_chunk_of(struct diff_area *area,
					       sector_t sector)
{
	return sector >> (area->chunk_shift - SECTOR_SHIFT);
}

#endif /* __BLKSNAP_DIFF_AREA_H */
