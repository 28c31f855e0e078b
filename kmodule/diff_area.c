// SPDX-License-Identifier: GPL-2.0
/*
 * Copy-on-write: the first write to a chunk of a snapshotted device waits
 * until the chunk's old data has been read into memory; a worker then
 * stores it in the difference storage. Later writes to a saved chunk pass
 * at once. Image I/O (image.c) reads saved chunks from memory or storage
 * and the others from the original device.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt
#include <linux/blksnap.h>
#include <linux/debugfs.h>
#include <linux/hash.h>
#include <linux/sched/mm.h>
#include <linux/seq_file.h>
#include <linux/slab.h>
#include "cbt_map.h"
#include "diff_area.h"
#include "diff_storage.h"
#include "event.h"
#include "params.h"
#include "tracker.h"

/*
 * Copy-on-write and store workers run on queues of their own, each with
 * its own rescuer (WQ_MEM_RECLAIM): a copy waits for stores (for room in
 * the store queue, for a chunk buffer), so when memory is short and no new
 * worker thread can be made, copies run by a rescuer must not hold up the
 * stores queued behind them. Image I/O has a third queue (image_io.c).
 */
static struct workqueue_struct *cow_wq;
static struct workqueue_struct *store_wq;
/* blksnap/ in debugfs: a file per device of a taken snapshot. */
static struct dentry *debug_dir;

/* Sectors of chunk @n that lie on the device (the last may be short). */
static inline sector_t chunk_len(struct diff_area *area, unsigned long n)
{
	sector_t start = (sector_t)n << (area->chunk_shift - SECTOR_SHIFT);

	return min(diff_area_chunk_sectors(area), area->capacity - start);
}

static unsigned int chunk_shift_for(sector_t capacity)
{
	u64 bytes = (u64)capacity << SECTOR_SHIFT;
	unsigned int shift = chunk_minimum_shift;

	/* A short last chunk is a chunk: count it. */
	while (shift < chunk_maximum_shift &&
	       (bytes >> shift) + !!(bytes & ((1ULL << shift) - 1)) >
		       (1ULL << chunk_maximum_count_shift))
		shift++;
	return shift;
}

/**
 * diff_area_corrupt() - the snapshot of this device is lost.
 * @area:  the device's area.
 * @error: why (-ENOSPC: the storage is full).
 *
 * Image I/O fails from now on; writes to the original pass untouched. The
 * first error is kept and reported as an event.
 *
 * Context: any, interrupt context included.
 */
void diff_area_corrupt(struct diff_area *area, int error)
{
	struct blksnap_event_corrupted data = {
		.dev_id_mj = MAJOR(area->dev_id),
		.dev_id_mn = MINOR(area->dev_id),
		.err_code = error,
	};

	if (cmpxchg(&area->error, 0, error) != 0)
		return;
	pr_err("snapshot of device %u:%u corrupted: %d\n", data.dev_id_mj,
	       data.dev_id_mn, error);
	event_gen(area->events, blksnap_event_code_corrupted, &data,
		  sizeof(data));
	wake_up_all(&area->store_wait);
}

static struct hlist_head *inflight_bucket(struct diff_area *area, unsigned long n)
{
	return &area->inflight[hash_long(n, DIFF_AREA_INFLIGHT_BITS)];
}

/*
 * The chunk @n in flight, or NULL.
 * Context: rcu_read_lock() or area->chunks_lock held.
 */
static struct chunk *inflight_find(struct diff_area *area, unsigned long n)
{
	struct chunk *chunk;

	hlist_for_each_entry_rcu(chunk, inflight_bucket(area, n), hash_link,
				 lockdep_is_held(&area->chunks_lock))
		if (chunk->n == n)
			return chunk;
	return NULL;
}

/*
 * The flags of chunk @n (CHUNK_DONE_FLAGS if it is retired), and, if it is
 * stored, where. A chunk leaves @inflight only after it is in the map
 * (chunk_put()), so a reader that does not find it in flight finds it in
 * the map if it was there.
 * Context: any; lockless.
 */
static unsigned long chunk_state(struct diff_area *area, unsigned long n,
				 sector_t *sector)
{
	unsigned long flags = 0;
	struct chunk *chunk;

	rcu_read_lock();
	chunk = inflight_find(area, n);
	if (chunk) {
		flags = READ_ONCE(chunk->flags);
		if (flags & BIT(CHUNK_STORED)) {
			/* The sector was set before the flag (store_work_fn()). */
			smp_rmb();
			*sector = chunk->storage_sector;
		}
	} else {
		/* Pairs with the barrier in chunk_put(). */
		smp_rmb();
		if (chunk_map_find(&area->map, n, sector))
			flags = CHUNK_DONE_FLAGS;
	}
	rcu_read_unlock();
	return flags;
}

