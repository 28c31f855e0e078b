// SPDX-License-Identifier: GPL-2.0
/*
 * Snapshot events (IOCTL_BLKSNAP_SNAPSHOT_WAIT_EVENT).
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt
#include <linux/sched/signal.h>
#include <linux/slab.h>
#include <linux/timekeeping.h>
#include "event.h"

/**
 * event_queue_init() - make an empty queue.
 * @q: the queue.
 */
void event_queue_init(struct event_queue *q)
{
	spin_lock_init(&q->lock);
	INIT_LIST_HEAD(&q->list);
	init_waitqueue_head(&q->wait);
}

/**
 * event_queue_close() - wake every reader; they return -ESRCH.
 * @q: the queue.
 */
void event_queue_close(struct event_queue *q)
{
	spin_lock_irq(&q->lock);
	q->closed = true;
	spin_unlock_irq(&q->lock);
	wake_up_all(&q->wait);
}

/**
 * event_queue_done() - free the events left.
 * @q: the queue; nobody waits on it any more.
 */
void event_queue_done(struct event_queue *q)
{
	struct event *e, *tmp;

	list_for_each_entry_safe(e, tmp, &q->list, link)
		kfree(e);
}

/**
 * event_gen() - queue an event.
 * @q:         the queue.
 * @code:      the event code.
 * @data:      its body.
 * @data_size: its size.
 *
 * Context: any, interrupt context included (a bio's completion); an event
 * that cannot be allocated is lost (the snapshot's error state still tells).
 */
void event_gen(struct event_queue *q, unsigned int code, const void *data,
	       unsigned int data_size)
{
	struct event *e = kzalloc(struct_size(e, data, data_size), GFP_ATOMIC);
	unsigned long flags;

	if (!e)
		return;
	e->time = ktime_get_real_ns();
	e->code = code;
	e->data_size = data_size;
	memcpy(e->data, data, data_size);
	spin_lock_irqsave(&q->lock, flags);
	list_add_tail(&e->link, &q->list);
	spin_unlock_irqrestore(&q->lock, flags);
	wake_up(&q->wait);
}

static struct event *event_pop(struct event_queue *q)
{
	struct event *e;

	spin_lock_irq(&q->lock);
	e = list_first_entry_or_null(&q->list, struct event, link);
	if (e)
		list_del(&e->link);
	else if (q->closed)
		e = ERR_PTR(-ESRCH);
	spin_unlock_irq(&q->lock);
	return e;
}

/**
 * event_wait() - take the next event, waiting for it if needed.
 * @q:          the queue.
 * @timeout_ms: longest wait.
 *
 * Return: the event (the caller frees it), or ERR_PTR(-ENOENT) on timeout
 * (the v6 ABI's "no event yet"), -EINTR on a signal, -ESRCH when the
 * snapshot goes away.
 */
struct event *event_wait(struct event_queue *q, unsigned long timeout_ms)
{
	struct event *e = NULL;
	long ret;

	ret = wait_event_interruptible_timeout(q->wait, (e = event_pop(q)),
					       msecs_to_jiffies(timeout_ms));
	if (e)
		return e;
	if (ret < 0)
		return ERR_PTR(-EINTR);
	return ERR_PTR(-ENOENT);
}
