/* SPDX-License-Identifier: GPL-2.0 */
#ifndef __BLKSNAP_DIFF_AREA_H
#define __BLKSNAP_DIFF_AREA_H

#include <linux/bio.h>
#include <linux/blkdev.h>
#include <linux/kref.h>
#include <linux/list.h>
#include <linux/mutex.h>
#include <linux/workqueue.h>
#include "chunk_map.h"
#include "diff_buffer.h"

struct diff_storage;
struct event_queue;
struct tracker;

/**
 * DOC: the life of a chunk
 *
 * A chunk of a taken device goes through these states, each a flag of
 * &struct chunk that is set once and never cleared. Only the steps marked
 * "lock" need &chunk.lock; readers look at the flags without it.
 *
 * ============ ========================= ===============================
 * state        how it gets there         what it means
 * ============ ========================= ===============================
 * untouched    the take                  no &struct chunk, not in
 *                                        &diff_area.map: the old data is
 *                                        on the original only. Image
 *                                        reads pin it and read the
 *                                        original; writes to the original
 *                                        wait for copy-on-write.
 * in flight    chunk_get() (a write      a &struct chunk in
 *              held for copy-on-write,   &diff_area.inflight, counted in
 *              an image I/O)             &chunk.users (&diff_area.chunks_lock).
 * PLACED       chunk_place(), lock:      &chunk.storage_sector is its
 *              by place_range() in the   place in the storage. A chunk
 *              order writes arrived      neither PLACED nor COPIED holds
 *              (&diff_area.order_lock)   nothing and leaves flight with
 *              or by chunk_copy()        its last user.
 * COPIED       chunk_copy(), lock:       the old data is in &chunk.buf;
 *              read_original() filled    image reads of it go there (or
 *              the buffer (an image      to the storage), no longer to
 *              write of the whole        the original. Queued for
 *              chunk skips the read)     storing.
 * WRITABLE     chunk_release_original(), writes to the original pass
 *              lock: COPIED, then the    (range_writable()). The bucket
 *              reads pinned before it    is marked draining meanwhile:
 *              drained (a barrier pairs  new reads take the lock.
 *              with the one in
 *              diff_area_pin_original())
 * STORED       store_work_fn(), lock:    the old data is at
 *              the buffer written to     &chunk.storage_sector, and
 *              the storage; the sector   the buffer is freed. The sector is
 *              set before the flag       written before the flag
 *                                        (smp_mb__before_atomic(), read
 *                                        in chunk_state()).
 * RETIRED      chunk_retire(), lock:     STORED and WRITABLE, and its
 *              WRITABLE first, then      place is in &diff_area.map; the
 *              chunk_map_add()           &struct chunk leaves flight with
 *                                        its last user (chunk_put(): its
 *                                        smp_mb() makes a lockless reader
 *                                        that misses it in flight find it
 *                                        in the map).
 * ============ ========================= ===============================
 *
 * A write to the original (cow_work_fn()) takes its chunks through
 * PLACED, COPIED and WRITABLE and is then resubmitted; the store workers
 * take them on to STORED and RETIRED. An image write (chunk_io_locked())
 * copies a chunk first and writes into &chunk.buf or the storage, never
 * to the original. A lost snapshot (&diff_area.error) stops every step:
 * writes to the original pass whatever the state, image I/O fails, and
 * image reads of the original that end after the loss fail too.
 */
enum chunk_flags {
	CHUNK_COPIED,	/* the old data is saved: in @buf or in the storage */
	CHUNK_STORED,	/* the old data is in the difference storage */
	CHUNK_WRITABLE,	/* copied, and no image read of the original is left:
			 * writes to the original pass
			 */
	CHUNK_PLACED,	/* @storage_sector is its place in the storage */
	CHUNK_RETIRED,	/* stored, writable and in &diff_area.map: the
			 * chunk leaves @inflight with its last user
			 */
};

/* The flags of a chunk that is in &diff_area.map. */
#define CHUNK_DONE_FLAGS                                            \
	(BIT(CHUNK_COPIED) | BIT(CHUNK_STORED) | BIT(CHUNK_WRITABLE) | \
	 BIT(CHUNK_PLACED) | BIT(CHUNK_RETIRED))

/*
 * Image reads of chunks not yet copied go to the original device without
 * the chunk lock. Such a read pins a counter (chunk number modulo this) for
 * its duration; copy-on-write lets a write reach a chunk only once the
 * counter is zero after the chunk was copied. While copy-on-write waits on
 * a counter, no new read pins it: those reads take the chunk lock instead,
 * so a reader that keeps every counter pinned cannot starve writes.
 */
