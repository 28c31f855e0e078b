#!/usr/bin/env python3
"""A seeded random workload checked against a reference model.

usage: model.py SEED OPS WORKDIR

Runs OPS random operations over a few loop devices (files in WORKDIR):
writes (direct, and buffered with fsync), discards, write-zeroes, attach
and detach, snapshot take (of a random set of the attached devices) and
destroy, snapshots whose storage overflows. The model knows at every step
what each device holds, what each image must hold (the device at its
take) and which blocks each change map must mark with which number. After
every step that can change one of them it checks by content: images and
devices block by block, change maps byte by byte; a snapshot whose
storage overflowed must have reported it (event and error code) and fail
its reads. Prints its seed and operation count; the same seed replays
the same run. Ends with one line:
    model: seed=S ops=N checks=M failures=F
"""
import fcntl
import json
import mmap
import os
import random
import struct
import subprocess
import sys

BLOCK = 4096
DEV_BLOCKS = 2048  # 8 MiB devices
NDEV = 3
BLKDISCARD = 0x1277
BLKZEROOUT = 0x127F


def run(*args, check=True):
    p = subprocess.run(args, capture_output=True, text=True)
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: exit {p.returncode}: {p.stderr.strip()}")
    return p


class Device:
    def __init__(self, index, path):
        self.index = index
        self.path = path
        self.content = [0] * DEV_BLOCKS  # version per block; -1: zeros
        self.attached = False
        self.changes = 0  # changes number after the last take
        self.marks = None  # map block -> expected byte (None: not attached)
        self.map_block = None
        self.snapshot = None


class Snapshot:
    def __init__(self, uuid, devices, limit):
        self.uuid = uuid
        self.devices = devices
        self.limit = limit
        self.images = {}
        self.frozen = {}
        self.frozen_marks = {}
        self.overflow = False
        self.event_seen = False


