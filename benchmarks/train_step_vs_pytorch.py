#!/usr/bin/env python3
"""One training step: disco vs the official PyTorch code, side by side, on the CPU.

    python3 benchmarks/train_step_vs_pytorch.py [--batch 8|32] [--steps 10] [--warmup 2]
        [--threads 2] [--disco-bench build/benchmarks/train_step] [--markdown FILE]

PyTorch: the official train.py step (tools/disco_reference.py: the earlier official model,
128 px, sep 25, persistent Adam, disc_weight 0.001, gradient clipping) in float32 on the
CPU with torch.set_num_threads(threads), `warmup` untimed steps then `steps` timed
steps; the median wall time per step is reported.

disco: `train_step --device cpu --resolution 128 --batch B --steps N` run with
OMP_NUM_THREADS=threads; it prints `median_ms: X`.

Both run in this one invocation, one after the other, on the same batch size and
resolution. --markdown FILE appends a table row (header written when the file is new).
"""

import argparse
import datetime
import os
import platform
import re
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tools"))


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def bench_pytorch(R, torch, args):
    cfg = R.make_config(resolution=args.resolution)
    m = R.build_model(cfg, 0)
    a, b = R.random_batch(cfg, args.batch, 0)
    a, b = torch.from_numpy(a), torch.from_numpy(b)
    tr = R.OfficialTrainer(m, cfg, args.batch)
    for _ in range(args.warmup):
        tr.step(a, b)
    times = []
    for _ in range(args.steps):
        t0 = time.perf_counter()
        tr.step(a, b)
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times), min(times), max(times)


def bench_disco(args):
    exe = args.disco_bench
    if not (os.path.isfile(exe) and os.access(exe, os.X_OK)):
        return None, "not built (%s)" % exe
    cmd = [exe, "--device", "cpu", "--resolution", str(args.resolution), "--batch", str(args.batch),
           "--steps", str(args.steps)] + args.disco_arg
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    print("running: OMP_NUM_THREADS=%d %s" % (args.threads, " ".join(cmd)), flush=True)
    try:
        pr = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=args.timeout)
    except subprocess.TimeoutExpired:
        return None, "timed out after %g s" % args.timeout
    out = pr.stdout.decode("utf-8", "replace")
    if args.verbose and out.strip():
        print("  | " + out.strip().replace("\n", "\n  | "))
    m = re.findall(r"median_ms:\s*([0-9.eE+-]+)", out)
    if pr.returncode != 0 or not m:
        tail = "\n  | ".join(out.strip().splitlines()[-8:])
        return None, "failed (exit %d%s)\n  | %s" % (pr.returncode, "" if m else ", no 'median_ms:' line", tail)
    return float(m[-1]), None


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=8, help="images per domain (8; 32 as the official code)")
    p.add_argument("--resolution", type=int, default=128)
    p.add_argument("--steps", type=int, default=10, help="timed steps")
    p.add_argument("--warmup", type=int, default=2, help="untimed PyTorch steps first")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--disco-bench", default=os.path.join(HERE, "..", "build", "benchmarks", "train_step"))
    p.add_argument("--disco-arg", action="append", default=[], help="extra argument for the disco benchmark")
    p.add_argument("--skip-pytorch", action="store_true")
    p.add_argument("--skip-disco", action="store_true")
    p.add_argument("--timeout", type=float, default=3600)
    p.add_argument("--markdown", metavar="FILE", help="append a markdown table row")
    p.add_argument("--verbose", action="store_true")
    args = p.parse_args()
    args.disco_bench = os.path.normpath(args.disco_bench)
    for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[k] = str(args.threads)

    import disco_reference as R
    torch_ms = None
    torch_ver = "-"
    if not args.skip_pytorch:
        torch = R.require_torch()  # may re-run this script under a python3 that has torch
        if torch is None:
            print("PyTorch: skipped (python3-torch not installed)")
        else:
            torch.set_num_threads(args.threads)
            torch_ver = torch.__version__
            blas = re.search(r"BLAS_INFO=(\w+)", torch.__config__.show())
            print("note: this torch's BLAS is %s, mkldnn %s" % (blas.group(1) if blas else "unknown",
                                                             "on" if torch.backends.mkldnn.is_available() else "off"))
            if blas and blas.group(1) == "generic":
                torch_ver += ", generic BLAS"
            print("PyTorch %s, %d threads, float32, CPU: official step at %d px, batch %d + %d; %d warm-up + %d timed "
                  "steps ..." % (torch_ver, args.threads, args.resolution, args.batch, args.batch, args.warmup,
                                 args.steps), flush=True)
            torch_ms, tmin, tmax = bench_pytorch(R, torch, args)
            print("PyTorch: median %.1f ms/step (min %.1f, max %.1f)" % (torch_ms, tmin, tmax), flush=True)
    disco_ms = None
    if not args.skip_disco:
        disco_ms, err = bench_disco(args)
        if disco_ms is None:
            print("disco: %s" % err)
        else:
            print("disco: median %.1f ms/step" % disco_ms)
    print("")
    print("%-28s %s" % ("machine", cpu_name()))
    print("%-28s %d px, batch %d + %d, %d threads, %d timed steps" % ("setting", args.resolution, args.batch,
                                                                       args.batch, args.threads, args.steps))
    print("%-28s %s" % ("PyTorch official (ms/step)", "%.1f" % torch_ms if torch_ms else "-"))
    print("%-28s %s" % ("disco (ms/step)", "%.1f" % disco_ms if disco_ms else "-"))
    ratio = disco_ms / torch_ms if (disco_ms and torch_ms) else None
    if ratio:
        print("%-28s %.2f  (%s)" % ("disco / PyTorch time", ratio, "disco %.2fx faster" % (1 / ratio) if ratio < 1
                                    else "disco %.2fx slower" % ratio))
    if args.markdown:
        new = not os.path.exists(args.markdown) or os.path.getsize(args.markdown) == 0
        with open(args.markdown, "a") as f:
            if new:
                f.write("| date | CPU | threads | resolution | batch | steps | PyTorch (torch) ms/step | "
                        "disco ms/step | disco / PyTorch |\n")
                f.write("|---|---|---|---|---|---|---|---|---|\n")
            f.write("| %s | %s | %d | %d | %d | %d | %s (%s) | %s | %s |\n" % (
                datetime.date.today().isoformat(), cpu_name(), args.threads, args.resolution, args.batch, args.steps,
                "%.1f" % torch_ms if torch_ms else "-", torch_ver, "%.1f" % disco_ms if disco_ms else "-",
                "%.2f" % ratio if ratio else "-"))
        print("appended a row to %s" % args.markdown)
    if (not args.skip_disco and disco_ms is None) or (not args.skip_pytorch and torch_ms is None):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
