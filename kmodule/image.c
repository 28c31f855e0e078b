// SPDX-License-Identifier: GPL-2.0
/*
 * Snapshot images: one bio-based block device per original device. Their
 * bios are served by workers (diff_area_image_io()), several at a time.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt
#include <linux/blkdev.h>
#include <linux/module.h>
#include <linux/sched/mm.h>
#include <linux/slab.h>
#include <linux/blksnap.h>
#include "compat.h"
#include "diff_area.h"
#include "image.h"

/* Largest image request: 1 MiB. */
#define IMAGE_MAX_SECTORS 2048

static struct workqueue_struct *image_wq;

struct image_io {
	struct work_struct work;
	struct image *image;
	struct bio *bio;
};

static void image_io_fn(struct work_struct *work)
{
	struct image_io *io = container_of(work, struct image_io, work);
	unsigned int noio = memalloc_noio_save();
	int ret;

	ret = diff_area_image_io(io->image->area, io->bio);
	io->bio->bi_status = errno_to_blk_status(ret);
	bio_endio(io->bio);
	kfree(io);
	memalloc_noio_restore(noio);
}

static void image_submit_bio(struct bio *bio)
{
	struct image *image = bio->bi_bdev->bd_disk->private_data;
	struct image_io *io;

	/* Nothing is cached here: a flush has nothing to do. */
	if (!bio_sectors(bio)) {
		bio_endio(bio);
		return;
	}
	io = kmalloc(sizeof(*io), GFP_NOIO);
	if (!io) {
		bio_io_error(bio);
		return;
	}
	INIT_WORK(&io->work, image_io_fn);
	io->image = image;
	io->bio = bio;
	queue_work(image_wq, &io->work);
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
	disk = blksnap_alloc_disk(bdev_logical_block_size(orig),
				  IMAGE_MAX_SECTORS);
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
	/* New bios fail now; wait for those already queued. */
	flush_workqueue(image_wq);
	put_disk(image->disk);
	kfree(image);
}

/**
 * image_init() - create the image workqueue.
 *
 * Return: 0 or -ENOMEM.
 */
int image_init(void)
{
	image_wq = alloc_workqueue("blksnap-image", WQ_MEM_RECLAIM | WQ_UNBOUND,
				   0);
	return image_wq ? 0 : -ENOMEM;
}

/**
 * image_done() - destroy the image workqueue.
 */
void image_done(void)
{
	destroy_workqueue(image_wq);
}