/*
 * Chunk @n in flight, with a reference for the caller, or NULL with
 * *@sector set if it is retired. Context: area->chunks_lock held.
 */
static struct chunk *chunk_find_locked(struct diff_area *area, unsigned long n,
				       sector_t *sector, bool *retired)
{
	struct chunk *chunk = inflight_find(area, n);

	*retired = false;
	if (chunk)
		chunk->users++;
	else
		*retired = chunk_map_find(&area->map, n, sector);
	return chunk;
}

/*
 * Chunk @n with a reference for the caller (chunk_put() drops it), made
 * if it is not in flight; or NULL with *@sector set if it is retired: its
 * old data is at *@sector in the storage, and writes pass. A chunk is
 * small GFP_NOIO allocation, which the page allocator retries rather than
 * fails (it fails them for a task the OOM killer chose, which a worker
 * never is).
 * Context: process context.
 * Return: the chunk, NULL, or ERR_PTR(-ENOMEM).
 */
static struct chunk *chunk_get(struct diff_area *area, unsigned long n,
			       sector_t *sector)
{
	struct chunk *chunk, *new;
	bool retired;

	spin_lock(&area->chunks_lock);
	chunk = chunk_find_locked(area, n, sector, &retired);
	spin_unlock(&area->chunks_lock);
	if (chunk || retired)
		return chunk;
	new = kzalloc(sizeof(*new), GFP_NOIO);
	if (!new)
		return ERR_PTR(-ENOMEM);
	mutex_init(&new->lock);
	new->n = n;
	new->users = 1;
	INIT_LIST_HEAD(&new->store_link);
	spin_lock(&area->chunks_lock);
	chunk = chunk_find_locked(area, n, sector, &retired);
	if (!chunk && !retired) {
		hlist_add_head_rcu(&new->hash_link, inflight_bucket(area, n));
		area->nr_inflight++;
		chunk = new;
		new = NULL;
	}
	spin_unlock(&area->chunks_lock);
	if (new) {
		mutex_destroy(&new->lock);
		kfree(new);
	}
	return chunk;
}

/* Another reference to a chunk the caller holds one of. */
static void chunk_hold(struct diff_area *area, struct chunk *chunk)
{
	spin_lock(&area->chunks_lock);
	chunk->users++;
	spin_unlock(&area->chunks_lock);
}

/*
 * Drop a reference; the last one frees an idle chunk: a retired one (its
 * place is in the map), or one neither copied nor placed (it holds
 * nothing). Context: process context, chunk->lock not held.
 */
static void chunk_put(struct diff_area *area, struct chunk *chunk)
{
	unsigned long flags;
	bool idle;

	spin_lock(&area->chunks_lock);
	flags = READ_ONCE(chunk->flags);
	idle = !--chunk->users &&
	       ((flags & BIT(CHUNK_RETIRED)) ||
		!(flags & (BIT(CHUNK_COPIED) | BIT(CHUNK_PLACED))));
	if (idle) {
		/* A lockless reader that misses the chunk here sees it in
		 * the map (pairs with the barrier in chunk_state()).
		 */
		smp_mb();
		hlist_del_rcu(&chunk->hash_link);
		area->nr_inflight--;
	}
	spin_unlock(&area->chunks_lock);
	if (idle) {
		mutex_destroy(&chunk->lock);
		kfree_rcu(chunk, rcu);
	}
}

/**
 * struct original_read - the bios reading one chunk of the original.
 * @pending: bios not yet completed, plus one held by the submitter.
 * @status:  a failed bio's status, or BLK_STS_OK.
 * @done:    completed when @pending drops to zero.
 */
struct original_read {
	atomic_t pending;
	blk_status_t status;
	struct completion done;
};

static void original_read_put(struct original_read *rd)
{
	if (atomic_dec_and_test(&rd->pending))
		complete(&rd->done);
}

static void original_read_endio(struct bio *bio)
{
	struct original_read *rd = bio->bi_private;

	if (bio->bi_status)
		WRITE_ONCE(rd->status, bio->bi_status);
	bio_put(bio);
	original_read_put(rd);
}

