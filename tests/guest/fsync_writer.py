#!/usr/bin/env python3
"""A writer of small files that records what it fsync'd, and its checker.

  fsync_writer.py write DIR RECORDS SEED
      Forever (until killed): rewrite one of NAMES files of DIR (in 8
      subdirectories) by rename-replace: the new version is written into a
      temporary file, fsync'd, renamed over the name, the directory
      fsync'd; only then is one line "SEQ NAME" appended to RECORDS (and
      flushed). Every few versions a temporary file is abandoned unrenamed
      and an old one removed, so the directories churn. A version's content
      is a function of its name and its sequence number: it carries its own
      header, so a reader can tell which version it holds and that it is
      whole.

  fsync_writer.py check DIR RECORDS LINES
      DIR is a file system image (mounted read-only) taken after line LINES
      of RECORDS was written: every name recorded in those lines must be in
      DIR with a whole version at least as new as its last record there
      (the take may have caught a newer one, fsync'd but not yet recorded);
      every other file the writer names in DIR must hold a whole version as
      well (the take freezes the file system: what was renamed in is
      complete). Prints "checked N names" or the differences, exit 1.
"""
import hashlib
import os
import random
import sys

NAMES = 96
DIRS = 8


def path_of(top, n):
    return os.path.join(top, "d%d" % (n % DIRS), "f%d" % n)


def content(n, seq):
    rnd = random.Random(n * 1000003 + seq)
    size = rnd.choice((0, 100, 1000, 4096, 5000, 12000, 33000))
    head = b"fsync_writer f%d seq %d size %d\n" % (n, seq, size)
    block = hashlib.sha256(head).digest()
    body = (block * (size // len(block) + 1))[:size]
    return head + body


def write(top, records, seed):
    rnd = random.Random(seed)
    for d in range(DIRS):
        os.makedirs(os.path.join(top, "d%d" % d), exist_ok=True)
    rec = os.open(records, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    dirfds = [os.open(os.path.join(top, "d%d" % d), os.O_RDONLY) for d in range(DIRS)]
    seq = 0
    while True:
        seq += 1
        n = rnd.randrange(NAMES)
        d = n % DIRS
        final = path_of(top, n)
        tmp = "%s.tmp%d" % (final, seq)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.write(fd, content(n, seq))
        os.fsync(fd)
        os.close(fd)
        if seq % 7 == 0:
            # Abandoned: left for a later removal.
            continue
        os.rename(tmp, final)
        os.fsync(dirfds[d])
        if seq % 7 == 1:
            for name in os.listdir(os.path.join(top, "d%d" % d)):
                if ".tmp" in name and int(name.split(".tmp")[1]) < seq - 50:
                    os.unlink(os.path.join(top, "d%d" % d, name))
        os.write(rec, b"%d f%d\n" % (seq, n))


def parse(data):
    """The version a file holds: (name number, seq), or None if not whole."""
    line, sep, _ = data.partition(b"\n")
    words = line.split()
    if not sep or len(words) != 6 or words[0] != b"fsync_writer":
        return None
    try:
        n, seq = int(words[1][1:]), int(words[3])
    except ValueError:
        return None
    return (n, seq) if data == content(n, seq) else None


def check(top, records, lines):
    want = {}
    with open(records, "rb") as f:
        for i, line in enumerate(f):
            if i >= lines:
                break
            seq, name = line.split()
            want[int(name[1:])] = int(seq)
    bad = []
    seen = 0
    for d in range(DIRS):
        sub = os.path.join(top, "d%d" % d)
        names = os.listdir(sub) if os.path.isdir(sub) else []
        for name in names:
            if ".tmp" in name:
                continue
            n = int(name[1:])
            with open(os.path.join(sub, name), "rb") as f:
                got = parse(f.read())
            seen += 1
            if got is None or got[0] != n:
                bad.append("%s: not a whole version of f%d" % (name, n))
            elif n in want and got[1] < want[n]:
                bad.append("f%d: version %d, but %d was fsync'd before the take" % (n, got[1], want[n]))
    for n in sorted(want):
        if not os.path.exists(path_of(top, n)):
            bad.append("f%d: missing, version %d was fsync'd before the take" % (n, want[n]))
    for line in bad[:20]:
        print(line)
    if bad:
        print("%d differences (%d names fsync'd before the take, %d files)" % (len(bad), len(want), seen))
        sys.exit(1)
    print("checked %d names (%d fsync'd before the take)" % (seen, len(want)))


if __name__ == "__main__":
    if sys.argv[1] == "write":
        write(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        check(sys.argv[2], sys.argv[3], int(sys.argv[4]))
