/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The few kernel interfaces that differ between the supported kernels
 * (Linux 6.1 and 6.12).
 */
#ifndef __BLKSNAP_COMPAT_H
#define __BLKSNAP_COMPAT_H

#include <linux/blkdev.h>
#include <linux/fs.h>

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
#endif

#endif /* __BLKSNAP_COMPAT_H */
