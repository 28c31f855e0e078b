/* SPDX-License-Identifier: GPL-2.0 */
#ifndef __BLKSNAP_DIFF_STORAGE_H
#define __BLKSNAP_DIFF_STORAGE_H

#include <linux/blkdev.h>
#include <linux/mutex.h>
#include "compat.h"

/**
 * struct diff_storage - where a snapshot keeps the old data of its devices.
 * @file:     the user's file: a regular file (possibly O_TMPFILE, possibly
 *            on tmpfs) or a block device, open for reading and writing.
 * @is_bdev:  the storage is a block device (fixed size).
 * @disk:     the disk holding the storage, or NULL (tmpfs and the like).
 * @dio_bdev: the device direct reads of the storage go to, whose limits
 *            they must meet; NULL if the storage is not read directly.
 * @lock:     protects the sizes below; growth runs under it.
 * @size:     sectors usable now (file size, or device size).
 * @filled:   sectors handed out; the next region starts here.
 * @limit:    largest size the storage may grow to, in sectors.
 */
struct diff_storage {
	struct file *file;
	bool is_bdev;
	struct gendisk *disk;
	struct block_device *dio_bdev;
	struct mutex lock; /* see @lock above */
	sector_t size;
	sector_t filled;
	sector_t limit;
};

/**
 * diff_storage_bdev() - the block device stored data may be read from by
 * bios sent straight to it.
 * @ds: the storage.
 *
 * Return: the storage's block device, or NULL if it is a file. The page
 * cache of a storage block device never holds data newer than the device
 * (diff_storage_rw() writes through it).
 */
static inline struct block_device *diff_storage_bdev(struct diff_storage *ds)
{
	return ds->is_bdev ? ds->dio_bdev : NULL;
}

struct diff_storage *diff_storage_create(unsigned int fd, sector_t limit);
void diff_storage_free(struct diff_storage *ds);
int diff_storage_alloc(struct diff_storage *ds, sector_t count,
		       sector_t *sector);
int diff_storage_rw(struct diff_storage *ds, sector_t sector,
		    struct iov_iter *it);
int diff_storage_rw_bio(struct diff_storage *ds, sector_t sector,
			struct bio *bio, struct bvec_iter *iter, size_t len);

/**
 * struct diff_storage_req - an asynchronous read of the storage.
 * @iocb:  the kernel I/O control block of the read.
 * @len:   bytes to read.
 * @ref:   held by the submitter until ->read_iter() returned (the file
 *         system may still use @iocb then) and by the read until it ends.
 * @error: the read's result.
 * @done:  called once with 0 or a negative errno, in any context, when
 *         both references are gone.
 */
struct diff_storage_req {
	struct kiocb iocb;
	size_t len;
	atomic_t ref;
	int error;
	void (*done)(struct diff_storage_req *req, int error);
};

bool diff_storage_read_bio_async(struct diff_storage *ds,
				 struct diff_storage_req *req, sector_t sector,
				 struct bio *bio, struct bvec_iter *iter,
				 size_t len);
void diff_storage_usage(struct diff_storage *ds, sector_t *filled,
			sector_t *size);

#endif /* __BLKSNAP_DIFF_STORAGE_H */
