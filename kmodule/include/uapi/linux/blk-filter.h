/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * Block device filter interface: the structures of the BLKFILTER_ATTACH,
 * BLKFILTER_DETACH and BLKFILTER_CTL ioctls. Layout and numbers are those
 * of the v6 block-device filter ABI and must never change.
 */
#ifndef _UAPI_LINUX_BLK_FILTER_H
#define _UAPI_LINUX_BLK_FILTER_H

#include <linux/types.h>

#define BLKFILTER_NAME_LENGTH 32

/**
 * struct blkfilter_name - argument of BLKFILTER_ATTACH and BLKFILTER_DETACH.
 * @name: filter name, NUL-padded (need not be NUL-terminated at full length).
 */
struct blkfilter_name {
	__u8 name[BLKFILTER_NAME_LENGTH];
};

/**
 * struct blkfilter_ctl - argument of BLKFILTER_CTL.
 * @name:   name of the filter the command is meant for.
 * @cmd:    filter-specific command code.
 * @optlen: size in bytes of the buffer at @opt.
 * @opt:    user pointer to the command's buffer.
 */
struct blkfilter_ctl {
	__u8 name[BLKFILTER_NAME_LENGTH];
	__u32 cmd;
	__u32 optlen;
	__u64 opt;
};

#ifndef BLKFILTER_ATTACH
/* Block device ioctls (in <linux/fs.h> on a kernel carrying the filter). */
#define BLKFILTER_ATTACH _IOWR(0x12, 140, struct blkfilter_name)
#define BLKFILTER_DETACH _IOWR(0x12, 141, struct blkfilter_name)
#define BLKFILTER_CTL	 _IOWR(0x12, 142, struct blkfilter_ctl)
#endif

#endif /* _UAPI_LINUX_BLK_FILTER_H */
