#!/usr/bin/env python3
"""ncu_summary.py NCU_CSV [--top N] [--breakdown] | --self-test: one line per profiled kernel from an
Nsight Compute report written with `ncu --csv --page details` (tools/gpu_check.sh's ncu steps).

--breakdown: where one training step's GPU time goes (gpu_check's ncu_step: every kernel of one
step of `train_step --profile-step`, with the duration metric only): the kernels' summed
durations by category (the convolution kernel families, their channels-last packs and split-K
reductions, instance norm, fused reductions, element-wise, optimizer, library GEMMs / convs),
the convolutions by direction, and the longest kernels. The sum is of kernels run one at a time
under the profiler: it leaves out launch gaps and overlap, so the step's measured time minus this
sum is about what the launches and dependencies cost.

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


def csv_rows(text, source):
    """The rows of an ncu `--csv --page details` report, or None with a message printed."""
    # ncu may print "==PROF==" lines before the CSV header
    lines = [l for l in text.splitlines() if not l.startswith("==")]
    rows = list(csv.DictReader(lines))
    need = {"ID", "Kernel Name", "Metric Name", "Metric Value"}
    if not rows or not need.issubset(rows[0].keys()):
        print("ncu_summary: %s has no rows with the columns %s (found: %s)" %
              (source, sorted(need), sorted(rows[0].keys()) if rows else "nothing"))
        return None
    return rows


def summarize(text, top, source):
    """The summary lines of one ncu CSV report (text), or None with a message printed."""
    rows = csv_rows(text, source)
    if rows is None:
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


# ---- --breakdown ------------------------------------------------------------------------------------
# (category, kernel-name pattern), first match wins; disco's kernels are named in kernels/*.cuh
CATEGORIES = [
    ("conv wgmma", r"\bconv_(wgrad_)?wgmma_kernel"),
    ("conv channels-last (mma.sync)", r"\bconv_(wgrad_)?nhwc_kernel"),
    ("conv channels-last packs", r"\bpack_(weights_)?(dgrad_)?nhwc_kernel"),
    ("conv NCHW tiles", r"\bconv_igemm_kernel"),
    ("conv thin / small-output", r"\bconv_(thin|wgrad_smallout)_kernel"),
    ("conv split-K reduce", r"\bconv_splitk_reduce_kernel"),
    ("instance norm (+ activation)", r"\binstance_norm_\w+_kernel"),
    ("fused reductions (losses)", r"\breduce_finalize_kernel"),
    ("element-wise, copies, bias sums", r"\b(map|copy_strided|channel_sum)_kernel"),
    ("optimizer (Adam, clip)", r"\b(adam|grad_norm_finalize|scale_chunks|sumsq_chunks|increment_counter)_kernel"),
    ("other disco kernels", r"\bdisco::"),
    ("library GEMMs (cuBLAS)", r"(?i)gemm"),
    ("library convolutions (cuDNN)", r"(?i)(conv|fprop|dgrad|wgrad|implicit|cudnn)"),
    ("other", r""),
]


def direction(name):
    """fprop / dgrad / wgrad of a convolution kernel's name, else None."""
    if not re.search(r"\bconv_\w+_kernel", name):
        return None
    if re.search(r"conv_wgrad_|Wgrad", name):
        return "wgrad"
    if "Dgrad" in name:
        return "dgrad"
    if "Fprop" in name:
        return "fprop"
    return None


def durations(text, source):
    """[(kernel name, microseconds)] in launch order from an ncu CSV (details page: the metric
    gpu__time_duration.sum or the Duration of SpeedOfLight), or None with a message printed."""
    rows = csv_rows(text, source)
    if rows is None:
        return None
    scale = {"nsecond": 1e-3, "ns": 1e-3, "usecond": 1.0, "us": 1.0, "msecond": 1e3, "ms": 1e3, "second": 1e6, "s": 1e6}
    kernels = collections.OrderedDict()
    for r in rows:
        if r["Metric Name"] not in ("gpu__time_duration.sum", "Duration") or r["ID"] in kernels:
            continue
        unit = r.get("Metric Unit", "")
        if unit not in scale:
            print("ncu_summary: %s: kernel %s has a duration in '%s', not a time unit" % (source, r["ID"], unit))
            return None
        kernels[r["ID"]] = (r["Kernel Name"], float(r["Metric Value"].replace(",", "")) * scale[unit])
    if not kernels:
        print("ncu_summary: %s has no kernel durations (gpu__time_duration.sum or Duration)" % source)
        return None
    return list(kernels.values())


