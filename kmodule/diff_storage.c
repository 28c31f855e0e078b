// SPDX-License-Identifier: GPL-2.0
/*
 * Difference storage: a file or a block device given by user space, filled
 * linearly with the old data of chunks. A file grows with fallocate() in
 * portions of diff_storage_minimum whenever less than half a portion is
 * free, up to the snapshot's limit.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/ioprio.h>
#include <linux/pagemap.h>
#include <linux/uio.h>
#include <linux/slab.h>
#include "diff_storage.h"
#include "params.h"

/*
 * A block device must be open with O_EXCL: the open file holds the device
 * exclusively (not mounted, not another snapshot's storage) for as long as
 * the snapshot keeps its reference to the file.
 */
static int use_bdev(struct diff_storage *ds, struct block_device *bdev)
{
	if (!bdev_file_is_exclusive(ds->file))
		return -EINVAL;
	ds->is_bdev = true;
	ds->disk = bdev->bd_disk;
	ds->dio_bdev = bdev;
	ds->size = bdev_nr_sectors(bdev);
	return 0;
}

/**
 * diff_storage_create() - take the storage user space passed.
 * @fd:    file descriptor of a regular file or a block device, open for
 *         reading and writing.
 * @limit: largest size in sectors.
 *
 * Return: the storage, or an ERR_PTR: -EBADF (bad fd or not open for
 * read-write), -EINVAL (neither a regular file nor a block device opened
 * with O_EXCL, or a zero limit).
 */
struct diff_storage *diff_storage_create(unsigned int fd, sector_t limit)
{
	struct diff_storage *ds;
	struct inode *inode;
	int ret;

	if (!limit)
		return ERR_PTR(-EINVAL);
	ds = kzalloc(sizeof(*ds), GFP_KERNEL);
	if (!ds)
		return ERR_PTR(-ENOMEM);
	mutex_init(&ds->lock);
	ds->limit = limit;
	ds->file = fget(fd);
	if (!ds->file) {
		ret = -EBADF;
		goto fail;
	}
	if ((ds->file->f_mode & (FMODE_READ | FMODE_WRITE)) !=
	    (FMODE_READ | FMODE_WRITE)) {
		ret = -EBADF;
		goto fail;
	}
	inode = file_inode(ds->file);
	if (S_ISBLK(inode->i_mode)) {
		ret = use_bdev(ds, I_BDEV(ds->file->f_mapping->host));
		if (ret)
			goto fail;
		ds->limit = min(ds->limit, ds->size);
	} else if (S_ISREG(inode->i_mode)) {
		/*
		 * A file of a stacking file system (overlayfs) is written to
		 * the real file's: its device is the one that counts.
		 */
		struct super_block *sb =
			d_real_inode(ds->file->f_path.dentry)->i_sb;

		ds->disk = sb->s_bdev ? sb->s_bdev->bd_disk : NULL;
		/* Direct reads only where the file system's device sets
		 * the alignment rules.
		 */
		if (ds->file->f_mode & FMODE_CAN_ODIRECT)
			ds->dio_bdev = inode->i_sb->s_bdev;
		/* Whatever the file holds already is reused from the start. */
		ds->size = min_t(sector_t, i_size_read(inode) >> SECTOR_SHIFT,
				 ds->limit);
	} else {
		ret = -EINVAL;
		goto fail;
	}
	return ds;
fail:
	if (ds->file)
		fput(ds->file);
	kfree(ds);
	return ERR_PTR(ret);
}

/**
 * diff_storage_free() - release the storage.
 * @ds: the storage.
 */
void diff_storage_free(struct diff_storage *ds)
{
	fput(ds->file);
	kfree(ds);
}

/* Grow a file by one portion (or to the limit). Context: ds->lock held. */
static int diff_storage_grow(struct diff_storage *ds)
{
	sector_t portion = min_t(sector_t, diff_storage_minimum,
				 ds->limit - ds->size);
	int ret;

	if (ds->is_bdev || !portion)
		return -ENOSPC;
	ret = vfs_fallocate(ds->file, 0, (loff_t)ds->size << SECTOR_SHIFT,
			    (loff_t)portion << SECTOR_SHIFT);
	if (ret) {
		pr_warn("difference storage cannot grow: %d\n", ret);
		return ret == -EOPNOTSUPP ? -ENOSPC : ret;
	}
	ds->size += portion;
	return 0;
}

