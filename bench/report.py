#!/usr/bin/env python3
"""Collect "BENCH {json}" lines from a guest log into results.json and
print them as a table. usage: report.py LOG RESULTS_JSON [--markdown]
A row's ratio is measured / baseline; it meets the target when at least it,
or, for a row with "lower": true (times, memory), when at most it. A row
with target 0 is a reference (an anchor measured beside ours), not a goal.
--markdown prints the table as docs/performance.md has it."""
import json
import sys

log, results = sys.argv[1:3]
markdown = "--markdown" in sys.argv[3:]
rows = []
for line in open(log):
    if line.startswith("BENCH "):
        rows.append(json.loads(line[len("BENCH "):]))
with open(results, "w") as f:
    json.dump(rows, f, indent=2)


def verdict(r):
    """The row's target as printed, and whether it is met."""
    if not r["target"]:
        return "-", "reference"
    if r.get("lower"):
        return f"<={r['target']}", "ok" if r["ratio"] <= r["target"] else "above target"
    return f"{r['target']}", "ok" if r["ratio"] >= r["target"] else "below target"


if markdown:
    print("| workload | baseline | measured | unit | ratio | target | |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        target, v = verdict(r)
        print(f"| {r['name']} | {r['baseline']} | {r['measured']} | {r['unit']} | "
              f"{r['ratio']} | {target} | {v} |")
    sys.exit(0)
print(f"{'workload':52} {'baseline':>10} {'measured':>10} {'unit':>6} "
      f"{'ratio':>6} {'target':>6}")
for r in rows:
    target, v = verdict(r)
    print(f"{r['name']:52} {r['baseline']:>10} {r['measured']:>10} "
          f"{r['unit']:>6} {r['ratio']:>6} {target:>6}  {v}")
