// SPDX-License-Identifier: GPL-2.0
/*
 * Snapshots: a set of devices taken at one instant, their difference
 * storage, images and events.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt
#include <linux/blkdev.h>
#include <linux/list.h>
#include <linux/mutex.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <linux/blksnap.h>
#include "cbt_map.h"
#include "compat.h"
#include "diff_area.h"
#include "diff_storage.h"
#include "event.h"
#include "image.h"
#include "snapshot.h"
#include "tracker.h"

/**
 * struct snapshot_dev - a device of a snapshot.
 * @link:    entry in &snapshot.devices.
 * @tracker: its tracker (a reference is held).
 * @area:    its copy-on-write state, made at the take.
 * @image:   its image once taken.
 * @started: its change map was switched and copy-on-write started.
 */
struct snapshot_dev {
	struct list_head link;
	struct tracker *tracker;
	struct diff_area *area;
	struct image *image;
	bool started;
};

/**
 * struct snapshot - a snapshot.
 * @kref:      the list holds one reference; operations in progress more.
 * @link:      entry in the list of snapshots, then of those being torn
 *             down until the teardown is complete.
 * @id:        its identifier.
 * @lock:      serialises take and destroy, which may sleep for long.
 * @busy:      a take is in progress: no device may join.
 * @taken:     it was taken.
 * @destroyed: it is off the list; operations that find it so give up.
 * @ds:        its difference storage.
 * @devices:   its devices.
 * @events:    its events.
 * @search:    entry in the work list of snapshot_storage_loops().
 * @seen:      visited by snapshot_storage_loops().
 *
 * Locking: snapshots_mutex protects the list, @busy, @taken, @devices
 * membership and each tracker's &tracker.snapshot, and is only ever held
 * briefly (filter commands take it inside the block layer's SRCU read
 * section). @lock is held across freezing, image creation and teardown,
 * and is taken before snapshots_mutex, never inside it.
 */
struct snapshot {
	struct kref kref;
	struct list_head link;
	uuid_t id;
	struct mutex lock; /* see @lock above */
	bool busy;
	bool taken;
	bool destroyed;
	struct diff_storage *ds;
	struct list_head devices;
	struct event_queue events;
	struct list_head search;
	bool seen;
};

static LIST_HEAD(snapshots);
/* Destroyed snapshots until their teardown is complete. */
static LIST_HEAD(snapshots_dying);
static DEFINE_MUTEX(snapshots_mutex);

static void snapshot_release(struct kref *kref)
{
	struct snapshot *s = container_of(kref, struct snapshot, kref);

	event_queue_done(&s->events);
	kfree(s);
}

static void snapshot_put(struct snapshot *s)
{
	kref_put(&s->kref, snapshot_release);
}

/* Context: snapshots_mutex held. */
static struct snapshot *snapshot_find(const uuid_t *id)
{
	struct snapshot *s;

	lockdep_assert_held(&snapshots_mutex);
	list_for_each_entry(s, &snapshots, link)
		if (uuid_equal(&s->id, id))
			return s;
	return NULL;
}

/* The snapshot with a new reference, or NULL. */
static struct snapshot *snapshot_get(const uuid_t *id)
{
	struct snapshot *s;

	mutex_lock(&snapshots_mutex);
	s = snapshot_find(id);
	if (s)
		kref_get(&s->kref);
	mutex_unlock(&snapshots_mutex);
	return s;
}

/**
 * snapshot_create() - create an empty snapshot.
 * @fd:    difference storage file descriptor.
 * @limit: largest size of the difference storage, in sectors.
 * @id:    receives the new identifier.
 *
 * Return: 0 or a negative errno.
 */