/**
 * read_original() - read part of the original device into a chunk buffer.
 * @area:   the device's area.
 * @sector: where on the device.
 * @buf:    the buffer; it receives the data from its start.
 * @len:    sectors, at most the buffer's size.
 *
 * A bio holds at most BIO_MAX_VECS pages, a chunk may have many more: the
 * read is cut into bios of that many pages. Each is submitted before the
 * next is allocated, as bio_alloc() wants for its reserve to guarantee
 * progress, and all of them are waited for, even after a failure.
 *
 * Context: process context; sleeps.
 * Return: 0 or a negative errno.
 */
static int read_original(struct diff_area *area, sector_t sector,
			 struct diff_buffer *buf, sector_t len)
{
	size_t bytes = len << SECTOR_SHIFT, done = 0;
	struct original_read rd;
	unsigned int i = 0;
	struct bio *bio;

	/* A detached device may be gone: the snapshot is lost already. */
	if (!tracker_bdev_get(area->tracker))
		return -ENODEV;
	atomic_set(&rd.pending, 1);
	rd.status = BLK_STS_OK;
	init_completion(&rd.done);
	while (done < bytes) {
		unsigned int nr = min_t(size_t, BIO_MAX_VECS,
					DIV_ROUND_UP(bytes - done, PAGE_SIZE));
		unsigned int j;

		/* GFP_NOIO from fs_bio_set: waits for its reserve, never fails. */
		bio = bio_alloc(area->bdev, nr, REQ_OP_READ, GFP_NOIO);
		bio->bi_iter.bi_sector = sector + (done >> SECTOR_SHIFT);
		bio->bi_private = &rd;
		bio->bi_end_io = original_read_endio;
		for (j = 0; j < nr; j++, i++, done += PAGE_SIZE)
			__bio_add_page(bio, buf->bvec[i].bv_page,
				       min_t(size_t, PAGE_SIZE, bytes - done), 0);
		atomic_inc(&rd.pending);
		submit_bio(bio);
	}
	original_read_put(&rd);
	wait_for_completion_io(&rd.done);
	tracker_bdev_put(area->tracker);
	return blk_status_to_errno(READ_ONCE(rd.status));
}

/* Queue the work of one of @workers on @wq; any idle one will do, each
 * takes whatever is queued.
 */
static void queue_worker(struct workqueue_struct *wq,
			 struct diff_area_worker *workers, unsigned int count,
			 atomic_t *next)
{
	queue_work(wq, &workers[atomic_inc_return(next) % count].work);
}

/* Queue a chunk whose old data is in memory for storing. */
static void store_enqueue(struct diff_area *area, struct chunk *chunk)
{
	chunk_hold(area, chunk);
	spin_lock_irq(&area->lock);
	list_add_tail(&chunk->store_link, &area->store_queue);
	area->store_count++;
	spin_unlock_irq(&area->lock);
	queue_worker(store_wq, area->store_workers, DIFF_AREA_STORE_WORKERS,
		     &area->store_next);
}

/*
 * Do chunk_maximum_in_queue chunks wait for storing? The parameter may
 * change at any time, never to 0 (main.c): the store workers, which take
 * the count down, wake the waiters.
 */
static bool store_queue_full(struct diff_area *area)
{
	return READ_ONCE(area->store_count) >=
	       READ_ONCE(chunk_maximum_in_queue);
}

/*
 * Take the chunk's place in the storage, unless it has one: when it is
 * copied, not when it is stored, and for copy-on-write already when its
 * write is taken from the queue (place_range()).
 * Context: chunk->lock held.
 */
static int chunk_place(struct diff_area *area, struct chunk *chunk)
{
	int ret;

	if (test_bit(CHUNK_PLACED, &chunk->flags))
		return 0;
	ret = diff_storage_alloc(area->ds, diff_area_chunk_sectors(area),
				 &chunk->storage_sector);
	if (!ret)
		set_bit(CHUNK_PLACED, &chunk->flags);
	return ret;
}

/*
 * Place the chunks a write to the original will copy, in the order writes
 * arrive: the workers copy them in parallel and finish in any order, but
 * chunks written one after the other then lie one after the other in the
 * storage, and the image reads them in one piece. Best effort: a chunk
 * busy elsewhere, or a failure, leaves the placing to chunk_copy().
 * Context: area->order_lock held.
 */
