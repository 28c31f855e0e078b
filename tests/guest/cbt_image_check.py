#!/usr/bin/env python3
"""Check that a change map explains every difference between two images.

usage: cbt_image_check.py PREV_IMAGE IMAGE MAP BLOCK_SIZE SINCE

PREV_IMAGE and IMAGE are the contents of two successive snapshots of one
device; MAP is the change map read while the second was held (one byte per
tracking block); SINCE is the changes number of the first snapshot. An
incremental backup copies the blocks whose byte is greater than SINCE on top
of PREV_IMAGE: every block that differs between the images must be one of
them, or the backup is silently wrong. Prints the offending blocks and exits
1 if there is any; prints how many blocks changed otherwise.
"""
import sys


def main():
    prev_path, cur_path, map_path, block_size, since = sys.argv[1:6]
    block_size, since = int(block_size), int(since)
    cbt = open(map_path, "rb").read()
    changed = missed = 0
    errors = []
    with open(prev_path, "rb") as prev, open(cur_path, "rb") as cur:
        for b, v in enumerate(cbt):
            a, c = prev.read(block_size), cur.read(block_size)
            if a == c:
                continue
            changed += 1
            if v <= since:
                missed += 1
                if len(errors) < 10:
                    errors.append(f"block {b} changed but holds {v} <= {since}")
        if prev.read(1) or cur.read(1):
            errors.append("images are larger than the map")
    if errors:
        print("\n".join(errors), file=sys.stderr)
        print(f"{missed} of {changed} changed blocks missing from the map",
              file=sys.stderr)
        sys.exit(1)
    print(f"{changed} changed blocks, all in the map")


if __name__ == "__main__":
    main()
