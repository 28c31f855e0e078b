/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * blksnap: the user-space interface of the block device snapshot module.
 *
 * Everything up to blksnap_ioctl_snapshot_wait_event is the v6 ABI: its
 * layouts and ioctl numbers are frozen. Operations added later take the
 * numbers after it and are marked "Added" below.
 */
#ifndef _UAPI_LINUX_BLKSNAP_H
#define _UAPI_LINUX_BLKSNAP_H

#include <linux/types.h>
#include <linux/ioctl.h>
#include "blk-filter.h"

#define BLKSNAP_CTL	   "blksnap-control"
#define BLKSNAP_IMAGE_NAME "blksnap-image"
#define BLKSNAP		   'V'

/* Name under which the module registers with the block device filter. */
#define BLKSNAP_FILTER_NAME "blksnap"

/**
 * DOC: Block device filter commands
 *
 * Commands carried by BLKFILTER_CTL (or IOCTL_BLKSNAP_FILTER_CTL) to the
 * filter attached to one block device.
 */

/**
 * enum blkfilter_ctl_blksnap - command codes of &struct blkfilter_ctl.cmd.
 * @blkfilter_ctl_blksnap_cbtinfo: fill a &struct blksnap_cbtinfo.
 * @blkfilter_ctl_blksnap_cbtmap: copy part of the change map as described
 *	by a &struct blksnap_cbtmap; returns the number of bytes copied.
 * @blkfilter_ctl_blksnap_cbtdirty: mark the ranges of a
 *	&struct blksnap_cbtdirty as changed.
 * @blkfilter_ctl_blksnap_snapshotadd: add the device to the snapshot named
 *	by a &struct blksnap_snapshotadd.
 * @blkfilter_ctl_blksnap_snapshotinfo: fill a &struct blksnap_snapshotinfo.
 * @blkfilter_ctl_blksnap_cbtload: continue change tracking from a saved
 *	map, described by a &struct blksnap_cbtload (an extension of the v6
 *	interface: a change map that survives a reboot or a module reload).
 *
 * Each returns 0 (or the byte count for cbtmap) or a negative errno.
 */
enum blkfilter_ctl_blksnap {
	blkfilter_ctl_blksnap_cbtinfo,
	blkfilter_ctl_blksnap_cbtmap,
	blkfilter_ctl_blksnap_cbtdirty,
	blkfilter_ctl_blksnap_snapshotadd,
	blkfilter_ctl_blksnap_snapshotinfo,
	blkfilter_ctl_blksnap_cbtload,
};

#ifndef UUID_SIZE
#define UUID_SIZE 16
#endif

/**
 * struct blksnap_uuid - a 16-byte identifier.
 * @b: the bytes.
 */
struct blksnap_uuid {
	__u8 b[UUID_SIZE];
};

/**
 * struct blksnap_cbtinfo - change tracker state of a device.
 * @device_capacity: device size in bytes.
 * @block_size:      tracking block size in bytes.
 * @block_count:     number of tracking blocks (bytes in the map).
 * @generation_id:   identifier of the current tracking generation.
 * @changes_number:  number of the current snapshot in this generation.
 */
struct blksnap_cbtinfo {
	__u64 device_capacity;
	__u32 block_size;
	__u32 block_count;
	struct blksnap_uuid generation_id;
	__u8 changes_number;
};

/**
 * struct blksnap_cbtmap - a window of the change map to read.
 * @offset: first byte of the map to copy.
 * @length: size of @buffer in bytes.
 * @buffer: user pointer receiving the bytes.
 */
struct blksnap_cbtmap {
	__u32 offset;
	__u32 length;
	__u64 buffer;
};

/**
 * struct blksnap_sectors - a range of a block device.
 * @offset: first sector.
 * @count:  number of sectors.
 */
struct blksnap_sectors {
	__u64 offset;
	__u64 count;
};

/**
 * struct blksnap_cbtdirty - ranges to mark as changed.
 * @count:         number of elements at @dirty_sectors.
 * @dirty_sectors: user pointer to an array of &struct blksnap_sectors.
 */
