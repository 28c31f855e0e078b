#!/usr/bin/env python3
"""Split a perf profile of the tracking-only write path (bench/cbt_profile.sh).

usage: perf script -F ip,sym,dso | profile_split.py MODE LABEL SYMBOLS

SYMBOLS: a file of the blksnap module's function names, one a line (the
guest's /proc/kallsyms: perf, without the module file, names its frames
with the kernel's).

Reads perf script's samples (call chains, leaf first, blank-line separated)
and gives each to one part of the write path by its innermost frame in the
blksnap module, the leaf's own symbol deciding between a function and what
it calls (the allocator under the admission is the count's allocation).
With the block device filter, samples in the kernel's blkfilter_bio() outside
the module's callback are the filter's too (a disk without a filter never
calls it). Samples inside a write's original completion, which the completion hook
calls, are the write's, not tracking's. Prints "#" lines with each part's
share of all samples and one BENCH row (tracking's share; lower is better).
"""
import json
import re
import sys
from collections import Counter

MODE, LABEL, SYMBOLS = sys.argv[1:4]
with open(SYMBOLS) as f:
    MODULE = {line.strip() for line in f if line.strip()}
FRAME = re.compile(r"^\s*[0-9a-f]+\s+(\S+?)(?:\+0x[0-9a-f]+)?\s+\((.*)\)\s*$")

# The innermost blksnap function of a sample -> its part.
PARTS = {
    "hook_handler": "interception",
    "submit_bio_wanted": "interception",
    "blksnap_submit_bio": "interception",
    "tracker_submit_bio": "interception",
    "trackers_admit_bio": "lookup and admission",
    "tracker_find_by_bio": "lookup and admission",
    "trackers_on_disk": "lookup and admission",
    "tracker_bio_range": "lookup and admission",
    "tracker_bio_changes": "lookup and admission",
    "tracker_admit_bio": "lookup and admission",
    "tracker_counts": "count: allocation and bookkeeping",
    "tracker_count": "count: allocation and bookkeeping",
    "tracker_write_endio": "count: completion hook",
    "cbt_map_mark": "change map mark",
}
ALLOC = re.compile(r"mempool|kmem_cache|slab|__slab|alloc|free")
TRAMPOLINE = re.compile(r"ftrace|^\[unknown\]$")


def part_of(frames):
    """frames: [(sym, dso)] leaf first. (The part, the function whose
    cost it is: the innermost blksnap one, "<" the leaf when it called
    that), or None (not tracking)."""
    for i, (sym, _) in enumerate(frames):
        if sym not in MODULE:
            continue
        inner = [s for s, _ in frames[:i]]
        if sym == "tracker_write_endio" and "bio_endio" in inner:
            return None  # the write's own completion, called by the hook
        part = PARTS.get(sym, "other blksnap code")
        if sym == "tracker_admit_bio" and any(ALLOC.search(s) for s in inner):
            part = "count: allocation and bookkeeping"
        return part, sym + (f" < {inner[0]}" if inner else "")
    # No blksnap frame: the ftrace trampoline that calls the handler
    # (submit_bio_noacct's fentry).
    if (MODE == "ftrace" and len(frames) > 1 and TRAMPOLINE.search(frames[0][0])
            and frames[1][0] == "submit_bio_noacct"):
        return "interception", frames[0][0]
    # The kernel's side of the filter, outside the filter's callback: a
    # disk with no filter attached never calls blkfilter_bio() (its queue
    # entered and left again, the walk of the disk's other devices).
    if MODE == "blkfilter":
        for i, (sym, _) in enumerate(frames):
            if sym == "blkfilter_bio":
                inner = frames[0][0] if i else ""
                return ("interception: the kernel's filter (blkfilter_bio)",
                        sym + (f" < {inner}" if inner else ""))
    return None


def samples(lines):
    frames = []
    for line in lines:
        if not line.strip():
            if frames:
                yield frames
            frames = []
            continue
        m = FRAME.match(line)
        if m:
            frames.append((m.group(1), m.group(2)))
    if frames:
        yield frames


IDLE = {"do_idle", "cpu_startup_entry"}

total = idle = 0
parts = Counter()
funcs = Counter()
leaves = Counter()
for frames in samples(sys.stdin):
    total += 1
    if any(sym in IDLE for sym, _ in frames):
        idle += 1
        continue
    leaves[frames[0][0]] += 1
    found = part_of(frames)
    if found:
        parts[found[0]] += 1
        funcs[found[1]] += 1
busy = total - idle
if busy == 0:
    sys.exit("profile_split.py: no samples")
tracking = sum(parts.values())
# Shares of the busy samples: the guest's CPU idles while it waits for
# the disk, and tracking's cost is paid in the busy time.
print(f"# cbt profile, {LABEL}: {total} samples, {idle} idle, tracking {tracking} "
      f"({100 * tracking / busy:.2f}% of the busy ones)")
for part, n in parts.most_common():
    print(f"#   {part}: {n} ({100 * n / busy:.2f}%)")
print("#   by function (< what it called): " + ", ".join(
    f"{fn} {n}" for fn, n in funcs.most_common(12)))
print("#   busiest leaves: " + ", ".join(
    f"{sym} {100 * n / busy:.1f}%" for sym, n in leaves.most_common(8)))
print("BENCH " + json.dumps({
    "name": f"cbt: tracking's share of the busy CPU, 4 KiB random write ({LABEL})",
    "baseline": busy, "measured": tracking, "unit": "samples",
    "ratio": round(tracking / busy, 4), "target": 0.01, "lower": True}))