/**
 * diff_storage_alloc() - hand out a region.
 * @ds:     the storage.
 * @count:  its size in sectors.
 * @sector: receives its first sector.
 *
 * Grows the file first when less than half a growth portion would be left.
 *
 * Return: 0, or -ENOSPC when the limit is reached, or the fallocate error.
 */
int diff_storage_alloc(struct diff_storage *ds, sector_t count,
		       sector_t *sector)
{
	int ret = 0;

	mutex_lock(&ds->lock);
	while (ds->size - ds->filled < count ||
	       (ds->size - ds->filled - count < diff_storage_minimum / 2 &&
		ds->size < ds->limit && !ds->is_bdev)) {
		ret = diff_storage_grow(ds);
		if (ret)
			break;
	}
	/* Growth failed, but what is left may still hold this region. */
	if (ret && ds->size - ds->filled >= count)
		ret = 0;
	if (!ret) {
		*sector = ds->filled;
		ds->filled += count;
	}
	mutex_unlock(&ds->lock);
	return ret;
}

/* The @len bytes of @bio at @iter as an iov_iter over the bio's pages. */
static void bio_iov_iter(struct bio *bio, struct bvec_iter *iter, size_t len,
			 unsigned int direction, struct iov_iter *it)
{
	const struct bio_vec *bvec = __bvec_iter_bvec(bio->bi_io_vec, *iter);
	size_t covered = 0, need = iter->bi_bvec_done + len;
	unsigned int nr = 0;

	while (covered < need)
		covered += bvec[nr++].bv_len;
	iov_iter_bvec(it, direction, bvec, nr, len);
	it->iov_offset = iter->bi_bvec_done;
}

/*
 * Does every segment of @it, a bvec iterator, start on @addr_mask and have a
 * length on @len_mask? (What iov_iter_is_aligned() answered until 7.2.)
 */
static bool bvec_iter_aligned(const struct iov_iter *it,
			      unsigned long addr_mask, unsigned long len_mask)
{
	const struct bio_vec *bv = it->bvec;
	size_t skip = it->iov_offset, left = iov_iter_count(it), len;

	if (WARN_ON_ONCE(!iov_iter_is_bvec(it)))
		return false;
	for (; left; bv++, skip = 0) {
		len = min_t(size_t, left, bv->bv_len - skip);
		if (((bv->bv_offset + skip) & addr_mask) || (len & len_mask))
			return false;
		left -= len;
	}
	return true;
}

/* May this request go straight to the storage's device? */
static bool diff_storage_direct(struct diff_storage *ds, loff_t pos,
				const struct iov_iter *it)
{
	struct block_device *bdev = ds->dio_bdev;
	unsigned int lbs_mask;

	if (!bdev)
		return false;
	lbs_mask = bdev_logical_block_size(bdev) - 1;
	return !((pos | iov_iter_count(it)) & lbs_mask) &&
	       bvec_iter_aligned(it, bdev_dma_alignment(bdev), lbs_mask);
}

/**
 * diff_storage_rw() - read or write the storage and wait.
 * @ds:     the storage.
 * @sector: where in the storage.
 * @it:     the data, a bvec iterator (ITER_SOURCE: write it, ITER_DEST:
 *          read into it).
 *
 * Direct I/O where the storage's device allows, else through its cache.
 *
 * Context: process context; sleeps.
 * Return: 0 or a negative errno.
 */
int diff_storage_rw(struct diff_storage *ds, sector_t sector,
		    struct iov_iter *it)
{
	struct file *file = ds->file;
	size_t len = iov_iter_count(it);
	struct kiocb kiocb;
	ssize_t ret;

	init_sync_kiocb(&kiocb, file);
	/* Whatever the user opened the file with: at this offset, direct
	 * only where allowed.
	 */
	kiocb.ki_flags &= ~(IOCB_DIRECT | IOCB_APPEND);
	kiocb.ki_pos = (loff_t)sector << SECTOR_SHIFT;
	if (diff_storage_direct(ds, kiocb.ki_pos, it))
		kiocb.ki_flags |= IOCB_DIRECT;
	if (iov_iter_rw(it) == WRITE) {
		loff_t pos = kiocb.ki_pos;

		file_start_write(file);
		ret = file->f_op->write_iter(&kiocb, it);
		file_end_write(file);
		/* Bios read a storage device directly: leave nothing dirty. */
		if (ret > 0 && ds->is_bdev && !(kiocb.ki_flags & IOCB_DIRECT)) {
			int err = filemap_write_and_wait_range(file->f_mapping,
							       pos,
							       pos + ret - 1);

			if (err)
				return err;
		}
	} else {
		ret = file->f_op->read_iter(&kiocb, it);
	}
	if (ret < 0)
		return ret;
	return ret == len ? 0 : -EIO;
}

