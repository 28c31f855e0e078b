"""The read-only blksnap requests, straight from Python (no exec).

Layouts and request numbers from kmodule/include/uapi/linux/blksnap.h and
kmodule/include/uapi/linux/blk-filter.h, written as `struct` formats
(little-endian, the C padding spelled out). A filter command (cbtinfo,
cbtmap, snapshotinfo) goes, as the CLI sends it, through BLKFILTER_CTL on
the device with interception=blkfilter, through IOCTL_BLKSNAP_FILTER_CTL
on /dev/blksnap-control (with the device's numbers) with ftrace. Errors
raise OSError with the kernel's errno.

    cbtinfo(path)        -> dict(device_capacity, block_size, block_count,
                                 generation_id (str), changes_number)
    cbtmap(path)         -> bytes (the whole map; the take's while held)
    snapshot_info(path)  -> (error_code, image name)
    wait_event(uuid, ms) -> None (no event) or dict(code, time_label,
                            and for a corrupted event dev_id_mj,
                            dev_id_mn, err_code)
"""
import ctypes
import fcntl
import os
import struct
import uuid as uuidlib

CONTROL = "/dev/blksnap-control"
FILTER_NAME = b"blksnap"


def _ioc(direction, kind, nr, size):
    return (direction << 30) | (size << 16) | (kind << 8) | nr


_IOW, _IOR, _IOWR = 1, 2, 3
BLKSNAP = ord("V")

# struct blkfilter_ctl: name[32], cmd, optlen, opt (u64)
BLKFILTER_CTL_FMT = "<32sIIQ"
# struct blksnap_filter_ctl: dev_major, dev_minor, struct blkfilter_ctl
FILTER_CTL_FMT = "<II32sIIQ"
# struct blksnap_cbtinfo: device_capacity, block_size, block_count,
# generation_id[16], changes_number, 7 bytes of padding (u64 alignment)
CBTINFO_FMT = "<QII16sB7x"
# struct blksnap_cbtmap: offset, length, buffer (u64)
CBTMAP_FMT = "<IIQ"
# struct blksnap_snapshotinfo: error_code (s32), image[IMAGE_DISK_NAME_LEN]
SNAPSHOTINFO_FMT = "<i32s"
# struct blksnap_snapshot_event: id[16], timeout_ms, code, time_label (s64),
# data[4096 - 32]
EVENT_FMT = "<16sIIq4064s"
# struct blksnap_event_corrupted: dev_id_mj, dev_id_mn, err_code (s32)
CORRUPTED_FMT = "<IIi"

BLKFILTER_CTL = _ioc(_IOWR, 0x12, 142, struct.calcsize(BLKFILTER_CTL_FMT))
IOCTL_BLKSNAP_FILTER_CTL = _ioc(_IOWR, BLKSNAP, 8, struct.calcsize(FILTER_CTL_FMT))
IOCTL_BLKSNAP_SNAPSHOT_WAIT_EVENT = _ioc(_IOR, BLKSNAP, 5, struct.calcsize(EVENT_FMT))

# enum blkfilter_ctl_blksnap
CTL_CBTINFO, CTL_CBTMAP, CTL_CBTDIRTY, CTL_SNAPSHOTADD, CTL_SNAPSHOTINFO, CTL_CBTLOAD = range(6)
# enum blksnap_event_codes
EVENT_CORRUPTED = 0

assert BLKFILTER_CTL == 0xC030128E
assert IOCTL_BLKSNAP_FILTER_CTL == 0xC0385608
assert struct.calcsize(CBTINFO_FMT) == 40 and struct.calcsize(EVENT_FMT) == 4096


def interception():
    try:
        with open("/sys/module/blksnap/parameters/interception") as f:
            return f.read().strip()
    except FileNotFoundError:
        return "blkfilter"


def filter_ctl(path, cmd, opt):
    """Run filter command cmd on device path with the buffer opt (a ctypes
    buffer, filled in place); return the ioctl's value."""
    ptr = ctypes.addressof(opt)
    if interception() == "blkfilter":
        arg = bytearray(struct.pack(BLKFILTER_CTL_FMT, FILTER_NAME, cmd, len(opt), ptr))
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        request = BLKFILTER_CTL
    else:
        rdev = os.stat(path).st_rdev
        arg = bytearray(struct.pack(FILTER_CTL_FMT, os.major(rdev), os.minor(rdev),
                                    FILTER_NAME, cmd, len(opt), ptr))
        fd = os.open(CONTROL, os.O_RDWR)
        request = IOCTL_BLKSNAP_FILTER_CTL
    try:
        return fcntl.ioctl(fd, request, arg, True)
    finally:
        os.close(fd)


def cbtinfo(path):
    buf = ctypes.create_string_buffer(struct.calcsize(CBTINFO_FMT))
    filter_ctl(path, CTL_CBTINFO, buf)
    capacity, block_size, block_count, gen, changes = struct.unpack(CBTINFO_FMT, buf.raw)
    return {"device_capacity": capacity, "block_size": block_size,
            "block_count": block_count, "generation_id": str(uuidlib.UUID(bytes=gen)),
            "changes_number": changes}


def cbtmap(path, length=None):
    """The change map of path, read from offset 0 in as many calls as the
    module needs (it copies at most CBT_MAP_READ_MAX bytes a call)."""
    if length is None:
        length = cbtinfo(path)["block_count"]
    out = ctypes.create_string_buffer(max(length, 1))
    arg = ctypes.create_string_buffer(struct.calcsize(CBTMAP_FMT))
    done = 0
    while done < length:
        struct.pack_into(CBTMAP_FMT, arg, 0, done, length - done, ctypes.addressof(out) + done)
        n = filter_ctl(path, CTL_CBTMAP, arg)
        if n <= 0:
            break
        done += n
    return out.raw[:done]


def snapshot_info(path):
    buf = ctypes.create_string_buffer(struct.calcsize(SNAPSHOTINFO_FMT))
    filter_ctl(path, CTL_SNAPSHOTINFO, buf)
    err, image = struct.unpack(SNAPSHOTINFO_FMT, buf.raw)
    return err, image.split(b"\0", 1)[0].decode()


def wait_event(snapshot_uuid, timeout_ms):
    """The snapshot's next event, or None when none came in timeout_ms
    (ENOENT). ESRCH (no such snapshot) and other errors raise."""
    arg = bytearray(struct.pack(EVENT_FMT, uuidlib.UUID(snapshot_uuid).bytes, timeout_ms,
                                0, 0, b""))
    fd = os.open(CONTROL, os.O_RDWR)
    try:
        fcntl.ioctl(fd, IOCTL_BLKSNAP_SNAPSHOT_WAIT_EVENT, arg, True)
    except OSError as e:
        if e.errno == 2:
            return None
        raise
    finally:
        os.close(fd)
    _, _, code, time_label, data = struct.unpack(EVENT_FMT, arg)
    event = {"code": code, "time_label": time_label}
    if code == EVENT_CORRUPTED:
        mj, mn, err = struct.unpack_from(CORRUPTED_FMT, data)
        event.update(dev_id_mj=mj, dev_id_mn=mn, err_code=err)
    return event
