/* SPDX-License-Identifier: GPL-2.0 */
#ifndef __BLKSNAP_SNAPSHOT_H
#define __BLKSNAP_SNAPSHOT_H

#include <linux/uuid.h>

struct blksnap_bdev;
struct blksnap_snapshot_event;
struct blksnap_uuid;
struct blksnap_snapshotinfo;
struct tracker;

int snapshot_create(unsigned int fd, sector_t limit, uuid_t *id);
int snapshot_destroy(const uuid_t *id);
int snapshot_take(const uuid_t *id);
int snapshot_collect(unsigned int *count, struct blksnap_uuid __user *ids);
int snapshot_devices(const uuid_t *id, unsigned int *count,
		     struct blksnap_bdev __user *devs);
int snapshot_wait_event(const uuid_t *id, unsigned int timeout_ms,
			struct blksnap_snapshot_event *ev);
int snapshot_add_device(const uuid_t *id, struct tracker *tracker);
void snapshot_info(struct tracker *tracker, struct blksnap_snapshotinfo *info);
void snapshot_destroy_all(void);

#endif /* __BLKSNAP_SNAPSHOT_H */
