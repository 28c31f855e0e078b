// SPDX-License-Identifier: GPL-2.0
/*
 * Interception on stock kernels: ftrace redirects six exported block layer
 * functions to blksnap's wrappers, the way livepatch replaces functions.
 *
 *  submit_bio_noacct()  every bio. The ftrace handler looks the device up
 *                       without a lock, counts a write to a tracked device
 *                       (or to another device of its disk that overlaps
 *                       it) until it completes and marks it in its change
 *                       map; only while a snapshot is held (copy-on-write)
 *                       or being taken (the gate) does such a write leave
 *                       the original function. Other bios never do.
 *  del_gendisk()        a removed disk loses its trackers.
 *  bdev_disk_changed()  a partition rescan drops the partitions' trackers.
 *  disk_force_media_change()  a new medium (a loop device's backing file
 *                       cleared or changed) loses every tracker of the disk.
 *  set_capacity(), set_capacity_and_notify()  a resized disk: its trackers'
 *                       change maps start a new generation.
 *
 * A call made from this module's own code is never redirected: that is how
 * a wrapper reaches the original function, and how bios the module submits
 * itself escape the filter. See docs/interception.md.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt
#include <linux/blk-mq.h>
#include <linux/blkdev.h>
#include <linux/ftrace.h>
#include <linux/module.h>
#include <linux/rcupdate.h>
#include <linux/sched/mm.h>
#include <linux/srcu.h>
#include <linux/xarray.h>
#include "compat.h"
#include "hook.h"
#include "tracker.h"

bool hook_ftrace_active;

#if defined(CONFIG_DYNAMIC_FTRACE_WITH_REGS) || \
	defined(CONFIG_DYNAMIC_FTRACE_WITH_ARGS)

#ifdef ftrace_regs_set_instruction_pointer
#define hook_set_ip(fregs, ip) ftrace_regs_set_instruction_pointer(fregs, ip)
#else
#define hook_set_ip(fregs, ip) ftrace_instruction_pointer_set(fregs, ip)
#endif
#ifdef ftrace_regs_get_argument
#define hook_first_arg(fregs) ftrace_regs_get_argument(fregs, 0)
#else
#define hook_first_arg(fregs) ((fregs)->regs.di)
#endif

/* Threads inside a wrapper; unload waits for them to leave. */
DEFINE_STATIC_SRCU(hook_srcu);

/**
 * struct hook - one redirected function.
 * @name:   its name, for messages.
 * @orig:   its address.
 * @target: the wrapper that replaces it.
 * @wanted: decides whether this call is redirected; NULL: always.
 * @ops:    the ftrace registration.
 */
struct hook {
	const char *name;
	unsigned long orig;
	unsigned long target;
	bool (*wanted)(struct ftrace_regs *fregs);
	struct ftrace_ops ops;
};

/*
 * A write to a tracked device is counted and marked in its change map
 * right here, in the handler; only a write that must wait (for copy-on-
 * write, or for a take to switch the map) leaves submit_bio_noacct().
 * Tracking alone, or a rewrite of chunks already saved, thus costs one
 * lookup, a count and lockless scans of the map and chunks.
 */
static bool notrace submit_bio_wanted(struct ftrace_regs *fregs)
{
	struct bio *bio = (struct bio *)hook_first_arg(fregs);
	bool wanted;

	if (!tracker_bio_changes(bio))
		return false;
	rcu_read_lock();
	wanted = trackers_admit_bio(bio);
	rcu_read_unlock();
	return wanted;
}

static void notrace hook_handler(unsigned long ip, unsigned long parent_ip,
				 struct ftrace_ops *ops,
				 struct ftrace_regs *fregs)
{
	struct hook *hook = container_of(ops, struct hook, ops);

	if (within_own_text(parent_ip))
		return;
	if (hook->wanted && !hook->wanted(fregs))
		return;
	hook_set_ip(fregs, hook->target);
}

/*
 * The wrappers. Each calls the original function from this module's text
 * (never as a tail call: Kbuild builds this file without sibling-call
 * optimisation), so the handler lets that call through.
 */
static void blksnap_submit_bio_noacct(struct bio *bio)
{
	int idx = srcu_read_lock(&hook_srcu);
	bool taken;

	/*
	 * The handler has counted and marked the write, or found the gate
	 * closed. A tracker is freed after a grace period; nothing here
	 * sleeps.
	 */
	rcu_read_lock();
	taken = trackers_take_bio(bio);
	rcu_read_unlock();
	if (!taken)
		submit_bio_noacct(bio);
	srcu_read_unlock(&hook_srcu, idx);
}

/*
 * Detach the trackers of @disk (NULL: of any disk) whose device is gone, or
 * all of them.
 */
