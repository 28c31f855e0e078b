// SPDX-License-Identifier: GPL-2.0
/*
 * Image I/O: serving the bios of snapshot images.
 *
 * A read of chunks that were never copied is cloned to the original device
 * at once, with the chunks pinned against copy-on-write: the common case
 * while a backup reads a fresh snapshot. So is a read of chunks stored on a
 * storage block device, cloned to it. What is left goes to a worker, which
 * splits it by chunk: runs as above become clones again; chunks stored in
 * a file are read straight into the bio's pages with direct I/O where the
 * file system allows it; the rest
 * (chunks still in memory, writes, storage without direct I/O) is served
 * under the chunk's lock by diff_area_chunk_io(). An image bio completes
 * when all its parts have; one that a single clone serves whole completes
 * with it, with nothing else allocated: the common case of a backup's
 * large sequential reads.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt
#include <linux/bio.h>
#include <linux/blkdev.h>
#include <linux/sched/mm.h>
#include <linux/slab.h>
#include <linux/wait.h>
#include "cbt_map.h"
#include "diff_area.h"
#include "diff_storage.h"
#include "image.h"
#include "tracker.h"

static struct workqueue_struct *image_wq;
static struct bio_set image_bio_set;
/* image_io_wait_idle() waits here; global, so that no waker touches an
 * image that may be freed as soon as its last bio is done.
 */
static DECLARE_WAIT_QUEUE_HEAD(image_idle_wait);

/**
 * struct image_io - an image bio being served.
 * @work:  the worker serving it, if the fast path did not.
 * @image: the image.
 * @bio:   the bio.
 * @iter:  the part of @bio the worker serves: what the submitter left.
 * @parts: parts not finished yet, plus one held by whoever dispatches.
 * @error: the first error of a part, or 0.
 */
struct image_io {
	struct work_struct work;
	struct image *image;
	struct bio *bio;
	struct bvec_iter iter;
	atomic_t parts;
	int error;
};

/**
 * struct image_clone - a read of uncopied chunks from the original device,
 * or of stored chunks from a storage block device.
 * @io:    the image bio it serves a part of; for a clone serving a whole
 *         image bio, its image (the image bio is in @bio.bi_private).
 * @image: see @io.
 * @first: the first chunk it pins (none if @first > @last).
 * @last:  the last chunk it pins.
 * @bio:   the clone (allocated from image_bio_set, front-padded).
 */
struct image_clone {
	union {
		struct image_io *io;
		struct image *image;
	};
	unsigned long first;
	unsigned long last;
	struct bio bio;
};

/**
 * struct image_storage_read - a direct read of a stored chunk.
 * @req: the storage request.
 * @io:  the image bio it serves.
 */
struct image_storage_read {
	struct diff_storage_req req;
	struct image_io *io;
};

/**
 * struct image_run - a piece of an image read that needs no waiting.
 * @bdev:   the device that holds it: the original or the storage.
 * @sector: where it starts there.
 * @first:  the first chunk pinned (none if @first > @last).
 * @last:   the last chunk pinned.
 */
struct image_run {
	struct block_device *bdev;
	sector_t sector;
	unsigned long first;
	unsigned long last;
};

static void image_io_fail(struct image_io *io, int error)
{
	if (error)
		cmpxchg(&io->error, 0, error);
}

/* Complete @bio, a bio @image took, with @status. Context: any. */
static void image_bio_done(struct image *image, struct bio *bio,
			   blk_status_t status)
{
	bio->bi_status = status;
	bio_endio(bio);
	if (atomic_dec_and_test(&image->inflight))
		wake_up_all(&image_idle_wait);
}

/* A part is done; the last one completes the image bio. Context: any. */
static void image_io_put(struct image_io *io)
{
	struct image *image = io->image;
	struct bio *bio = io->bio;
	int error;

	if (!atomic_dec_and_test(&io->parts))
		return;
	error = io->error;
	kfree(io);
	image_bio_done(image, bio, errno_to_blk_status(error));
}

/*
 * A read of the original is right only while copy-on-write holds back the
 * writes to its chunks: once the snapshot is lost, they pass, and one may
 * have landed before the read. Context: any.
 */