def breakdown(text, source, top=15):
    """The --breakdown lines, or None with a message printed."""
    ks = durations(text, source)
    if ks is None:
        return None
    total = sum(us for _, us in ks)
    cat = collections.OrderedDict((c, [0, 0.0]) for c, _ in CATEGORIES)
    dirs = collections.OrderedDict((d, 0.0) for d in ("fprop", "dgrad", "wgrad"))
    for name, us in ks:
        for c, pat in CATEGORIES:
            if re.search(pat, name):
                cat[c][0] += 1
                cat[c][1] += us
                break
        d = direction(name)
        if d:
            dirs[d] += us
    out = ["step_kernel_total_us: %.1f (%d kernels, summed durations under the profiler)" % (total, len(ks)),
           "%-34s %8s %11s %6s" % ("category", "kernels", "total us", "share")]
    for c, (n, us) in cat.items():
        if n:
            out.append("%-34s %8d %11.1f %5.1f%%" % (c, n, us, 100.0 * us / total if total > 0 else 0.0))
    out.append("convolution kernels by direction (split-K reductions included, packs not): " +
               ", ".join("%s %.1f us" % (d, us) for d, us in dirs.items()))
    out.append("longest kernels:")
    for name, us in sorted(ks, key=lambda k: -k[1])[:top]:
        out.append("  %9.1f us  %s" % (us, short_name(name)))
    return out


# A report in the shape `ncu --csv --page details` writes (two kernels, a ==PROF== line).
SAMPLE = """==PROF== Connected to process 1
"ID","Process ID","Process Name","Host Name","Kernel Name","Context","Stream","Block Size","Grid Size","Device","CC","Section Name","Metric Name","Metric Unit","Metric Value"
"0","1","b","h","void disco::cuda::kern::conv_igemm_kernel<disco::convidx::FpropView, (disco::cuda::kern::ConvMath)2, disco::cuda::kern::ConvTile<128, 128, 16, 2, 4, 2>>(disco::cuda::kern::ConvKernelArgs)","1","7","(256, 1, 1)","(64, 1, 1)","0","9.0","GPU Speed Of Light Throughput","Duration","usecond","123.45"
"0","1","b","h","void disco::cuda::kern::conv_igemm_kernel<disco::convidx::FpropView, (disco::cuda::kern::ConvMath)2, disco::cuda::kern::ConvTile<128, 128, 16, 2, 4, 2>>(disco::cuda::kern::ConvKernelArgs)","1","7","(256, 1, 1)","(64, 1, 1)","0","9.0","GPU Speed Of Light Throughput","Compute (SM) Throughput","%","45.1"
"0","1","b","h","void disco::cuda::kern::conv_igemm_kernel<disco::convidx::FpropView, (disco::cuda::kern::ConvMath)2, disco::cuda::kern::ConvTile<128, 128, 16, 2, 4, 2>>(disco::cuda::kern::ConvKernelArgs)","1","7","(256, 1, 1)","(64, 1, 1)","0","9.0","Occupancy","Achieved Occupancy","%","22.3"
"1","1","b","h","void disco::cuda::kern::conv_splitk_reduce_kernel<disco::convidx::WgradView>(disco::cuda::kern::ConvKernelArgs)","1","7","(256, 1, 1)","(1056, 1, 1)","0","9.0","GPU Speed Of Light Throughput","Duration","nsecond","5,432"
"""


# One step's kernels as `ncu --metrics gpu__time_duration.sum --csv --page details` writes them.
SAMPLE_STEP_HEADER = ('"ID","Process ID","Process Name","Host Name","Kernel Name","Context","Stream","Block Size",'
                      '"Grid Size","Device","CC","Section Name","Metric Name","Metric Unit","Metric Value"')