static void place_range(struct diff_area *area, sector_t sector,
			sector_t count)
{
	unsigned long n, last = diff_area_chunk_of(area, sector + count - 1);
	struct chunk *chunk;
	sector_t stored;

	for (n = diff_area_chunk_of(area, sector); n <= last; n++) {
		chunk = chunk_get(area, n, &stored);
		if (IS_ERR_OR_NULL(chunk))
			continue;
		if (!test_bit(CHUNK_COPIED, &chunk->flags) &&
		    !test_bit(CHUNK_PLACED, &chunk->flags) &&
		    mutex_trylock(&chunk->lock)) {
			if (!test_bit(CHUNK_COPIED, &chunk->flags))
				chunk_place(area, chunk);
			mutex_unlock(&chunk->lock);
		}
		chunk_put(area, chunk);
	}
}

/*
 * Save chunk @n: read its old data into memory (unless @whole: the caller
 * overwrites all of it) and queue it for storing.
 * Context: chunk->lock held.
 */
static int chunk_copy(struct diff_area *area, struct chunk *chunk,
		      unsigned long n, bool whole)
{
	sector_t start = (sector_t)n << (area->chunk_shift - SECTOR_SHIFT);
	struct diff_buffer *buf;
	int ret;

	/* Bound the memory: wait while too many chunks wait for storing. */
	wait_event(area->store_wait,
		   !store_queue_full(area) || READ_ONCE(area->error));
	if (READ_ONCE(area->error))
		return area->error;
	ret = chunk_place(area, chunk);
	if (ret)
		return ret;
	buf = diff_buffer_get(&area->pool);
	if (!whole) {
		ret = read_original(area, start, buf, chunk_len(area, n));
		if (ret) {
			diff_buffer_put(&area->pool, buf);
			return ret;
		}
	}
	chunk->buf = buf;
	set_bit(CHUNK_COPIED, &chunk->flags);
	store_enqueue(area, chunk);
	return 0;
}

static atomic_t *readers_of(struct diff_area *area, unsigned long n)
{
	return &area->readers[n % DIFF_AREA_READER_BUCKETS];
}

/*
 * Let writes reach a copied chunk once no image read of its old data on
 * the original is left. Pairs with diff_area_pin_original(): the reader
 * counts itself, then looks at CHUNK_COPIED and at @draining; we set
 * CHUNK_COPIED and @draining, then look at the count. Reads that come
 * meanwhile do not pin the bucket: the wait ends once the reads already
 * in flight end.
 * Context: chunk->lock held, CHUNK_COPIED set.
 */
static void chunk_release_original(struct diff_area *area,
				   struct chunk *chunk, unsigned long n)
{
	atomic_t *draining = &area->draining[n % DIFF_AREA_READER_BUCKETS];

	atomic_inc(draining);
	/* CHUNK_COPIED and @draining are visible before we read the count. */
	smp_mb__after_atomic();
	wait_event(area->readers_wait, !atomic_read(readers_of(area, n)));
	atomic_dec(draining);
	set_bit(CHUNK_WRITABLE, &chunk->flags);
}

/*
 * A stored chunk leaves flight: writes may reach it (a chunk an image
 * write copied may still have image reads of its original in flight) and
 * its place goes into the map; the struct chunk goes with its last user.
 * Context: chunk->lock held, CHUNK_STORED set.
 */
static int chunk_retire(struct diff_area *area, struct chunk *chunk)
{
	int ret;

	if (!test_bit(CHUNK_WRITABLE, &chunk->flags))
		chunk_release_original(area, chunk, chunk->n);
	ret = chunk_map_add(&area->map, chunk->n, chunk->storage_sector);
	if (!ret)
		set_bit(CHUNK_RETIRED, &chunk->flags);
	return ret;
}

/* Save every chunk a write to the original touches. */
static void cow_range(struct diff_area *area, sector_t sector, sector_t count)
{
	unsigned long n, last = diff_area_chunk_of(area, sector + count - 1);
	struct chunk *chunk;
	sector_t stored;
	int ret = 0;

	for (n = diff_area_chunk_of(area, sector); n <= last && !ret; n++) {
		chunk = chunk_get(area, n, &stored);
		if (IS_ERR(chunk)) {
			ret = PTR_ERR(chunk);
			break;
		}
		/* Retired: stored, and writes pass. */
		if (!chunk)
			continue;
		if (!test_bit(CHUNK_WRITABLE, &chunk->flags)) {
			mutex_lock(&chunk->lock);
			if (!test_bit(CHUNK_COPIED, &chunk->flags))
				ret = chunk_copy(area, chunk, n, false);
			if (!ret && !test_bit(CHUNK_WRITABLE, &chunk->flags))
				chunk_release_original(area, chunk, n);
			mutex_unlock(&chunk->lock);
		}
		chunk_put(area, chunk);
	}
	if (ret)
		diff_area_corrupt(area, ret);
}