static blk_status_t original_read_status(struct diff_area *area,
					 blk_status_t status)
{
	return status ?: READ_ONCE(area->error) ? BLK_STS_IOERR : BLK_STS_OK;
}

/*
 * A clone that read stored chunks (it pins none) and failed: the storage
 * held the only copy of that data, the snapshot is lost. Context: any.
 */
static void image_clone_storage_status(struct diff_area *area,
				       const struct image_clone *clone,
				       blk_status_t status)
{
	if (status && clone->first > clone->last)
		diff_area_corrupt(area, blk_status_to_errno(status));
}

static void image_clone_endio(struct bio *bio)
{
	struct image_clone *clone = container_of(bio, struct image_clone, bio);
	struct image_io *io = clone->io;
	struct diff_area *area = io->image->area;

	image_clone_storage_status(area, clone, bio->bi_status);
	image_io_fail(io, blk_status_to_errno(original_read_status(area,
								   bio->bi_status)));
	diff_area_unpin_original(area, clone->first, clone->last);
	bio_put(bio);
	image_io_put(io);
}

/*
 * Read @len bytes of the image bio at @iter from @run and advance @iter.
 * The clone unpins the run's chunks.
 */
static void image_read_clone(struct image_io *io, const struct image_run *run,
			     struct bvec_iter *iter, size_t len)
{
	struct image_clone *clone;
	struct bio *bio;

	/* From a bio_set with GFP_NOIO: waits, never fails. */
	bio = bio_alloc_clone(run->bdev, io->bio, GFP_NOIO, &image_bio_set);
	clone = container_of(bio, struct image_clone, bio);
	clone->io = io;
	clone->first = run->first;
	clone->last = run->last;
	bio->bi_iter = *iter;
	bio->bi_iter.bi_sector = run->sector;
	bio->bi_iter.bi_size = len;
	bio->bi_end_io = image_clone_endio;
	atomic_inc(&io->parts);
	bio_advance_iter(io->bio, iter, len);
	submit_bio_noacct(bio);
}

static void image_whole_endio(struct bio *bio)
{
	struct image_clone *clone = container_of(bio, struct image_clone, bio);
	struct image *image = clone->image;
	struct bio *orig = bio->bi_private;
	blk_status_t status;

	image_clone_storage_status(image->area, clone, bio->bi_status);
	status = original_read_status(image->area, bio->bi_status);
	diff_area_unpin_original(image->area, clone->first, clone->last);
	bio_put(bio);
	image_bio_done(image, orig, status);
}

/*
 * Pin the run of uncopied chunks starting at @iter, up to the end of the
 * bio. Return its length in bytes: 0 if the chunk at @iter is copied.
 */
static size_t pin_original_run(struct diff_area *area,
			       const struct bvec_iter *iter,
			       unsigned long *first, unsigned long *last)
{
	sector_t sector = iter->bi_sector;
	unsigned long n = diff_area_chunk_of(area, sector);
	unsigned long end =
		diff_area_chunk_of(area, bvec_iter_end_sector(*iter) - 1);

	*first = n;
	while (n <= end && diff_area_pin_original(area, n))
		n++;
	if (n == *first)
		return 0;
	*last = n - 1;
	if (n > end)
		return iter->bi_size;
	return ((n << (area->chunk_shift - SECTOR_SHIFT)) - sector)
	       << SECTOR_SHIFT;
}

static void image_storage_done(struct diff_storage_req *req, int error)
{
	struct image_storage_read *read =
		container_of(req, struct image_storage_read, req);
	struct image_io *io = read->io;

	/* As image_clone_storage_status(). */
	if (error)
		diff_area_corrupt(io->image->area, error);
	image_io_fail(io, error);
	kfree(read);
	image_io_put(io);
}

/* Start a direct read of stored data; false if the storage cannot. */
static bool image_read_storage(struct image_io *io, sector_t sector,
			       struct bvec_iter *iter, size_t len)
{
	struct image_storage_read *read;

