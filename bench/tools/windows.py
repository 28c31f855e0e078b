#!/usr/bin/env python3
"""Transactions per second of pgbench in alternating windows (bench/pgbench.sh).

usage: windows.py PROGRESS WINDOWS

PROGRESS: pgbench's stderr with -P 1 --progress-timestamp, a line a second:
  "progress: 1765000000.123 s, 201.0 tps, lat 19.8 ms stddev 5.2, 0 failed"
WINDOWS: the conditions the bench script set, a line each:
  "SECTION CONDITION START END" (Unix seconds; CONDITION "base" is the
  baseline of its section, anything else is measured against it).

A window's tps is the mean of the progress lines inside it, its first
second left out (a transition's own stall belongs to neither side). Each
measured window is compared with the mean of the baseline windows just
before and just after it in its section: the guest's speed drifts by 10-20%
over tens of seconds under emulation, and two neighbours cancel a linear
drift. Prints, per section, a "#" line with the ratio of every window and
its standard error, and a "RATIO section median base measured n" line.
"""
import statistics
import sys

progress, windows = sys.argv[1:3]
samples = []
for line in open(progress):
    if line.startswith("progress: "):
        parts = line.split()
        samples.append((float(parts[1]), float(parts[3])))

sections = {}
for line in open(windows):
    section, cond, start, end = line.split()
    sections.setdefault(section, []).append((cond, float(start), float(end)))


def tps(start, end):
    # A progress line at time t covers the second before it.
    inside = [v for t, v in samples if t - 1 >= start + 1 and t <= end]
    return statistics.mean(inside) if inside else None


for section, wins in sections.items():
    values = [(cond, tps(s, e)) for cond, s, e in wins]
    ratios, bases, measured = [], [], []
    for i, (cond, v) in enumerate(values):
        if cond == "base" or v is None:
            continue
        before = next((b for c, b in reversed(values[:i]) if c == "base" and b), None)
        after = next((b for c, b in values[i + 1:] if c == "base" and b), None)
        near = [b for b in (before, after) if b]
        if not near:
            continue
        base = statistics.mean(near)
        ratios.append(v / base)
        bases.append(base)
        measured.append(v)
    if len(ratios) < 2:
        sys.exit(f"windows.py: section {section}: {len(ratios)} measured windows")
    se = statistics.stdev(ratios) / len(ratios) ** 0.5
    print(f"# pgbench {section}: ratio per window {[round(r, 3) for r in ratios]}, "
          f"min {min(ratios):.3f}, median {statistics.median(ratios):.3f}, "
          f"max {max(ratios):.3f}, +- {se:.3f} (1 s.e.)")
    print(f"RATIO {section} {statistics.median(ratios):.4f} "
          f"{statistics.median(bases):.2f} {statistics.median(measured):.2f} {len(ratios)}")