int snapshot_create(unsigned int fd, sector_t limit, uuid_t *id)
{
	struct snapshot *s;

	s = kzalloc(sizeof(*s), GFP_KERNEL);
	if (!s)
		return -ENOMEM;
	s->ds = diff_storage_create(fd, limit);
	if (IS_ERR(s->ds)) {
		int ret = PTR_ERR(s->ds);

		kfree(s);
		return ret;
	}
	kref_init(&s->kref);
	mutex_init(&s->lock);
	uuid_gen(&s->id);
	INIT_LIST_HEAD(&s->devices);
	INIT_LIST_HEAD(&s->search);
	event_queue_init(&s->events);
	mutex_lock(&snapshots_mutex);
	list_add_tail(&s->link, &snapshots);
	mutex_unlock(&snapshots_mutex);
	*id = s->id;
	return 0;
}

/*
 * Whether a snapshot, live or being torn down, still holds the device
 * numbered @dev_id through any tracker: one the device lost to a detach
 * stays in its snapshot, with its image, until that snapshot's teardown is
 * complete, and a second image of the same device would need its name.
 * Context: snapshots_mutex held.
 */
static bool snapshot_holds_dev(dev_t dev_id)
{
	struct snapshot_dev *sd;
	struct snapshot *s;

	lockdep_assert_held(&snapshots_mutex);
	list_for_each_entry(s, &snapshots, link)
		list_for_each_entry(sd, &s->devices, link)
			if (sd->tracker->dev_id == dev_id)
				return true;
	list_for_each_entry(s, &snapshots_dying, link)
		list_for_each_entry(sd, &s->devices, link)
			if (sd->tracker->dev_id == dev_id)
				return true;
	return false;
}

/* Does a device of @s lie on @disk? Context: snapshots_mutex held. */
static bool snapshot_on_disk(struct snapshot *s, struct gendisk *disk)
{
	struct snapshot_dev *sd;

	if (!disk)
		return false;
	list_for_each_entry(sd, &s->devices, link)
		if (sd->tracker->disk_dev == disk_devt(disk))
			return true;
	return false;
}

/*
 * Would taking @s close a loop of difference storages? The chunks a
 * snapshot saves are written to its storage; a snapshot that holds the
 * storage's disk saves the old data of those sectors in turn, into its own
 * storage. If that chain comes back to @s, copy-on-write waits for itself:
 * the workers of each snapshot wait for the other's. Snapshots already
 * taken (or being taken) form no loop, so any new one passes through @s.
 *
 * Context: snapshots_mutex held.
 */
static bool snapshot_storage_loops(struct snapshot *s)
{
	struct snapshot *x, *y;
	LIST_HEAD(queue);
	bool loop = false;

	lockdep_assert_held(&snapshots_mutex);
	list_for_each_entry(y, &snapshots, link)
		y->seen = false;
	s->seen = true;
	list_add_tail(&s->search, &queue);
	while (!loop && !list_empty(&queue)) {
		x = list_first_entry(&queue, struct snapshot, search);
		list_del_init(&x->search);
		list_for_each_entry(y, &snapshots, link) {
			if ((y != s && !y->taken && !y->busy) ||
			    !snapshot_on_disk(y, x->ds->disk))
				continue;
			if (y == s) {
				loop = true;
				break;
			}
			if (!y->seen) {
				y->seen = true;
				list_add_tail(&y->search, &queue);
			}
		}
	}
	while (!list_empty(&queue))
		list_del_init(queue.next);
	return loop;
}

/* Does the storage of @s lie on the disk of @tracker's device? */
static bool snapshot_on_disk_of(struct snapshot *s, struct tracker *tracker)
{
	return s->ds->disk && disk_devt(s->ds->disk) == tracker->disk_dev;
}

/**
 * snapshot_add_device() - add a device to a snapshot not yet taken.
 * @id:      the snapshot.
 * @tracker: the device's tracker.
 *
 * Return: 0; -ENOENT (no such snapshot), -EBUSY (the device is in a
 * snapshot, even through a tracker it lost to a detach, or this one was
 * taken, or it is a whole disk with partitions), -EINVAL (the device holds
 * the snapshot's difference storage).
 */
