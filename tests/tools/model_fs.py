"""The file system part of the model (tests/tools/model.py).

An ext4 file system on a loop device of its own, written the way careful
programs write: a file's new version goes to a temporary file, which is
fsync'd and renamed over the file, and the directory is fsync'd; files are
deleted the same way (unlink, fsync of the directory). Snapshots of it are
taken and held while it is written (copy-on-write of its metadata and
data). The take freezes the file system, so its image must pass
`e2fsck -fn` and, mounted read-only without a journal replay, hold exactly
the files durable at the take, each with its content at the take.
"""
import os
import struct

FS_BLOCKS = 6144  # 24 MiB
NAMES = 12  # files f0 .. f11


class FsModel:
    def __init__(self, model, run, workdir):
        self.m = model
        self.run = run
        self.dir = os.path.join(workdir, "fs")
        self.mnt = os.path.join(workdir, "fsimg")
        self.files = {}  # name -> version, durable (fsync'd, renamed)
        self.version = 0
        self.held = None  # (uuid, storage, files at the take, image path)
        self.dev = model.new_loop("fs", blocks=FS_BLOCKS)
        run("mkfs.ext4", "-q", "-F", self.dev)
        os.mkdir(self.dir)
        os.mkdir(self.mnt)
        run("mount", self.dev, self.dir)
        self.mounted = True

    def content(self, name, version):
        n = int(name[1:])
        size = 4096 * (1 + (version * 7 + n) % 12) - 100 * (version % 3)
        return (struct.pack("<QQ", n, version) * (size // 16 + 1))[:size]

    def fsync_dir(self):
        fd = os.open(self.dir, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    # ---- operations
    def op(self):
        r = self.m.rng.random()
        if r < 0.5:
            for _ in range(self.m.rng.randint(1, 4)):
                self.write()
        elif r < 0.6:
            self.delete()
        elif r < 0.8:
            self.take()
        else:
            self.release()

    def write(self):
        name = f"f{self.m.rng.randrange(NAMES)}"
        self.version += 1
        self.m.log(f"fs write {name} version {self.version}")
        tmp = os.path.join(self.dir, name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, self.content(name, self.version))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, os.path.join(self.dir, name))
        self.fsync_dir()
        self.files[name] = self.version

    def delete(self):
        if not self.files:
            return
        name = self.m.rng.choice(sorted(self.files))
        self.m.log(f"fs delete {name}")
        os.unlink(os.path.join(self.dir, name))
        self.fsync_dir()
        del self.files[name]

    def take(self):
        """A snapshot of the file system's device, held until release()."""
        if self.held:
            return
        storage = os.path.join(self.m.workdir, f"fsstore{self.m.op}")
        self.m.log(f"fs take {self.dev}")
        uuid = self.run("blksnap", "snapshot_create", "-d", self.dev, "-f", storage,
                          "-l", "32M").stdout.strip()
        self.run("blksnap", "snapshot_take", "-i", uuid)
        rdev = os.stat(self.dev).st_rdev
        image = f"/dev/blksnap-image_{os.major(rdev)}:{os.minor(rdev)}"
        self.held = (uuid, storage, dict(self.files), image)
        self.check()

    def check(self):
        """The held snapshot's image: e2fsck -fn finds nothing, and
        mounted read-only (noload: the freeze left nothing to replay) it
        holds exactly the files durable at the take."""
        if not self.held:
            return
        _, _, files, image = self.held
        self.m.checks += 1
        r = self.run("e2fsck", "-fn", image, check=False)
        if r.returncode != 0:
            self.m.fail(f"fs image {image}: e2fsck -fn exit {r.returncode}: "
                        f"{(r.stdout + r.stderr).strip()[-500:]}")
            return
        self.run("mount", "-o", "ro,noload", image, self.mnt)
        try:
            self.m.checks += 1
            got = sorted(n for n in os.listdir(self.mnt) if n != "lost+found")
            if got != sorted(files):
                self.m.fail(f"fs image {image}: files {got}, want {sorted(files)}")
                return
            for name, version in files.items():
                with open(os.path.join(self.mnt, name), "rb") as f:
                    data = f.read()
                if data != self.content(name, version):
                    self.m.fail(f"fs image {image}: {name} is not version {version}")
                    return
        finally:
            self.run("umount", self.mnt)

    def release(self):
        """Check the held snapshot once more and destroy it."""
        if not self.held:
            return
        self.check()
        uuid, storage, _, _ = self.held
        self.m.log(f"fs destroy {uuid}")
        self.run("blksnap", "snapshot_destroy", "-i", uuid)
        os.unlink(storage)
        self.held = None

    def detach(self):
        """Before a module reload: no snapshot, no tracker."""
        self.release()
        self.run("blksnap", "detach", "-d", self.dev, check=False)

    def close(self):
        """The end of a run: the last image checked, the file system
        unmounted and checked, its files as written."""
        self.release()
        self.run("umount", self.dir)
        self.mounted = False
        self.m.checks += 1
        r = self.run("e2fsck", "-fn", self.dev, check=False)
        if r.returncode != 0:
            self.m.fail(f"fs {self.dev}: e2fsck -fn exit {r.returncode} after the run")

    def teardown(self):
        if self.held:
            self.run("blksnap", "snapshot_destroy", "-i", self.held[0], check=False)
        if self.mounted:
            self.run("umount", self.dir, check=False)
        self.run("blksnap", "detach", "-d", self.dev, check=False)
