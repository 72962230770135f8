#!/usr/bin/env python3
"""ncu_summary.py NCU_CSV [--top N] | --self-test: one line per profiled kernel from an Nsight Compute
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


def summarize(text, top, source):
    """The summary lines of one ncu CSV report (text), or None with a message printed."""
    # ncu may print "==PROF==" lines before the CSV header
    lines = [l for l in text.splitlines() if not l.startswith("==")]
    rows = list(csv.DictReader(lines))
    need = {"ID", "Kernel Name", "Metric Name", "Metric Value"}
    if not rows or not need.issubset(rows[0].keys()):
        print("ncu_summary: %s has no rows with the columns %s (found: %s)" %
              (source, sorted(need), sorted(rows[0].keys()) if rows else "nothing"))
        return None
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
    out = ["%-4s %11s %7s %7s %7s %5s  %-14s %-10s %s" % (("id",) + tuple(cols) + ("grid", "block", "kernel"))]
    for i, (kid, k) in enumerate(kernels.items()):
        if i >= top:
            out.append("... %d more" % (len(kernels) - top))
            break
        out.append("%-4s %11s %7s %7s %7s %5s  %-14s %-10s %s" % ((kid,) + tuple(k.get(c, "-") for c in cols) +
                                                                (k["grid"], k["block"], short_name(k["name"]))))
    return out


# A report in the shape `ncu --csv --page details` writes (two kernels, a ==PROF== line).
SAMPLE = """==PROF== Connected to process 1
"ID","Process ID","Process Name","Host Name","Kernel Name","Context","Stream","Block Size","Grid Size","Device","CC","Section Name","Metric Name","Metric Unit","Metric Value"
"0","1","b","h","void disco::cuda::kern::conv_igemm_kernel<disco::convidx::FpropView, (disco::cuda::kern::ConvMath)2, disco::cuda::kern::ConvTile<128, 128, 16, 2, 4, 2>>(disco::cuda::kern::ConvKernelArgs)","1","7","(256, 1, 1)","(64, 1, 1)","0","9.0","GPU Speed Of Light Throughput","Duration","usecond","123.45"
"0","1","b","h","void disco::cuda::kern::conv_igemm_kernel<disco::convidx::FpropView, (disco::cuda::kern::ConvMath)2, disco::cuda::kern::ConvTile<128, 128, 16, 2, 4, 2>>(disco::cuda::kern::ConvKernelArgs)","1","7","(256, 1, 1)","(64, 1, 1)","0","9.0","GPU Speed Of Light Throughput","Compute (SM) Throughput","%","45.1"
"0","1","b","h","void disco::cuda::kern::conv_igemm_kernel<disco::convidx::FpropView, (disco::cuda::kern::ConvMath)2, disco::cuda::kern::ConvTile<128, 128, 16, 2, 4, 2>>(disco::cuda::kern::ConvKernelArgs)","1","7","(256, 1, 1)","(64, 1, 1)","0","9.0","Occupancy","Achieved Occupancy","%","22.3"
"1","1","b","h","void disco::cuda::kern::conv_splitk_reduce_kernel<disco::convidx::WgradView>(disco::cuda::kern::ConvKernelArgs)","1","7","(256, 1, 1)","(1056, 1, 1)","0","9.0","GPU Speed Of Light Throughput","Duration","nsecond","5,432"
"""


def self_test():
    lines = summarize(SAMPLE, 60, "sample")
    ok = (lines is not None and len(lines) == 3
          and lines[1].split()[:5] == ["0", "123.5", "us", "45.1", "-"]
          and "conv_igemm_kernel<FpropView" in lines[1] and "22.3" in lines[1]
          and lines[2].split()[:3] == ["1", "5.4", "us"] and "conv_splitk_reduce_kernel<WgradView>" in lines[2]
          and summarize("x,y\n1,2\n", 60, "bad") is None)
    print("\n".join(lines or []))
    print("self-test: %s" % ("ok" if ok else "FAILED"))
    return 0 if ok else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("csv_path", nargs="?")
    ap.add_argument("--top", type=int, default=60, help="at most this many kernels")
    ap.add_argument("--self-test", action="store_true", help="check the parser on a built-in sample")
    a = ap.parse_args()
    if a.self_test:
        return self_test()
    if not a.csv_path:
        ap.error("NCU_CSV is required (or --self-test)")
    try:
        with open(a.csv_path, newline="") as f:
            text = f.read()
    except OSError as e:
        print("ncu_summary: cannot read %s: %s" % (a.csv_path, e))
        return 1
    lines = summarize(text, a.top, a.csv_path)
    if lines is None:
        return 1
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
