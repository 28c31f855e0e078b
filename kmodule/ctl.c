// SPDX-License-Identifier: GPL-2.0
/*
 * The /dev/blksnap-control character device: snapshot management ioctls.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt
#include <linux/capability.h>
#include <linux/fs.h>
#include <linux/kdev_t.h>
#include <linux/miscdevice.h>
#include <linux/module.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <linux/blksnap.h>
#include "ctl.h"
#include "hook.h"
#include "snapshot.h"
#include "tracker.h"
#include "version.h"

static int ioctl_version(struct blksnap_version __user *uarg)
{
	static const struct blksnap_version version = {
		.major = VERSION_MAJOR,
		.minor = VERSION_MINOR,
		.revision = VERSION_REVISION,
		.build = VERSION_BUILD,
	};

	if (copy_to_user(uarg, &version, sizeof(version)))
		return -EFAULT;
	return 0;
}

/* Is @name (not necessarily NUL-terminated) this module's filter name? */
static bool is_blksnap_filter(const __u8 name[BLKFILTER_NAME_LENGTH])
{
	return !strncmp((const char *)name, BLKSNAP_FILTER_NAME,
			BLKFILTER_NAME_LENGTH);
}

/* The device number of a request; -EINVAL if it cannot be one. */
static int to_dev_id(__u32 major, __u32 minor, dev_t *dev_id)
{
	if (major >= (1U << (32 - MINORBITS)) || minor > MINORMASK)
		return -EINVAL;
	*dev_id = MKDEV(major, minor);
	return 0;
}

static int ioctl_filter_attach_detach(struct blksnap_filter_name __user *uarg,
				      bool attach)
{
	struct blksnap_filter_name arg;
	dev_t dev_id;
	int ret;

	if (!capable(CAP_SYS_ADMIN))
		return -EPERM;
	if (copy_from_user(&arg, uarg, sizeof(arg)))
		return -EFAULT;
	ret = to_dev_id(arg.dev_major, arg.dev_minor, &dev_id);
	if (ret)
		return ret;
	if (!is_blksnap_filter(arg.name.name))
		return -ENOENT;
	/* With the block device filter, BLKFILTER_ATTACH/DETACH do this. */
	if (!hook_ftrace_active)
		return -EOPNOTSUPP;
	return attach ? hook_ftrace_attach(dev_id) : hook_ftrace_detach(dev_id);
}

static int ioctl_filter_ctl(struct blksnap_filter_ctl __user *uarg)
{
	struct blksnap_filter_ctl arg;
	struct tracker *tracker;
	dev_t dev_id;
	u32 len;
	int ret;

	if (copy_from_user(&arg, uarg, sizeof(arg)))
		return -EFAULT;
	ret = to_dev_id(arg.dev_major, arg.dev_minor, &dev_id);
	if (ret)
		return ret;
	if (!is_blksnap_filter(arg.ctl.name))
		return -ENOENT;
	tracker = tracker_get_by_dev(dev_id);
	if (!tracker)
		return -ENOENT;
	len = arg.ctl.optlen;
	ret = tracker_ctl(tracker, arg.ctl.cmd, u64_to_user_ptr(arg.ctl.opt),
			  &len);
	tracker_put(tracker);
	if (ret >= 0 && put_user(len, &uarg->ctl.optlen))
		ret = -EFAULT;
	return ret;
}

static int ioctl_snapshot_create(struct blksnap_snapshot_create __user *uarg)
{
	struct blksnap_snapshot_create arg;
	uuid_t id;
	int ret;

	if (!capable(CAP_SYS_ADMIN))
		return -EPERM;
	if (copy_from_user(&arg, uarg, sizeof(arg)))
		return -EFAULT;
	ret = snapshot_create(arg.diff_storage_fd, arg.diff_storage_limit_sect,
			      &id);
	if (ret)
		return ret;
	if (copy_to_user(uarg->id.b, id.b, sizeof(uarg->id.b))) {
		snapshot_destroy(&id);
		return -EFAULT;
	}
	return 0;
}

/* DESTROY and TAKE: the argument is the snapshot's identifier. */
static int ioctl_snapshot_id(struct blksnap_uuid __user *uarg,
			     int (*op)(const uuid_t *id))
{
	struct blksnap_uuid arg;
	uuid_t id;

	if (!capable(CAP_SYS_ADMIN))
		return -EPERM;
	if (copy_from_user(&arg, uarg, sizeof(arg)))
		return -EFAULT;
	import_uuid(&id, arg.b);
	return op(&id);
}

static int ioctl_snapshot_collect(struct blksnap_snapshot_collect __user *uarg)
{
	struct blksnap_snapshot_collect arg;
	int ret;

	if (copy_from_user(&arg, uarg, sizeof(arg)))
		return -EFAULT;
	ret = snapshot_collect(&arg.count, u64_to_user_ptr(arg.ids));
	if (put_user(arg.count, &uarg->count))
		return -EFAULT;
	return ret;
}