	read = kmalloc(sizeof(*read), GFP_NOIO);
	if (!read)
		return false;
	read->io = io;
	read->req.done = image_storage_done;
	atomic_inc(&io->parts);
	if (diff_storage_read_bio_async(io->image->area->ds, &read->req,
					sector, io->bio, iter, len))
		return true;
	/* Not started: the dispatcher's reference keeps @io alive. */
	atomic_dec(&io->parts);
	kfree(read);
	return false;
}

/*
 * Bytes from @iter that the storage holds in one piece: @len (the rest of
 * chunk @n, stored at @stored), and the chunks after it that the storage
 * holds right behind it.
 */
static size_t stored_run(struct diff_area *area, const struct bvec_iter *iter,
			 unsigned long n, size_t len, sector_t stored)
{
	sector_t chunk = diff_area_chunk_sectors(area), next;
	unsigned long m;

	for (m = n + 1; len < iter->bi_size; m++) {
		if (!diff_area_chunk_stored(area, m, &next) ||
		    next != stored + (m - n) * chunk)
			break;
		len += min_t(size_t, iter->bi_size - len,
			     chunk << SECTOR_SHIFT);
	}
	return len;
}

/* Byte offset of @iter in its chunk, and the bytes of the bio left there. */
static unsigned long chunk_at(struct diff_area *area,
			      const struct bvec_iter *iter, size_t *offset,
			      size_t *len)
{
	unsigned long n = diff_area_chunk_of(area, iter->bi_sector);
	size_t chunk_bytes = diff_area_chunk_sectors(area) << SECTOR_SHIFT;

	*offset = (iter->bi_sector -
		   ((sector_t)n << (area->chunk_shift - SECTOR_SHIFT)))
		  << SECTOR_SHIFT;
	*len = min_t(size_t, iter->bi_size, chunk_bytes - *offset);
	return n;
}

/*
 * Find the read at @iter that needs no waiting: a run of uncopied chunks
 * from the original (pinned), or a run of stored chunks from a storage
 * block device. Return its length in bytes (0 if none) and fill @run.
 */
static size_t image_run_nowait(struct image *image,
			       const struct bvec_iter *iter,
			       struct image_run *run)
{
	struct diff_area *area = image->area;
	size_t offset, len;
	sector_t stored;
	unsigned long n;

	len = pin_original_run(area, iter, &run->first, &run->last);
	if (len) {
		run->bdev = area->bdev;
		run->sector = iter->bi_sector;
		return len;
	}
	n = chunk_at(area, iter, &offset, &len);
	if (!image->storage_bdev || !diff_area_chunk_stored(area, n, &stored))
		return 0;
	run->bdev = image->storage_bdev;
	run->sector = stored + (offset >> SECTOR_SHIFT);
	run->first = 1;
	run->last = 0;
	return stored_run(area, iter, n, len, stored);
}

/* Start the read at @iter if it needs no waiting; true if started. */
static bool image_read_nowait(struct image_io *io, struct bvec_iter *iter)
{
	struct image_run run;
	size_t len = image_run_nowait(io->image, iter, &run);

	if (!len)
		return false;
	image_read_clone(io, &run, iter, len);
	return true;
}

/* Serve read @bio, all of which @run holds, with one clone. */
static void image_read_whole(struct image *image, struct bio *bio,
			     const struct image_run *run)
{
	struct image_clone *clone;
	struct bio *to;

	/* From a bio_set with GFP_NOIO: waits, never fails. */
	to = bio_alloc_clone(run->bdev, bio, GFP_NOIO, &image_bio_set);
	clone = container_of(to, struct image_clone, bio);
	clone->image = image;
	clone->first = run->first;
	clone->last = run->last;
	to->bi_iter.bi_sector = run->sector;
	to->bi_private = bio;
	to->bi_end_io = image_whole_endio;
	atomic_inc(&image->inflight);
	submit_bio_noacct(to);
}