struct blksnap_cbtdirty {
	__u32 count;
	__u64 dirty_sectors;
};

/**
 * struct blksnap_snapshotadd - the snapshot a device joins.
 * @id: snapshot identifier.
 */
struct blksnap_snapshotadd {
	struct blksnap_uuid id;
};

/**
 * struct blksnap_cbtload - a saved change map to continue tracking from.
 * @device_capacity: device size in bytes when the map was saved.
 * @block_size:      its tracking block size in bytes.
 * @block_count:     its number of blocks: the bytes at @map.
 * @generation_id:   the generation the map belongs to.
 * @changes_number:  the number of the last take in that generation
 *	(&struct blksnap_cbtinfo.changes_number when it was saved), 0..254.
 * @reserved:        zero.
 * @map:             user pointer to the @block_count bytes of the map.
 *
 * Accepted only by a tracker that has seen no write, no user mark and no
 * take since it was attached, and whose device has the same capacity,
 * block size and block count: the map then describes the device exactly,
 * and the tracker continues the generation (-EBUSY otherwise; -EINVAL for
 * another geometry, a map byte above @changes_number + 1, or reserved bytes
 * not zero). Whether nothing wrote to the device between the save and the
 * attach is for the caller to establish (the block layer's counters).
 */
struct blksnap_cbtload {
	__u64 device_capacity;
	__u32 block_size;
	__u32 block_count;
	struct blksnap_uuid generation_id;
	__u8 changes_number;
	__u8 reserved[7];
	__u64 map;
};

#define IMAGE_DISK_NAME_LEN 32

/**
 * struct blksnap_snapshotinfo - snapshot state of a device.
 * @error_code: 0, or the negative errno that corrupted the snapshot
 *	(-ENOSPC: the difference storage overflowed). Cleared when the device
 *	joins a new snapshot.
 * @image: name of the image block device once taken, else empty.
 */
struct blksnap_snapshotinfo {
	__s32 error_code;
	__u8 image[IMAGE_DISK_NAME_LEN];
};

/**
 * DOC: Snapshot management
 *
 * ioctls of the /dev/blksnap-control character device.
 */
enum blksnap_ioctl {
	blksnap_ioctl_version,
	blksnap_ioctl_snapshot_create,
	blksnap_ioctl_snapshot_destroy,
	blksnap_ioctl_snapshot_take,
	blksnap_ioctl_snapshot_collect,
	blksnap_ioctl_snapshot_wait_event,
	/* Added: filter control for kernels without the block device filter. */
	blksnap_ioctl_filter_attach,
	blksnap_ioctl_filter_detach,
	blksnap_ioctl_filter_ctl,
	/* Added: the devices of a snapshot. */
	blksnap_ioctl_snapshot_devices,
};

/**
 * struct blksnap_version - module version, for logs only.
 * @major:    major part.
 * @minor:    minor part.
 * @revision: revision.
 * @build:    build number, zero.
 */
struct blksnap_version {
	__u16 major;
	__u16 minor;
	__u16 revision;
	__u16 build;
};

/**
 * define IOCTL_BLKSNAP_VERSION - read the module version.
 *
 * Return: 0, or a negative errno.
 */
#define IOCTL_BLKSNAP_VERSION \
	_IOR(BLKSNAP, blksnap_ioctl_version, struct blksnap_version)

/**
 * struct blksnap_snapshot_create - argument of IOCTL_BLKSNAP_SNAPSHOT_CREATE.
 * @diff_storage_limit_sect: largest size the difference storage may reach,
 *	in 512-byte sectors.
 * @diff_storage_fd: file or block device holding the difference storage.
 * @id: receives the new snapshot's identifier.
 */
struct blksnap_snapshot_create {
	__u64 diff_storage_limit_sect;
	__u32 diff_storage_fd;
	struct blksnap_uuid id;
};

/**
 * define IOCTL_BLKSNAP_SNAPSHOT_CREATE - create an empty snapshot.
 *
 * The difference storage grows in portions of the diff_storage_minimum
 * module parameter whenever its free space falls below half a portion, up
 * to @diff_storage_limit_sect. A device belongs to at most one snapshot.
 *
 * Return: 0, or a negative errno.
 */