static void detach_disk(struct gendisk *disk, bool all, const char *why)
{
	struct tracker *tracker;
	unsigned long index;

	mutex_lock(&trackers_mutex);
	xa_for_each(&trackers, index, tracker) {
		if ((disk && tracker->bdev->bd_disk != disk) ||
		    !(all || tracker_is_stale(tracker)))
			continue;
		pr_info("device %u:%u %s, detached\n", MAJOR(tracker->dev_id),
			MINOR(tracker->dev_id), why);
		tracker_unregister(tracker->dev_id);
		tracker_detached(tracker);
	}
	mutex_unlock(&trackers_mutex);
}

static void detach_stale(struct gendisk *disk)
{
	detach_disk(disk, false, "is gone");
}

static void blksnap_del_gendisk(struct gendisk *disk)
{
	int idx = srcu_read_lock(&hook_srcu);

	del_gendisk(disk);
	detach_stale(disk);
	srcu_read_unlock(&hook_srcu, idx);
}

static int blksnap_bdev_disk_changed(struct gendisk *disk, bool invalidate)
{
	int idx = srcu_read_lock(&hook_srcu);
	int ret;

	ret = bdev_disk_changed(disk, invalidate);
	detach_stale(disk);
	srcu_read_unlock(&hook_srcu, idx);
	return ret;
}

/* What the trackers knew of the old medium no longer applies. */
#ifdef BLKSNAP_HAVE_MEDIA_CHANGE_EVENTS
static bool blksnap_disk_force_media_change(struct gendisk *disk,
					    unsigned int events)
{
	int idx = srcu_read_lock(&hook_srcu);
	bool changed;

	changed = disk_force_media_change(disk, events);
	if (changed)
		detach_disk(disk, true, "changed its medium");
	srcu_read_unlock(&hook_srcu, idx);
	return changed;
}
#else
static void blksnap_disk_force_media_change(struct gendisk *disk)
{
	int idx = srcu_read_lock(&hook_srcu);

	disk_force_media_change(disk);
	detach_disk(disk, true, "changed its medium");
	srcu_read_unlock(&hook_srcu, idx);
}
#endif

/* Sectors a disk loses and regains may come back with other data. */
static void blksnap_set_capacity(struct gendisk *disk, sector_t sectors)
{
	int idx = srcu_read_lock(&hook_srcu);
	sector_t old = get_capacity(disk);

	set_capacity(disk, sectors);
	if (old != sectors)
		trackers_disk_resized(disk);
	srcu_read_unlock(&hook_srcu, idx);
}

static bool blksnap_set_capacity_and_notify(struct gendisk *disk,
					    sector_t sectors)
{
	int idx = srcu_read_lock(&hook_srcu);
	sector_t old = get_capacity(disk);
	bool notified;

	notified = set_capacity_and_notify(disk, sectors);
	if (old != sectors)
		trackers_disk_resized(disk);
	srcu_read_unlock(&hook_srcu, idx);
	return notified;
}

#define HOOK(fn, decide)                                               \
	{                                                              \
		.name = #fn, .orig = (unsigned long)fn,                \
		.target = (unsigned long)blksnap_##fn, .wanted = decide \
	}

static struct hook hooks[] = {
	HOOK(submit_bio_noacct, submit_bio_wanted),
	HOOK(del_gendisk, NULL),
	HOOK(bdev_disk_changed, NULL),
	HOOK(disk_force_media_change, NULL),
	HOOK(set_capacity, NULL),
	HOOK(set_capacity_and_notify, NULL),
};

static int hook_register(struct hook *hook)
{
	int ret;

	hook->ops.func = hook_handler;
	hook->ops.flags = FTRACE_OPS_FL_IPMODIFY | FTRACE_OPS_FL_PERMANENT;
#ifndef CONFIG_DYNAMIC_FTRACE_WITH_ARGS
	hook->ops.flags |= FTRACE_OPS_FL_SAVE_REGS;
#endif
	ret = ftrace_set_filter_ip(&hook->ops, hook->orig, 0, 0);
	if (ret) {
		pr_err("cannot trace %s: %d\n", hook->name, ret);
		return ret;
	}
	ret = register_ftrace_function(&hook->ops);
	if (ret) {
		pr_err("cannot redirect %s: %d\n", hook->name, ret);
		ftrace_set_filter_ip(&hook->ops, hook->orig, 1, 0);
	}
	return ret;
}

static void hook_unregister(struct hook *hook)
{
	unregister_ftrace_function(&hook->ops);
	ftrace_set_filter_ip(&hook->ops, hook->orig, 1, 0);
}