/**
 * diff_storage_rw_bio() - read or write stored data through a bio's pages.
 * @ds:     the storage.
 * @sector: where in the storage.
 * @bio:    the bio giving the direction and the pages.
 * @iter:   where in @bio; advanced by @len on success.
 * @len:    bytes.
 *
 * Context: process context; sleeps.
 * Return: 0 or a negative errno.
 */
int diff_storage_rw_bio(struct diff_storage *ds, sector_t sector,
			struct bio *bio, struct bvec_iter *iter, size_t len)
{
	struct iov_iter it;
	int ret;

	bio_iov_iter(bio, iter, len,
		     op_is_write(bio_op(bio)) ? ITER_SOURCE : ITER_DEST, &it);
	ret = diff_storage_rw(ds, sector, &it);
	if (!ret)
		bio_advance_iter(bio, iter, len);
	return ret;
}

static void diff_storage_req_put(struct diff_storage_req *req)
{
	if (atomic_dec_and_test(&req->ref))
		req->done(req, req->error);
}

static void diff_storage_req_complete(struct kiocb *iocb, long ret)
{
	struct diff_storage_req *req =
		container_of(iocb, struct diff_storage_req, iocb);

	if (ret >= 0 && ret != req->len)
		ret = -EIO;
	req->error = ret < 0 ? ret : 0;
	diff_storage_req_put(req);
}

/**
 * diff_storage_read_bio_async() - read stored data into a bio's pages with
 * direct I/O, without waiting for it.
 * @ds:     the storage.
 * @req:    the request; @req->done is set by the caller.
 * @sector: where in the storage.
 * @bio:    the bio whose pages receive the data.
 * @iter:   where in @bio; advanced by @len if the read was started.
 * @len:    bytes.
 *
 * Context: process context; may sleep.
 * Return: true if the read was started: @req->done will be (or was
 * already) called. False if the storage cannot be read directly for this
 * request (no direct I/O, or not aligned as its device needs); nothing was
 * done then.
 */
bool diff_storage_read_bio_async(struct diff_storage *ds,
				 struct diff_storage_req *req, sector_t sector,
				 struct bio *bio, struct bvec_iter *iter,
				 size_t len)
{
	loff_t pos = (loff_t)sector << SECTOR_SHIFT;
	struct iov_iter it;
	ssize_t ret;

	bio_iov_iter(bio, iter, len, ITER_DEST, &it);
	if (!diff_storage_direct(ds, pos, &it))
		return false;
	memset(&req->iocb, 0, sizeof(req->iocb));
	req->iocb.ki_filp = ds->file;
	req->iocb.ki_pos = pos;
	req->iocb.ki_flags = IOCB_DIRECT;
	req->iocb.ki_ioprio = IOPRIO_PRIO_VALUE(IOPRIO_CLASS_NONE, 0);
	req->iocb.ki_complete = diff_storage_req_complete;
	req->len = len;
	req->error = 0;
	/* The read may end before ->read_iter() returns, which may still
	 * use the iocb: the request lives until both are done.
	 */
	atomic_set(&req->ref, 2);
	bio_advance_iter(bio, iter, len);
	ret = ds->file->f_op->read_iter(&req->iocb, &it);
	if (ret != -EIOCBQUEUED)
		diff_storage_req_complete(&req->iocb, ret);
	diff_storage_req_put(req);
	return true;
}

/**
 * diff_storage_usage() - how full the storage is.
 * @ds:     the storage.
 * @filled: receives the sectors in use.
 * @size:   receives the sectors allocated.
 */
void diff_storage_usage(struct diff_storage *ds, sector_t *filled,
			sector_t *size)
{
	mutex_lock(&ds->lock);
	*filled = ds->filled;
	*size = ds->size;
	mutex_unlock(&ds->lock);
}
