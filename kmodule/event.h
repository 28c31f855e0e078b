/* SPDX-License-Identifier: GPL-2.0 */
#ifndef __BLKSNAP_EVENT_H
#define __BLKSNAP_EVENT_H

#include <linux/ktime.h>
#include <linux/list.h>
#include <linux/spinlock.h>
#include <linux/wait.h>

/**
 * struct event - one event of a snapshot.
 * @link:       entry in the queue.
 * @time:       when it happened (ns since the epoch).
 * @code:       &enum blksnap_event_codes.
 * @data_size:  bytes in @data.
 * @data:       the event's body.
 */
struct event {
	struct list_head link;
	s64 time;
	unsigned int code;
	unsigned int data_size;
	u8 data[];
};

/**
 * struct event_queue - events waiting to be read.
 * @lock:   protects @list and @closed.
 * @list:   the events, oldest first.
 * @wait:   readers waiting for an event.
 * @closed: the snapshot is being destroyed; readers get -ENOENT.
 */
struct event_queue {
	spinlock_t lock; /* see @lock above */
	struct list_head list;
	wait_queue_head_t wait;
	bool closed;
};

void event_queue_init(struct event_queue *q);
void event_queue_close(struct event_queue *q);
void event_queue_done(struct event_queue *q);
void event_gen(struct event_queue *q, unsigned int code, const void *data,
	       unsigned int data_size);
struct event *event_wait(struct event_queue *q, unsigned long timeout_ms);

#endif /* __BLKSNAP_EVENT_H */