#define IOCTL_BLKSNAP_SNAPSHOT_CREATE \
	_IOWR(BLKSNAP, blksnap_ioctl_snapshot_create, \
	      struct blksnap_snapshot_create)

/**
 * define IOCTL_BLKSNAP_SNAPSHOT_DESTROY - destroy a snapshot.
 *
 * Removes its images and releases its difference storage; change tracking
 * of its devices goes on.
 *
 * Return: 0, or a negative errno.
 */
#define IOCTL_BLKSNAP_SNAPSHOT_DESTROY \
	_IOW(BLKSNAP, blksnap_ioctl_snapshot_destroy, struct blksnap_uuid)

/**
 * define IOCTL_BLKSNAP_SNAPSHOT_TAKE - take a snapshot.
 *
 * Switches the change maps and starts copy-on-write on every device of the
 * snapshot at one instant, and creates their image block devices.
 *
 * Return: 0, or a negative errno.
 */
#define IOCTL_BLKSNAP_SNAPSHOT_TAKE \
	_IOW(BLKSNAP, blksnap_ioctl_snapshot_take, struct blksnap_uuid)

/**
 * struct blksnap_snapshot_collect - argument of IOCTL_BLKSNAP_SNAPSHOT_COLLECT.
 * @count: capacity of @ids in elements; receives the number of snapshots.
 * @ids:   user pointer to an array of &struct blksnap_uuid.
 */
struct blksnap_snapshot_collect {
	__u32 count;
	__u64 ids;
};

/**
 * define IOCTL_BLKSNAP_SNAPSHOT_COLLECT - list the existing snapshots.
 *
 * Call once with @count 0 to learn the number, then with an array that big.
 *
 * Return: 0, -ENODATA when @count was too small (it then holds the number
 * needed), or another negative errno.
 */
#define IOCTL_BLKSNAP_SNAPSHOT_COLLECT \
	_IOR(BLKSNAP, blksnap_ioctl_snapshot_collect, \
	     struct blksnap_snapshot_collect)

/**
 * enum blksnap_event_codes - event codes.
 * @blksnap_event_code_corrupted: the snapshot became corrupted; the data is
 *	a &struct blksnap_event_corrupted.
 */
enum blksnap_event_codes {
	blksnap_event_code_corrupted,
};

/**
 * struct blksnap_snapshot_event - argument of
 *	IOCTL_BLKSNAP_SNAPSHOT_WAIT_EVENT.
 * @id:         snapshot identifier.
 * @timeout_ms: how long to wait.
 * @code:       receives the &enum blksnap_event_codes value.
 * @time_label: receives the time of the event.
 * @data:       receives the event body.
 */
struct blksnap_snapshot_event {
	struct blksnap_uuid id;
	__u32 timeout_ms;
	__u32 code;
	__s64 time_label;
	__u8 data[4096 - 32];
};

/**
 * define IOCTL_BLKSNAP_SNAPSHOT_WAIT_EVENT - wait for the next event.
 *
 * Return: 0, -ENOENT when no event came within the timeout (ask again),
 * -ESRCH when the snapshot does not exist (or was destroyed while waiting),
 * -EINTR when interrupted, or another negative errno; as in the v6 ABI.
 */
#define IOCTL_BLKSNAP_SNAPSHOT_WAIT_EVENT \
	_IOR(BLKSNAP, blksnap_ioctl_snapshot_wait_event, \
	     struct blksnap_snapshot_event)

/**
 * struct blksnap_event_corrupted - body of the corrupted event.
 * @dev_id_mj: major number of the original device.
 * @dev_id_mn: minor number of the original device.
 * @err_code:  the negative errno.
 */
struct blksnap_event_corrupted {
	__u32 dev_id_mj;
	__u32 dev_id_mn;
	__s32 err_code;
};

