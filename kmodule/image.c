// SPDX-License-Identifier: GPL-2.0
/*
 * Snapshot images: one bio-based block device per original device. Their
 * bios are served by image_io.c.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt
#include <linux/blkdev.h>
#include <linux/module.h>
#include <linux/slab.h>
#include <linux/blksnap.h>
#include "compat.h"
#include "diff_area.h"
#include "diff_storage.h"
#include "image.h"

/* Largest image request: 1 MiB. */
#define IMAGE_MAX_SECTORS 2048

static void image_submit_bio(struct bio *bio)
{
	image_io_submit(bio->bi_bdev->bd_disk->private_data, bio);
}

static const struct block_device_operations image_fops = {
	.owner = THIS_MODULE,
	.submit_bio = image_submit_bio,
};

/**
 * image_create() - add the image block device of a taken device.
 * @area: the device's copy-on-write state.
 *
 * Return: the image, or an ERR_PTR.
 */
struct image *image_create(struct diff_area *area)
{
	struct block_device *orig = area->bdev;
	struct image *image;
	struct gendisk *disk;
	int ret;

	image = kzalloc(sizeof(*image), GFP_KERNEL);
	if (!image)
		return ERR_PTR(-ENOMEM);
	disk = blksnap_alloc_disk(orig, IMAGE_MAX_SECTORS);
	if (IS_ERR(disk)) {
		kfree(image);
		return ERR_CAST(disk);
	}
	image->disk = disk;
	image->area = area;
	snprintf(disk->disk_name, DISK_NAME_LEN, "%s_%u:%u",
		 BLKSNAP_IMAGE_NAME, MAJOR(orig->bd_dev), MINOR(orig->bd_dev));
	disk->fops = &image_fops;
	disk->private_data = image;
	disk->flags |= GENHD_FL_NO_PART;
	set_capacity(disk, area->capacity);
	image->storage_bdev = diff_storage_bdev(area->ds);
	if (image->storage_bdev &&
	    (bdev_logical_block_size(image->storage_bdev) >
		     queue_logical_block_size(disk->queue) ||
	     bdev_dma_alignment(image->storage_bdev) >
		     queue_dma_alignment(disk->queue)))
		image->storage_bdev = NULL;
	ret = add_disk(disk);
	if (ret) {
		put_disk(disk);
		kfree(image);
		return ERR_PTR(ret);
	}
	return image;
}

/**
 * image_free() - remove an image; its I/O in flight finishes first.
 * @image: the image.
 */
void image_free(struct image *image)
{
	del_gendisk(image->disk);
	/* New bios fail now; wait for those already accepted. */
	image_io_wait_idle(image);
	put_disk(image->disk);
	kfree(image);
}