static void cow_work_fn(struct work_struct *work)
{
	struct diff_area *area =
		container_of(work, struct diff_area_worker, work)->area;
	unsigned int noio = memalloc_noio_save();
	sector_t sector, count;
	struct bio *bio;

	for (;;) {
		mutex_lock(&area->order_lock);
		spin_lock_irq(&area->lock);
		bio = bio_list_pop(&area->pending);
		spin_unlock_irq(&area->lock);
		if (bio) {
			/* diff_area_wants_bio() saw it reach the device. */
			tracker_bio_range(area->tracker, bio, &sector, &count);
			count = min(count, area->capacity - sector);
			if (!READ_ONCE(area->error))
				place_range(area, sector, count);
		}
		mutex_unlock(&area->order_lock);
		if (!bio)
			break;
		if (!READ_ONCE(area->error))
			cow_range(area, sector, count);
		tracker_resubmit_bio(area->tracker, bio);
	}
	memalloc_noio_restore(noio);
}

static void store_work_fn(struct work_struct *work)
{
	struct diff_area *area =
		container_of(work, struct diff_area_worker, work)->area;
	size_t bytes = diff_area_chunk_sectors(area) << SECTOR_SHIFT;
	unsigned int noio = memalloc_noio_save();
	struct chunk *chunk;
	struct iov_iter it;
	int ret;

	for (;;) {
		spin_lock_irq(&area->lock);
		chunk = list_first_entry_or_null(&area->store_queue,
						 struct chunk, store_link);
		if (chunk)
			list_del_init(&chunk->store_link);
		spin_unlock_irq(&area->lock);
		if (!chunk)
			break;

		mutex_lock(&chunk->lock);
		ret = READ_ONCE(area->error);
		if (!ret) {
			diff_buffer_iter(chunk->buf, ITER_SOURCE, 0, bytes,
					 &it);
			ret = diff_storage_rw(area->ds, chunk->storage_sector,
					      &it);
		}
		if (!ret) {
			/* Lockless readers see the sector once they see the
			 * flag (chunk_state()).
			 */
			smp_mb__before_atomic();
			set_bit(CHUNK_STORED, &chunk->flags);
		}
		diff_buffer_put(&area->pool, chunk->buf);
		chunk->buf = NULL;
		/* A map that cannot grow loses the snapshot, not the data. */
		if (!ret)
			ret = chunk_retire(area, chunk);
		if (ret)
			diff_area_corrupt(area, ret);
		mutex_unlock(&chunk->lock);
		chunk_put(area, chunk);

		spin_lock_irq(&area->lock);
		area->store_count--;
		spin_unlock_irq(&area->lock);
		wake_up_all(&area->store_wait);
	}
	memalloc_noio_restore(noio);
}

/*
 * blksnap/MAJOR:MINOR in debugfs: the chunks of a device of a taken
 * snapshot, and the memory their map takes.
 */
