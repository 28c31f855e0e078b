#!/usr/bin/env python3
"""A seeded random workload checked against a reference model.

usage: model.py SEED OPS WORKDIR

Runs OPS random operations over several block devices: two loop devices,
the two partitions of a partitioned loop device (and its whole disk,
written but not tracked: a disk with partitions cannot be attached), a
dm-linear device over part of a loop device, and a memory-backed null_blk
disk. Operations: writes (direct, and buffered with fsync) through any of
them, discards, write-zeroes, attach and detach, snapshot take (of a
random set of the attached devices) and destroy, snapshots whose storage
overflows, writes to the images of the snapshots, and a third partition
added (BLKPG) and deleted again: detached, attached, or held by a
snapshot, which then reports -ENODEV; cbtsave and cbtrestore of a tracked
device (sometimes written, through itself or its whole disk, or resized
while saved: the chain must break and say so, else continue byte for
byte); backups (blksnap backup, full then incremental) of a random set of
devices into one directory, sometimes with an image file edited between
(full or incremental as the model expects, and why; the image the device
at the take); I/O errors injected below the dm device (its table
swapped for dm-flakey failing reads, or writes, or for dm-error failing
everything) while it is written, held or not: a write that reported
success is on the device once the fault ends, one that failed left each
block old or new, a write never fails when only reads do, and a snapshot
holding it either still reads as at the take or was marked failed (the
corrupted event with its error code, image reads failing); and below
the difference storage, when a snapshot stores on a dm device (stores
failing, read-back failing, or both): a write to the original never
fails, an image read that succeeds returns the take, and each device of
the snapshot either still reads as at the take or was marked failed. The
model also writes an ext4 file system on a loop device of its own
(model_fs.py): files replaced by rename with fsyncs, or deleted, while
snapshots of it are taken and held; every image of it passes e2fsck -fn
and holds exactly the files durable at its take. The model knows at
every step what each disk holds, what each image must hold (the device at
its take plus the image's own writes) and which blocks each change map
must mark with which number: a write is marked in the map of every
tracked device whose sectors it covers (a partition written through its
whole disk), a write to an image in the live map with the next number and
in the map frozen at the take with the take's. After every step that can
change one of them it checks by content: images and devices block by
block, change maps byte by byte; a snapshot whose storage overflowed must
have reported it (event and error code) and fail its reads. Takes,
creates, destroys, attaches and detaches go through the CLI (blksnap);
the read-only requests (cbtinfo, the change map, a snapshot's error code,
its events) are ioctls from Python (blksnap_ioctl.py): an exec costs a
second on the debug kernel under emulation. Prints its
seed and operation count; the same seed replays the same run
(MODEL_VERBOSE=1 prints every operation). Ends with one line:
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
import time

import blksnap_ioctl
import model_fs

BLOCK = 4096
DEV_BLOCKS = 2048  # 8 MiB disks
KEEP_POINTS = 3  # restore points the backups keep per device
BLKDISCARD = 0x1277
BLKZEROOUT = 0x127F
# The partitioned disk: (first block, blocks) of its two partitions.
PARTS = [(256, 768), (1024, 1024)]
# A third partition added and deleted during a run (BLKPG, addpart and
# delpart) in the free space before the first: (first block, blocks).
PART3 = (64, 192)
# The dm-linear device: (first block, blocks) of its loop device it maps.
LINEAR = (256, 1536)
NULLB = "/sys/kernel/config/nullb/model"
# The dm device a snapshot may store on (a block device as difference
# storage), over a loop device of this many blocks.
STORE_BLOCKS = 8192  # 32 MiB
VERBOSE = os.environ.get("MODEL_VERBOSE") == "1"


def run(*args, check=True):
    p = subprocess.run(args, capture_output=True, text=True)
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: exit {p.returncode}: {p.stderr.strip()}")
    return p


class Disk:
    """What a disk holds: a version per block (-1: zeros)."""

    def __init__(self, index, blocks):
        self.index = index
        self.content = [0] * blocks


class Device:
    """A block device: the blocks [first, first + blocks) of a disk."""

    def __init__(self, index, path, disk, first, blocks, trackable=True):
        self.index = index
        self.path = path
        self.disk = disk
        self.first = first
        self.blocks = blocks
        self.trackable = trackable
        self.present = True  # False: a deleted partition
        self.saved = None  # cbtsave'd: (generation, changes, marks)
        self.broken = None  # why its saved chain must break (None: it holds)
        self.discard_ok = True
        self.attached = False
        self.changes = 0  # changes number after the last take
        self.marks = None  # map block -> expected byte (None: not attached)
        self.map_block = None
        self.snapshot = None
        self.image_file = None  # a plain loop device's file: resizable
        self.resized = False  # since the last take, attached
        self.generations = set()

    def content(self):
        return self.disk.content[self.first:self.first + self.blocks]


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
        self.lost = {}  # device index -> its error: resized while held
        # (-ERANGE), its partition deleted while held (-ENODEV), or its
        # copy-on-write failed under an injected fault (found at its end)
        self.faulted = False  # its device was written under a fault
        self.fault_kinds = set()  # the faults under it while held
        self.on_store = False  # its storage is the dm store device


def discard_supported(path):
    name = os.path.basename(os.path.realpath(path))
    sys_dir = os.path.realpath(f"/sys/class/block/{name}")
    if os.path.exists(os.path.join(sys_dir, "partition")):
        sys_dir = os.path.dirname(sys_dir)
    try:
        return int(open(os.path.join(sys_dir, "queue", "discard_max_bytes")).read()) > 0
    except OSError:
        return False


class Model:
    def __init__(self, seed, workdir):
        self.rng = random.Random(seed)
        self.seed = seed
        self.workdir = workdir
        self.checks = 0
        self.failures = 0
        self.version = 0
        self.op = 0
        self.snapshots = []
        # device index -> (generation, blocks, image edited since) at its
        # last backup
        self.backups = {}
        # device path -> {point id: (disk, first block, block versions)}:
        # the restore points kept (the backups keep the newest KEEP_POINTS)
        self.points = {}
        self.state_dir = os.path.join(workdir, "state")
        self.buf = mmap.mmap(-1, BLOCK * 64)
        self.disks = []
        self.devices = []
        self.loops = []
        self.linear = None
        self.store = None
        self.fs = None
        self.nullb = None
        # Two plain loop devices.
        for _ in range(2):
            disk = self.new_disk()
            dev = self.add_device(self.new_loop(disk.index), disk, 0, DEV_BLOCKS)
            dev.image_file = os.path.join(workdir, f"disk{disk.index}.img")
        # A partitioned one: MBR, two Linux partitions (512-byte sectors).
        disk = self.new_disk()
        loop = self.new_loop(disk.index, partitions=True)
        self.add_device(loop, disk, 0, DEV_BLOCKS, trackable=False)
        for n, (first, blocks) in enumerate(PARTS, 1):
            part = f"{loop}p{n}"
            for _ in range(50):
                if os.path.exists(part):
                    break
                time.sleep(0.1)
            self.add_device(part, disk, first, blocks)
        self.part_disk = loop
        self.part3 = self.add_device(f"{loop}p3", disk, *PART3)
        self.part3.present = False
        # dm-linear over a part of a loop device never written directly.
        lower = self.new_loop(len(self.disks) + 100)
        self.linear = f"blksnap-model-{os.getpid()}"
        run("dmsetup", "create", "--noudevsync", self.linear, "--table",
            f"0 {LINEAR[1] * 8} linear {lower} {LINEAR[0] * 8}")
        run("dmsetup", "mknodes", self.linear)
        self.lower = lower
        disk = Disk(len(self.disks), LINEAR[1])
        self.disks.append(disk)
        self.dm = self.add_device(f"/dev/mapper/{self.linear}", disk, 0, LINEAR[1])
        # Injected faults: None, or "read", "write", "error" while one lasts.
        self.fault = None
        self.unsure = {}  # disk block -> (old, ..., new): a failed write's
        self.read_fault = self.probe_read_fault()
        self.fault_target = None  # "dm" (the original) or "store"
        # A dm device over a loop device: a snapshot's storage sometimes.
        self.store_lower = self.new_loop(len(self.disks) + 200, blocks=STORE_BLOCKS)
        self.store = f"blksnap-model-store-{os.getpid()}"
        run("dmsetup", "create", "--noudevsync", self.store, "--table",
            f"0 {STORE_BLOCKS * 8} linear {self.store_lower} 0")
        run("dmsetup", "mknodes", self.store)
        self.store_free = True
        # A memory-backed null_blk disk.
        self.nullb = self.new_nullb()
        disk = self.new_disk()
        self.add_device(self.nullb, disk, 0, DEV_BLOCKS)
        for dev in self.live():
            dev.discard_ok = discard_supported(dev.path)
            if dev.first == 0 and dev.blocks == len(dev.disk.content):
                self.write(dev, 0, dev.blocks, direct=True)
        # ext4 on a loop device of its own (model_fs.py).
        self.fs = model_fs.FsModel(self, run, workdir)

    def live(self):
        return [d for d in self.devices if d.present]

    def usable(self):
        """The devices that can be read now: not the dm device while a
        fault lasts."""
        return [d for d in self.live() if not (self.fault_target == "dm" and d is self.dm)]

    def new_disk(self):
        disk = Disk(len(self.disks), DEV_BLOCKS)
        self.disks.append(disk)
        return disk

    def new_loop(self, n, partitions=False, blocks=DEV_BLOCKS):
        img = os.path.join(self.workdir, f"disk{n}.img")
        with open(img, "wb") as f:
            f.truncate(blocks * BLOCK)
            if partitions:
                table = b""
                for first, blocks in PARTS:
                    table += struct.pack("<4xB3xII", 0x83, first * 8, blocks * 8)
                f.seek(446)
                f.write(table + bytes(16 * (4 - len(PARTS))) + b"\x55\xaa")
        args = ["losetup", "--find", "--show"] + (["-P"] if partitions else []) + [img]
        path = run(*args).stdout.strip()
        self.loops.append(path)
        return path

    def new_nullb(self):
        if not os.path.isdir("/sys/kernel/config/nullb"):
            if not os.path.isdir("/sys/module/null_blk"):
                run("modprobe", "null_blk", "nr_devices=0")
            if not os.path.isdir("/sys/kernel/config/nullb"):
                run("mount", "-t", "configfs", "none", "/sys/kernel/config")
        os.mkdir(NULLB)
        settings = [("size", DEV_BLOCKS * BLOCK >> 20), ("blocksize", 4096),
                    ("memory_backed", 1), ("discard", 1)]
        for name, value in settings:
            with open(os.path.join(NULLB, name), "w") as f:
                f.write(f"{value}\n")
        before = set(os.listdir("/sys/block"))
        with open(os.path.join(NULLB, "power"), "w") as f:
            f.write("1\n")
        new = sorted(set(os.listdir("/sys/block")) - before)
        if len(new) != 1:
            raise RuntimeError(f"null_blk: new disks {new}")
        path = f"/dev/{new[0]}"
        for _ in range(50):
            if os.path.exists(path):
                return path
            time.sleep(0.1)
        raise RuntimeError(f"no {path}")

    def add_device(self, path, disk, first, blocks, trackable=True):
        dev = Device(len(self.devices), path, disk, first, blocks, trackable)
        self.devices.append(dev)
        return dev

    # ---- data
    def pattern(self, disk, block, version):
        if version < 0:
            return bytes(BLOCK)
        return struct.pack("<IIQ", disk.index, block, version + (self.seed << 32)) * (BLOCK // 16)

    def fail(self, what):
        self.failures += 1
        print(f"model: FAIL at op {self.op}: {what}", flush=True)

    def log(self, what):
        if VERBOSE:
            print(f"model: op {self.op}: {what}", flush=True)

    # ---- I/O
    def write_blocks(self, path, disk, first, disk_first, count, direct):
        """Write the current version's pattern of disk blocks
        [disk_first, disk_first + count) to blocks [first, ...) of path."""
        flags = os.O_WRONLY | (os.O_DIRECT if direct else 0)
        fd = os.open(path, flags)
        try:
            done = 0
            while done < count:
                n = min(64, count - done)
                for j in range(n):
                    data = self.pattern(disk, disk_first + done + j, self.version)
                    self.buf[j * BLOCK:(j + 1) * BLOCK] = data
                os.pwritev(fd, [memoryview(self.buf)[:n * BLOCK]], (first + done) * BLOCK)
                done += n
            if not direct:
                os.fsync(fd)
        finally:
            os.close(fd)

    def write(self, dev, first, count, direct):
        self.version += 1
        self.mark(dev, first, count)
        self.behind(dev, "written")
        if self.fault_target == "dm" and dev is self.dm:
            self.write_faulted(dev, first, count)
            return
        self.write_blocks(dev.path, dev.disk, first, dev.first + first, count, direct)
        for b in range(dev.first + first, dev.first + first + count):
            dev.disk.content[b] = self.version

    def write_faulted(self, dev, first, count):
        """A direct write to the dm device while a fault lasts: it is
        marked in the change map (admitted before the device fails it);
        it must succeed when only reads fail and fail otherwise; a failed
        write leaves each block old or new (resolved at the fault's end)."""
        if dev.snapshot:
            dev.snapshot.faulted = True
        try:
            self.write_blocks(dev.path, dev.disk, first, dev.first + first, count, True)
            ok = True
        except OSError as e:
            ok = False
            self.log(f"write failed: {e}")
        self.checks += 1
        if ok != (self.fault == "read"):
            self.fail(f"{dev.path}: a write {'succeeded' if ok else 'failed'} "
                      f"under a {self.fault} fault")
        for b in range(dev.first + first, dev.first + first + count):
            if ok:
                dev.disk.content[b] = self.version
                self.unsure.pop(b, None)
            else:
                self.unsure[b] = self.unsure.get(b, (dev.disk.content[b],)) + (self.version,)

    def discard(self, dev, first, count, zeroout):
        self.mark(dev, first, count)
        self.behind(dev, "discarded")
        fd = os.open(dev.path, os.O_WRONLY)
        try:
            fcntl.ioctl(fd, BLKZEROOUT if zeroout else BLKDISCARD,
                        struct.pack("QQ", first * BLOCK, count * BLOCK))
        finally:
            os.close(fd)
        for b in range(dev.first + first, dev.first + first + count):
            dev.disk.content[b] = -1

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
    def map_range(self, dev, first, count):
        """The map blocks of dev's blocks [first, first + count)."""
        return range(first * BLOCK // dev.map_block,
                     ((first + count) * BLOCK - 1) // dev.map_block + 1)

    def mark(self, dev, first, count):
        """A write through dev: marked in the map of every tracked device
        of its disk whose blocks it covers."""
        start, end = dev.first + first, dev.first + first + count
        for t in self.devices:
            if t.disk is not dev.disk or not t.attached:
                continue
            lo, hi = max(start, t.first), min(end, t.first + t.blocks)
            if lo >= hi:
                continue
            for m in self.map_range(t, lo - t.first, hi - lo):
                if m < len(t.marks):  # a grown device: its old map
                    t.marks[m] = t.changes + 1

    def behind(self, dev, what):
        """A write through dev while some device is saved (cbtsave): the
        block layer counts it for dev (a partition's counted for its whole
        disk too), so a saved device written, or a saved partition whose
        whole disk was written through itself, must break its chain."""
        for t in self.devices:
            if t.saved and t.broken is None and t.disk is dev.disk and (
                    t is dev or (dev.first == 0 and dev.blocks == len(dev.disk.content)
                                 and not dev.trackable)):
                t.broken = f"{what} through {dev.path}"

    def check_map(self, dev):
        got = blksnap_ioctl.cbtmap(dev.path)
        self.checks += 1
        # While a snapshot holds the device, the map read is the take's.
        want = bytes(dev.snapshot.frozen_marks[dev.index] if dev.snapshot else dev.marks)
        if got != want:
            bad = [i for i in range(min(len(got), len(want))) if got[i] != want[i]]
            self.fail(f"{dev.path}: change map differs at {len(bad)} blocks "
                      f"(length {len(got)}, want {len(want)}), first {bad[:5]}: "
                      f"got {[got[i] for i in bad[:5]]} want {[want[i] for i in bad[:5]]}")

    def cbtinfo(self, dev):
        return blksnap_ioctl.cbtinfo(dev.path)

    def expect_unattached(self, path, problem):
        """PATH has no tracker: its cbtinfo request fails."""
        self.checks += 1
        try:
            blksnap_ioctl.cbtinfo(path)
            self.fail(f"{path}: {problem}")
        except OSError:
            pass

    # ---- operations
    def op_write(self):
        dev = self.rng.choice(self.live())
        if self.fault and self.rng.random() < 0.5:
            # A fault lasts a few operations: use them.
            st = self.store_snapshot()
            if self.fault_target == "dm":
                dev = self.dm
            elif st:
                dev = self.rng.choice(st.devices)
                if not dev.present:
                    return
        count = self.rng.choice([1, 1, 2, 8, 33])
        first = self.rng.randrange(dev.blocks - count)
        direct = self.rng.random() < 0.7 or (self.fault_target == "dm" and dev is self.dm)
        self.log(f"write {dev.path} {first}+{count} direct={direct}")
        self.write(dev, first, count, direct)

    def op_discard(self):
        dev = self.rng.choice(self.usable())
        count = min(self.rng.choice([1, 16, 256]), dev.blocks // 2)
        first = self.rng.randrange(dev.blocks - count)
        zeroout = self.rng.random() < 0.5 or not dev.discard_ok
        self.log(f"{'zeroout' if zeroout else 'discard'} {dev.path} {first}+{count}")
        self.discard(dev, first, count, zeroout)

    def op_attach(self):
        dev = self.rng.choice([d for d in self.usable() if d.trackable])
        if dev.snapshot or dev.saved:
            return
        if dev.attached:
            self.log(f"detach {dev.path}")
            run("blksnap", "detach", "-d", dev.path)
            dev.attached = False
            dev.marks = None
            return
        self.log(f"attach {dev.path}")
        run("blksnap", "attach", "-d", dev.path)
        self.attached(dev)
        self.checks += 1
        if dev.changes != 0:
            self.fail(f"{dev.path}: a fresh attach has changes_number={dev.changes}")

    def attached(self, dev):
        info = self.cbtinfo(dev)
        dev.attached = True
        dev.resized = False
        self.new_generation(dev, info)
        dev.map_block = int(info["block_size"])
        dev.changes = int(info["changes_number"])
        dev.marks = [0] * int(info["block_count"])
        self.checks += 1
        if int(info["block_count"]) != -(-dev.blocks * BLOCK // dev.map_block):
            self.fail(f"{dev.path}: block_count {info['block_count']} of "
                      f"{info['block_size']} bytes for {dev.blocks * BLOCK} bytes")

    def new_generation(self, dev, info):
        gen = info["generation_id"]
        self.checks += 1
        if gen in dev.generations:
            self.fail(f"{dev.path}: generation {gen} again")
        dev.generations.add(gen)

    def op_take(self):
        free = [d for d in self.usable() if d.trackable and not d.snapshot and not d.saved]
        if not free or len(self.snapshots) >= 2:
            return
        devs = self.rng.sample(free, self.rng.randint(1, min(3, len(free))))
        overflow = self.rng.random() < 0.2
        limit = "1M" if overflow else "32M"
        storage = os.path.join(self.workdir, f"store{self.op}")
        on_store = (not overflow and self.store_free and self.fault_target != "store"
                    and self.rng.random() < 0.3)
        if on_store:
            storage = f"/dev/mapper/{self.store}"
            self.store_free = False
        self.log(f"take {[d.path for d in devs]} limit {limit} storage {storage}")
        args = ["blksnap", "snapshot_create", "-f", storage, "-l", limit]
        for d in devs:
            args += ["-d", d.path]
        uuid = run(*args).stdout.strip()
        run("blksnap", "snapshot_take", "-i", uuid)
        s = Snapshot(uuid, devs, limit)
        s.storage = storage
        s.on_store = on_store
        for d in devs:
            info = self.took(d)
            s.frozen_marks[d.index] = list(d.marks)
            d.snapshot = s
            s.frozen[d.index] = d.content()
            # blksnap(4): the image of device MAJ:MIN (an exec less).
            rdev = os.stat(d.path).st_rdev
            s.images[d.index] = f"/dev/blksnap-image_{os.major(rdev)}:{os.minor(rdev)}"
            self.checks += 1
            if not os.path.exists(s.images[d.index]):
                self.fail(f"{d.path}: no image {s.images[d.index]} after the take")
            info = info or self.cbtinfo(d)
            self.checks += 1
            if int(info["block_count"]) != len(d.marks):
                self.fail(f"{d.path}: block_count {info['block_count']}, want {len(d.marks)}")
            if int(info["changes_number"]) != d.changes:
                self.fail(f"{d.path}: changes_number {info['changes_number']}, want {d.changes}")
        self.snapshots.append(s)

    def took(self, d):
        """What a take does to d's change map; returns the cbtinfo read
        when it had to read one."""
        if not d.attached:  # snapshot_create attaches
            self.attached(d)
            d.changes = 0  # read after the take: before it, 0
        # Take: a new changes number; the marks stay, and the map read
        # while the snapshot is held is the one of this moment. Take 255
        # of a generation clears the map and starts at 1 again.
        # So does the first take after a resize, with a map of the
        # new size.
        info = None
        if d.resized:
            info = self.cbtinfo(d)
            self.new_generation(d, info)
            d.map_block = int(info["block_size"])
            d.marks = [0] * -(-d.blocks * BLOCK // d.map_block)
            d.changes = 1
            d.resized = False
        elif d.changes == 254:
            d.marks = [0] * len(d.marks)
            d.changes = 1
        else:
            d.changes += 1
        return info

    def op_backup(self):
        """blksnap backup of a random set of devices into one directory:
        the first backup of a device is full, the next incremental unless
        its change map started a new generation since (attach, module
        reload, resize, a broken cbtrestore, a re-added partition) or its
        image file was written since; every image is the device as at
        the take, block by block, and so is its restore point, in a format
        picked at random (raw points beside qcow2 chains: both kinds are
        dropped by --keep)."""
        free = [d for d in self.usable() if d.trackable and not d.snapshot and not d.saved]
        if not free:
            return
        devs = self.rng.sample(free, self.rng.randint(1, min(3, len(free))))
        out_dir = os.path.join(self.workdir, "backup")
        want = {}
        for d in devs:
            name = d.path[len("/dev/"):].replace("/", "-")
            img = os.path.join(out_dir, name + ".img")
            last = self.backups.get(d.index)
            if last and self.rng.random() < 0.15 and os.path.exists(img):
                self.log(f"edit backup image {img}")
                with open(img, "r+b") as f:
                    f.seek(self.rng.randrange(d.blocks) * BLOCK)
                    f.write(b"edited")
                self.backups[d.index] = last = (last[0], last[1], True)
            want[d.index] = (img, last)
        self.log(f"backup {[d.path for d in devs]}")
        args = ["blksnap", "backup", "-o", out_dir, "-f", self.workdir, "-l", "32M", "-j",
                "--keep", str(KEEP_POINTS),
                "--format", self.rng.choice(["auto", "auto", "raw", "qcow2"])]
        for d in devs:
            args += ["-d", d.path]
        out = run(*args).stdout
        reports = {}
        for line in out.splitlines():
            if line.startswith("{"):
                r = json.loads(line)
                reports[r["device"]] = r
        for d in devs:
            self.took(d)
            gen = self.cbtinfo(d)["generation_id"]
            img, last = want[d.index]
            r = reports.get(d.path)
            self.checks += 1
            if not r:
                self.fail(f"backup of {d.path}: no report in {out!r}")
                continue
            # blksnap(8) BACKUP: full, and why (words of its reason: where
            # several reasons hold, any one of them).
            if last is None:
                why = ["no state file"]
            else:
                why = [w for w, holds in [("size changed", last[1] != d.blocks),
                                          ("generation changed", last[0] != gen),
                                          ("image file changed", last[2])] if holds]
            mode = "full" if why else "incremental"
            why = why or ["changes since"]
            self.log(f"backup {d.path}: {r['mode']} ({r['reason']}), want {mode} ({why})")
            if r["mode"] != mode or not any(w in r["reason"] for w in why):
                self.fail(f"backup of {d.path}: {r['mode']} ({r['reason']}), want {mode} ({why})")
            if r["generation_id"] != gen or r["changes_number"] != d.changes:
                self.fail(f"backup of {d.path}: generation {r['generation_id']} changes "
                          f"{r['changes_number']}, tracker {gen} {d.changes}")
            self.backups[d.index] = (gen, d.blocks, False)
            self.checks += 1
            with open(img, "rb") as f:
                data = f.read()
            if len(data) != d.blocks * BLOCK:
                self.fail(f"backup of {d.path}: image of {len(data)} bytes, want {d.blocks * BLOCK}")
                continue
            for b in range(d.blocks):
                if data[b * BLOCK:(b + 1) * BLOCK] != self.pattern(d.disk, d.first + b,
                                                                   d.disk.content[d.first + b]):
                    self.fail(f"backup of {d.path}: image block {b} is not the take's")
                    break
            self.check_points(d, r, out_dir)

    def check_points(self, d, r, out_dir):
        """The backup's restore point holds the take; the points kept are
        the newest KEEP_POINTS, and one of the older ones (edits of the
        image file since included) still reads as at its own take."""
        kept = self.points.setdefault(d.path, {})
        kept[r["point"]] = (d.disk, d.first, list(d.disk.content[d.first:d.first + d.blocks]))
        for old in sorted(kept)[:-KEEP_POINTS]:
            del kept[old]
        listed = sorted(j["point"] for j in map(json.loads, run(
            "blksnap", "points", "-o", out_dir, "-j").stdout.splitlines()) if j["device"] == d.path)
        self.checks += 1
        if listed != sorted(kept):
            self.fail(f"points of {d.path}: {listed}, want {sorted(kept)}")
            return
        self.check_point(d.path, r["point"], out_dir)
        if len(kept) > 1 and self.rng.random() < 0.5:
            self.check_point(d.path, self.rng.choice(sorted(kept)[:-1]), out_dir)

    def check_point(self, path, point, out_dir):
        """blksnap restore of the point into a file (every block checked
        against the point's checksums) gives the device at the point's
        take."""
        disk, first, versions = self.points[path][point]
        target = os.path.join(self.workdir, "restored")
        self.checks += 1
        p = run("blksnap", "restore", "-o", out_dir, "-s", path, "-p", str(point), "-d", target,
                check=False)
        if p.returncode != 0:
            self.fail(f"restore of point {point} of {path}: exit {p.returncode}: {p.stderr.strip()}")
            return
        with open(target, "rb") as f:
            data = f.read()
        os.unlink(target)
        if len(data) != len(versions) * BLOCK:
            self.fail(f"point {point} of {path}: {len(data)} bytes, want {len(versions) * BLOCK}")
            return
        for b, v in enumerate(versions):
            if data[b * BLOCK:(b + 1) * BLOCK] != self.pattern(disk, first + b, v):
                self.fail(f"point {point} of {path}: block {b} is not its take's")
                return

    def op_image_write(self):
        # Only into storages that cannot overflow: a write to an image
        # copies its chunk first.
        held = [s for s in self.snapshots if s.limit != "1M"]
        if not held:
            return
        s = self.rng.choice(held)
        if self.fault_target == "store" and s.on_store:
            return
        devs = [d for d in s.devices if d.index not in s.lost and d in self.usable()]
        if not devs:
            return
        dev = self.rng.choice(devs)
        count = self.rng.choice([1, 1, 2, 8, 33])
        first = self.rng.randrange(dev.blocks - count)
        direct = self.rng.random() < 0.7
        self.log(f"image write {s.images[dev.index]} ({dev.path}) {first}+{count} direct={direct}")
        self.version += 1
        # blksnap(4): the live map marks it with the next number, the map
        # frozen at the take with the take's.
        for m in self.map_range(dev, first, count):
            dev.marks[m] = dev.changes + 1
            s.frozen_marks[dev.index][m] = dev.changes
        self.write_blocks(s.images[dev.index], dev.disk, first, dev.first + first, count, direct)
        for b in range(first, first + count):
            s.frozen[dev.index][b] = self.version

    def op_resize(self):
        """Grow or shrink a plain loop device (truncate, losetup -c).
        blksnap(4): a snapshot holding it is lost with ERANGE, its change
        map starts a new generation at the next take."""
        dev = self.rng.choice([d for d in self.devices if d.image_file])
        if dev.snapshot and (dev.snapshot.limit == "1M" or dev.snapshot.faulted
                             or -19 in dev.snapshot.lost.values()):
            return  # one reason to fail per snapshot: the event says which
        blocks = self.rng.choice([DEV_BLOCKS - 256, DEV_BLOCKS, DEV_BLOCKS + 256])
        if blocks == dev.blocks:
            blocks = DEV_BLOCKS - 512 if dev.blocks > DEV_BLOCKS - 512 else DEV_BLOCKS + 512
        self.log(f"resize {dev.path} {dev.blocks} -> {blocks} blocks")
        os.truncate(dev.image_file, blocks * BLOCK)
        run("losetup", "-c", dev.path)
        # What a shrink cut off comes back as zeros.
        dev.disk.content = dev.disk.content[:blocks] + [-1] * max(0, blocks - dev.blocks)
        dev.blocks = blocks
        if dev.attached:
            dev.resized = True
        if dev.saved and dev.broken is None:
            dev.broken = "resized"
        if dev.snapshot:
            dev.snapshot.lost[dev.index] = -34

    def op_partition(self):
        """Add the third partition of the partitioned disk, or delete it:
        detached first, or attached, or held by a snapshot. blksnap(4):
        a deleted partition loses its tracker (a re-added one starts a new
        generation), and a snapshot holding it is corrupted with -ENODEV;
        a deletion the block layer refuses (EBUSY) changes nothing."""
        p = self.part3
        if any(d.saved and d.disk is p.disk for d in self.devices):
            return  # its partitions' write counts change: not modelled
        if not p.present:
            if p.snapshot:
                return  # its image's name is the deleted one's until destroyed
            first, blocks = PART3
            self.log(f"add partition {p.path} {first}+{blocks}")
            run("addpart", self.part_disk, "3", str(first * 8), str(blocks * 8))
            for _ in range(50):
                if os.path.exists(p.path):
                    break
                time.sleep(0.1)
            p.present = True
            p.discard_ok = discard_supported(p.path)
            self.expect_unattached(p.path, "a new partition is attached")
            return
        s = p.snapshot
        if s and (s.limit == "1M" or s.lost or s.faulted):
            return  # one reason to fail per snapshot: the event says which
        if p.attached and not s and self.rng.random() < 0.5:
            self.log(f"detach {p.path}")
            run("blksnap", "detach", "-d", p.path)
            p.attached = False
            p.marks = None
        rdev = os.stat(p.path).st_rdev
        self.log(f"delete partition {p.path} attached={p.attached} held={bool(s)}")
        r = run("delpart", self.part_disk, "3", check=False)
        self.checks += 1
        if r.returncode != 0:
            # Refused: the partition, its tracker and snapshot stay.
            if not os.path.exists(p.path):
                self.fail(f"{p.path}: delpart failed ({r.stderr.strip()}) and removed it")
            self.log(f"delpart refused: {r.stderr.strip()}")
            return
        p.present = False
        name = os.path.basename(p.path)
        for _ in range(50):
            if not os.path.exists(f"/sys/class/block/{name}"):
                break
            time.sleep(0.1)
        else:
            self.fail(f"{p.path}: still in sysfs after delpart")
        listed = "/sys/class/misc/blksnap-control/attached"
        if os.path.exists(listed):
            self.checks += 1
            if f"{os.major(rdev)}:{os.minor(rdev)}" in open(listed).read().split():
                self.fail(f"{p.path}: deleted, still listed as attached")
        p.attached = False
        p.marks = None
        if s:
            s.lost[p.index] = -19

    def op_cbtsave(self):
        """cbtsave a tracked device (no snapshot, nothing holding it),
        maybe write to it while saved, later cbtrestore (op_cbtrestore):
        blksnap(8): the map continues (same generation, changes number
        and marks) only if nothing wrote to it since the save; otherwise a
        new generation starts and the command says why."""
        devs = [d for d in self.live() if d.attached and not d.snapshot and not d.resized
                and d.disk.index < 3]  # the loop devices and partitions
        if not devs:
            return
        d = self.rng.choice(devs)
        self.log(f"cbtsave {d.path}")
        gen = self.cbtinfo(d)["generation_id"]
        run("blksnap", "cbtsave", "-d", d.path, "--state-dir", self.state_dir)
        self.expect_unattached(d.path, "still attached after cbtsave")
        d.saved = (gen, d.changes, list(d.marks))
        d.broken = None
        d.attached = False
        d.marks = None
        if self.rng.random() < 0.3:
            count = self.rng.choice([1, 8])
            first = self.rng.randrange(d.blocks - count)
            self.log(f"write behind {d.path} {first}+{count}")
            self.write(d, first, count, direct=True)

    def op_cbtrestore(self):
        saved = [d for d in self.devices if d.saved]
        if saved:
            self.cbtrestore(self.rng.choice(saved))

    def cbtrestore(self, d):
        gen, changes, marks = d.saved
        self.log(f"cbtrestore {d.path} (broken: {d.broken})")
        out = run("blksnap", "cbtrestore", "-d", d.path, "--state-dir", self.state_dir).stdout
        d.saved = None
        info = self.cbtinfo(d)
        self.checks += 1
        if d.broken is None:
            if "restored" not in out or info["generation_id"] != gen \
                    or info["changes_number"] != changes:
                self.fail(f"{d.path}: nothing wrote while saved, yet: {out.strip()!r}, "
                          f"generation {info['generation_id']} (saved {gen}), "
                          f"changes {info['changes_number']} (saved {changes})")
                return
            d.attached = True
            d.marks = marks
            self.check_map(d)
            return
        if "chain broken" not in out or "new generation starts:" not in out:
            self.fail(f"{d.path}: {d.broken} while saved, yet: {out.strip()!r}")
        self.attached(d)
        self.check_map(d)  # all zeros

    def op_reload(self):
        """Detach every device, rmmod, insmod: the next attaches start
        new generations."""
        if not os.environ.get("BLKSNAP_KO") or self.fault:
            return
        self.log("module reload")
        self.fs.detach()
        for s in list(self.snapshots):
            self.destroy(s)
        for d in self.live():
            if d.attached:
                run("blksnap", "detach", "-d", d.path)
                d.attached = False
                d.marks = None
        run("rmmod", "blksnap")
        run("insmod", os.environ["BLKSNAP_KO"], *os.environ.get("BLKSNAP_MODPARAMS", "").split())

    # ---- injected faults (dm-flakey, dm-error under the dm device)
    def probe_read_fault(self):
        """Whether dm-flakey can fail reads alone (error_reads; not in
        6.1's, where only writes or everything can fail)."""
        name = f"blksnap-probe-{os.getpid()}"
        r = run("dmsetup", "create", "--noudevsync", name, "--table",
                f"0 8 flakey {self.lower} 0 0 3600 1 error_reads", check=False)
        if r.returncode == 0:
            run("dmsetup", "remove", "--noudevsync", name)
        return r.returncode == 0

    def set_table(self, target, kind):
        """Swap the table of TARGET ("dm": the original, "store": the
        storage device) for KIND of fault (None: healthy again)."""
        if target == "dm":
            name, lower, sectors, offset = self.linear, self.lower, LINEAR[1] * 8, LINEAR[0] * 8
        else:
            name, lower, sectors, offset = self.store, self.store_lower, STORE_BLOCKS * 8, 0
        table = {
            None: f"linear {lower} {offset}",
            "read": f"flakey {lower} {offset} 0 3600 1 error_reads",
            "write": f"flakey {lower} {offset} 0 3600 1 error_writes",
            "error": "error",
        }[kind]
        run("dmsetup", "reload", name, "--table", f"0 {sectors} {table}")
        run("dmsetup", "suspend", "--nolockfs", "--noudevsync", name)
        run("dmsetup", "resume", "--noudevsync", name)

    def store_snapshot(self):
        return next((s for s in self.snapshots if s.on_store), None)

    def op_fault(self):
        """Start a fault below the dm device: its reads fail, or its
        writes, or everything (dm-error); it ends a few operations later
        (end_fault). Not while a snapshot holding it already failed for
        another reason: the event says one."""
        if self.fault:
            return
        targets = []
        s = self.dm.snapshot
        if not (s and (s.limit == "1M" or s.lost or s.overflow)):
            targets.append("dm")
        st = self.store_snapshot()
        if st and not (st.lost or st.overflow):
            targets.append("store")
        if not targets:
            return
        self.fault_target = self.rng.choice(targets)
        self.fault = self.rng.choice((["read"] if self.read_fault else []) + ["write", "error"])
        self.log(f"fault {self.fault} under the {self.fault_target} device")
        self.set_table(self.fault_target, self.fault)
        if self.fault_target == "store":
            s = st
            s.faulted = True  # any write to its devices may store
        if s:
            s.fault_kinds.add(self.fault)

    def end_fault(self):
        """The fault ends: a block a failed write left is old or new; a
        snapshot holding the device and written under the fault either
        reads as at the take or was marked failed with EIO (any error when
        only writes failed), with its event."""
        self.log(f"fault {self.fault} under the {self.fault_target} device ends")
        self.set_table(self.fault_target, None)
        self.fault = None
        if self.fault_target == "store":
            self.fault_target = None
            s = self.store_snapshot()
            if s:
                self.faulted_snapshot(s, s.devices)
            return
        self.fault_target = None
        dev = self.dm
        for b, allowed in sorted(self.unsure.items()):
            got = self.read_blocks(dev.path, b - dev.first, 1)[0]
            match = [v for v in allowed if got == self.pattern(dev.disk, b, v)]
            self.checks += 1
            if not match:
                self.fail(f"{dev.path}: block {b - dev.first} after a failed write holds "
                          f"neither its old nor its new data")
                break
            dev.disk.content[b] = match[-1]
        self.unsure = {}
        s = dev.snapshot
        if s and s.faulted:
            self.faulted_snapshot(s, [dev])

    def faulted_snapshot(self, s, devs):
        """After a fault under S: each of DEVS still reads as at the take
        or failed with EIO (with any error when only writes failed)."""
        for dev in devs:
            err = self.error_code(dev)
            self.checks += 1
            self.log(f"{dev.path} after {sorted(s.fault_kinds)} faults: snapshot error {err}")
            if err:
                if err >= 0 or (s.fault_kinds - {"write"} and err != -5):
                    self.fail(f"{dev.path}: failed under a {sorted(s.fault_kinds)} fault "
                              f"with {err}, want -5")
                s.lost[dev.index] = err
        self.check_snapshot(s)

    def op_fs(self):
        self.fs.op()

    def op_destroy(self):
        if not self.snapshots:
            return
        self.destroy(self.rng.choice(self.snapshots))

    def destroy(self, s):
        self.check_snapshot(s)
        self.log(f"destroy {s.uuid}")
        run("blksnap", "snapshot_destroy", "-i", s.uuid)
        for d in s.devices:
            d.snapshot = None
        if s.on_store:
            self.store_free = True
        else:
            os.unlink(s.storage)
        self.snapshots.remove(s)

    def error_code(self, dev):
        return blksnap_ioctl.snapshot_info(dev.path)[0]

    def check_snapshot(self, s):
        if self.fault_target == "store" and s.on_store:
            self.check_snapshot_faulted(s)
            return
        for d in s.devices:
            if self.fault_target == "dm" and d is self.dm:
                continue  # checked when the fault ends
            if d.index in s.lost and not d.present:
                # Deleted: no device to ask; its image must not read.
                try:
                    self.read_blocks(s.images[d.index], 0, 1)
                    self.fail(f"{d.path}: the image of a deleted partition was read")
                except OSError:
                    pass
                continue
            err = self.error_code(d)
            self.checks += 1
            if d.index in s.lost:
                if err != s.lost[d.index]:
                    self.fail(f"{d.path}: lost while held: snapshot error {err}, "
                              f"want {s.lost[d.index]}")
                try:
                    self.read_blocks(s.images[d.index], 0, 1)
                    self.fail(f"{d.path}: the image of a device lost while held was read")
                except OSError:
                    pass
                continue
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
            count = min(256, d.blocks)
            first = self.rng.randrange(d.blocks - count + 1)
            blocks = self.read_blocks(s.images[d.index], first, count)
            self.checks += 1
            for j, data in enumerate(blocks):
                want = self.pattern(d.disk, d.first + first + j, s.frozen[d.index][first + j])
                if data != want:
                    self.fail(f"{d.path}: image block {first + j} is not the take's")
                    break
        if (s.overflow or s.lost) and not s.event_seen:
            ev = blksnap_ioctl.wait_event(s.uuid, 2000)
            self.checks += 1
            s.event_seen = True
            codes = {-28} if s.overflow else set(s.lost.values())
            if not ev or ev["code"] != blksnap_ioctl.EVENT_CORRUPTED or ev["err_code"] not in codes:
                self.fail(f"snapshot {s.uuid}: lost without its event: {ev!r}")

    def check_snapshot_faulted(self, s):
        """While its storage fails: an image read may fail, one that
        succeeds returns the take."""
        for d in s.devices:
            if d.index in s.lost:
                continue
            first = self.rng.randrange(d.blocks - 64 + 1)
            try:
                blocks = self.read_blocks(s.images[d.index], first, 64)
            except OSError:
                continue
            self.checks += 1
            for j, data in enumerate(blocks):
                if data != self.pattern(d.disk, d.first + first + j, s.frozen[d.index][first + j]):
                    self.fail(f"{d.path}: image block {first + j} under a storage fault "
                              f"is not the take's")
                    break

    def check_devices(self, maps=3):
        for d in self.usable():
            count = min(256, d.blocks)
            first = self.rng.randrange(d.blocks - count + 1)
            blocks = self.read_blocks(d.path, first, count)
            self.checks += 1
            for j, data in enumerate(blocks):
                if data != self.pattern(d.disk, d.first + first + j, d.disk.content[d.first + first + j]):
                    self.fail(f"{d.path}: block {first + j} lost a write")
                    break
        # A map read is an exec: a few of them per check.
        # A resized device's map until its next take: not promised.
        attached = [d for d in self.usable() if d.attached and not d.resized]
        for d in self.rng.sample(attached, min(maps, len(attached))):
            self.check_map(d)

    def step(self):
        ops = [(self.op_write, 40), (self.op_discard, 5), (self.op_attach, 8),
               (self.op_take, 8), (self.op_destroy, 6), (self.op_image_write, 10),
               (self.op_resize, 3), (self.op_reload, 1), (self.op_partition, 4),
               (self.op_cbtsave, 3), (self.op_cbtrestore, 3), (self.op_backup, 4),
               (self.op_fault, 4), (self.op_fs, 12)]
        fn = self.rng.choices([o for o, _ in ops], [w for _, w in ops])[0]
        fn()
        if self.fault and fn != self.op_fault and self.rng.random() < 0.2:
            self.end_fault()
        if fn in (self.op_take, self.op_destroy) or self.rng.random() < 0.2:
            self.check_devices()
        for s in self.snapshots:
            if self.rng.random() < 0.3:
                self.check_snapshot(s)

    def close(self):
        if self.fault:
            self.end_fault()
        for d in self.devices:
            if d.saved:
                self.cbtrestore(d)
        for s in list(self.snapshots):
            self.check_snapshot(s)
            run("blksnap", "snapshot_destroy", "-i", s.uuid)
            for d in s.devices:
                d.snapshot = None
            self.snapshots.remove(s)
        self.check_devices(maps=len(self.devices))
        self.fs.close()
        if self.part3.present:
            run("delpart", self.part_disk, "3", check=False)

    def teardown(self):
        if self.fs:
            self.fs.teardown()
        for s in self.snapshots:
            run("blksnap", "snapshot_destroy", "-i", s.uuid, check=False)
        for d in self.devices:
            if d.attached:
                run("blksnap", "detach", "-d", d.path, check=False)
        if self.linear:
            run("dmsetup", "remove", "--noudevsync", self.linear, check=False)
        if self.store:
            run("dmsetup", "remove", "--noudevsync", self.store, check=False)
        for loop in self.loops:
            run("losetup", "-d", loop, check=False)
        if self.nullb:
            with open(os.path.join(NULLB, "power"), "w") as f:
                f.write("0\n")
            os.rmdir(NULLB)


def main():
    seed, ops, workdir = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    print(f"model: seed={seed} ops={ops} (replay: MODEL_SEED={seed} MODEL_OPS={ops})", flush=True)
    m = None
    try:
        m = Model(seed, workdir)
        for m.op in range(1, ops + 1):
            m.step()
            if m.failures:
                break
        m.close()
    except Exception as e:  # an operation the model expected to work failed
        if m is None:
            raise
        m.failures += 1
        print(f"model: FAIL at op {m.op}: {e}", flush=True)
    finally:
        if m is not None:
            m.teardown()
    print(f"model: seed={seed} ops={m.op} checks={m.checks} failures={m.failures}")
    return 1 if m.failures else 0


if __name__ == "__main__":
    sys.exit(main())