/**
 * struct blksnap_filter_name - argument of IOCTL_BLKSNAP_FILTER_ATTACH and
 *	IOCTL_BLKSNAP_FILTER_DETACH (added).
 * @dev_major: major number of the block device.
 * @dev_minor: minor number of the block device.
 * @name:      filter name, as for BLKFILTER_ATTACH ("blksnap").
 */
struct blksnap_filter_name {
	__u32 dev_major;
	__u32 dev_minor;
	struct blkfilter_name name;
};

/**
 * struct blksnap_filter_ctl - argument of IOCTL_BLKSNAP_FILTER_CTL (added).
 * @dev_major: major number of the block device.
 * @dev_minor: minor number of the block device.
 * @ctl:       the command, as for BLKFILTER_CTL.
 */
struct blksnap_filter_ctl {
	__u32 dev_major;
	__u32 dev_minor;
	struct blkfilter_ctl ctl;
};

/**
 * define IOCTL_BLKSNAP_FILTER_ATTACH - attach the filter to a block device
 *	(added; BLKFILTER_ATTACH through the control device).
 *
 * Return: 0, -EALREADY if attached, -ENOENT for an unknown filter name,
 * -ENODEV for a missing device, or another negative errno.
 */
#define IOCTL_BLKSNAP_FILTER_ATTACH \
	_IOW(BLKSNAP, blksnap_ioctl_filter_attach, struct blksnap_filter_name)

/**
 * define IOCTL_BLKSNAP_FILTER_DETACH - detach the filter from a block device
 *	(added; BLKFILTER_DETACH through the control device).
 *
 * Return: 0, -ENOENT if no filter is attached, or another negative errno.
 */
#define IOCTL_BLKSNAP_FILTER_DETACH \
	_IOW(BLKSNAP, blksnap_ioctl_filter_detach, struct blksnap_filter_name)

/**
 * define IOCTL_BLKSNAP_FILTER_CTL - send a filter command to a block device
 *	(added; BLKFILTER_CTL through the control device).
 *
 * On return @ctl.optlen holds the number of bytes the command produced.
 *
 * Return: as the command, or a negative errno.
 */
#define IOCTL_BLKSNAP_FILTER_CTL \
	_IOWR(BLKSNAP, blksnap_ioctl_filter_ctl, struct blksnap_filter_ctl)

/**
 * struct blksnap_bdev - a block device number (added).
 * @major: major number.
 * @minor: minor number.
 */
struct blksnap_bdev {
	__u32 major;
	__u32 minor;
};

/**
 * struct blksnap_snapshot_devices - argument of
 *	IOCTL_BLKSNAP_SNAPSHOT_DEVICES (added).
 * @id:       the snapshot.
 * @count:    capacity of @devices in elements; receives the number of
 *	devices of the snapshot.
 * @reserved: must be zero.
 * @devices:  user pointer to an array of &struct blksnap_bdev, or 0 to
 *	learn the number only.
 */
struct blksnap_snapshot_devices {
	struct blksnap_uuid id;
	__u32 count;
	__u32 reserved;
	__u64 devices;
};

/**
 * define IOCTL_BLKSNAP_SNAPSHOT_DEVICES - list the devices of a snapshot
 *	(added).
 *
 * The original devices added to the snapshot @id, in the order they were
 * added, taken or not. Call with @devices 0 to learn the number (or, as
 * for IOCTL_BLKSNAP_SNAPSHOT_COLLECT, with @count 0: -ENODATA and the
 * number), then with an array that big. A read-only query: no capability
 * is needed beyond access to the control device.
 *
 * Return: 0 (@count holds the number of devices, @devices the first @count
 * of them unless it is 0); -ENODATA when @count was too small (it then holds
 * the number needed); -ENOENT when the snapshot does not exist; -EINVAL
 * when @reserved is not zero; -EFAULT for a bad pointer; -ENOMEM.
 */
#define IOCTL_BLKSNAP_SNAPSHOT_DEVICES \
	_IOWR(BLKSNAP, blksnap_ioctl_snapshot_devices, \
	      struct blksnap_snapshot_devices)

#endif /* _UAPI_LINUX_BLKSNAP_H */
