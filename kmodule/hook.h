/* SPDX-License-Identifier: GPL-2.0 */
#ifndef __BLKSNAP_HOOK_H
#define __BLKSNAP_HOOK_H

#include <linux/types.h>

/*
 * Interception of the bio submission path, in one of two flavours chosen
 * at load time by the "interception" module parameter:
 *  - hook_ftrace.c: an ftrace redirect of submit_bio_noacct() on stock
 *    kernels; filters are managed through /dev/blksnap-control;
 *  - hook_blkfilter.c: the block device filter of patched kernels; filters
 *    are managed with BLKFILTER_* ioctls on the block device.
 */
int hook_ftrace_init(void);
void hook_ftrace_done(void);
int hook_ftrace_attach(dev_t dev_id);
int hook_ftrace_detach(dev_t dev_id);
void hook_ftrace_purge(void);

#ifdef BLKSNAP_HAVE_BLKFILTER
int hook_blkfilter_init(void);
void hook_blkfilter_done(void);
#endif

/* True when the ftrace flavour is active (filters managed by blksnap). */
extern bool hook_ftrace_active;

#endif /* __BLKSNAP_HOOK_H */