/* A read-only query, like COLLECT: no capability check. */
static int ioctl_snapshot_devices(struct blksnap_snapshot_devices __user *uarg)
{
	struct blksnap_snapshot_devices arg;
	uuid_t id;
	int ret;

	if (copy_from_user(&arg, uarg, sizeof(arg)))
		return -EFAULT;
	if (arg.reserved)
		return -EINVAL;
	import_uuid(&id, arg.id.b);
	ret = snapshot_devices(&id, &arg.count, u64_to_user_ptr(arg.devices));
	if (ret == -ENOENT || ret == -ENOMEM)
		return ret;
	if (put_user(arg.count, &uarg->count))
		return -EFAULT;
	return ret;
}

static int ioctl_snapshot_wait_event(struct blksnap_snapshot_event __user *uarg)
{
	struct blksnap_snapshot_event *ev;
	uuid_t id;
	int ret;

	ev = kzalloc(sizeof(*ev), GFP_KERNEL);
	if (!ev)
		return -ENOMEM;
	if (copy_from_user(ev, uarg, offsetof(typeof(*ev), code))) {
		ret = -EFAULT;
		goto out;
	}
	import_uuid(&id, ev->id.b);
	ret = snapshot_wait_event(&id, ev->timeout_ms, ev);
	if (!ret && copy_to_user(uarg, ev, sizeof(*ev)))
		ret = -EFAULT;
out:
	kfree(ev);
	return ret;
}

static long ctl_unlocked_ioctl(struct file *filp, unsigned int cmd,
			       unsigned long arg)
{
	void __user *uarg = (void __user *)arg;

	switch (cmd) {
	case IOCTL_BLKSNAP_SNAPSHOT_TAKE:
	case IOCTL_BLKSNAP_FILTER_ATTACH:
	case IOCTL_BLKSNAP_FILTER_DETACH:
	case IOCTL_BLKSNAP_FILTER_CTL:
		/* Trackers of partitions deleted meanwhile go first. */
		hook_ftrace_purge();
		break;
	}
	switch (cmd) {
	case IOCTL_BLKSNAP_VERSION:
		return ioctl_version(uarg);
	case IOCTL_BLKSNAP_SNAPSHOT_CREATE:
		return ioctl_snapshot_create(uarg);
	case IOCTL_BLKSNAP_SNAPSHOT_DESTROY:
		return ioctl_snapshot_id(uarg, snapshot_destroy);
	case IOCTL_BLKSNAP_SNAPSHOT_TAKE:
		return ioctl_snapshot_id(uarg, snapshot_take);
	case IOCTL_BLKSNAP_SNAPSHOT_COLLECT:
		return ioctl_snapshot_collect(uarg);
	case IOCTL_BLKSNAP_SNAPSHOT_WAIT_EVENT:
		return ioctl_snapshot_wait_event(uarg);
	case IOCTL_BLKSNAP_FILTER_ATTACH:
		return ioctl_filter_attach_detach(uarg, true);
	case IOCTL_BLKSNAP_FILTER_DETACH:
		return ioctl_filter_attach_detach(uarg, false);
	case IOCTL_BLKSNAP_FILTER_CTL:
		return ioctl_filter_ctl(uarg);
	case IOCTL_BLKSNAP_SNAPSHOT_DEVICES:
		return ioctl_snapshot_devices(uarg);
	default:
		return -ENOTTY;
	}
}

/* /sys/class/misc/blksnap-control/attached: one "MAJ:MIN" per tracker. */
static ssize_t attached_show(struct device *dev, struct device_attribute *attr,
			     char *buf)
{
	hook_ftrace_purge();
	return tracker_list(buf, PAGE_SIZE);
}
static DEVICE_ATTR_RO(attached);

static struct attribute *ctl_attrs[] = {
	&dev_attr_attached.attr,
	NULL,
};
ATTRIBUTE_GROUPS(ctl);

static const struct file_operations ctl_fops = {
	.owner = THIS_MODULE,
	.unlocked_ioctl = ctl_unlocked_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
};

static struct miscdevice ctl_miscdev = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = BLKSNAP_CTL,
	.fops = &ctl_fops,
	.groups = ctl_groups,
	.mode = 0600,
};

/**
 * ctl_init() - create the /dev/blksnap-control device.
 *
 * Return: 0 or a negative errno.
 */
int ctl_init(void)
{
	return misc_register(&ctl_miscdev);
}

/**
 * ctl_done() - remove the /dev/blksnap-control device.
 */
void ctl_done(void)
{
	misc_deregister(&ctl_miscdev);
}
