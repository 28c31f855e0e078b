// SPDX-License-Identifier: GPL-2.0
/*
 * Interception on kernels with the block device filter: blksnap registers
 * as filter "blksnap"; the kernel calls it for attach (BLKFILTER_ATTACH),
 * detach (BLKFILTER_DETACH, disk removal, partition rescan), commands
 * (BLKFILTER_CTL), resizes, and every bio of a disk with a filtered device.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt
#include <linux/blk-filter.h>
#include <linux/module.h>
#include <linux/sched/mm.h>
#include <linux/blksnap.h>
#include "hook.h"
#include "tracker.h"

static inline struct tracker *to_tracker(struct blkfilter *flt)
{
	return container_of(flt, struct tracker, filter);
}

/* Called with the device's queue frozen: no allocation may wait for I/O. */
static struct blkfilter *blksnap_attach(struct block_device *bdev)
{
	unsigned int noio = memalloc_noio_save();
	struct tracker *tracker;
	int ret;

	tracker = tracker_create(bdev);
	if (IS_ERR(tracker))
		goto out;
	mutex_lock(&trackers_mutex);
	ret = tracker_register(tracker);
	mutex_unlock(&trackers_mutex);
	if (ret) {
		tracker_put(tracker);
		tracker = ERR_PTR(ret);
	}
out:
	memalloc_noio_restore(noio);
	return IS_ERR(tracker) ? ERR_CAST(tracker) : &tracker->filter;
}

static void blksnap_detach(struct blkfilter *flt)
{
	struct tracker *tracker = to_tracker(flt);

	mutex_lock(&trackers_mutex);
	WARN_ON_ONCE(tracker_unregister(tracker->dev_id) != tracker);
	mutex_unlock(&trackers_mutex);
	tracker_detached(tracker);
}

static int blksnap_ctl(struct blkfilter *flt, const unsigned int cmd,
		       __u8 __user *buf, __u32 *plen)
{
	return tracker_ctl(to_tracker(flt), cmd, buf, plen);
}

/*
 * Runs under the queue reference that keeps the filter attached, for the
 * bios of the filtered device and of the other devices of its disk.
 */
static bool blksnap_submit_bio(struct bio *bio)
{
	return tracker_submit_bio(to_tracker(bio_blkfilter(bio)), bio);
}

static void blksnap_resize(struct blkfilter *flt)
{
	tracker_resized(to_tracker(flt));
}

static struct blkfilter_operations blksnap_filter_ops = {
	.owner = THIS_MODULE,
	.name = BLKSNAP_FILTER_NAME,
	.attach = blksnap_attach,
	.detach = blksnap_detach,
	.ctl = blksnap_ctl,
	.submit_bio = blksnap_submit_bio,
	.resize = blksnap_resize,
};

/**
 * hook_blkfilter_init() - register the "blksnap" filter.
 *
 * Return: 0 or a negative errno.
 */
int hook_blkfilter_init(void)
{
	return blkfilter_register(&blksnap_filter_ops);
}

/**
 * hook_blkfilter_done() - unregister the filter.
 *
 * Context: module unload; attached filters pin the module, so none is left.
 */
void hook_blkfilter_done(void)
{
	blkfilter_unregister(&blksnap_filter_ops);
}
