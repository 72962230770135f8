#!/usr/bin/env python3
"""gpu_report.py OUT [--date YYYY-MM-DD] [--command CMD] | --self-test: the Markdown section for
docs/benchmarks.md ("## GPU") from one tools/gpu_check.sh output folder OUT.

Prints: a header line (card, driver, CUDA, cuDNN and PyTorch versions, date, git commit, the
gpu_check command), the step table of summary.txt, conv_vs_cudnn per size and math mode (with
the Conv2d / ConvTranspose2d speed-up geomeans against the targets), ops_cuda (GB/s against the
device copy, the fused-loss target), the step_vs_pytorch table (with its targets), the parity
result and the Nsight Compute summaries (tools/ncu_summary.py: one training step's kernels by
category, then single kernels), then every target as met / missed.
A missing or unreadable input is reported ("not measured (no FILE)") and the report goes on:
gpu_check may have been cut short by its --budget. Python 3 standard library only.

Exit status: 0, also when inputs are missing; 2 when OUT is not a folder. --self-test builds
sample folders in the writers' formats (conv_vs_cudnn.cpp, ops_cuda.cpp, step_vs_pytorch.py,
parity_check.py, gpu_check.sh) and checks the report on them (exit 1 on a failed check).
"""
import argparse
import contextlib
import csv
import importlib.util
import io
import math
import os
import re
import shutil
import sys
import tempfile

TOOLS_DIR = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(TOOLS_DIR, ".."))
DEFAULT_COMMAND = "tools/gpu_check.sh OUT --quick --cuda-only --budget 540"

# targets (speed-ups: the other side's time / disco's time)
CONV_TARGET = 1.0        # Conv2d layers: geomean speed-up over cuDNN
CONVT_TARGET = 1.2       # ConvTranspose2d layers
FUSED_LOSS_TARGET = 0.8  # fused loss GB/s as a fraction of a D2D copy of the same bytes (worst size)
STEP_SPEEDUP_TARGET = 2.0  # disco BF16 + CUDA graph vs PyTorch eager (defaults)
STEP_MS_TARGET = 3.0       # ms per training step, 128 px batch 32

CONV_WHAT = "conv %d px %s geomean speed-up over cuDNN"
FUSED_WHAT = "fused loss GB/s >= 0.8 of a copy of the same bytes (worst size)"
STEP_WHAT = ["training step, disco BF16 + CUDA graph vs PyTorch eager: >= 2x faster",
             "training step, disco BF16 + CUDA graph: <= 3 ms/step",
             "training step peak memory, disco BF16 + CUDA graph <= PyTorch eager"]

MONTHS = {m: i + 1 for i, m in enumerate("jan feb mar apr may jun jul aug sep oct nov dec".split())}


# ---- helpers ---------------------------------------------------------------------------------------
class Report:
    def __init__(self, out):
        self.out = out
        self.lines = []
        self.targets = []  # (what, verdict line)
        self._summary = None

    def p(self, s=""):
        self.lines.append(s)

    def read(self, name):
        """The text of OUT/name, or None when it does not exist (undecodable bytes replaced)."""
        path = os.path.join(self.out, name)
        if not os.path.isfile(path):
            return None
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace").replace("\x00", "")

    def target(self, what, value, goal, fmt, higher_is_better=True, detail=""):
        """Records and prints one target check; value None = not measured."""
        if value is None:
            line = "%s: not measured%s" % (what, (" (" + detail + ")") if detail else "")
        else:
            ok = value >= goal if higher_is_better else value <= goal
            line = "%s: %s (%s; target %s %s%s)" % (what, "met" if ok else "missed", fmt % value,
                                                   ">=" if higher_is_better else "<=", fmt % goal,
                                                   ("; " + detail) if detail else "")
        self.targets.append(line)
        self.p("- target " + line)

    def summary_sections(self):
        """summary.txt split into {header line: [indented lines]} (the parts after the step table)."""
        if self._summary is None:
            self._summary = {}
            text = self.read("summary.txt") or ""
            cur = None
            for line in text.splitlines():
                if line.startswith("  ") and cur is not None:
                    self._summary[cur].append(line.strip())
                elif line.rstrip().endswith(":") and not line.startswith(" "):
                    cur = line.rstrip()
                    self._summary[cur] = []
                else:
                    cur = None
        return self._summary

    def summary_lines(self, prefix):
        for k, v in self.summary_sections().items():
            if k.startswith(prefix):
                return v
        return []


def num(s):
    """float of a CSV field, None when empty / not a number / not finite."""
    try:
        v = float(str(s).strip())
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def f(v, fm="%.3f"):
    return fm % v if v is not None else "-"


def geomean(vals):
    vals = [v for v in vals if v is not None and v > 0]
    return (math.exp(sum(math.log(v) for v in vals) / len(vals)), len(vals)) if vals else (None, 0)


def md_row(cells):
    return "| " + " | ".join(str(c).replace("|", "/") for c in cells) + " |"


def md_table(hdr, rows, align=None):
    out = [md_row(hdr), "|" + "|".join(align or ["---"] * len(hdr)) + "|"]
    out += [md_row(r) for r in rows]
    return out


def grep(text, pattern):
    return [l.strip() for l in (text or "").splitlines() if re.search(pattern, l)]


def read_csv(text, need, source):
    """DictReader rows of text; raises ValueError naming the columns found when `need` is missing."""
    rows = list(csv.DictReader(io.StringIO(text)))
    found = list(rows[0].keys()) if rows else []
    if not rows:
        raise ValueError("%s has no data rows" % source)
    missing = [c for c in need if c not in found]
    if missing:
        raise ValueError("%s lacks the column(s) %s (found: %s)" % (source, ", ".join(missing),
                                                                      ", ".join(str(c) for c in found)[:300]))
    good = [r for r in rows if None not in r and all(r.get(c) is not None for c in need)]
    return good, len(rows) - len(good)


