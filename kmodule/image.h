/* SPDX-License-Identifier: GPL-2.0 */
#ifndef __BLKSNAP_IMAGE_H
#define __BLKSNAP_IMAGE_H

#include <linux/atomic.h>

struct bio;
struct block_device;
struct diff_area;
struct gendisk;

/**
 * struct image - the block device showing a device as it was at the take.
 * @disk:     the disk, named blksnap-image_MAJ:MIN after the original.
 * @area:     the original's copy-on-write state.
 * @inflight: bios of the image not completed yet.
 * @storage_bdev: the storage block device, if stored chunks are read from
 *            it by clones of the image's bios (its alignment needs are no
 *            stricter than the image's); else NULL.
 */
struct image {
	struct gendisk *disk;
	struct diff_area *area;
	atomic_t inflight;
	struct block_device *storage_bdev;
};

struct image *image_create(struct diff_area *area);
void image_free(struct image *image);

/* image_io.c: serving the image's bios. */
int image_init(void);
void image_done(void);
void image_io_submit(struct image *image, struct bio *bio);
void image_io_wait_idle(struct image *image);

#endif /* __BLKSNAP_IMAGE_H */