int snapshot_add_device(const uuid_t *id, struct tracker *tracker)
{
	struct snapshot_dev *sd;
	struct snapshot *s;
	int ret = 0;

	sd = kzalloc(sizeof(*sd), GFP_KERNEL);
	if (!sd)
		return -ENOMEM;
	mutex_lock(&snapshots_mutex);
	s = snapshot_find(id);
	if (!s)
		ret = -ENOENT;
	else if (s->busy || s->taken || tracker->snapshot ||
		 snapshot_holds_dev(tracker->dev_id))
		ret = -EBUSY;
	else if (snapshot_on_disk_of(s, tracker))
		ret = -EINVAL;
	else if (tracker_partitioned(tracker))
		ret = -EBUSY;
	if (ret) {
		mutex_unlock(&snapshots_mutex);
		kfree(sd);
		return ret;
	}
	kref_get(&tracker->kref);
	sd->tracker = tracker;
	tracker->snapshot = s;
	list_add_tail(&sd->link, &s->devices);
	mutex_unlock(&snapshots_mutex);
	return 0;
}

/*
 * Undo a take, or tear down a taken device at destroy. The image goes
 * first, while copy-on-write still keeps its data: a read in flight ends
 * with the data of the take or an error, never with newer data. Only this
 * snapshot's copy-on-write is stopped: the tracker may have lost it to a
 * detach already.
 */
static void snapshot_dev_release(struct snapshot_dev *sd)
{
	struct tracker *tracker = sd->tracker;
	struct image *image = sd->image;

	/* snapshot_info() looks at the image under the mutex. */
	mutex_lock(&snapshots_mutex);
	sd->image = NULL;
	mutex_unlock(&snapshots_mutex);
	if (image)
		image_free(image);
	if (!sd->area)
		return;
	tracker_stop_cow(tracker, sd->area, 0);
	if (sd->started)
		cbt_map_release(tracker->cbt_map);
	sd->started = false;
	diff_area_free(sd->area);
	sd->area = NULL;
}

/* Give back the devices of @s before @end (NULL: all) to their trackers. */
static void snapshot_put_bdevs(struct snapshot *s, struct snapshot_dev *end)
{
	struct snapshot_dev *sd;

	list_for_each_entry(sd, &s->devices, link) {
		if (sd == end)
			break;
		tracker_bdev_put(sd->tracker);
	}
}

/*
 * Keep the devices of @s while they are taken: a detach, or the removal of
 * a device, waits until snapshot_put_bdevs().
 */
static int snapshot_get_bdevs(struct snapshot *s)
{
	struct snapshot_dev *sd;

	list_for_each_entry(sd, &s->devices, link) {
		if (!tracker_bdev_get(sd->tracker)) {
			snapshot_put_bdevs(s, sd);
			return -ENODEV;
		}
	}
	return 0;
}

/* Longest wait for the writes in flight at a take to complete. */
#define SNAPSHOT_TAKE_IDLE_TIMEOUT (30 * HZ)

/*
 * The instant of the take, with the file systems frozen: close every
 * device's gate, wait for the writes admitted before it to complete, then
 * switch the change maps and start copy-on-write, and open the gates. A
 * write is thus either complete before the switch (in the image, marked
 * with the old number) or admitted after it (copied on write, marked with
 * the new number), on every device at once.
 */
static int snapshot_switch(struct snapshot *s)
{
	struct snapshot_dev *sd;
	int ret = 0;

	list_for_each_entry(sd, &s->devices, link) {
		ret = tracker_gate(sd->tracker);
		if (ret)
			goto open;
	}
	/* Writes that saw the gate open are counted now. */
	synchronize_rcu();
	list_for_each_entry(sd, &s->devices, link) {
		ret = tracker_wait_idle(sd->tracker,
					SNAPSHOT_TAKE_IDLE_TIMEOUT);
		if (ret)
			goto open;
	}
	list_for_each_entry(sd, &s->devices, link) {
		ret = tracker_start_cow(sd->tracker, sd->area);
		if (ret)
			goto open;
		sd->started = true;
	}
open:
	list_for_each_entry(sd, &s->devices, link)
		tracker_ungate(sd->tracker);
	return ret;
}