/**
 * hook_ftrace_attach() - attach a tracker to a block device.
 * @dev_id: the device number.
 *
 * Writes submitted before the tracker was visible were not counted: the
 * queue is frozen once after it is published, which waits for every
 * request in flight, as the patched kernel does when it publishes a
 * filter. A bio-based driver that holds writes past its submission (a
 * multipath table queueing with no path) is not waited for.
 *
 * Return: 0, -EALREADY if attached, -ENODEV (or the open error) if there is
 * no such device, -EOPNOTSUPP for a device the module cannot track.
 */
int hook_ftrace_attach(dev_t dev_id)
{
	struct tracker *tracker, *old;
	struct block_device *bdev;
	struct bdev_ref ref;
	int ret;

	bdev = bdev_ref_open(dev_id, &ref);
	if (IS_ERR(bdev))
		return PTR_ERR(bdev);
	tracker = tracker_create(bdev);
	if (IS_ERR(tracker)) {
		ret = PTR_ERR(tracker);
		goto out_close;
	}
	mutex_lock(&trackers_mutex);
	/* A device removed meanwhile is not attached: detach_stale() ran. */
	if (tracker_is_stale(tracker)) {
		ret = -ENODEV;
		goto out_unlock;
	}
	/* The tracker of a deleted partition makes way for the new one. */
	old = xa_load(&trackers, dev_id);
	if (old && tracker_is_stale(old)) {
		tracker_unregister(dev_id);
		tracker_detached(old);
	}
	ret = tracker_register(tracker);
out_unlock:
	mutex_unlock(&trackers_mutex);
	if (ret) {
		tracker_put(tracker);
	} else {
		/* Every write not counted has completed after this. */
		blksnap_queue_drain(bdev_get_queue(bdev));
	}
out_close:
	bdev_ref_close(&ref);
	return ret;
}

/**
 * hook_ftrace_detach() - detach the tracker of a block device.
 * @dev_id: the device number.
 *
 * Return: 0, or -ENOENT if none is attached.
 */
int hook_ftrace_detach(dev_t dev_id)
{
	struct tracker *tracker;

	mutex_lock(&trackers_mutex);
	tracker = tracker_unregister(dev_id);
	mutex_unlock(&trackers_mutex);
	if (!tracker)
		return -ENOENT;
	tracker_detached(tracker);
	return 0;
}

/**
 * hook_ftrace_purge() - detach the trackers whose device is gone.
 *
 * A partition deleted with BLKPG goes without a call blksnap can redirect:
 * its tracker is detached (a snapshot holding it corrupted) at the next
 * control request or listing, where the patched kernel does it at once.
 */
void hook_ftrace_purge(void)
{
	if (hook_ftrace_active)
		detach_disk(NULL, false, "is gone");
}

/**
 * hook_ftrace_init() - start intercepting.
 *
 * Return: 0 or a negative errno.
 */
int hook_ftrace_init(void)
{
	int i, ret;

	for (i = 0; i < ARRAY_SIZE(hooks); i++) {
		ret = hook_register(&hooks[i]);
		if (ret)
			goto fail;
	}
	hook_ftrace_active = true;
	return 0;
fail:
	while (--i >= 0)
		hook_unregister(&hooks[i]);
	return ret;
}

/**
 * hook_ftrace_done() - detach every tracker and stop intercepting.
 *
 * Context: module unload; the control device is gone.
 */
void hook_ftrace_done(void)
{
	struct tracker *tracker;
	unsigned long index;
	int i;

	mutex_lock(&trackers_mutex);
	xa_for_each(&trackers, index, tracker) {
		tracker_unregister(tracker->dev_id);
		tracker_detached(tracker);
	}
	mutex_unlock(&trackers_mutex);

	for (i = ARRAY_SIZE(hooks) - 1; i >= 0; i--)
		hook_unregister(&hooks[i]);
	/* No new entries now; wait for the threads still in a wrapper ... */
	synchronize_srcu(&hook_srcu);
	/* ... and for those between srcu_read_unlock() and their return. */
	if (IS_ENABLED(CONFIG_TASKS_RCU))
		synchronize_rcu_tasks();
	hook_ftrace_active = false;
}

#else /* no ftrace with register access */

int hook_ftrace_init(void)
{
	pr_err("this kernel lacks DYNAMIC_FTRACE_WITH_REGS or _WITH_ARGS\n");
	return -EOPNOTSUPP;
}

void hook_ftrace_done(void)
{
}

int hook_ftrace_attach(dev_t dev_id)
{
	return -EOPNOTSUPP;
}

int hook_ftrace_detach(dev_t dev_id)
{
	return -EOPNOTSUPP;
}

void hook_ftrace_purge(void)
{
}

#endif
