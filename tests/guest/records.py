#!/usr/bin/env python3
"""Numbered records written to several devices in lockstep, and the check
that images taken together are coherent (tests of multi-device takes).

    records.py write STARTED STOP BLOCKS DEV...
        Record n (8-byte little-endian n repeated over 4 KiB) goes to block
        n % BLOCKS of every DEV in order, O_DIRECT. Touches STARTED after
        record 50; once STOP exists, writes one record more (one after the
        take) and prints the last record's number.
    records.py coherent WRITTEN IMAGE...
        The newest record of each image (the devices were zero at first:
        every nonzero block is a record): the first image's must be below
        WRITTEN, and each next image's the same or one less (a device later
        in the order is at most one record behind). Exit 1 if not.
"""
import mmap
import os
import sys


def write(started, stop, blocks, devs):
    fds = [os.open(d, os.O_WRONLY | os.O_DIRECT) for d in devs]
    buf = mmap.mmap(-1, 4096)
    n = 0
    last = False
    while not last:
        last = os.path.exists(stop)
        n += 1
        buf.seek(0)
        buf.write(n.to_bytes(8, "little") * 512)
        for fd in fds:
            os.pwrite(fd, buf, (n % blocks) * 4096)
        if n == 50:
            open(started, "w").close()
    print(n)


def newest(path):
    with open(path, "rb") as f:
        data = f.read()
    return max(int.from_bytes(data[i:i + 8], "little") for i in range(0, len(data), 4096))


def coherent(written, images):
    tops = [newest(p) for p in images]
    print("newest record per image:", tops, "written:", written)
    top = tops[0]
    ok = 0 < top < written and all(x in (top, top - 1) for x in tops)
    ok = ok and all(a >= b for a, b in zip(tops, tops[1:]))
    return 0 if ok else 1


if __name__ == "__main__":
    if sys.argv[1] == "write":
        write(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5:])
    elif sys.argv[1] == "coherent":
        sys.exit(coherent(int(sys.argv[2]), sys.argv[3:]))
    else:
        sys.exit(f"usage: {sys.argv[0]} write|coherent ...")