/**
 * snapshot_take() - take a snapshot: all its devices at one instant.
 * @id: the snapshot.
 *
 * The file systems on every device are frozen, the writes in flight
 * completed, the change maps switched and copy-on-write started on all of
 * them, then they are thawed and the images created.
 *
 * Return: 0; -ENOENT, -EALREADY (taken), -ENODEV (no device, or a device
 * was detached since it was added), -EDEADLK (its storage lies on a
 * device of a taken snapshot whose storage lies, directly or through
 * others, on a device of this one), -EBUSY (a whole disk has partitions
 * now), -ETIMEDOUT (writes in flight did not complete), or an error from
 * freezing or from creating the images.
 */
int snapshot_take(const uuid_t *id)
{
	struct snapshot_dev *sd, *frozen = NULL;
	struct snapshot *s;
	bool held = false;
	int ret = 0;

	s = snapshot_get(id);
	if (!s)
		return -ENOENT;
	mutex_lock(&s->lock);
	mutex_lock(&snapshots_mutex);
	if (s->destroyed)
		ret = -ENOENT;
	else if (s->taken)
		ret = -EALREADY;
	else if (list_empty(&s->devices))
		ret = -ENODEV;
	else if (snapshot_storage_loops(s))
		ret = -EDEADLK;
	else
		s->busy = true;
	mutex_unlock(&snapshots_mutex);
	if (ret)
		goto out;
	ret = snapshot_get_bdevs(s);
	if (ret)
		goto undo;
	held = true;

	list_for_each_entry(sd, &s->devices, link) {
		sd->area = diff_area_create(sd->tracker, s->ds, &s->events);
		if (IS_ERR(sd->area)) {
			ret = PTR_ERR(sd->area);
			sd->area = NULL;
			goto undo;
		}
		/* A device resized since its map was made: a new one. */
		ret = cbt_map_prepare(sd->tracker->cbt_map, sd->area->capacity);
		if (ret)
			goto undo;
	}
	list_for_each_entry(sd, &s->devices, link) {
		ret = blksnap_freeze_bdev(sd->tracker->bdev);
		if (ret)
			goto thaw;
		frozen = sd;
	}
	ret = snapshot_switch(s);
thaw:
	list_for_each_entry(sd, &s->devices, link) {
		if (!frozen)
			break;
		blksnap_thaw_bdev(sd->tracker->bdev);
		if (sd == frozen)
			break;
	}
	if (ret)
		goto undo;
	list_for_each_entry(sd, &s->devices, link) {
		struct image *image = image_create(sd->area);

		if (IS_ERR(image)) {
			ret = PTR_ERR(image);
			goto undo;
		}
		mutex_lock(&snapshots_mutex);
		sd->image = image;
		mutex_unlock(&snapshots_mutex);
	}
	mutex_lock(&snapshots_mutex);
	s->taken = true;
	s->busy = false;
	mutex_unlock(&snapshots_mutex);
	snapshot_put_bdevs(s, NULL);
	goto out;
undo:
	if (held)
		snapshot_put_bdevs(s, NULL);
	list_for_each_entry(sd, &s->devices, link)
		snapshot_dev_release(sd);
	mutex_lock(&snapshots_mutex);
	s->busy = false;
	mutex_unlock(&snapshots_mutex);
out:
	mutex_unlock(&s->lock);
	snapshot_put(s);
	return ret;
}

/*
 * Tear down a snapshot moved to the dying list: its devices leave it, its
 * images and storage go, its event readers return -ENOENT. A device joins
 * another snapshot only once this one has let go of its copy-on-write and
 * change map: &tracker.snapshot is cleared last.
 */
