#!/usr/bin/env python3
"""Per-kernel time table from Nsight Compute's CSV (one row per profiled launch).

  ncu --clock-control none --metrics gpu__time_duration.sum --csv -s 400 -c 60 \\
      build/gpu/benches/bench_cuda --benchmark_filter='M_784_1024x4_10_b1024/' > ncu.csv
  python3 benches/ncu_kernels.py ncu.csv --steps 2

Prints, per kernel name (template arguments shortened), the launches, the total and the
mean duration, and the share of the total; --steps divides totals into per-step figures.
"""
import argparse
import collections
import csv
import io
import re
import sys


def short(name):
    name = re.sub(r"\(.*\)$", "", name)  # argument list
    while True:  # nested template arguments, innermost first
        shorter = re.sub(r"<[^<>]*>", "", name)
        if shorter == name:
            return name
        name = shorter


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("csv")
    ap.add_argument("--steps", type=float, default=1.0, help="steps the profiled launches cover")
    args = ap.parse_args()
    text = open(args.csv, errors="replace").read()
    start = text.find('"ID"')
    if start < 0:
        sys.exit(f"ncu_kernels.py: no ncu CSV table in {args.csv}")
    total = collections.defaultdict(float)
    count = collections.Counter()
    for row in csv.DictReader(io.StringIO(text[start:])):
        if row.get("Metric Name") != "gpu__time_duration.sum":
            continue
        unit = row.get("Metric Unit", "nsecond")
        scale = {"nsecond": 1e-3, "usecond": 1.0, "msecond": 1e3}.get(unit, 1e-3)
        name = short(row["Kernel Name"])
        total[name] += float(row["Metric Value"].replace(",", "")) * scale
        count[name] += 1
    grand = sum(total.values())
    print(f"{'kernel':<60} {'launches':>8} {'us/step':>9} {'mean us':>8} {'share':>6}")
    for name, us in sorted(total.items(), key=lambda kv: -kv[1]):
        print(f"{name[:60]:<60} {count[name] / args.steps:>8.1f} {us / args.steps:>9.1f} "
              f"{us / count[name]:>8.1f} {100 * us / grand:>5.1f}%")
    print(f"{'total':<60} {sum(count.values()) / args.steps:>8.1f} {grand / args.steps:>9.1f}")


if __name__ == "__main__":
    main()
