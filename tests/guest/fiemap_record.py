#!/usr/bin/env python3
"""Print "OFFSET LENGTH" (bytes, on the file system's device) for every
extent of the given files, read with the FIEMAP ioctl after a sync."""
import fcntl
import struct
import sys

FS_IOC_FIEMAP = 0xC020660B
FIEMAP_FLAG_SYNC = 1
EXTENT_LAST = 0x1
HDR = "=QQLLLL"  # start, length, flags, mapped, count, reserved
EXT = "=QQQQQLLLL"  # logical, physical, length, 2 reserved, flags, 3 reserved


def extents(path):
    count = 256
    start = 0
    with open(path, "rb") as f:
        while True:
            buf = bytearray(struct.pack(HDR, start, 2**64 - 1 - start,
                                        FIEMAP_FLAG_SYNC, 0, count, 0))
            buf += bytearray(struct.calcsize(EXT) * count)
            fcntl.ioctl(f.fileno(), FS_IOC_FIEMAP, buf)
            mapped = struct.unpack_from(HDR, buf)[3]
            if mapped == 0:
                return
            for i in range(mapped):
                e = struct.unpack_from(EXT, buf, struct.calcsize(HDR) +
                                       i * struct.calcsize(EXT))
                yield e[1], e[2]
                start = e[0] + e[2]
                if e[7] & EXTENT_LAST:
                    return


for p in sys.argv[1:]:
    for phys, length in extents(p):
        print(phys, length)
