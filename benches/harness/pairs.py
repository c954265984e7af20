"""Turns benches/protocols.sh's raw lines into a table: every scenario's
requests/s (median, min-max over rounds) and latencies, then each requested
pair "a:b" as a/b paired within each round (median, min-max), so drift
between rounds cancels."""
import statistics
import sys
from collections import defaultdict

runs = defaultdict(list)      # name -> [(rps, p50-or-mean, p99, p999, errors)]
by_round = defaultdict(dict)  # round -> name -> rps
order = []
cpu = defaultdict(list)       # name -> [share of one core used by keygate]
for line in open(sys.argv[1]):
    f = line.split()
    if f and f[0] == "CPU":
        cpu[f[2]].append(int(f[3]) / 100 / float(f[4]))
    if not f or f[0] != "RESULT":
        continue
    name = f[2]
    if name not in order:
        order.append(name)
    runs[name].append((float(f[3]), int(f[4]), int(f[5]), int(f[6]), int(f[7])))
    by_round[f[1]][name] = float(f[3])

med = statistics.median
us = lambda v: f"{v:.0f} µs" if v else "—"

print("| scenario | requests/s (median, min–max) | p50 (h2load: mean) | p99 | p99.9 | errors |")
print("|---|---|---|---|---|---|")
for name in order:
    rs = runs[name]
    rps = [r[0] for r in rs]
    print(f"| {name} | {med(rps):,.0f} ({min(rps):,.0f}–{max(rps):,.0f}) | {us(med(r[1] for r in rs))} "
          f"| {us(med(r[2] for r in rs))} | {us(med(r[3] for r in rs))} | {sum(r[4] for r in rs)} |")

for name, shares in cpu.items():
    print(f"\nkeygate's core during {name}: {med(shares):.0%} busy (median over rounds)")

print()
print("| ratio (paired per round) | median | min–max |")
print("|---|---|---|")
for pair in sys.argv[2:]:
    a, b = pair.split(":")
    rs = [r[a] / r[b] for r in by_round.values() if a in r and b in r and r[b]]
    if rs:
        print(f"| {a} / {b} | **{med(rs):.3f}** | {min(rs):.3f}–{max(rs):.3f} |")
