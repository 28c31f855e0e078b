/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The few kernel interfaces that differ between the supported kernels
 * (Linux 6.1, 6.12 and 7.2).
 */
#ifndef __BLKSNAP_COMPAT_H
#define __BLKSNAP_COMPAT_H

#include <linux/blkdev.h>
#include <linux/blk-mq.h>
#include <linux/fs.h>
#include <linux/module.h>
#include <linux/workqueue.h>

/* Kbuild detects the features in the kernel's headers. */
#ifndef BLKSNAP_HAVE_BDEV_PARTNO
static inline u8 bdev_partno(const struct block_device *bdev)
{
	return bdev->bd_partno;
}
#endif

/*
 * An open reference to a block device, for the time it takes to attach.
 */
#ifdef BLKSNAP_HAVE_BDEV_FILE
struct bdev_ref {
	struct file *file;
};

static inline struct block_device *bdev_ref_open(dev_t dev,
						 struct bdev_ref *ref)
{
	ref->file = bdev_file_open_by_dev(dev, BLK_OPEN_READ, NULL, NULL);
	return IS_ERR(ref->file) ? ERR_CAST(ref->file) : file_bdev(ref->file);
}

static inline void bdev_ref_close(struct bdev_ref *ref)
{
	fput(ref->file);
}

/* Was this block device file opened with O_EXCL? (it is its own holder) */
static inline bool bdev_file_is_exclusive(struct file *file)
{
	return file->private_data == file;
}
#else
struct bdev_ref {
	struct block_device *bdev;
};

static inline struct block_device *bdev_ref_open(dev_t dev,
						 struct bdev_ref *ref)
{
	ref->bdev = blkdev_get_by_dev(dev, FMODE_READ, NULL);
	return ref->bdev;
}

static inline void bdev_ref_close(struct bdev_ref *ref)
{
	blkdev_put(ref->bdev, FMODE_READ);
}

static inline bool bdev_file_is_exclusive(struct file *file)
{
	return file->f_mode & FMODE_EXCL;
}
#endif

/* Freezing the file system on a block device for a coherent take. */
#ifdef BLKSNAP_HAVE_BDEV_FREEZE
#define blksnap_freeze_bdev bdev_freeze
#define blksnap_thaw_bdev bdev_thaw
#else
#define blksnap_freeze_bdev freeze_bdev
#define blksnap_thaw_bdev thaw_bdev
#endif

/*
 * A bio-based disk with the block sizes, I/O hints and alignment of @orig,
 * and the given largest request (blk_alloc_disk() takes queue limits and
 * returns ERR_PTR since 6.9).
 */
static inline struct gendisk *blksnap_alloc_disk(struct block_device *orig,
						 unsigned int max_sectors)
{
#ifdef BLKSNAP_HAVE_ALLOC_DISK_LIM
	struct queue_limits lim = {
		.logical_block_size = bdev_logical_block_size(orig),
		.physical_block_size = bdev_physical_block_size(orig),
		.io_min = bdev_io_min(orig),
		.io_opt = bdev_io_opt(orig),
		.alignment_offset = bdev_alignment_offset(orig),
		.max_hw_sectors = max_sectors,
	};

	return blk_alloc_disk(&lim, NUMA_NO_NODE);
#else
	struct gendisk *disk = blk_alloc_disk(NUMA_NO_NODE);

	if (!disk)
		return ERR_PTR(-ENOMEM);
	blk_queue_logical_block_size(disk->queue, bdev_logical_block_size(orig));
	blk_queue_physical_block_size(disk->queue,
				      bdev_physical_block_size(orig));
	blk_queue_io_min(disk->queue, bdev_io_min(orig));
	blk_queue_io_opt(disk->queue, bdev_io_opt(orig));
	blk_queue_alignment_offset(disk->queue, bdev_alignment_offset(orig));
	blk_queue_max_hw_sectors(disk->queue, max_sectors);
	return disk;
#endif
}

/*
 * Wait until every bio that entered @q before the call has completed, by
 * freezing and unfreezing it (after 6.12 the freeze returns the task's
 * memalloc flags, for the unfreeze to restore: 7.2 has it).
 */
static inline void blksnap_queue_drain(struct request_queue *q)
{
#ifdef BLKSNAP_HAVE_FREEZE_MEMFLAGS
	blk_mq_unfreeze_queue(q, blk_mq_freeze_queue(q));
#else
	blk_mq_freeze_queue(q);
	blk_mq_unfreeze_queue(q);
#endif
}

/*
 * A per-CPU workqueue says so where the kernel has WQ_PERCPU (7.2, and
 * Debian's 6.12 through a stable backport): 7.2 warns about a workqueue
 * with neither WQ_PERCPU nor WQ_UNBOUND.
 */
#ifdef BLKSNAP_HAVE_WQ_PERCPU
#define BLKSNAP_WQ_PERCPU WQ_PERCPU
#else
#define BLKSNAP_WQ_PERCPU 0
#endif

/*
 * Is @addr in this module's text? The ftrace handler asks for every bio, so
 * it tests the one range that holds code that calls out (6.4 and later keep
 * each kind of section apart; 6.1 has one core range), not the seven of
 * within_module().
 */
static inline bool within_own_text(unsigned long addr)
{
#ifdef BLKSNAP_HAVE_MOD_MEM
	return within_module_mem_type(addr, THIS_MODULE, MOD_TEXT);
#else
	return within_module_core(addr, THIS_MODULE);
#endif
}

#endif /* __BLKSNAP_COMPAT_H */
