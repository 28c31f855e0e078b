// SPDX-License-Identifier: GPL-2.0
/*
 * blksnap: point-in-time snapshots and changed block tracking for live
 * block devices. Module entry points and parameters.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/limits.h>
#include <linux/string.h>
#include "ctl.h"
#include "diff_area.h"
#include "hook.h"
#include "image.h"
#include "params.h"
#include "snapshot.h"
#include "tracker.h"
#include "version.h"

/*
 * How bios are intercepted: "blkfilter" (the kernel's block device filter),
 * "ftrace" (stock kernels) or "auto" (blkfilter when the kernel has it).
 * After loading, it reads back the flavour in use.
 */
static char interception[16] = "auto";
module_param_string(interception, interception, sizeof(interception), 0444);
MODULE_PARM_DESC(interception, "auto, blkfilter or ftrace");

/* Change tracking: block size is 2^shift bytes, within these bounds. */
unsigned int tracking_block_minimum_shift = 16;
unsigned int tracking_block_maximum_shift = 26;
unsigned int tracking_block_maximum_count = 2097152;
/* Copy-on-write: chunk size is 2^shift bytes, within these bounds. */
unsigned int chunk_minimum_shift = 18;
unsigned int chunk_maximum_shift = 26;
unsigned int chunk_maximum_count_shift = 40;
/* Memory bounds of the copy-on-write path. */
unsigned int chunk_maximum_in_queue = 16;
unsigned int free_diff_buffer_pool_size = 128;
/* Difference storage grows by this many sectors at a time (1 GiB). */
unsigned int diff_storage_minimum = 2097152;

module_param(tracking_block_minimum_shift, uint, 0444);
MODULE_PARM_DESC(tracking_block_minimum_shift,
		 "Smallest change tracking block, as a power of two in bytes");
module_param(tracking_block_maximum_shift, uint, 0444);
MODULE_PARM_DESC(tracking_block_maximum_shift,
		 "Largest change tracking block, as a power of two in bytes");
module_param(tracking_block_maximum_count, uint, 0444);
MODULE_PARM_DESC(tracking_block_maximum_count,
		 "Largest number of change tracking blocks per device");
module_param(chunk_minimum_shift, uint, 0444);
MODULE_PARM_DESC(chunk_minimum_shift,
		 "Smallest copy-on-write chunk, as a power of two in bytes");
module_param(chunk_maximum_shift, uint, 0444);
MODULE_PARM_DESC(chunk_maximum_shift,
		 "Largest copy-on-write chunk, as a power of two in bytes");
module_param(chunk_maximum_count_shift, uint, 0444);
MODULE_PARM_DESC(chunk_maximum_count_shift,
		 "Largest number of chunks per device, as a power of two");

/*
 * The parameters writable at run time are checked whenever they are set,
 * at load as in sysfs: copy-on-write waits for chunk_maximum_in_queue to
 * exceed the chunks waiting for storing, so 0 would stop every first write
 * to a chunk for good, and a difference storage file could not grow by 0
 * sectors. Any free_diff_buffer_pool_size works (0 keeps no free buffer).
 */
static int in_queue_set(const char *val, const struct kernel_param *kp)
{
	return param_set_uint_minmax(val, kp, 1, CHUNK_IN_QUEUE_MAX);
}

static const struct kernel_param_ops in_queue_ops = {
	.set = in_queue_set,
	.get = param_get_uint,
};

static int storage_minimum_set(const char *val, const struct kernel_param *kp)
{
	return param_set_uint_minmax(val, kp, 1, UINT_MAX);
}

static const struct kernel_param_ops storage_minimum_ops = {
	.set = storage_minimum_set,
	.get = param_get_uint,
};

module_param_cb(chunk_maximum_in_queue, &in_queue_ops,
		&chunk_maximum_in_queue, 0644);
MODULE_PARM_DESC(chunk_maximum_in_queue,
		 "Largest number of chunks being stored at once, 1 to 1024");
module_param(free_diff_buffer_pool_size, uint, 0644);
MODULE_PARM_DESC(free_diff_buffer_pool_size,
		 "Number of free chunk buffers kept for reuse");
module_param_cb(diff_storage_minimum, &storage_minimum_ops,
		&diff_storage_minimum, 0644);
MODULE_PARM_DESC(diff_storage_minimum,
		 "Difference storage growth step, in sectors, at least 1");

static bool __init params_valid(void)
{
	if (tracking_block_minimum_shift < 9 ||
	    tracking_block_minimum_shift > tracking_block_maximum_shift ||
	    tracking_block_maximum_shift > 31 || !tracking_block_maximum_count)
		return false;
	if (chunk_minimum_shift < PAGE_SHIFT ||
	    chunk_minimum_shift > chunk_maximum_shift ||
	    chunk_maximum_shift > CHUNK_SHIFT_MAX ||
	    chunk_maximum_count_shift > 63)
		return false;
	return chunk_maximum_in_queue && diff_storage_minimum;
}

#ifdef BLKSNAP_HAVE_BLKFILTER
static bool use_blkfilter;
#endif

static int __init hook_init(void)
{
#ifdef BLKSNAP_HAVE_BLKFILTER
	if (sysfs_streq(interception, "auto") ||
	    sysfs_streq(interception, "blkfilter")) {
		use_blkfilter = true;
		strscpy(interception, "blkfilter", sizeof(interception));
		return hook_blkfilter_init();
	}
#endif
	if (!sysfs_streq(interception, "auto") &&
	    !sysfs_streq(interception, "ftrace")) {
		pr_err("interception=%s is not available\n", interception);
		return -EINVAL;
	}
	strscpy(interception, "ftrace", sizeof(interception));
	return hook_ftrace_init();
}

static void hook_done(void)
{
#ifdef BLKSNAP_HAVE_BLKFILTER
	if (use_blkfilter) {
		hook_blkfilter_done();
		return;
	}
#endif
	hook_ftrace_done();
}

static int __init blksnap_init(void)
{
	int ret;

	if (!params_valid()) {
		pr_err("invalid module parameters\n");
		return -EINVAL;
	}
	ret = tracker_init();
	if (ret)
		return ret;
	ret = diff_area_init();
	if (ret)
		goto fail_tracker;
	ret = image_init();
	if (ret)
		goto fail_diff_area;
	ret = hook_init();
	if (ret)
		goto fail_image;
	ret = ctl_init();
	if (ret)
		goto fail_hook;
	pr_info("version %s loaded, interception %s\n", VERSION_STR,
		interception);
	return 0;

fail_hook:
	hook_done();
fail_image:
	image_done();
fail_diff_area:
	diff_area_done();
fail_tracker:
	tracker_done();
	return ret;
}

static void __exit blksnap_exit(void)
{
	ctl_done();
	snapshot_destroy_all();
	hook_done();
	image_done();
	diff_area_done();
	tracker_done();
	pr_info("unloaded\n");
}

module_init(blksnap_init);
module_exit(blksnap_exit);

MODULE_DESCRIPTION("Block device snapshots and changed block tracking");
MODULE_VERSION(VERSION_STR);
MODULE_LICENSE("GPL");