def cudnn_str(v):
    """90100 -> '9.1.0' (cuDNN >= 9: M*10000 + m*100 + p; before: M*1000 + m*100 + p)."""
    try:
        n = int(str(v).strip())
    except ValueError:
        return str(v)
    if n <= 0:
        return str(v)
    if n >= 10000:
        return "%d.%d.%d" % (n // 10000, (n % 10000) // 100, n % 100)
    return "%d.%d.%d" % (n // 1000, (n % 1000) // 100, n % 100)


def date_of(s):
    """'Sat Nov 28 01:03:29 UTC 2026' (or another date(1) layout) -> '2026-11-28', else s."""
    y = re.search(r"\b(\d{4})-(\d{2})-(\d{2})\b", s)
    if y:
        return y.group(0)
    year = re.search(r"\b(19|20)\d{2}\b", s)
    mon = re.search(r"\b(" + "|".join(MONTHS) + r")[a-z]*\b", s, re.I)
    day = re.search(r"(?<![:\d])(\d{1,2})(?![:\d])", re.sub(r"\b(19|20)\d{2}\b", "", s))
    if year and mon and day:
        return "%s-%02d-%02d" % (year.group(0), MONTHS[mon.group(1).lower()[:3]], int(day.group(1)))
    return s.strip()


# ---- header ------------------------------------------------------------------------------------------
def environment(R, args):
    env = R.read("env.log")
    v = {}
    if env is not None:
        m = re.search(r"^date:\s*(.+)$", env, re.M)
        if m:
            v["date"] = date_of(m.group(1))
        m = re.search(r"Driver Version:\s*([0-9.]+)", env)
        if m:
            v["driver"] = m.group(1)
        m = re.search(r"^\|\s*\d+\s+(.+?)\s+(On|Off)\s+\|", env, re.M)
        if m:
            v["card"] = m.group(1)
        m = re.search(r"release ([0-9.]+), V([0-9.]+)", env)
        if m:
            v["cuda"] = m.group(2)
        m = re.search(r"^torch (\S+) cuda (\S+) cudnn (\S+)", env, re.M)
        if m:
            v["torch"], v["torch_cuda"], v["torch_cudnn"] = m.group(1), m.group(2), m.group(3)
        elif "No module named 'torch'" in env:
            v["torch_note"] = "not importable by env.log's python3"
        m = re.search(r"^([0-9a-f]{7,40}) (.+)$", env, re.M)
        if m:
            v["commit"] = "%s (%s)" % (m.group(1), m.group(2).strip())
            # `git status --short` follows the commit line: a copied working tree may carry changes
            changed = [l for l in env[m.end():].splitlines() if re.match(r"^(?:[ MADRCU?!]{2}) \S", l)]
            if changed:
                v["commit"] += " + %d changed file%s in the working tree" % (len(changed), "" if len(changed) == 1 else "s")
        m = re.search(r"^command: (.+)$", env, re.M)
        if m:
            v["command"] = m.group(1).strip()
    summ = R.read("summary.txt") or ""
    m = re.search(r"^device:[ \t]*(\S.*)$", summ, re.M)
    if m:  # nvidia-smi --query-gpu=name,driver_version
        parts = [x.strip() for x in m.group(1).rsplit(",", 1)]
        v.setdefault("card", parts[0])
        if len(parts) > 1 and parts[1]:
            v.setdefault("driver", parts[1])
    # the benchmarks' own lines and files
    for name in ("conv_vs_cudnn_128.log", "conv_vs_cudnn_256.log"):
        m = re.search(r"^conv_vs_cudnn: (.+?), \d+ SMs, cuDNN (\d+)", R.read(name) or "", re.M)
        if m:
            v.setdefault("card", m.group(1))
            v.setdefault("disco_cudnn", m.group(2))
    m = re.search(r"^ops_cuda: (.+?), \d+ SMs, CUDA runtime (\S+), driver (\S+)", R.read("ops_cuda.log") or "", re.M)
    if m:
        v.setdefault("card", m.group(1))
        v.setdefault("driver_api", m.group(3))
    for name in ("conv_vs_cudnn_128.csv", "ops_cuda.csv", "conv_vs_cudnn_256.csv"):
        try:
            rows = list(csv.DictReader(io.StringIO(R.read(name) or "")))
            if rows and rows[0].get("device"):
                v.setdefault("card", rows[0]["device"])
        except Exception:  # noqa: BLE001 (garbled: other sources)
            pass
    try:
        rows = list(csv.DictReader(io.StringIO(R.read("step_vs_pytorch.csv") or "")))
        if rows:
            r = rows[0]
            for k, src in (("torch", "torch"), ("torch_cuda", "cuda"), ("torch_cudnn", "cudnn"),
                           ("card", "gpu"), ("driver", "driver")):
                if r.get(src) and r[src] not in ("-", "None"):
                    v.setdefault(k, r[src])
    except Exception:  # noqa: BLE001
        pass
    m = re.search(r"official PyTorch step \(torch (\S+?),", R.read("parity_cuda.log") or "")
    if m:
        v.setdefault("torch", m.group(1) + " (parity_check's python3)")

    date = args.date or v.get("date") or "unknown date (no env.log date line)"
    cudnn = []
    if v.get("disco_cudnn"):
        cudnn.append("%s (disco)" % cudnn_str(v["disco_cudnn"]))
    if v.get("torch_cudnn"):
        cudnn.append("%s (PyTorch)" % cudnn_str(v["torch_cudnn"]))
    torch = v.get("torch")
    if torch and v.get("torch_cuda"):
        torch += " (CUDA %s)" % v["torch_cuda"]
    driver = v.get("driver") or ("unknown (CUDA driver API %s)" % v["driver_api"] if v.get("driver_api") else "unknown")
    card = v.get("card")
    R.p("### %s, %s" % (card or "Unknown card", date))
    R.p()
    R.p("Card %s, driver %s, CUDA %s (nvcc), cuDNN %s, PyTorch %s; date %s; commit %s; `%s`%s." % (
        card or "unknown (no nvidia-smi output)", driver, v.get("cuda", "unknown"), ", ".join(cudnn) or "unknown",
        torch or v.get("torch_note", "unknown"),
        date, v.get("commit", "unknown"), args.command or v.get("command") or DEFAULT_COMMAND,
        "" if env is not None else " (no env.log)"))
    R.p()


# ---- sections ------------------------------------------------------------------------------------------
# The GPU tests' warnings that carry figures (Catch2 wraps a warning's text over indented lines
# after "FILE:LINE: warning:"): the largest difference of a tuning candidate from its layer's
# reference plan, and each TF32 / BF16 step on the channels-last / wgmma kernels against the
# heuristic plans' step.
TEST_WARNINGS = ("largest difference from the reference plan", "worst gradient difference")


def test_warnings(text):
    out, cur = [], None
    for line in text.splitlines() + [""]:
        if re.search(r": warning:\s*$", line):
            cur = []
        elif cur is not None:
            if line.startswith(" ") and line.strip():
                cur.append(line.strip())
            else:
                w = " ".join(cur)
                if any(k in w for k in TEST_WARNINGS) and w not in out:
                    out.append(w)
                cur = None
    return out


def steps(R):
    text = R.read("summary.txt")
    if text is None:
        logs = sorted(n[:-4] for n in os.listdir(R.out) if n.endswith(".log") and n != "env.log")
        R.p("not measured (no summary.txt)%s" % ("; step logs present: " + ", ".join(logs) if logs else ""))
        return
    rows, in_table = [], False
    for line in text.splitlines():
        if re.match(r"^step\s+result\s+sec", line):
            in_table = True
            continue
        if in_table:
            if not line.strip():
                break
            m = re.match(r"^(\S+)\s+(PASS|SKIPPED|TIMEOUT|NOT BUILT|FAIL\(\d+\)|\S+)\s+(\d+)\s*(.*)$", line)
            if m:
                rows.append(m.groups())
    if not rows:
        R.p("not measured (summary.txt has no step table)")
    else:
        R.p("\n".join(md_table(("step", "result", "seconds", "note"), rows, ["---", "---", "---:", "---"])))
    R.p()
    ct = R.summary_lines("ctest -L gpu")
    done = [l for l in ct if re.search(r"tests passed|tests failed", l)]
    skipped = len([l for l in ct if "***Skipped" in l])
    failed = [l for l in ct if "***Failed" in l or "Not Run" in l]
    if done:
        R.p("- ctest -L gpu: %s%s%s" % (done[-1], "; %d skipped" % skipped if skipped else "",
                                        "; " + "; ".join(failed[:5]) if failed else ""))
    for w in test_warnings(R.read("ctest_gpu_full.log") or ""):
        R.p("- GPU test: %s" % w)
    for tool in ("memcheck", "racecheck", "synccheck"):
        m = re.search(r"^%s: (.*)$" % tool, text, re.M)
        if m:
            R.p("- compute-sanitizer %s: %s" % (tool, m.group(1).strip() or "(no summary line)"))


def conv(R, size):
    name, logname = "conv_vs_cudnn_%d.csv" % size, "conv_vs_cudnn_%d.log" % size
    text, log = R.read(name), R.read(logname)
    # the geomean lines, how the grouped-loader tiles and the channels-last kernels did in tuning,
    # and tuning's output check (conv_vs_cudnn prints all four)
    geo = grep(log, r"^(geomean|grouped loaders|channels-last|tuning output check)") if log is not None else \
        [l for l in R.summary_lines("conv_vs_cudnn %d px" % size)
         if l.startswith(("geomean", "grouped loaders", "channels-last", "tuning output check"))]
    R.p("**%d px**%s" % (size, (": " + grep(log, r"^conv_vs_cudnn: ")[0]) if grep(log, r"^conv_vs_cudnn: ") else ""))
    R.p()
    if text is None:
        why = grep(log, r"^(SKIP|ERROR|ops_cuda|conv_vs_cudnn: error)")
        R.p("not measured (no %s)%s" % (name, ("; " + logname + ": " + why[-1]) if why else ""))
        for g in geo:
            R.p("- `%s`" % g)
        for label in ("Conv2d", "ConvTranspose2d"):
            R.target(CONV_WHAT % (size, label), None, 0, "%s", detail="no %s" % name)
        return
    rows, bad = read_csv(text, ("layer", "dir", "math", "disco_ms", "cudnn_ms", "disco_over_cudnn"), name)
    if not rows:
        R.p("not measured (no readable rows in %s)" % name)
        for label in ("Conv2d", "ConvTranspose2d"):
            R.target(CONV_WHAT % (size, label), None, 0, "%s", detail="no readable rows in %s" % name)
    maths = []
    for r in rows:
        if r["math"] not in maths:
            maths.append(r["math"])
    for mth in maths:
        mr = [r for r in rows if r["math"] == mth]
        R.p("%s (disco/cuDNN: time ratio, < 1: disco faster):" % mth.upper())
        R.p()
        R.p("\n".join(md_table(
            ("layer", "dir", "role", "GFLOP", "disco ms", "disco TFLOP/s", "cuDNN ms", "disco/cuDNN", "ok",
             "disco plan", "cuDNN algo"),
            [(r["layer"], r["dir"], r.get("role", ""), f(num(r.get("gflop")), "%.3f"), f(num(r["disco_ms"]), "%.4f"),
              f(num(r.get("disco_tflops")), "%.1f"), f(num(r["cudnn_ms"]), "%.4f"), f(num(r["disco_over_cudnn"])),
              "yes" if r.get("ok", "1").strip() == "1" else "**MISMATCH**", r.get("disco_plan", ""),
              r.get("cudnn_algo", "")) for r in mr],
            ["---", "---", "---", "---:", "---:", "---:", "---:", "---:", "---", "---", "---"])))
        R.p()
        for label, is_t, goal in (("Conv2d", False, CONV_TARGET), ("ConvTranspose2d", True, CONVT_TARGET)):
            sp = []
            for r in mr:
                ratio = num(r["disco_over_cudnn"])
                if r.get("ok", "1").strip() == "1" and ratio and ratio > 0 and (".convT" in r["layer"]) == is_t:
                    sp.append(1.0 / ratio)
            g, n = geomean(sp)
            R.target((CONV_WHAT % (size, label)).replace(" px ", " px %s " % mth) + " (cuDNN time / disco time)",
                     g, goal, "%.3fx", detail=("over %d case(s)" % n) if n else "no timed case")
        R.p()
    if geo:
        R.p("%s:" % logname)
        R.p()
        for g in geo:
            R.p("- `%s`" % g)
        R.p()
    mism = grep(log, r"^(?!tuning output check).*disagree|^ERROR")
    for m in mism:
        R.p("- `%s`" % m)
    if bad:
        R.p("(%d unreadable row(s) in %s left out)" % (bad, name))


def ops(R):
    text, log = R.read("ops_cuda.csv"), R.read("ops_cuda.log")
    pat = r"^(copy peak:|fused_loss_fraction_of_copy:|instance_norm_vs_cudnn:|elementwise_vs_cudnn:)"
    lines = grep(log, pat) if log is not None else [l for l in R.summary_lines("ops_cuda") if re.match(pat, l)]
    fused_min = None
    if text is None:
        why = grep(log, r"^ops_cuda: (no CUDA|error)|^ERROR")
        R.p("not measured (no ops_cuda.csv)%s" % (("; ops_cuda.log: " + why[-1]) if why else ""))
    else:
        rows, bad = read_csv(text, ("op", "shape", "gbps", "fraction_of_copy"), "ops_cuda.csv")
        R.p("\n".join(md_table(("op", "shape", "GB/s", "of copy", "ok"),
                               [(r["op"], r["shape"], f(num(r["gbps"]), "%.1f"), f(num(r["fraction_of_copy"])),
                                 "yes" if r.get("ok", "1").strip() == "1" else "**no**") for r in rows],
                               ["---", "---", "---:", "---:", "---"])))
        if bad:
            R.p()
            R.p("(%d unreadable row(s) in ops_cuda.csv left out)" % bad)
        fr = [num(r["fraction_of_copy"]) for r in rows if r["op"].startswith("recon_adv_loss")]
        if fr and all(x is not None for x in fr) and all(r.get("ok", "1").strip() == "1" for r in rows
                                                         if r["op"].startswith("recon_adv_loss")):
            fused_min = min(fr)
    R.p()
    for l in lines:
        R.p("- `%s`" % l)
    if text is not None and not any(l.startswith("fused_loss_fraction_of_copy:") for l in lines):
        R.p("- fused_loss_fraction_of_copy: not measured (no such line in %s)" %
            ("ops_cuda.log" if log is not None else "summary.txt (no ops_cuda.log)"))
    for l in lines:
        m = re.search(r"min=([0-9.]+|FAILED|none)", l) if l.startswith("fused_loss_fraction_of_copy:") else None
        if m:
            fused_min = num(m.group(1)) if m.group(1)[0].isdigit() else None
            if m.group(1) == "FAILED":
                R.target(FUSED_WHAT, None, 0, "%s",
                         detail="a fused-loss case FAILED")
                return
    R.p()
    R.target(FUSED_WHAT, fused_min, FUSED_LOSS_TARGET, "%.3f",
             detail="" if fused_min is not None else ("no ops_cuda.csv" if text is None else "no fused-loss figures"))


def step_rows(R):
    """{row name: (ok, ms, peak MiB, error)} from step_vs_pytorch.csv, else from the .md table's labels."""
    out = {}
    text = R.read("step_vs_pytorch.csv")
    if text is not None:
        try:
            rows, _ = read_csv(text, ("row", "ok", "ms_per_step"), "step_vs_pytorch.csv")
            for r in rows:
                out[r["row"]] = (r["ok"].strip() == "1", num(r["ms_per_step"]), num(r.get("peak_mib")),
                                 r.get("error", ""))
            return out, "step_vs_pytorch.csv"
        except Exception:  # noqa: BLE001 (the .md then)
            pass
    labels = {"PyTorch eager (defaults)": "eager", "disco bf16 + CUDA graph": "disco_bf16_graph"}
    for line in (R.read("step_vs_pytorch.md") or "").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 4 and cells[0] in labels:
            ok = num(cells[1]) is not None
            out[labels[cells[0]]] = (ok, num(cells[1]), num(cells[3]), cells[-1] if not ok else "")
    return out, "step_vs_pytorch.md"


def step(R):
    md, log = R.read("step_vs_pytorch.md"), R.read("step_vs_pytorch.log")
    if md is None:
        why = grep(log, r"^SKIP|FAILED|^step_vs_pytorch: note")
        R.p("not measured (no step_vs_pytorch.md)%s" % (("; step_vs_pytorch.log: " + why[-1]) if why else ""))
    else:
        R.p(md.strip())
    R.p()
    rows, src = step_rows(R)
    e, d = rows.get("eager"), rows.get("disco_bf16_graph")

    if md is None and R.read("step_vs_pytorch.csv") is None:
        for t in STEP_WHAT:
            R.target(t, None, 0, "%s", detail="no step_vs_pytorch.csv / .md")
        return

    def missing(r, label):
        if r is None:
            return "no %s row" % label
        return "%s row failed: %s" % (label, r[3] or "no time") if not r[0] or r[1] is None else None

    me, mdisc = missing(e, "PyTorch eager"), missing(d, "disco bf16 + CUDA graph")
    if me or mdisc:
        R.target(STEP_WHAT[0], None, 0, "%s", detail="; ".join(x for x in (me, mdisc) if x))
    else:
        R.target(STEP_WHAT[0], e[1] / d[1], STEP_SPEEDUP_TARGET, "%.2fx",
                 detail="%.2f ms vs %.2f ms" % (d[1], e[1]))
    R.target(STEP_WHAT[1], d[1] if not mdisc else None, STEP_MS_TARGET,
             "%.2f ms", higher_is_better=False, detail=mdisc or "")
    pe, pd = (e[2] if e and not me else None), (d[2] if d and not mdisc else None)
    if pe is None or pd is None:
        R.target(STEP_WHAT[2], None, 0, "%s",
                 detail="; ".join(x for x in (me, mdisc) if x) or "no peak memory figure in " + src)
    else:
        R.target(STEP_WHAT[2], pd, pe, "%.0f MiB",
                 higher_is_better=False)


def parity(R):
    pat = r"^(worst relative error|PASS|FAIL|SKIP|error)"
    for suffix, what in (("", "FP32 (pass / fail at 1e-4)"), ("_tf32", "TF32 (informational)"),
                         ("_bf16", "BF16 (informational)")):
        name = "parity_cuda%s.log" % suffix
        log = R.read(name)
        if log is None:
            if suffix:  # the tensor-core rows are optional (older gpu_check, budget cut)
                continue
            lines = [l for l in R.summary_lines("disco step --device cuda") if re.match(pat, l)]
            if not lines:
                R.p("not measured (no parity_cuda.log)")
                continue
        else:
            lines = grep(log, pat)
        if not lines:
            R.p("no result line in %s (cut short?): last line `%s`" %
                (name, ((log or "").strip().splitlines() or ["(empty)"])[-1].strip()))
        for l in lines:
            R.p("- %s: `%s`" % (what, l))


def load_ncu_summary():
    spec = importlib.util.spec_from_file_location("ncu_summary", os.path.join(TOOLS_DIR, "ncu_summary.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def ncu(R):
    for n in ("step", "conv", "nhwc", "ops"):
        name = "ncu_%s.csv" % n
        text = R.read(name)
        if not text or not text.strip():
            R.p("%s kernels: not measured (%s %s)" % (n, "no" if text is None else "empty", name))
            R.p()
            continue
        buf = io.StringIO()
        mod = load_ncu_summary()
        with contextlib.redirect_stdout(buf):
            # the training step's kernels by category (ncu_step), else one line per kernel
            lines = mod.breakdown(text, name) if n == "step" else mod.summarize(text, 30, name)
        if n == "step":
            R.p("One training step's kernels by category (128 px, batch 32, BF16, CUDA graph; "
                "tools/ncu_summary.py --breakdown %s):" % name)
        else:
            R.p("%s kernels (tools/ncu_summary.py %s):" % (n, name))
        R.p()
        R.p("```")
        R.p("\n".join(lines) if lines is not None else buf.getvalue().strip())
        R.p("```")
        R.p()


def section(R, title, fn, *a, targets=()):
    """Runs one part; an exception (a garbled file) is reported, and the part's targets not yet checked
    are recorded as not measured."""
    R.p("#### " + title)
    R.p()
    n = len(R.targets)
    try:
        fn(R, *a)
    except Exception as e:  # noqa: BLE001 (a garbled file: say so, go on)
        why = "%s: %s" % (type(e).__name__, str(e)[:300])
        R.p("could not read this part: " + why)
        done = " ".join(R.targets[n:])
        for t in targets:
            if t not in done:
                R.target(t, None, 0, "%s", detail="unreadable input")
    R.p()


def build(out, args):
    R = Report(out)
    try:
        environment(R, args)
    except Exception as e:  # noqa: BLE001
        R.p("### GPU run (environment unreadable: %s: %s)" % (type(e).__name__, str(e)[:200]))
        R.p()
    section(R, "gpu_check steps", steps)
    for size in (128, 256):
        section(R, "Convolutions vs cuDNN, %d px (benchmarks/conv_vs_cudnn)" % size, conv, size,
                targets=[CONV_WHAT % (size, l) for l in ("Conv2d", "ConvTranspose2d")])
    section(R, "Memory-bound kernels vs the device copy (benchmarks/ops_cuda)", ops, targets=[FUSED_WHAT])
    section(R, "Training step vs PyTorch (benchmarks/step_vs_pytorch.py)", step, targets=STEP_WHAT)
    section(R, "disco step --device cuda vs the official PyTorch step (tools/parity_check.py)", parity)
    section(R, "Nsight Compute (tools/ncu_summary.py)", ncu)
    R.p("#### Targets")
    R.p()
    for t in R.targets:
        R.p("- " + t)
    if not R.targets:
        R.p("- none checked")
    return re.sub(r"\n{3,}", "\n\n", "\n".join(R.lines)).rstrip() + "\n"


# ---- self-test ------------------------------------------------------------------------------------------
CTEST_FULL_LOG = """5/9 Testing: cuda.test_cuda_conv
/work/main/tests/cuda/test_cuda_conv.cpp:456: warning:
  largest difference from the reference plan: FP32 1.2e-06, TF32 0.0011, BF16
  0.0042

/work/main/tests/cuda/test_cuda_conv.cpp:299: warning:
  built without cuDNN: the element-wise ops are not compared with cuDNN

6/9 Testing: cuda.test_cuda_model
/work/main/tests/cuda/test_cuda_model.cpp:760: warning:
  bf16 on wgmma: worst gradient difference from the heuristic plans' 0.0644582
  (e2.full.3.weight)

"""

ENV_LOG = """date: Sat Nov 28 01:03:29 UTC 2026
host: gpu-7
repo: /work/main
deps: /work/main/.deps
Sat Nov 28 01:03:29 2026
+-----------------------------------------------------------------------------------------+
| NVIDIA-SMI 570.86.15              Driver Version: 570.86.15      CUDA Version: 12.8     |
|-----------------------------------------+------------------------+----------------------+
| GPU  Name                 Persistence-M | Bus-Id          Disp.A | Volatile Uncorr. ECC |
| Fan  Temp   Perf          Pwr:Usage/Cap |           Memory-Usage | GPU-Util  Compute M. |
|                                         |                        |               MIG M. |
|=========================================+========================+======================|
|   0  NVIDIA H100 80GB HBM3          On  |   00000000:00:07.0 Off |                    0 |
| N/A   30C    P0             70W /  700W |       1MiB /  81559MiB |      0%      Default |
|                                         |                        |             Disabled |
+-----------------------------------------+------------------------+----------------------+
nvcc: NVIDIA (R) Cuda compiler driver
Copyright (c) 2005-2025 NVIDIA Corporation
Built on Wed_Aug_20_01:58:59_PM_PDT_2025
Cuda compilation tools, release 13.0, V13.0.88
Build cuda_13.0.r13.0/compiler.36424714_0
cmake version 3.28.3
1.11.1
torch 2.5.1+cu124 cuda 12.4 cudnn 90100
/usr/local/cuda/bin/compute-sanitizer
8f1ffd2 docs/formats.md: disco step --device cuda
 M tools/gpu_check.sh
"""

SUMMARY = """
================ disco gpu_check summary ================
device: NVIDIA H100 80GB HBM3, 570.86.15
logs:   /tmp/out
step                       result          sec  note
configure                  PASS              9  
build_cuda                 PASS            141  
ctest_gpu                  PASS             62  
ctest_index_math           PASS              1  
sanitizer_memcheck         PASS             44  
sanitizer_racecheck        TIMEOUT          90  
sanitizer_synccheck        SKIPPED           0  no time left (--budget 540)
parity_cuda                PASS             17  
conv_vs_cudnn_128          PASS             38  
ops_cuda                   FAIL(1)          12  
step_vs_pytorch            PASS             71  
ncu_conv                   PASS             30  optional

ctest -L gpu:
  100% tests passed, 0 tests failed out of 9
memcheck: ========= ERROR SUMMARY: 0 errors
racecheck: 
conv_vs_cudnn 128 px:
  geomean t_disco/t_cudnn (tf32): 0.876  [fprop 0.876, dgrad 0.876, wgrad 0.876]  peak 494.7 TFLOP/s (H100 SXM)
ops_cuda (GB/s against the device copy bandwidth):
  copy peak: 2931.4 GB/s (cudaMemcpyAsync D2D of 256 MiB, read + written counted)
  fused_loss_fraction_of_copy: mse 128px=0.853 large=0.921; l1 128px=0.861 large=0.930; min=0.853 (vs a D2D copy of the same bytes) | of the large-copy peak: mse 128px=0.702 large=0.905; l1 128px=0.711 large=0.915;
disco step --device cuda vs the official PyTorch step (float64):
  worst relative error 3.214e-05 (grad.ae.e1.conv1.weight); 412 entries, 0 failed; 12.3 s
  PASS
=========================================================
"""

CONV_HDR = ("device,size,batch,layer,dir,role,math,gflop,disco_ms,disco_tflops,cudnn_ms,cudnn_tflops,disco_over_cudnn,"
            "rel_err,ok,cudnn_algo,disco_plan\n")


def conv_csv(size, cases):
    """cases: (layer, dir, math, disco_ms, cudnn_ms, ok) -> the CSV conv_vs_cudnn.cpp writes (default ostream
    precision, "nan" / "-nan" for untimed cases)."""
    s = CONV_HDR
    for layer, d, mth, td, tc, ok in cases:
        t = ".convT" in layer
        role = "bwd-weight" if d == "wgrad" else ("forward" if (d == "fprop") != t else "bwd-data")
        gf = 1.07374
        g = lambda x: "%g" % x if isinstance(x, float) else x  # noqa: E731
        s += ('"NVIDIA H100 80GB HBM3",%d,32,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%d,"%s","%s"\n' % (
            size, layer, d, role, mth, g(gf), g(td) if ok else "nan", g(gf / td) if ok else "nan",
            g(tc) if ok else "nan",
            g(gf / tc) if ok else "nan", g(td / tc) if ok else "-nan", "0.000412" if ok else "inf", 1 if ok else 0,
            "IMPLICIT_PRECOMP_GEMM" if ok else "", "128x128x32 s3 splitk1"))
    return s


def conv_log(size, csv_text, path):
    lines = ["== [conv_vs_cudnn_%d] build-gpu/benchmarks/conv_vs_cudnn --size %d --iters 10 --csv %s"
             % (size, size, path),
             "conv_vs_cudnn: NVIDIA H100 80GB HBM3, 132 SMs, cuDNN 91002, %d px, batch 32, median of 10 runs "
             "(L2 flushed)" % size,
             "disco launch plans: tuned per layer (first call of each problem)"]
    rows = list(csv.DictReader(io.StringIO(csv_text)))
    for mth in ("tf32", "bf16"):
        g, n = geomean([num(x["disco_over_cudnn"]) for x in rows if x["math"] == mth])
        per = [geomean([num(x["disco_over_cudnn"]) for x in rows if x["math"] == mth and x["dir"] == d])[0]
               for d in ("fprop", "dgrad", "wgrad")]
        if n:
            lines.append("geomean t_disco/t_cudnn (%s): %.3f  [fprop %s, dgrad %s, wgrad %s]  peak 494.7 TFLOP/s "
                         "(H100 SXM)" % ((mth, g) + tuple(f(x) if x else "nan" for x in per)))
            lines.append("grouped loaders (%s, tuning times): best grouped / best other plan geomean 0.910 over %d "
                         "case(s) [fprop 0.900, dgrad 0.850, wgrad 0.990]; kept in 1 of %d tuned case(s)" % (mth, n, n))
            if mth == "bf16":
                lines.append("channels-last bf16 (tuning times, pack included): best nhwc / best other plan "
                             "geomean 0.800 over 1 case(s) [fprop 0.800, dgrad nan, wgrad nan; best 0.800, worst 0.800]; "
                             "kept in 1 of 1 tuned case(s)")
                lines.append("channels-last 64x64 warps bf16 (tuning times): best 256x128nhwc / 128x128nhwc4w over "
                             "best other nhwc plan geomean 0.700 over 1 case(s) [fprop 0.700, dgrad nan, wgrad nan; "
                             "best 0.700, worst 0.700]; kept in 1 of 1 tuned case(s)")
            lines.append("tuning output check (%s): 0 of %d candidate plan(s) disagreed with their layer's reference "
                         "plan; worst agreeing max|diff|/max|ref| 4.10e-03" % (mth, 7 * n))
    if any(x["ok"] == "0" for x in rows):
        lines.append("1 case(s) where disco and cuDNN disagree")
    return "\n".join(lines) + "\n"


OPS_HDR = ("device,op,shape,bytes,median_us,gbps,copy_gbps_same_bytes,fraction_of_copy,peak_copy_gbps,"
           "fraction_of_peak,rel_err,ok\n")


def ops_csv():
    peak = 2931.4
    rows = [("memcpy D2D (reference)", "256 MiB buffer", 536870912, 2931.4, 2931.4, 1),
            ("recon_adv_loss mse", "n=1572864 m=32 (128px)", 12583168, 2150.7, 2521.3, 1),
            ("recon_adv_loss l1", "n=1572864 m=32 (128px)", 12583168, 2170.9, 2521.3, 1),
            ("recon_adv_loss mse", "n=67108864 m=32 (large)", 536871168, 2699.8, 2931.4, 1),
            ("recon_adv_loss l1", "n=67108864 m=32 (large)", 536871168, 2726.2, 2931.4, 1),
            ("instance_norm_fwd leaky 0.2", "E1.norm1 [1024, 4096]", 33554432, 2455.1, 2780.2, 1),
            ("cudnn batchnorm fwd none", "E1.norm1 [1024, 4096]", 33554432, 1610.4, 2780.2, 1),
            ("instance_norm_bwd leaky 0.2", "E1.norm1 [1024, 4096]", 50331648, 2301.9, 2810.7, 1),
            ("adam_update_counted", "autoencoder (38 tensors, 16233470)", 454537160, 2602.3, 2925.0, 1),
            ("add", "n=67108864", 805306368, 2811.0, 2930.1, 1),
            ("cudnn add", "n=67108864", 805306368, 2702.5, 2930.1, 1),
            ("leaky_relu_fwd 0.2", "n=67108864", 536870912, 2840.2, 2931.4, 1),
            ("relu_fwd", "n=67108864", 536870912, 2842.0, 2931.4, 0)]
    s = OPS_HDR
    for op, shape, b, gbps, copy, ok in rows:
        s += '"NVIDIA H100 80GB HBM3","%s","%s",%d,%g,%g,%g,%g,%g,%g,%g,%d\n' % (
            op, shape, b, b / (gbps * 1e3), gbps, copy, gbps / copy, peak, gbps / peak, 2.1e-07, ok)
    return s


OPS_LOG = """== [ops_cuda] build-gpu/benchmarks/ops_cuda --quick --iters 10 --csv OUT/ops_cuda.csv
ops_cuda: NVIDIA H100 80GB HBM3, 132 SMs, CUDA runtime 13.0, driver 12.8
copy peak: 2931.4 GB/s (cudaMemcpyAsync D2D of 256 MiB, read + written counted)
1 case(s) failed (MISMATCH or ERROR above)
fused_loss_fraction_of_copy: mse 128px=0.853 large=0.921; l1 128px=0.861 large=0.930; min=0.853 (vs a D2D copy of the same bytes) | of the large-copy peak: mse 128px=0.734 large=0.921; l1 128px=0.741 large=0.930;
instance_norm_vs_cudnn: fwd geomean 1.52x (min 1.10x E1.norm5, 5 layers); bwd geomean 1.31x (min 1.02x D.norm1, 5 layers); speed-up = cuDNN time / disco time (cuDNN: batch norm over [1, N*C, H, W] + ReLU, as PyTorch)
elementwise_vs_cudnn: add 1.04x, relu_fwd 1.01x at n=67108864 (cuDNN time / disco time)
"""

# (name, label, ok, ms, peak MiB, steady MiB, pipelined ms, error)
STEP_ROWS = [("eager", "PyTorch eager (defaults)", True, 9.80, 1412, 1301, None, ""),
             ("eager_tuned", "PyTorch eager, cudnn.benchmark + TF32", True, 7.12, 1505, 1390, None, ""),
             ("disco_bf16", "disco bf16", True, 3.31, 1588, 1210, 3.05, ""),
             ("disco_bf16_graph", "disco bf16 + CUDA graph", True, 2.75, 1630, 1214, 2.61, ""),
             ("disco_bf16_graph_cudnn", "disco bf16 + CUDA graph, cuDNN convs", False, None, None, None, None,
              "timed out after 120 s")]


def write_step_files(d):
    """step_vs_pytorch.md / .csv through benchmarks/step_vs_pytorch.py's own report(), else a copy of its format."""
    rows = []
    for name, label, ok, ms, peak, steady, pipe, err in STEP_ROWS:
        r = {"name": name, "label": label, "ok": ok}
        if ok:
            r.update(ms=ms, ms_min=ms * 0.98, ms_max=ms * 1.05, peak_bytes=int(peak * 2 ** 20),
                     steady_peak_bytes=int(steady * 2 ** 20), pipelined_ms=pipe, last_loss=0.0123,
                     flags=("cudnn.benchmark False" if name.startswith("eager") else "bf16") +
                     ("; back to back %.2f ms/step" % pipe if pipe else ""))
        else:
            r["error"] = err
        rows.append(r)
    try:
        spec = importlib.util.spec_from_file_location("step_vs_pytorch",
                                                      os.path.join(ROOT, "benchmarks", "step_vs_pytorch.py"))
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        a = argparse.Namespace(batch=32, resolution=128, steps=20, warmup=3, device="cuda")
        with contextlib.redirect_stdout(io.StringIO()):
            mod.report(rows, a, {"torch": "2.5.1+cu124", "cuda": "12.4", "cudnn": "90100",
                                 "gpu": "NVIDIA H100 80GB HBM3", "driver": "570.86.15"}, d)
        return "benchmarks/step_vs_pytorch.py report()"
    except Exception as e:  # noqa: BLE001 (no such file here: the format as report() writes it)
        with open(os.path.join(d, "step_vs_pytorch.md"), "w") as fo:
            fo.write("One official training step (autoencoder + discriminator), 128 px, batch 32 + 32 (pairs/step "
                     "32), 3 warm-up + 20 timed steps, device cuda.  \ntorch 2.5.1+cu124, CUDA 12.4, cuDNN 90100, "
                     "GPU NVIDIA H100 80GB HBM3, driver 570.86.15, triton -, 2026-11-28.\n\n"
                     "| row | ms/step | pairs/s | peak MiB | steady MiB | time / eager | note |\n"
                     "|---|---:|---:|---:|---:|---:|---|\n")
            for name, label, ok, ms, peak, steady, pipe, err in STEP_ROWS:
                fo.write(("| %s | %.2f | %.1f | %d | %d | %.2f | x |\n"
                          % (label, ms, 32e3 / ms, peak, steady, ms / 9.8))
                         if ok else "| %s | - | - | - | - | - | FAILED: %s |\n" % (label, err))
        with open(os.path.join(d, "step_vs_pytorch.csv"), "w", newline="") as fo:
            w = csv.writer(fo)
            w.writerow(["row", "label", "ok", "ms_per_step", "peak_mib", "error"])
            for name, label, ok, ms, peak, steady, pipe, err in STEP_ROWS:
                w.writerow([name, label, int(ok), "%.4f" % ms if ok else "-", "%.1f" % peak if ok else "-", err])
        return "built-in sample (%s: %s)" % (type(e).__name__, e)


PARITY_LOG = """== [parity_cuda] python3 tools/parity_check.py --disco build-gpu/examples/disco --device cuda
parity check: disco step vs the official PyTorch step (torch 2.5.1+cu124, 8 threads)
disco step: 1.92 s (wall, including start-up and file I/O)

worst relative error 3.214e-05 (grad.ae.e1.conv1.weight); 412 entries, 0 failed; 12.3 s
PASS
"""


def run_report(argv):
    buf, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(err):
        rc = main(argv)
    return rc, buf.getvalue() + err.getvalue()


def self_test():
    fails = []

    def expect(cond, what, text=None):
        if not cond:
            fails.append(what)
            print("self-test FAILED: %s" % what)
            if text is not None:
                print(text)

    tmp = tempfile.mkdtemp(prefix="gpu_report_selftest_")
    try:
        full = os.path.join(tmp, "full")
        os.makedirs(full)

        def put(d, name, text):
            with open(os.path.join(d, name), "w", newline="") as fo:
                fo.write(text)

        put(full, "env.log", ENV_LOG)
        put(full, "summary.txt", SUMMARY)
        # 128 px: TF32 Conv2d cases 1.2x faster than cuDNN (met), ConvTranspose2d 1.1x (missed, < 1.2);
        # BF16: Conv2d 1.0x (met; the MISMATCH case left out), ConvTranspose2d 1.5x (met)
        c128 = conv_csv(128, [("E1.conv1", "fprop", "tf32", 0.1, 0.12, 1), ("E1.conv1", "dgrad", "tf32", 0.2, 0.24, 1),
                              ("E1.conv1", "wgrad", "tf32", 0.3, 0.36, 1), ("D.convT1", "fprop", "tf32", 0.1, 0.11, 1),
                              ("D.convT1", "dgrad", "tf32", 0.2, 0.22, 1), ("D.convT1", "wgrad", "tf32", 0.3, 0.33, 1),
                              ("E1.conv1", "fprop", "bf16", 0.05, 0.05, 1),
                              ("E1.conv1", "dgrad", "bf16", 0.07, 0.09, 0),
                              ("D.convT1", "fprop", "bf16", 0.04, 0.06, 1)])
        put(full, "conv_vs_cudnn_128.csv", c128)
        put(full, "conv_vs_cudnn_128.log", conv_log(128, c128, "OUT/conv_vs_cudnn_128.csv"))
        # 256 px: TF32 Conv2d 0.8x (missed), ConvTranspose2d 1.25x (met)
        c256 = conv_csv(256, [("E1.conv2", "fprop", "tf32", 0.5, 0.4, 1), ("D.convT6", "wgrad", "tf32", 0.8, 1.0, 1)])
        put(full, "conv_vs_cudnn_256.csv", c256)
        put(full, "conv_vs_cudnn_256.log", conv_log(256, c256, "OUT/conv_vs_cudnn_256.csv"))
        put(full, "ops_cuda.csv", ops_csv())
        put(full, "ops_cuda.log", OPS_LOG)
        src = write_step_files(full)
        print("step_vs_pytorch sample: %s" % src)
        put(full, "parity_cuda.log", PARITY_LOG)
        put(full, "ctest_gpu_full.log", CTEST_FULL_LOG)
        put(full, "ncu_conv.csv", load_ncu_summary().SAMPLE)
        put(full, "ncu_step.csv", load_ncu_summary().SAMPLE_STEP)

        rc, text = run_report([full, "--command", "tools/gpu_check.sh /tmp/o --quick"])
        print(text)
        want = [
            "### NVIDIA H100 80GB HBM3, 2026-11-28",
            "driver 570.86.15", "CUDA 13.0.88 (nvcc)", "9.10.2 (disco)", "9.1.0 (PyTorch)", "2.5.1+cu124 (CUDA 12.4)",
            "commit 8f1ffd2 (docs/formats.md: disco step --device cuda) + 1 changed file in the working tree",
            "`tools/gpu_check.sh /tmp/o --quick`",
            "| sanitizer_racecheck | TIMEOUT | 90 |  |", "| ops_cuda | FAIL(1) | 12 |  |",
            "| sanitizer_synccheck | SKIPPED | 0 | no time left (--budget 540) |",
            "ctest -L gpu: 100% tests passed, 0 tests failed out of 9",
            "- GPU test: bf16 on wgmma: worst gradient difference from the heuristic plans' 0.0644582 (e2.full.3.weight)",
            "- GPU test: largest difference from the reference plan: FP32 1.2e-06, TF32 0.0011, BF16 0.0042",
            "compute-sanitizer memcheck: ========= ERROR SUMMARY: 0 errors",
            "| E1.conv1 | fprop | forward | 1.074 | 0.1000 | 10.7 | 0.1200 | 0.833 | yes |",
            "| D.convT1 | fprop | bwd-data |", "| E1.conv1 | dgrad | bwd-data | 1.074 | - | - | - | - | **MISMATCH** |",
            "conv 128 px tf32 Conv2d geomean speed-up over cuDNN (cuDNN time / disco time): met (1.200x; target >= 1.000x; over 3 case(s))",
            "conv 128 px tf32 ConvTranspose2d geomean speed-up over cuDNN (cuDNN time / disco time): missed (1.100x; target >= 1.200x",
            "conv 128 px bf16 Conv2d geomean speed-up over cuDNN (cuDNN time / disco time): met (1.000x; target >= 1.000x; over 1 case(s))",
            "conv 128 px bf16 ConvTranspose2d geomean speed-up over cuDNN (cuDNN time / disco time): met (1.500x",
            "conv 256 px tf32 Conv2d geomean speed-up over cuDNN (cuDNN time / disco time): missed (0.800x",
            "conv 256 px tf32 ConvTranspose2d geomean speed-up over cuDNN (cuDNN time / disco time): met (1.250x",
            "`geomean t_disco/t_cudnn (tf32): 0.870  [fprop 0.870, dgrad 0.870, wgrad 0.870]",
            "`geomean t_disco/t_cudnn (bf16): 0.816  [fprop 0.816, dgrad nan, wgrad nan]", "1 case(s) where disco and cuDNN disagree",
            "`grouped loaders (tf32, tuning times): best grouped / best other plan geomean 0.910 over 6 case(s)",
            "`channels-last bf16 (tuning times, pack included): best nhwc / best other plan geomean 0.800",
            "`channels-last 64x64 warps bf16 (tuning times): best 256x128nhwc / 128x128nhwc4w over best other nhwc",
            "`tuning output check (bf16): 0 of 14 candidate plan(s) disagreed with their layer's reference plan",
            "| recon_adv_loss mse | n=1572864 m=32 (128px) | 2150.7 | 0.853 | yes |", "| relu_fwd | n=67108864 | 2842.0 | 0.970 | **no** |",
            "`instance_norm_vs_cudnn: fwd geomean 1.52x", "`elementwise_vs_cudnn: add 1.04x",
            "fused loss GB/s >= 0.8 of a copy of the same bytes (worst size): met (0.853; target >= 0.800)",
            "| disco bf16 + CUDA graph | 2.75 |", "FAILED: timed out after 120 s",
            "disco BF16 + CUDA graph vs PyTorch eager: >= 2x faster: met (3.56x; target >= 2.00x; 2.75 ms vs 9.80 ms)",
            "disco BF16 + CUDA graph: <= 3 ms/step: met (2.75 ms; target <= 3.00 ms)",
            "peak memory, disco BF16 + CUDA graph <= PyTorch eager: missed (1630 MiB; target <= 1412 MiB)",
            "`worst relative error 3.214e-05 (grad.ae.e1.conv1.weight); 412 entries, 0 failed; 12.3 s`", "`PASS`",
            "conv_igemm_kernel<FpropView", "ops kernels: not measured (no ncu_ops.csv)",
            "One training step's kernels by category", "step_kernel_total_us: 120.0 (8 kernels",
            "fprop 40.5 us, dgrad 20.0 us, wgrad 31.5 us", "#### Targets"]
        for w in want:
            expect(w in text, "full folder: %r in the report" % w)
        expect(rc == 0, "full folder: exit 0 (got %s)" % rc)
        expect(text.count("- target ") == 10 and text.count("met (") + text.count("missed (") == 20,
               "full folder: 10 target checks, each twice (inline and in Targets)")
        expect("Traceback" not in text and "could not read" not in text, "full folder: no errors")

        # a budget-cut run: env.log and summary.txt only; --date overrides env.log's
        part = os.path.join(tmp, "partial")
        os.makedirs(part)
        put(part, "env.log", ENV_LOG.replace("torch 2.5.1+cu124 cuda 12.4 cudnn 90100\n",
                                             "ModuleNotFoundError: No module named 'torch'\n"))
        put(part, "summary.txt", SUMMARY.replace("device: NVIDIA H100 80GB HBM3, 570.86.15", "device: "))
        rc, text = run_report([part, "--date", "2026-12-01"])
        print(text)
        for w in ["### NVIDIA H100 80GB HBM3, 2026-12-01", "PyTorch not importable by env.log's python3",
                  "`tools/gpu_check.sh OUT --quick --cuda-only --budget 540`",
                  "not measured (no conv_vs_cudnn_128.csv)", "not measured (no conv_vs_cudnn_256.csv)",
                  "not measured (no ops_cuda.csv)", "not measured (no step_vs_pytorch.md)",
                  "conv 128 px Conv2d geomean speed-up over cuDNN: not measured (no conv_vs_cudnn_128.csv)",
                  "`geomean t_disco/t_cudnn (tf32): 0.876",  # from summary.txt
                  "fused loss GB/s >= 0.8 of a copy of the same bytes (worst size): met (0.853",  # summary.txt's line
                  "disco BF16 + CUDA graph vs PyTorch eager: >= 2x faster: not measured (no step_vs_pytorch.csv / .md)",
                  "<= 3 ms/step: not measured", "`worst relative error 3.214e-05",
                  "conv kernels: not measured (no ncu_conv.csv)", "step kernels: not measured (no ncu_step.csv)",
                  "| configure | PASS | 9 |  |"]:
            expect(w in text, "partial folder: %r in the report" % w)
        expect(rc == 0 and "Traceback" not in text, "partial folder: exit 0, no traceback")
        # the command line gpu_check recorded in env.log names the run when --command is not given
        cmd = os.path.join(tmp, "command")
        os.makedirs(cmd)
        put(cmd, "env.log", "command: tools/gpu_check.sh /tmp/c --only tests\n" + ENV_LOG.replace(" M tools/gpu_check.sh\n", ""))
        put(cmd, "summary.txt", SUMMARY)
        rc, text = run_report([cmd])
        expect(rc == 0 and "`tools/gpu_check.sh /tmp/c --only tests`" in text, "command folder: env.log's command line",
               text)
        expect("changed file" not in text, "command folder: a clean checkout names no changed files", text)

        # garbled and truncated files: reported, never a crash
        bad = os.path.join(tmp, "garbled")
        os.makedirs(bad)
        put(bad, "env.log", "\x00\x01 garbage \xff\n")
        put(bad, "summary.txt", "step result sec\nnot a row\n")
        put(bad, "conv_vs_cudnn_128.csv", "\x00\x00garbage,,,\n\"unterminated\n")
        put(bad, "conv_vs_cudnn_256.csv", c256[:len(CONV_HDR) + 40])  # cut mid-row
        put(bad, "ops_cuda.csv", "device,op\nx,y\n")
        put(bad, "step_vs_pytorch.csv", "row,ok\n")
        put(bad, "step_vs_pytorch.md", "| PyTorch eager (defaults) | x |\n")
        put(bad, "parity_cuda.log", "== [parity_cuda] python3 tools/parity_check.py\nreference step: ")
        put(bad, "ncu_conv.csv", "x,y\n1,2\n")
        put(bad, "ncu_ops.csv", "")
        rc, text = run_report([bad])
        print(text)
        expect(rc == 0 and "Traceback" not in text, "garbled folder: exit 0, no traceback")
        for w in ["could not read this part: ValueError: ops_cuda.csv lacks the column(s) shape, gbps",
                  "no result line in parity_cuda.log (cut short?): last line `reference step:`",
                  "ncu_summary: ncu_conv.csv has no rows", "ops kernels: not measured (empty ncu_ops.csv)",
                  "summary.txt has no step table", "CUDA unknown (nvcc)",
                  "conv 128 px Conv2d geomean speed-up over cuDNN: not measured (unreadable input)",
                  "fused loss GB/s >= 0.8 of a copy of the same bytes (worst size): not measured (unreadable input)",
                  ">= 2x faster: not measured (no PyTorch eager row; no disco bf16 + CUDA graph row)",
                  "not measured (no readable rows in conv_vs_cudnn_256.csv)"]:
            expect(w in text, "garbled folder: %r in the report" % w)

        # gpu_check's summary quotes the same warnings through --test-warnings
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            rc = main(["--test-warnings", os.path.join(full, "ctest_gpu_full.log")])
        expect(rc == 0 and buf.getvalue().splitlines() == test_warnings(CTEST_FULL_LOG) and
               len(buf.getvalue().splitlines()) == 2, "--test-warnings: the two warnings, one a line", buf.getvalue())

        rc, text = run_report([os.path.join(tmp, "no-such-folder")])
        expect(rc == 2 and "not a folder" in text and len(text.strip().splitlines()) == 1,
               "missing OUT: exit 2 with one line (got %s: %r)" % (rc, text))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("self-test: %s" % ("ok" if not fails else "%d failure(s)" % len(fails)))
    return 1 if fails else 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", nargs="?", metavar="OUT", help="tools/gpu_check.sh's output folder")
    ap.add_argument("--date", help="YYYY-MM-DD for the header (default: env.log's date line)")
    ap.add_argument("--command", help="the gpu_check command line for the header (default: %s)" % DEFAULT_COMMAND)
    ap.add_argument("--self-test", action="store_true", help="check the report on built-in sample folders")
    ap.add_argument("--test-warnings", metavar="LOG",
                    help="print the figure-carrying warnings of a ctest log (gpu_check's summary), one a line")
    a = ap.parse_args(argv)
    if a.self_test:
        return self_test()
    if a.test_warnings:
        with open(a.test_warnings, "rb") as fi:
            for w in test_warnings(fi.read().decode("utf-8", "replace")):
                print(w)
        return 0
    if not a.out:
        ap.error("OUT is required (or --self-test)")
    if not os.path.isdir(a.out):
        print("gpu_report: %s is not a folder (expected tools/gpu_check.sh's output folder)" % a.out, file=sys.stderr)
        return 2
    sys.stdout.write(build(a.out, a))
    return 0


if __name__ == "__main__":
    sys.exit(main())