static void snapshot_teardown(struct snapshot *s)
{
	struct snapshot_dev *sd, *tmp;

	mutex_lock(&s->lock);
	mutex_lock(&snapshots_mutex);
	s->destroyed = true;
	mutex_unlock(&snapshots_mutex);

	event_queue_close(&s->events);
	list_for_each_entry_safe(sd, tmp, &s->devices, link) {
		snapshot_dev_release(sd);
		mutex_lock(&snapshots_mutex);
		if (sd->tracker->snapshot == s)
			sd->tracker->snapshot = NULL;
		list_del(&sd->link);
		mutex_unlock(&snapshots_mutex);
		tracker_put(sd->tracker);
		kfree(sd);
	}
	diff_storage_free(s->ds);
	mutex_unlock(&s->lock);
	mutex_lock(&snapshots_mutex);
	list_del(&s->link);
	mutex_unlock(&snapshots_mutex);
	snapshot_put(s);
}

/**
 * snapshot_destroy() - destroy a snapshot: its images and storage go, its
 * devices keep their change tracking.
 * @id: the snapshot.
 *
 * Return: 0 or -ENOENT.
 */
int snapshot_destroy(const uuid_t *id)
{
	struct snapshot *s;

	mutex_lock(&snapshots_mutex);
	s = snapshot_find(id);
	if (s)
		list_move(&s->link, &snapshots_dying);
	mutex_unlock(&snapshots_mutex);
	if (!s)
		return -ENOENT;
	snapshot_teardown(s);
	return 0;
}

/**
 * snapshot_destroy_all() - destroy every snapshot (module unload).
 */
void snapshot_destroy_all(void)
{
	struct snapshot *s;

	for (;;) {
		mutex_lock(&snapshots_mutex);
		s = list_first_entry_or_null(&snapshots, struct snapshot, link);
		if (s)
			list_move(&s->link, &snapshots_dying);
		mutex_unlock(&snapshots_mutex);
		if (!s)
			break;
		snapshot_teardown(s);
	}
}

/*
 * The end of a listing built under snapshots_mutex and released: copy the
 * @n elements of @size bytes in @buf to @to if it has room for them (in
 * *@count, which receives @n), and free @buf.
 * Return: 0, -ENODATA (no room, whatever @to is) or -EFAULT.
 */
static int list_to_user(void __user *to, void *buf, size_t size,
			unsigned int n, unsigned int *count)
{
	int ret = 0;

	if (n > *count)
		ret = -ENODATA;
	else if (n && copy_to_user(to, buf, n * size))
		ret = -EFAULT;
	kfree(buf);
	*count = n;
	return ret;
}

/**
 * snapshot_collect() - list the snapshots' identifiers.
 * @count: in: room in @ids; out: number of snapshots.
 * @ids:   user array.
 *
 * Like snapshot_devices(), the list goes through a kernel buffer, so that
 * a fault on @ids never happens with snapshots_mutex held.
 *
 * Return: 0, -ENODATA if @ids is too small, -ENOMEM or -EFAULT.
 */
int snapshot_collect(unsigned int *count, struct blksnap_uuid __user *ids)
{
	struct blksnap_uuid *buf = NULL;
	unsigned int room = 0, n;
	struct snapshot *s;

	for (;;) {
		mutex_lock(&snapshots_mutex);
		n = 0;
		list_for_each_entry(s, &snapshots, link)
			n++;
		if (n > *count || n <= room)
			break;
		/* Snapshots may come while the buffer is allocated: count again. */
		mutex_unlock(&snapshots_mutex);
		kfree(buf);
		buf = kcalloc(n, sizeof(*buf), GFP_KERNEL);
		if (!buf)
			return -ENOMEM;
		room = n;
	}
	if (n <= *count) {
		n = 0;
		list_for_each_entry(s, &snapshots, link)
			memcpy(buf[n++].b, s->id.b, UUID_SIZE);
	}
	mutex_unlock(&snapshots_mutex);
	return list_to_user(ids, buf, sizeof(*buf), n, count);
}

