#!/usr/bin/env python3
"""Compare a change map with an independent record of what was written.

usage: cbt_expect.py MAP BLOCK_SIZE VALUE RECORD [--superset]

MAP is the raw map (one byte per tracking block). RECORD has one
"OFFSET LENGTH" line (bytes) per write. Every block touched by a write must
hold VALUE; with --superset other blocks may be marked too (file systems
write metadata), otherwise every other block must be 0.
"""
import sys


def main():
    map_path, block_size, value, record = sys.argv[1:5]
    superset = "--superset" in sys.argv[5:]
    block_size, value = int(block_size), int(value)
    cbt = open(map_path, "rb").read()
    want = set()
    for line in open(record):
        if not line.strip():
            continue
        off, length = (int(x) for x in line.split())
        first, last = off // block_size, (off + length - 1) // block_size
        want.update(range(first, last + 1))
    errors = []
    for b, v in enumerate(cbt):
        if b in want and v != value:
            errors.append(f"block {b}: written but holds {v}, want {value}")
        elif b not in want and v != 0 and not superset:
            errors.append(f"block {b}: not written but holds {v}")
    missing = [b for b in want if b >= len(cbt)]
    errors += [f"block {b}: past the end of the map" for b in missing]
    for e in errors[:20]:
        print(e)
    marked = sum(1 for v in cbt if v)
    print(f"{len(want)} blocks written, {marked} marked, {len(errors)} errors")
    return 1 if errors or not want else 0


if __name__ == "__main__":
    sys.exit(main())