static int chunks_show(struct seq_file *m, void *v)
{
	struct diff_area *area = m->private;

	seq_printf(m, "chunk_size %llu\n", 1ULL << area->chunk_shift);
	seq_printf(m, "chunks %lu\n", area->chunk_count);
	seq_printf(m, "stored %lu\n", READ_ONCE(area->map.count));
	seq_printf(m, "in_flight %lu\n", READ_ONCE(area->nr_inflight));
	seq_printf(m, "map_bytes %zu\n", READ_ONCE(area->map.bytes));
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(chunks);

/**
 * diff_area_create() - prepare copy-on-write for a device being taken.
 * @tracker: the device's tracker.
 * @ds:      the snapshot's difference storage.
 * @events:  the snapshot's event queue.
 *
 * Context: process context; allocates with GFP_KERNEL, the reserve chunk
 * buffer (struct diff_buffer_pool) included.
 * Return: the area, or ERR_PTR(-ENOMEM).
 */
struct diff_area *diff_area_create(struct tracker *tracker,
				   struct diff_storage *ds,
				   struct event_queue *events)
{
	struct diff_area *area = kzalloc(sizeof(*area), GFP_KERNEL);
	char name[24];
	unsigned int i;
	int ret;

	if (!area)
		return ERR_PTR(-ENOMEM);
	area->tracker = tracker;
	area->resizes = atomic_read(&tracker->resizes);
	area->bdev = tracker->bdev;
	area->dev_id = tracker->dev_id;
	area->ds = ds;
	area->events = events;
	area->capacity = bdev_nr_sectors(tracker->bdev);
	area->chunk_shift = chunk_shift_for(area->capacity);
	area->chunk_count = DIV_ROUND_UP_ULL(area->capacity,
					     1ULL << (area->chunk_shift -
						      SECTOR_SHIFT));
	spin_lock_init(&area->chunks_lock);
	for (i = 0; i < ARRAY_SIZE(area->inflight); i++)
		INIT_HLIST_HEAD(&area->inflight[i]);
	/* Every region of the storage is a multiple of the smallest chunk. */
	ret = chunk_map_init(&area->map, area->chunk_count,
			     chunk_minimum_shift - SECTOR_SHIFT);
	if (ret) {
		kfree(area);
		return ERR_PTR(ret);
	}
	spin_lock_init(&area->lock);
	bio_list_init(&area->pending);
	mutex_init(&area->order_lock);
	for (i = 0; i < DIFF_AREA_COW_WORKERS; i++) {
		INIT_WORK(&area->cow_workers[i].work, cow_work_fn);
		area->cow_workers[i].area = area;
	}
	for (i = 0; i < DIFF_AREA_READER_BUCKETS; i++) {
		atomic_set(&area->readers[i], 0);
		atomic_set(&area->draining[i], 0);
	}
	init_waitqueue_head(&area->readers_wait);
	INIT_LIST_HEAD(&area->store_queue);
	for (i = 0; i < DIFF_AREA_STORE_WORKERS; i++) {
		INIT_WORK(&area->store_workers[i].work, store_work_fn);
		area->store_workers[i].area = area;
	}
	/* One chunk buffer in reserve: copy-on-write goes on without memory. */
	ret = diff_buffer_pool_init(&area->pool, (size_t)1 << area->chunk_shift);
	if (ret) {
		chunk_map_destroy(&area->map);
		kfree(area);
		return ERR_PTR(ret);
	}
	init_waitqueue_head(&area->store_wait);
	snprintf(name, sizeof(name), "%u:%u", MAJOR(area->dev_id),
		 MINOR(area->dev_id));
	area->debug = debugfs_create_file(name, 0400, debug_dir, area,
					  &chunks_fops);
	return area;
}

/**
 * diff_area_drain() - finish the writes held for copy-on-write.
 * @area: the area, no longer reachable from the I/O path.
 */
void diff_area_drain(struct diff_area *area)
{
	unsigned int i;

	for (i = 0; i < DIFF_AREA_COW_WORKERS; i++)
		flush_work(&area->cow_workers[i].work);
}

/**
 * diff_area_free() - free an area.
 * @area: the area; no I/O reaches it any more.
 */
void diff_area_free(struct diff_area *area)
{
	struct hlist_node *next;
	struct chunk *chunk;
	unsigned int i;

	/* Waits for readers of the file. */
	debugfs_remove(area->debug);
	diff_area_drain(area);
	for (i = 0; i < DIFF_AREA_STORE_WORKERS; i++)
		flush_work(&area->store_workers[i].work);
	/* What is left in flight: chunks placed, or a failed snapshot's. */
	for (i = 0; i < ARRAY_SIZE(area->inflight); i++) {
		hlist_for_each_entry_safe(chunk, next, &area->inflight[i],
					  hash_link) {
			diff_buffer_put(&area->pool, chunk->buf);
			mutex_destroy(&chunk->lock);
			kfree(chunk);
		}
	}
	chunk_map_destroy(&area->map);
	diff_buffer_pool_destroy(&area->pool);
	kfree(area);
}

/* May writes reach all chunks of [sector, sector + count)? Lockless. */
static bool range_writable(struct diff_area *area, sector_t sector,
			   sector_t count)
{
	unsigned long n, last = diff_area_chunk_of(area, sector + count - 1);
	sector_t stored;

	for (n = diff_area_chunk_of(area, sector); n <= last; n++)
		if (!(chunk_state(area, n, &stored) & BIT(CHUNK_WRITABLE)))
			return false;
	return true;
}

/**
 * diff_area_wants_bio() - must a write wait for copy-on-write?
 * @area: the device's area.
 * @bio:  a write to the device, or to another device of its disk
 *        (tracker_bio_range()).
 *
 * A write passes freely once every chunk it touches is saved, or when the
 * snapshot is lost. Both only ever become true, so the answer, once false,
 * stays false.
 *
 * Context: rcu_read_lock() held or the area otherwise alive; lockless.
 * Return: true if diff_area_submit_bio() would take the bio.
 */
bool diff_area_wants_bio(struct diff_area *area, struct bio *bio)
{
	sector_t sector, count;

	if (READ_ONCE(area->error) ||
	    !tracker_bio_range(area->tracker, bio, &sector, &count) ||
	    sector >= area->capacity)
		return false;
	count = min(count, area->capacity - sector);
	return !range_writable(area, sector, count);
}

/**
 * diff_area_submit_bio() - copy-on-write for a write to the original.
 * @area: the device's area.
 * @bio:  a write to the device, or to another device of its disk.
 *
 * Context: the bio submission path, any context: process, softirq or
 * hardirq, interrupts on or off (see &diff_area.lock).
 * Return: true if the bio was taken: it is resubmitted once the old data
 * of its chunks is saved.
 */
bool diff_area_submit_bio(struct diff_area *area, struct bio *bio)
{
	unsigned long flags;

	if (!diff_area_wants_bio(area, bio))
		return false;
	spin_lock_irqsave(&area->lock, flags);
	bio_list_add(&area->pending, bio);
	spin_unlock_irqrestore(&area->lock, flags);
	queue_worker(cow_wq, area->cow_workers, DIFF_AREA_COW_WORKERS,
		     &area->cow_next);
	return true;
}

/* Read the part of an image bio at @iter from the original device. */
static int image_read_original(struct diff_area *area, struct bio *bio,
			       struct bvec_iter *iter, size_t len)
{
	struct bio *clone;
	int ret;

	if (!tracker_bdev_get(area->tracker))
		return -EIO;
	clone = bio_alloc_clone(area->bdev, bio, GFP_NOIO, &fs_bio_set);
	if (!clone) {
		tracker_bdev_put(area->tracker);
		return -ENOMEM;
	}
	clone->bi_opf = REQ_OP_READ;
	clone->bi_iter = *iter;
	clone->bi_iter.bi_size = len;
	ret = submit_bio_wait(clone);
	bio_put(clone);
	tracker_bdev_put(area->tracker);
	bio_advance_iter(bio, iter, len);
	/* Lost meanwhile: writes to the chunk no longer wait for this read. */
	if (!ret && READ_ONCE(area->error))
		ret = -EIO;
	return ret;
}

/*
 * Image I/O on stored data. The storage holds the only copy of the take's
 * data there: when it fails, the image can no longer be what it was, and
 * the snapshot is lost (as when a store fails).
 */
static int image_storage_rw(struct diff_area *area, sector_t sector,
			    struct bio *bio, struct bvec_iter *iter, size_t len)
{
	int ret = diff_storage_rw_bio(area->ds, sector, bio, iter, len);

	if (ret)
		diff_area_corrupt(area, ret);
	return ret;
}

/*
 * Image I/O on one chunk: @len bytes at byte @offset within chunk @n.
 * Context: chunk->lock held.
 */
static int chunk_io_locked(struct diff_area *area, struct chunk *chunk,
			   unsigned long n, size_t offset, struct bio *bio,
			   struct bvec_iter *iter, size_t len)
{
	bool write = op_is_write(bio_op(bio));
	int ret;

	if (!test_bit(CHUNK_COPIED, &chunk->flags)) {
		if (!write)
			return image_read_original(area, bio, iter, len);
		/* The image's write goes to a copy of the chunk, never over
		 * the original; a write of the whole chunk need not read it.
		 */
		ret = chunk_copy(area, chunk, n,
				 len == chunk_len(area, n) << SECTOR_SHIFT);
		if (ret)
			return ret;
	}
	if (chunk->buf) {
		diff_buffer_copy_bio(chunk->buf, offset, bio, iter, len,
				     !write);
		return 0;
	}
	if (!test_bit(CHUNK_STORED, &chunk->flags))
		return -EIO;
	return image_storage_rw(area,
				chunk->storage_sector + (offset >> SECTOR_SHIFT),
				bio, iter, len);
}

/**
 * diff_area_chunk_io() - image I/O on part of one chunk, under its lock.
 * @area:   the device's area.
 * @n:      the chunk.
 * @offset: byte offset of the I/O within the chunk.
 * @bio:    the image bio.
 * @iter:   where in @bio; advanced by @len.
 * @len:    bytes, within the chunk.
 *
 * Reads come from the chunk's saved data or, if it has none, from the
 * original; writes make a copy of the chunk first.
 *
 * Context: process context; sleeps.
 * Return: 0 or a negative errno.
 */
int diff_area_chunk_io(struct diff_area *area, unsigned long n, size_t offset,
		       struct bio *bio, struct bvec_iter *iter, size_t len)
{
	struct chunk *chunk;
	sector_t stored;
	int ret;

	ret = READ_ONCE(area->error);
	if (ret)
		return ret;
	chunk = chunk_get(area, n, &stored);
	if (IS_ERR(chunk))
		return PTR_ERR(chunk);
	/* Retired: stored for good, and nothing else goes on with it. */
	if (!chunk)
		return image_storage_rw(area, stored + (offset >> SECTOR_SHIFT),
					bio, iter, len);
	mutex_lock(&chunk->lock);
	ret = chunk_io_locked(area, chunk, n, offset, bio, iter, len);
	mutex_unlock(&chunk->lock);
	chunk_put(area, chunk);
	return ret;
}

/**
 * diff_area_pin_original() - start an image read of chunk @n's original.
 * @area: the device's area.
 * @n:    the chunk.
 *
 * Until diff_area_unpin_original(), no write reaches the chunk on the
 * original device, and the device stays (tracker_bdev_get()).
 *
 * Context: any.
 * Return: true if the chunk is not copied and is now pinned; false if the
 * image must read it under the chunk lock (diff_area_chunk_io()): it is
 * copied, copy-on-write waits for the reads of its bucket to drain, or the
 * device was detached (nothing is pinned then).
 */
bool diff_area_pin_original(struct diff_area *area, unsigned long n)
{
	sector_t stored;

	if (!tracker_bdev_get(area->tracker))
		return false;
	atomic_inc(readers_of(area, n));
	/* The count is visible before we look at the flag and at draining;
	 * pairs with the barrier in chunk_release_original().
	 */
	smp_mb__after_atomic();
	if (!atomic_read(&area->draining[n % DIFF_AREA_READER_BUCKETS]) &&
	    !(chunk_state(area, n, &stored) & BIT(CHUNK_COPIED)))
		return true;
	diff_area_unpin_original(area, n, n);
	return false;
}

/**
 * diff_area_unpin_original() - image reads of the original are done.
 * @area:  the device's area.
 * @first: first chunk pinned by diff_area_pin_original().
 * @last:  last chunk pinned.
 *
 * Context: any, including interrupt context.
 */
void diff_area_unpin_original(struct diff_area *area, unsigned long first,
			      unsigned long last)
{
	bool idle = false;
	unsigned long n;

	for (n = first; n <= last; n++) {
		if (atomic_dec_and_test(readers_of(area, n)))
			idle = true;
		tracker_bdev_put(area->tracker);
	}
	if (idle && wq_has_sleeper(&area->readers_wait))
		wake_up_all(&area->readers_wait);
}

/**
 * diff_area_chunk_stored() - is the old data of chunk @n in the storage?
 * @area:           the device's area.
 * @n:              the chunk.
 * @storage_sector: receives where, if so.
 *
 * A stored chunk stays where it is while the area lives.
 *
 * Context: any.
 * Return: true if stored.
 */
bool diff_area_chunk_stored(struct diff_area *area, unsigned long n,
			    sector_t *storage_sector)
{
	return chunk_state(area, n, storage_sector) & BIT(CHUNK_STORED);
}

/**
 * diff_area_init() - create the copy-on-write and store workqueues.
 *
 * Return: 0 or -ENOMEM.
 */
int diff_area_init(void)
{
	cow_wq = alloc_workqueue("blksnap-cow", WQ_MEM_RECLAIM | WQ_UNBOUND,
				 0);
	if (!cow_wq)
		return -ENOMEM;
	store_wq = alloc_workqueue("blksnap-store",
				   WQ_MEM_RECLAIM | WQ_UNBOUND, 0);
	if (!store_wq) {
		destroy_workqueue(cow_wq);
		return -ENOMEM;
	}
	/* Diagnostics only: a failure here is no failure of the module. */
	debug_dir = debugfs_create_dir(KBUILD_MODNAME, NULL);
	return 0;
}

/**
 * diff_area_done() - destroy the copy-on-write and store workqueues.
 */
void diff_area_done(void)
{
	debugfs_remove(debug_dir);
	destroy_workqueue(store_wq);
	destroy_workqueue(cow_wq);
}
