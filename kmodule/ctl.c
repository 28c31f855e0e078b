// SPDX-License-Identifier: GPL-2.0
/*
 * The /dev/blksnap-control character device: snapshot management ioctls.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt
#include <linux/fs.h>
#include <linux/miscdevice.h>
#include <linux/module.h>
#include <linux/uaccess.h>
#include <linux/blksnap.h>
#include "ctl.h"
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

static long ctl_unlocked_ioctl(struct file *filp, unsigned int cmd,
			       unsigned long arg)
{
	void __user *uarg = (void __user *)arg;

	switch (cmd) {
	case IOCTL_BLKSNAP_VERSION:
		return ioctl_version(uarg);
	default:
		return -ENOTTY;
	}
}

static const struct file_operations ctl_fops = {
	.owner = THIS_MODULE,
	.unlocked_ioctl = ctl_unlocked_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
};

static struct miscdevice ctl_miscdev = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = BLKSNAP_CTL,
	.fops = &ctl_fops,
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