/**
 * snapshot_wait_event() - wait for the next event of a snapshot.
 * @id:         the snapshot.
 * @timeout_ms: longest wait.
 * @ev:         receives the event.
 *
 * Return: 0; -ESRCH (no such snapshot, or destroyed meanwhile), -ENOENT
 * (no event within the timeout: the v6 ABI's "ask again"), -EINTR.
 */
int snapshot_wait_event(const uuid_t *id, unsigned int timeout_ms,
			struct blksnap_snapshot_event *ev)
{
	struct snapshot *s;
	struct event *e;

	s = snapshot_get(id);
	if (!s)
		return -ESRCH;
	e = event_wait(&s->events, timeout_ms);
	snapshot_put(s);
	if (IS_ERR(e))
		return PTR_ERR(e);
	ev->code = e->code;
	ev->time_label = e->time;
	memcpy(ev->data, e->data, min_t(size_t, e->data_size,
					sizeof(ev->data)));
	kfree(e);
	return 0;
}

/**
 * snapshot_info() - snapshot state of a device.
 * @tracker: the device's tracker.
 * @info:    filled in: the error of its snapshot and its image's name.
 */
void snapshot_info(struct tracker *tracker, struct blksnap_snapshotinfo *info)
{
	struct snapshot_dev *sd;
	struct snapshot *s;

	memset(info, 0, sizeof(*info));
	mutex_lock(&snapshots_mutex);
	s = tracker->snapshot;
	if (s && s->taken && !s->destroyed) {
		list_for_each_entry(sd, &s->devices, link) {
			if (sd->tracker != tracker || !sd->area)
				continue;
			info->error_code = READ_ONCE(sd->area->error);
			if (sd->image)
				strscpy((char *)info->image,
					sd->image->disk->disk_name,
					sizeof(info->image));
		}
	}
	mutex_unlock(&snapshots_mutex);
}

/**
 * snapshot_devices() - list the devices of a snapshot.
 * @id:    the snapshot.
 * @count: in: room in @devs; out: number of devices of the snapshot.
 * @devs:  user array, or NULL to learn the number only.
 *
 * The list is copied to a kernel buffer under snapshots_mutex and to user
 * space after it is released, so that a fault on @devs never happens with
 * the mutex held.
 *
 * Return: 0, -ENOENT (no such snapshot), -ENODATA if @devs is too small,
 * -ENOMEM or -EFAULT.
 */
int snapshot_devices(const uuid_t *id, unsigned int *count,
		     struct blksnap_bdev __user *devs)
{
	struct blksnap_bdev *buf = NULL;
	struct snapshot_dev *sd;
	unsigned int room = 0, n;
	struct snapshot *s;

	for (;;) {
		mutex_lock(&snapshots_mutex);
		s = snapshot_find(id);
		if (!s) {
			mutex_unlock(&snapshots_mutex);
			kfree(buf);
			return -ENOENT;
		}
		n = 0;
		list_for_each_entry(sd, &s->devices, link)
			n++;
		if (!devs || n > *count || n <= room)
			break;
		/* Devices may join while the buffer is allocated: count again. */
		mutex_unlock(&snapshots_mutex);
		kfree(buf);
		buf = kcalloc(n, sizeof(*buf), GFP_KERNEL);
		if (!buf)
			return -ENOMEM;
		room = n;
	}
	if (devs && n <= *count) {
		n = 0;
		list_for_each_entry(sd, &s->devices, link) {
			buf[n].major = MAJOR(sd->tracker->dev_id);
			buf[n].minor = MINOR(sd->tracker->dev_id);
			n++;
		}
	}
	mutex_unlock(&snapshots_mutex);
	if (!devs) {
		/* The number only; nothing was allocated. */
		*count = n;
		return 0;
	}
	return list_to_user(devs, buf, sizeof(*buf), n, count);
}
