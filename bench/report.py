#!/usr/bin/env python3
"""Collect "BENCH {json}" lines from a guest log into results.json and
print them as a table. usage: report.py LOG RESULTS_JSON
A row's ratio is measured / baseline; it meets the target when at least it,
or, for a row with "lower": true (times, memory), when at most it. A row
with target 0 is a reference (an anchor measured beside ours), not a goal."""
import json
import sys

log, results = sys.argv[1:3]
rows = []
for line in open(log):
    if line.startswith("BENCH "):
        rows.append(json.loads(line[len("BENCH "):]))
with open(results, "w") as f:
    json.dump(rows, f, indent=2)
print(f"{'workload':52} {'baseline':>10} {'measured':>10} {'unit':>6} "
      f"{'ratio':>6} {'target':>6}")
for r in rows:
    if not r["target"]:
        verdict, target = "reference", "-"
    elif r.get("lower"):
        verdict = "ok" if r["ratio"] <= r["target"] else "above target"
        target = f"<={r['target']}"
    else:
        verdict = "ok" if r["ratio"] >= r["target"] else "below target"
        target = f"{r['target']}"
    print(f"{r['name']:52} {r['baseline']:>10} {r['measured']:>10} "
          f"{r['unit']:>6} {r['ratio']:>6} {target:>6}  {verdict}")