static void image_io_fn(struct work_struct *work)
{
	struct image_io *io = container_of(work, struct image_io, work);
	struct diff_area *area = io->image->area;
	bool write = bio_op(io->bio) == REQ_OP_WRITE;
	unsigned int noio = memalloc_noio_save();
	struct bvec_iter iter = io->iter;
	size_t offset, len;
	sector_t stored;
	unsigned long n;

	while (iter.bi_size && !READ_ONCE(io->error)) {
		image_io_fail(io, READ_ONCE(area->error));
		if (READ_ONCE(io->error))
			break;
		if (!write && image_read_nowait(io, &iter))
			continue;
		n = chunk_at(area, &iter, &offset, &len);
		if (!write && diff_area_chunk_stored(area, n, &stored) &&
		    image_read_storage(io, stored + (offset >> SECTOR_SHIFT),
				       &iter,
				       stored_run(area, &iter, n, len, stored)))
			continue;
		image_io_fail(io, diff_area_chunk_io(area, n, offset, io->bio,
						     &iter, len));
	}
	/*
	 * What the image's writes changed is what the next backup reads: a
	 * write that failed part way may have changed any of its sectors.
	 */
	if (write)
		cbt_map_mark_dirty(area->tracker->cbt_map,
				   io->bio->bi_iter.bi_sector,
				   bio_sectors(io->bio));
	memalloc_noio_restore(noio);
	image_io_put(io);
}

/**
 * image_io_submit() - serve a bio of an image.
 * @image: the image.
 * @bio:   the bio.
 *
 * Context: the bio submission path.
 */
void image_io_submit(struct image *image, struct bio *bio)
{
	struct diff_area *area = image->area;
	struct image_run run;
	struct image_io *io;
	size_t len = 0;

	/* Nothing is cached here: a flush has nothing to do. */
	if (!bio_sectors(bio)) {
		bio_endio(bio);
		return;
	}
	if (bio_op(bio) != REQ_OP_READ && bio_op(bio) != REQ_OP_WRITE) {
		bio->bi_status = BLK_STS_NOTSUPP;
		bio_endio(bio);
		return;
	}
	if (bio_end_sector(bio) > area->capacity || READ_ONCE(area->error)) {
		bio_io_error(bio);
		return;
	}
	if (bio_op(bio) == REQ_OP_READ) {
		len = image_run_nowait(image, &bio->bi_iter, &run);
		if (len == bio->bi_iter.bi_size) {
			image_read_whole(image, bio, &run);
			return;
		}
	}
	io = kmalloc(sizeof(*io), GFP_NOIO);
	if (!io) {
		if (len)
			diff_area_unpin_original(area, run.first, run.last);
		bio_io_error(bio);
		return;
	}
	io->image = image;
	io->bio = bio;
	atomic_set(&io->parts, 1);
	io->error = 0;
	atomic_inc(&image->inflight);
	io->iter = bio->bi_iter;
	/* Reads start here what needs no waiting; a worker does the rest. */
	if (len) {
		image_read_clone(io, &run, &io->iter, len);
		while (io->iter.bi_size && image_read_nowait(io, &io->iter))
			;
	}
	if (!io->iter.bi_size) {
		image_io_put(io);
		return;
	}
	INIT_WORK(&io->work, image_io_fn);
	queue_work(image_wq, &io->work);
}

/**
 * image_io_wait_idle() - wait until every bio the image took is done.
 * @image: the image, whose disk takes no more bios.
 */
void image_io_wait_idle(struct image *image)
{
	wait_event(image_idle_wait, !atomic_read(&image->inflight));
}

/**
 * image_init() - create the image workqueue and bio set.
 *
 * Return: 0 or -ENOMEM.
 */
int image_init(void)
{
	int ret;

	ret = bioset_init(&image_bio_set, BIO_POOL_SIZE,
			  offsetof(struct image_clone, bio),
			  BIOSET_NEED_RESCUER);
	if (ret)
		return ret;
	image_wq = alloc_workqueue("blksnap-image", WQ_MEM_RECLAIM | WQ_UNBOUND,
				   0);
	if (!image_wq) {
		bioset_exit(&image_bio_set);
		return -ENOMEM;
	}
	return 0;
}

/**
 * image_done() - destroy the image workqueue and bio set.
 */
void image_done(void)
{
	destroy_workqueue(image_wq);
	bioset_exit(&image_bio_set);
}
