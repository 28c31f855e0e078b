#!/usr/bin/env python3
"""Direct I/O with many requests in flight, for tests that race it against
snapshot operations, and the checks of what it left.

  inflight_io.py race ORIG IMAGE TAKE START LEN SEED
      Writers to ORIG and to IMAGE over the same chunks at once (threads,
      unaligned blocks that straddle chunk boundaries, several rounds), then
      checks by content: IMAGE holds TAKE (a file: the device at the take)
      plus exactly its own writes, ORIG holds exactly its writes.
  inflight_io.py write DEV START LEN SEED FAILED
      Writers (8 threads) write [START, START+LEN) of DEV in 64 KiB blocks
      of data derived from SEED and the offset; the offsets whose write
      failed go to the file FAILED (one per line). Exits 0.
  inflight_io.py verify DEV START LEN SEED FAILED
      Every block of that range whose write did not fail holds its data.
  inflight_io.py read IMAGE TAKE START LEN [gone]
      Readers (8 threads) read IMAGE in 64 KiB blocks; every read that
      returns data must return TAKE at that offset, all of the block. With
      "gone" (the image is being removed) a read may fail, or find the end
      of the device (a removed disk has no size left: 0 bytes, EOF); without
      it, every read must succeed. Prints how many failed and ended.
"""
import hashlib
import mmap
import os
import sys
import threading

BLOCK = 65536


def data(seed, off, n):
    """n bytes unique to (seed, off)."""
    out = bytearray()
    i = 0
    while len(out) < n:
        out += hashlib.sha256(b"%s/%d/%d" % (seed.encode(), off, i)).digest()
        i += 1
    return bytes(out[:n])


def aligned(n):
    # O_DIRECT wants aligned memory: an anonymous mapping is page-aligned.
    m = mmap.mmap(-1, (n + 4095) // 4096 * 4096)
    return m


def pwrite(fd, buf, off):
    m = aligned(len(buf))
    m[: len(buf)] = buf
    return os.pwritev(fd, [memoryview(m)[: len(buf)]], off)


def pread(fd, n, off):
    m = aligned(n)
    got = os.preadv(fd, [memoryview(m)[:n]], off)
    return bytes(m[:got])


def run(threads):
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def race(orig, image, take, start, length, seed):
    base = open(take, "rb").read()
    img_want = bytearray(base[start : start + length])
    orig_want = bytearray(img_want)
    errors = []
    # Blocks of 12 KiB: every 256 KiB chunk boundary is straddled by some.
    bs, nthreads, rounds = 12288, 4, 3
    nblocks = length // bs
    lock = threading.Lock()

    def writer(path, want, side, k):
        fd = os.open(path, os.O_WRONLY | os.O_DIRECT)
        try:
            for r in range(rounds):
                # Each thread owns the blocks b % nthreads == k: the last
                # round's data is what each block must hold.
                order = list(range(k, nblocks, nthreads))
                if (r + k) % 2:
                    order.reverse()
                for b in order:
                    off = b * bs
                    buf = data("%s/%s/%d" % (seed, side, r), off, bs)
                    if pwrite(fd, buf, start + off) != bs:
                        raise OSError("short write")
                    with lock:
                        want[off : off + bs] = buf
        except OSError as e:
            errors.append("%s writer %d: %s" % (side, k, e))
        finally:
            os.close(fd)

    threads = []
    for k in range(nthreads):
        threads.append(threading.Thread(target=writer, args=(orig, orig_want, "orig", k)))
        threads.append(threading.Thread(target=writer, args=(image, img_want, "image", k)))
    run(threads)
    if errors:
        sys.exit("writes failed: " + "; ".join(errors))
    bad = 0
    for path, want in ((image, img_want), (orig, orig_want)):
        fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
        got = pread(fd, length, start)
        os.close(fd)
        for off in range(0, length, 4096):
            if got[off : off + 4096] != want[off : off + 4096]:
                print("%s: 4 KiB block at %d is wrong" % (path, start + off))
                bad += 1
                if bad > 10:
                    break
    print("race: %d blocks of %d bytes x %d rounds on each side, %d wrong" % (nblocks, bs, rounds, bad))
    sys.exit(1 if bad else 0)


def write(dev, start, length, seed, failed):
    offs = list(range(start, start + length, BLOCK))
    bad = []
    lock = threading.Lock()

    def worker(k):
        try:
            fd = os.open(dev, os.O_WRONLY | os.O_DIRECT)
        except OSError:  # an image gone already
            with lock:
                bad.extend(offs[k::8])
            return
        for off in offs[k::8]:
            try:
                if pwrite(fd, data(seed, off, BLOCK), off) != BLOCK:
                    raise OSError("short write")
            except OSError:
                with lock:
                    bad.append(off)
        os.close(fd)

    run([threading.Thread(target=worker, args=(k,)) for k in range(8)])
    with open(failed, "w") as f:
        f.writelines("%d\n" % o for o in sorted(bad))
    print("write %s: %d blocks, %d failed" % (dev, len(offs), len(bad)))


def verify(dev, start, length, seed, failed):
    bad = {int(x) for x in open(failed).read().split()}
    fd = os.open(dev, os.O_RDONLY | os.O_DIRECT)
    lost = [off for off in range(start, start + length, BLOCK)
            if off not in bad and pread(fd, BLOCK, off) != data(seed, off, BLOCK)]
    os.close(fd)
    if lost:
        sys.exit("%s: %d writes that reported success are not there (first at %d)" % (dev, len(lost), lost[0]))


def read(image, take, start, length, gone):
    base = open(take, "rb").read()
    offs = list(range(start, start + length, BLOCK))
    failed, ended, wrong = [], [], []

    def worker(k):
        try:
            fd = os.open(image, os.O_RDONLY | os.O_DIRECT)
        except OSError:
            failed.extend(offs[k::8])
            return
        for off in offs[k::8]:
            try:
                got = pread(fd, BLOCK, off)
            except OSError:
                failed.append(off)
                continue
            if not got:
                ended.append(off)
            elif got != base[off : off + BLOCK]:
                wrong.append(off)
        os.close(fd)

    run([threading.Thread(target=worker, args=(k,)) for k in range(8)])
    print("read %s: %d blocks, %d failed, %d at the end of the device" % (image, len(offs), len(failed), len(ended)))
    if wrong:
        sys.exit("%s: %d reads returned data not on the device at the take (first at %d)" % (image, len(wrong), min(wrong)))
    if not gone and (failed or ended):
        sys.exit("%s: %d reads failed and %d found the end of the device, with the image in place" % (image, len(failed), len(ended)))


def main():
    cmd, a = sys.argv[1], sys.argv[2:]
    if cmd == "race":
        race(a[0], a[1], a[2], int(a[3]), int(a[4]), a[5])
    elif cmd == "write":
        write(a[0], int(a[1]), int(a[2]), a[3], a[4])
    elif cmd == "verify":
        verify(a[0], int(a[1]), int(a[2]), a[3], a[4])
    elif cmd == "read":
        read(a[0], a[1], int(a[2]), int(a[3]), a[4:] == ["gone"])
    else:
        sys.exit(__doc__)


main()
