#!/usr/bin/env python3
"""ncu_summary.py NCU_CSV [--top N]: one line per profiled kernel from an Nsight Compute
report written with `ncu --csv --page details` (tools/gpu_check.sh's ncu_profile step).

Columns: duration, compute (SM) and memory throughput as % of peak, achieved occupancy,
registers per thread, and the kernel's name shortened to its template head, so that disco's
kernels and cuDNN's can be read side by side ("what limits each kernel", docs/benchmarks.md).
Reads the CSV with the csv module by column name; if ncu's column names differ from the ones
expected, it says which columns it found instead of guessing.
"""
import argparse
import collections
import csv
import re
import sys

WANTED = collections.OrderedDict([
    ("Duration", "time"),
    ("Compute (SM) Throughput", "SM %"),
    ("Memory Throughput", "mem %"),
    ("Achieved Occupancy", "occ %"),
    ("Registers Per Thread", "regs"),
])


def short_name(name):
    # "void disco::cuda::kern::conv_igemm_kernel<disco::convidx::FpropView, ...>(...)" ->
    # "conv_igemm_kernel<FpropView, ...>"
    name = re.sub(r"^void\s+", "", name)
    name = re.sub(r"\(.*$", "", name) if "<" not in name else name
    name = re.sub(r"\b[\w:]*::", "", name)
    return name[:90]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("csv_path")
    ap.add_argument("--top", type=int, default=60, help="at most this many kernels")
    a = ap.parse_args()
    try:
        with open(a.csv_path, newline="") as f:
            text = f.read()
    except OSError as e:
        print("ncu_summary: cannot read %s: %s" % (a.csv_path, e))
        return 1
    # ncu may print "==PROF==" lines before the CSV header
    lines = [l for l in text.splitlines() if not l.startswith("==")]
    rows = list(csv.DictReader(lines))
    need = {"ID", "Kernel Name", "Metric Name", "Metric Value"}
    if not rows or not need.issubset(rows[0].keys()):
        print("ncu_summary: %s has no rows with the columns %s (found: %s)" %
              (a.csv_path, sorted(need), sorted(rows[0].keys()) if rows else "nothing"))
        return 1
    kernels = collections.OrderedDict()
    for r in rows:
        k = kernels.setdefault(r["ID"], {"name": r["Kernel Name"], "grid": r.get("Grid Size", ""),
                                         "block": r.get("Block Size", "")})
        if r["Metric Name"] in WANTED and WANTED[r["Metric Name"]] not in k:
            unit = r.get("Metric Unit", "")
            val = r["Metric Value"].replace(",", "")
            if r["Metric Name"] == "Duration":
                try:  # to microseconds
                    v = float(val)
                    scale = {"nsecond": 1e-3, "ns": 1e-3, "usecond": 1.0, "us": 1.0, "msecond": 1e3, "ms": 1e3}
                    val = "%.1f us" % (v * scale.get(unit, 1.0)) if unit in scale else "%s %s" % (val, unit)
                except ValueError:
                    pass
            k[WANTED[r["Metric Name"]]] = val
    cols = list(WANTED.values())
    print("%-4s %11s %7s %7s %7s %5s  %-14s %-10s %s" % (("id",) + tuple(cols) + ("grid", "block", "kernel")))
    for i, (kid, k) in enumerate(kernels.items()):
        if i >= a.top:
            print("... %d more" % (len(kernels) - a.top))
            break
        print("%-4s %11s %7s %7s %7s %5s  %-14s %-10s %s" % ((kid,) + tuple(k.get(c, "-") for c in cols) +
                                                           (k["grid"], k["block"], short_name(k["name"]))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