SAMPLE_STEP_KERNELS = [
    ("void disco::cuda::kern::conv_wgmma_kernel<disco::convidx::NhwcFprop, 128, __nv_bfloat16>"
     "(disco::cuda::kern::NhwcConvArgs)", "usecond", "40.5"),
    ("void disco::cuda::kern::pack_nhwc_kernel<__nv_bfloat16>(const float *, __nv_bfloat16 *, int, int, int)",
     "nsecond", "8,000"),
    ("void disco::cuda::kern::conv_wgrad_wgmma_kernel<128>(disco::cuda::kern::NhwcConvArgs)", "usecond", "30"),
    ("void disco::cuda::kern::conv_igemm_kernel<disco::convidx::DgradView, (disco::cuda::kern::ConvMath)2, "
     "disco::cuda::kern::ConvTile<128, 32, 16, 4, 1, 3>>(disco::cuda::kern::ConvKernelArgs)", "usecond", "20"),
    ("void disco::cuda::kern::conv_splitk_reduce_kernel<disco::convidx::NhwcWgradT<8>>"
     "(disco::cuda::kern::ConvKernelArgs)", "usecond", "1.5"),
    ("void disco::cuda::kern::instance_norm_fwd_kernel<1>(const float *, float *, int, int)", "usecond", "12"),
    ("void disco::cuda::kern::adam_kernel(disco::cuda::kern::AdamArgs)", "usecond", "6"),
    ("sm90_xmma_gemm_f32f32_tf32f32_f32_tn_n_tilesize128x128x32", "usecond", "2"),
]
SAMPLE_STEP = "==PROF== Connected to process 7\n" + SAMPLE_STEP_HEADER + "\n" + "".join(
    '"%d","7","train_step","h","%s","1","13","(256, 1, 1)","(8, 1, 1)","0","9.0",'
    '"Command line profiler metrics","gpu__time_duration.sum","%s","%s"\n' % (i, n, u, v)
    for i, (n, u, v) in enumerate(SAMPLE_STEP_KERNELS))


def self_test():
    lines = summarize(SAMPLE, 60, "sample")
    ok = (lines is not None and len(lines) == 3
          and lines[1].split()[:5] == ["0", "123.5", "us", "45.1", "-"]
          and "conv_igemm_kernel<FpropView" in lines[1] and "22.3" in lines[1]
          and lines[2].split()[:3] == ["1", "5.4", "us"] and "conv_splitk_reduce_kernel<WgradView>" in lines[2]
          and summarize("x,y\n1,2\n", 60, "bad") is None)
    print("\n".join(lines or []))
    b = breakdown(SAMPLE_STEP, "sample step", top=3)
    text = "\n".join(b or [])
    want = ["step_kernel_total_us: 120.0 (8 kernels", "conv wgmma                                2        70.5  58.8%",
            "conv channels-last packs                  1         8.0   6.7%",
            "conv NCHW tiles                           1        20.0  16.7%",
            "conv split-K reduce                       1         1.5   1.2%",
            "instance norm (+ activation)              1        12.0  10.0%",
            "optimizer (Adam, clip)                    1         6.0   5.0%",
            "library GEMMs (cuBLAS)                    1         2.0   1.7%",
            "by direction (split-K reductions included, packs not): fprop 40.5 us, dgrad 20.0 us, wgrad 31.5 us",
            "     40.5 us  conv_wgmma_kernel<NhwcFprop, 128, __nv_bfloat16>"]
    missing = [w for w in want if w not in text]
    ok = ok and b is not None and not missing and len(b) == 11 + 3
    ok = ok and breakdown("x,y\n1,2\n", "bad") is None
    ok = ok and breakdown(SAMPLE_STEP.replace('"usecond"', '"cycle"'), "bad unit") is None
    print(text)
    if missing:
        print("missing from the breakdown: %s" % missing)
    print("self-test: %s" % ("ok" if ok else "FAILED"))
    return 0 if ok else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("csv_path", nargs="?")
    ap.add_argument("--top", type=int, default=60, help="at most this many kernels")
    ap.add_argument("--self-test", action="store_true", help="check the parser on a built-in sample")
    ap.add_argument("--breakdown", action="store_true",
                    help="one step's kernel time by category (a report of kernel durations)")
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
    lines = breakdown(text, a.csv_path, min(a.top, 15)) if a.breakdown else summarize(text, a.top, a.csv_path)
    if lines is None:
        return 1
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