class Model:
    def __init__(self, seed, workdir):
        self.rng = random.Random(seed)
        self.seed = seed
        self.workdir = workdir
        self.checks = 0
        self.failures = 0
        self.version = 0
        self.snapshots = []
        self.buf = mmap.mmap(-1, BLOCK * 64)
        self.devices = []
        for i in range(NDEV):
            img = os.path.join(workdir, f"dev{i}.img")
            with open(img, "wb") as f:
                f.truncate(DEV_BLOCKS * BLOCK)
            path = run("losetup", "--find", "--show", img).stdout.strip()
            dev = Device(i, path)
            self.devices.append(dev)
            self.write(dev, 0, DEV_BLOCKS, direct=True, record=False)

    # ---- data
    def pattern(self, dev, block, version):
        if version < 0:
            return bytes(BLOCK)
        return struct.pack("<IIQ", dev.index, block, version + (self.seed << 32)) * (BLOCK // 16)

    def fail(self, what):
        self.failures += 1
        print(f"model: FAIL at op {self.op}: {what}", flush=True)

    # ---- I/O on a device
    def write(self, dev, first, count, direct, record=True):
        self.version += 1
        if record:
            self.mark(dev, first, count)
        flags = os.O_WRONLY | (os.O_DIRECT if direct else 0)
        fd = os.open(dev.path, flags)
        try:
            done = 0
            while done < count:
                n = min(64, count - done)
                for j in range(n):
                    b = first + done + j
                    self.buf[j * BLOCK:(j + 1) * BLOCK] = self.pattern(dev, b, self.version)
                os.pwritev(fd, [memoryview(self.buf)[:n * BLOCK]], (first + done) * BLOCK)
                done += n
            if not direct:
                os.fsync(fd)
        finally:
            os.close(fd)
        for b in range(first, first + count):
            dev.content[b] = self.version

    def discard(self, dev, first, count, zeroout):
        self.mark(dev, first, count)
        fd = os.open(dev.path, os.O_WRONLY)
        try:
            fcntl.ioctl(fd, BLKZEROOUT if zeroout else BLKDISCARD,
                        struct.pack("QQ", first * BLOCK, count * BLOCK))
        finally:
            os.close(fd)
        for b in range(first, first + count):
            dev.content[b] = -1

    def read_blocks(self, path, first, count):
        fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
        try:
            out = []
            done = 0
            while done < count:
                n = min(64, count - done)
                got = os.preadv(fd, [memoryview(self.buf)[:n * BLOCK]], (first + done) * BLOCK)
                if got != n * BLOCK:
                    raise OSError(0, f"short read of {path}")
                out += [bytes(self.buf[j * BLOCK:(j + 1) * BLOCK]) for j in range(n)]
                done += n
            return out
        finally:
            os.close(fd)

    # ---- change maps
    def mark(self, dev, first, count):
        if not dev.attached:
            return
        mb = dev.map_block // BLOCK
        for m in range(first // mb, (first + count - 1) // mb + 1):
            dev.marks[m] = dev.changes + 1

    def check_map(self, dev):
        path = os.path.join(self.workdir, "map")
        run("blksnap", "readcbtmap", "-d", dev.path, "-f", path)
        got = open(path, "rb").read()
        self.checks += 1
        # While a snapshot holds the device, the map read is the take's.
        want = bytes(dev.snapshot.frozen_marks[dev.index] if dev.snapshot else dev.marks)
        if got != want:
            bad = [i for i in range(min(len(got), len(want))) if got[i] != want[i]]
            self.fail(f"{dev.path}: change map differs at {len(bad)} blocks, first {bad[:5]}: "
                      f"got {[got[i] for i in bad[:5]]} want {[want[i] for i in bad[:5]]}")

    def cbtinfo(self, dev):
        out = run("blksnap", "cbtinfo", "-d", dev.path).stdout
        return dict(line.split("=", 1) for line in out.split("\n") if "=" in line)

    # ---- operations
    def op_write(self):
        dev = self.rng.choice(self.devices)
        count = self.rng.choice([1, 1, 2, 8, 33])
        first = self.rng.randrange(DEV_BLOCKS - count)
        self.write(dev, first, count, direct=self.rng.random() < 0.7)

    def op_discard(self):
        dev = self.rng.choice(self.devices)
        count = self.rng.choice([1, 16, 256])
        first = self.rng.randrange(DEV_BLOCKS - count)
        self.discard(dev, first, count, zeroout=self.rng.random() < 0.5)

    def op_attach(self):
        dev = self.rng.choice(self.devices)
        if dev.snapshot:
            return
        if dev.attached:
            run("blksnap", "detach", "-d", dev.path)
            dev.attached = False
            dev.marks = None
            return
        run("blksnap", "attach", "-d", dev.path)
        info = self.cbtinfo(dev)
        dev.attached = True
        dev.map_block = int(info["block_size"])
        dev.changes = int(info["changes_number"])
        dev.marks = [0] * int(info["block_count"])
        self.checks += 1
        if dev.changes != 0:
            self.fail(f"{dev.path}: a fresh attach has changes_number={dev.changes}")

    def op_take(self):
        free = [d for d in self.devices if not d.snapshot]
        if not free or len(self.snapshots) >= 2:
            return
        devs = self.rng.sample(free, self.rng.randint(1, len(free)))
        overflow = self.rng.random() < 0.2
        limit = "1M" if overflow else "32M"
        storage = os.path.join(self.workdir, f"store{self.op}")
        args = ["blksnap", "snapshot_create", "-f", storage, "-l", limit]
        for d in devs:
            args += ["-d", d.path]
        uuid = run(*args).stdout.strip()
        run("blksnap", "snapshot_take", "-i", uuid)
        s = Snapshot(uuid, devs, limit)
        s.storage = storage
        for d in devs:
            if not d.attached:  # snapshot_create attaches
                d.attached = True
                info = self.cbtinfo(d)
                d.map_block = int(info["block_size"])
                d.marks = [0] * int(info["block_count"])
                d.changes = 0
            # Take: a new changes number; the marks stay, and the map read
            # while the snapshot is held is the one of this moment. Take 255
            # of a generation clears the map and starts at 1 again.
            if d.changes == 254:
                d.marks = [0] * len(d.marks)
                d.changes = 1
            else:
                d.changes += 1
            s.frozen_marks[d.index] = list(d.marks)
            d.snapshot = s
            s.frozen[d.index] = list(d.content)
            # blksnap(4): the image of device MAJ:MIN (an exec less).
            rdev = os.stat(d.path).st_rdev
            s.images[d.index] = f"/dev/blksnap-image_{os.major(rdev)}:{os.minor(rdev)}"
            self.checks += 1
            if not os.path.exists(s.images[d.index]):
                self.fail(f"{d.path}: no image {s.images[d.index]} after the take")
            info = self.cbtinfo(d)
            self.checks += 1
            if int(info["changes_number"]) != d.changes:
                self.fail(f"{d.path}: changes_number {info['changes_number']}, want {d.changes}")
        self.snapshots.append(s)

    def op_destroy(self):
        if not self.snapshots:
            return
        s = self.rng.choice(self.snapshots)
        self.check_snapshot(s)
        run("blksnap", "snapshot_destroy", "-i", s.uuid)
        for d in s.devices:
            d.snapshot = None
        os.unlink(s.storage)
        self.snapshots.remove(s)

    def error_code(self, dev):
        out = run("blksnap", "snapshot_info", "-d", dev.path, "-f", "error_code").stdout
        return int(out.strip())

    def check_snapshot(self, s):
        for d in s.devices:
            err = self.error_code(d)
            self.checks += 1
            if err not in (0, -28) or (err and s.limit != "1M"):
                self.fail(f"{d.path}: snapshot error {err}")
                continue
            if err:
                s.overflow = True
                try:
                    self.read_blocks(s.images[d.index], 0, 1)
                    self.fail(f"{d.path}: the image of an overflowed snapshot was read")
                except OSError:
                    pass
                continue
            first = self.rng.randrange(DEV_BLOCKS - 256)
            blocks = self.read_blocks(s.images[d.index], first, 256)
            self.checks += 1
            for j, data in enumerate(blocks):
                want = self.pattern(d, first + j, s.frozen[d.index][first + j])
                if data != want:
                    self.fail(f"{d.path}: image block {first + j} is not the take's")
                    break
        if s.overflow and not s.event_seen:
            ev = run("blksnap", "snapshot_waitevent", "-i", s.uuid, "-t", "2000", check=False)
            self.checks += 1
            s.event_seen = True
            if "event=corrupted" not in ev.stdout or "err_code=-28" not in ev.stdout:
                self.fail(f"snapshot {s.uuid}: overflow without its event: {ev.stdout!r}")

    def check_devices(self):
        for d in self.devices:
            first = self.rng.randrange(DEV_BLOCKS - 256)
            blocks = self.read_blocks(d.path, first, 256)
            self.checks += 1
            for j, data in enumerate(blocks):
                if data != self.pattern(d, first + j, d.content[first + j]):
                    self.fail(f"{d.path}: block {first + j} lost a write")
                    break
            if d.attached:
                self.check_map(d)

    def step(self):
        ops = [(self.op_write, 40), (self.op_discard, 5), (self.op_attach, 8),
               (self.op_take, 8), (self.op_destroy, 6)]
        fn = self.rng.choices([o for o, _ in ops], [w for _, w in ops])[0]
        fn()
        if fn in (self.op_take, self.op_destroy) or self.rng.random() < 0.2:
            self.check_devices()
        for s in self.snapshots:
            if self.rng.random() < 0.3:
                self.check_snapshot(s)

    def close(self):
        for s in list(self.snapshots):
            self.check_snapshot(s)
            run("blksnap", "snapshot_destroy", "-i", s.uuid)
            for d in s.devices:
                d.snapshot = None
            self.snapshots.remove(s)
        self.check_devices()
        for d in self.devices:
            if d.attached:
                run("blksnap", "detach", "-d", d.path, check=False)
            run("losetup", "-d", d.path, check=False)


def main():
    seed, ops, workdir = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    print(f"model: seed={seed} ops={ops} (replay: MODEL_SEED={seed} MODEL_OPS={ops})", flush=True)
    m = Model(seed, workdir)
    m.op = 0
    try:
        for m.op in range(1, ops + 1):
            m.step()
            if m.failures:
                break
        m.close()
    except Exception as e:  # an operation the model expected to work failed
        m.failures += 1
        print(f"model: FAIL at op {m.op}: {e}", flush=True)
    print(f"model: seed={seed} ops={m.op} checks={m.checks} failures={m.failures}")
    return 1 if m.failures else 0


if __name__ == "__main__":
    sys.exit(main())