#define DIFF_AREA_READER_BUCKETS 64

/* Copy-on-write workers per device: first writes to distinct chunks are
 * saved in parallel.
 */
#define DIFF_AREA_COW_WORKERS 8
/* Store workers per device: chunks are written to the storage in parallel. */
#define DIFF_AREA_STORE_WORKERS 4
/* Buckets of &diff_area.inflight, as a power of two. */
#define DIFF_AREA_INFLIGHT_BITS 8

/**
 * struct chunk - a copy-on-write unit of a device while it is in flight:
 * placed, being copied, waiting for storing or being stored, or used by
 * image I/O. Once stored, only its place in &diff_area.map is kept.
 * @lock:           serialises copying, storing and image I/O of the chunk.
 * @flags:          &enum chunk_flags; only ever set, never cleared.
 * @n:              the chunk's number.
 * @users:          references: callers of chunk_get() and the store queue;
 *                  under &diff_area.chunks_lock.
 * @buf:            the old data until it is stored.
 * @storage_sector: where it is stored (once CHUNK_PLACED).
 * @store_link:     entry in &diff_area.store_queue.
 * @hash_link:      entry in &diff_area.inflight.
 * @rcu:            frees it after lockless readers are done with it.
 */
struct chunk {
	struct mutex lock; /* see @lock above */
	unsigned long flags;
	unsigned long n;
	unsigned int users;
	struct diff_buffer *buf;
	sector_t storage_sector;
	struct list_head store_link;
	struct hlist_node hash_link;
	struct rcu_head rcu;
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
 * @bdev:        the original device; used only under a reference from
 *               tracker_bdev_get(): the device goes with a detach.
 * @dev_id:      its device number.
 * @ds:          the snapshot's difference storage.
 * @events:      the snapshot's event queue.
 * @chunk_shift: chunk size, as a power of two in bytes.
 * @chunk_count: number of chunks.
 * @capacity:    device size in sectors at the take.
 * @chunks_lock: protects @inflight (lockless readers use RCU) and the
 *               chunks' @users; taken in process context only, innermost.
 * @inflight:    the chunks in flight (&struct chunk), by chunk number;
 *               a chunk is made on first use and leaves once it is idle:
 *               retired, or neither copied nor placed.
 * @nr_inflight: chunks in @inflight.
 * @map:         chunk number -> storage sector of the retired chunks. A
 *               chunk is added to it before it leaves @inflight.
 * @debug:       its debugfs file, or an error pointer or NULL.
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
 * @draining:    copy-on-write waiting for @readers to drain, by bucket.
 * @readers_wait: copy-on-write waits here for @readers to drain.
 * @store_queue: chunks read into memory, waiting to be stored.
 * @store_count: chunks in @store_queue.
 * @store_workers: write @store_queue to the storage.
 * @store_next:  the store worker to queue next.
 * @pool:        free chunk buffers.
 * @store_wait:  copy-on-write waits here while @store_count is at its limit.
 * @error:       0, or the negative errno that corrupted the snapshot.
 * @resizes:     &tracker.resizes when the area was made.
 */
struct diff_area {
	struct tracker *tracker;
	struct block_device *bdev;
	dev_t dev_id;
	struct diff_storage *ds;
	struct event_queue *events;
	unsigned int chunk_shift;
	unsigned long chunk_count;
	sector_t capacity;
	spinlock_t chunks_lock; /* see @chunks_lock above */
	struct hlist_head inflight[1 << DIFF_AREA_INFLIGHT_BITS];
	unsigned long nr_inflight;
	struct chunk_map map;
	struct dentry *debug;
	spinlock_t lock; /* see @lock above */
	struct bio_list pending;
	struct mutex order_lock; /* see @order_lock above */
	struct diff_area_worker cow_workers[DIFF_AREA_COW_WORKERS];
	atomic_t cow_next;
	atomic_t readers[DIFF_AREA_READER_BUCKETS];
	atomic_t draining[DIFF_AREA_READER_BUCKETS];
	wait_queue_head_t readers_wait;
	struct list_head store_queue;
	unsigned int store_count;
	struct diff_area_worker store_workers[DIFF_AREA_STORE_WORKERS];
	atomic_t store_next;
	struct diff_buffer_pool pool;
	wait_queue_head_t store_wait;
	int error;
	int resizes;
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
