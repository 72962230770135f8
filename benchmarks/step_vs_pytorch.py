#!/usr/bin/env python3
"""One full training step on the GPU: disco vs PyTorch (eager and torch.compile).

    python3 benchmarks/step_vs_pytorch.py [--batch 32] [--resolution 128] [--steps 30]
        [--warmup 5] [--disco-bench PATH] [--out DIR] [--variants LIST] [--no-compile]
        [--compile-mode MODE] [--device cuda|cpu] [--budget S] [--verbose]

The step is the official train.py step (tools/disco_reference.py: the earlier official
model, sep 25, code 512, base 32, MSE reconstruction, disc_weight 0.001, persistent Adam
lr 2e-4 betas (0.5, 0.999), gradient clipping at 5): the autoencoder update (forward of
E1(a), E2(a), E1(b), both decodings, the confusion term, backward, clip, Adam) and then
the discriminator update (E1 forward again, as train.py does, BCE, backward, clip, Adam).
Batch B means B images of each domain (B pairs) per step.

Rows (--variants, comma separated; default eager,eager_fp32,eager_tuned,compile):
  eager          PyTorch eager with its defaults: float32, cudnn.benchmark False, the
                 default TF32 flags (on recent PyTorch cuDNN convolutions may use TF32 by
                 default; the flags in effect are printed)
  eager_fp32     eager with TF32 off for matmuls and cuDNN convolutions (strict float32, the
                 arithmetic of disco's default FP32 math mode)
  eager_tuned    eager with cudnn.benchmark True and TF32 allowed (matmul and cuDNN)
  compile        torch.compile (--compile-mode, default mode) of the forward of both
                 updates; their backward is compiled by AOTAutograd; clipping and Adam stay
                 eager. Failures (no torch.compile, no Triton, compiler errors) are reported
                 in the table, not fatal.
  compile_tuned  as compile, with cudnn.benchmark True and TF32 allowed (not by default)
  disco_<v>       `$DISCO_BUILD_DIR/benchmarks/train_step --device cuda --resolution R
                 --batch B --steps N --warmup W --math M [--graph]` (or --disco-bench PATH),
                 one row per --disco-variants entry (default fp32,tf32,bf16,tf32_graph,
                 bf16_graph,bf16_graph_cudnn,tf32_graph_auto,bf16_graph_auto,bf16_graph_wgmma:
                 math mode, _graph for the step as one CUDA graph, _cudnn for cuDNN's
                 convolutions in place of disco's: the same step with only the conv kernels
                 swapped, which isolates their share; _auto for --conv-algo auto, per layer and
                 direction the faster of the two; _nhwc / _wgmma for --conv-prefer: every conv
                 on the channels-last / Hopper wgmma kernels where they are offered, untuned --
                 the step on one kernel family, next to the tuned mix); parses
                 `median_ms:`, `pipelined_ms:` and, when present, `peak_mem_bytes:` and `conv_plans:` (the note).

Timing (PyTorch): each row runs in its own python process (clean allocator statistics,
global flags, a time limit); W untimed warm-up steps, then N timed steps, each timed with
torch.cuda.synchronize() before and after (disco's benchmark reads the losses back after
every step, which synchronizes the same way); the median is reported. Peak memory:
torch.cuda.max_memory_allocated() over the whole run (model, Adam state, inputs, warm-up
and timed steps); the CSV also has the peak of the timed steps alone. pairs/s = B / median
seconds. "time/eager" = the row's median / the eager row's median (< 1: faster).

Output: a table and the versions on stdout; step_vs_pytorch.csv, step_vs_pytorch.md and one
log per row (step_vs_pytorch_<row>.log) in --out (default $DISCO_OUT_DIR, else the current
directory). Without a CUDA device (torch.cuda.is_available() false): prints
"SKIP: no CUDA device" and exits 77. --device cpu runs everything on the CPU (disco with
--device cpu), only to check the code paths at a tiny config.

Exit status: 0 when the eager row and disco ran (compile failures do not count), else 1.
A train_step that is not built counts only when --disco-bench names it (gpu_check.sh
--cuda-only does not build it; its build step reports build failures).
"""

import argparse
import csv
import datetime
import json
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(ROOT, "tools"))

VARIANTS = {
    # name: (label, flags, compile)
    "eager": ("PyTorch eager (defaults)", "default", False),
    "eager_fp32": ("PyTorch eager, TF32 off", "fp32", False),
    "eager_tuned": ("PyTorch eager, cudnn.benchmark + TF32", "tuned", False),
    "compile": ("PyTorch torch.compile", "default", True),
    "compile_tuned": ("PyTorch torch.compile, cudnn.benchmark + TF32", "tuned", True),
}
DEFAULT_VARIANTS = "eager,eager_fp32,eager_tuned,compile"
RESULT_TAG = "STEP_VS_PYTORCH_RESULT: "

_children = []  # running worker / disco processes (killed with their process group on SIGTERM)


# ---------------------------------------------------------------------------------------
# PyTorch flags
# ---------------------------------------------------------------------------------------
def _new_tf32_api(torch):
    conv = getattr(torch.backends.cudnn, "conv", None)
    return conv is not None and hasattr(conv, "fp32_precision") and hasattr(torch.backends.cuda.matmul,
                                                                            "fp32_precision")


def set_tf32(torch, on):
    """TF32 on/off for matmuls and cuDNN convolutions. PyTorch >= 2.9 has a new API
    (fp32_precision) and raises when it is mixed with the legacy allow_tf32 flags, so only
    one of the two is used."""
    prec = "tf32" if on else "ieee"
    if _new_tf32_api(torch):
        torch.backends.cuda.matmul.fp32_precision = prec
        torch.backends.cudnn.conv.fp32_precision = prec
        rnn = getattr(torch.backends.cudnn, "rnn", None)
        if rnn is not None and hasattr(rnn, "fp32_precision"):
            rnn.fp32_precision = prec  # conv and rnn alike: a legacy query then stays well defined
    else:
        torch.backends.cuda.matmul.allow_tf32 = on
        torch.backends.cudnn.allow_tf32 = on


def describe_flags(torch):
    parts = ["cudnn.benchmark=%s" % torch.backends.cudnn.benchmark]
    try:
        if _new_tf32_api(torch):
            parts.append("matmul.fp32_precision=%s" % torch.backends.cuda.matmul.fp32_precision)
            parts.append("cudnn.conv.fp32_precision=%s" % torch.backends.cudnn.conv.fp32_precision)
        else:
            parts.append("matmul.allow_tf32=%s" % torch.backends.cuda.matmul.allow_tf32)
            parts.append("cudnn.allow_tf32=%s" % torch.backends.cudnn.allow_tf32)
    except Exception as e:  # noqa: BLE001 (only a description)
        parts.append("tf32 flags unreadable (%s)" % e)
    return " ".join(parts)


def apply_flags(torch, which):
    if which == "fp32":
        set_tf32(torch, False)
    elif which == "tuned":
        torch.backends.cudnn.benchmark = True
        set_tf32(torch, True)


# ---------------------------------------------------------------------------------------
# the official step in PyTorch (device aware; optionally compiled)
# ---------------------------------------------------------------------------------------
class TorchStep:
    """tools/disco_reference.OfficialTrainer on any device, with the two losses as
    functions that torch.compile can take."""

    def __init__(self, torch, R, cfg, batch, device, compile_mode=None):
        self.torch, self.cfg = torch, cfg
        m = R.build_model(cfg, 0)
        for v in m.values():
            v.to(device)
            v.train()
        self.e1, self.e2, self.dec, self.disc = m["e1"], m["e2"], m["decoder"], m["disc"]
        self.ae_params = list(self.e1.parameters()) + list(self.e2.parameters()) + list(self.dec.parameters())
        self.disc_params = list(self.disc.parameters())
        betas = (cfg["beta1"], cfg["beta2"])
        self.ae_opt = torch.optim.Adam(self.ae_params, lr=cfg["lr"], betas=betas)
        self.disc_opt = torch.optim.Adam(self.disc_params, lr=cfg["disc_lr"], betas=betas)
        self.A_label = torch.full((batch,), 1.0, device=device)
        self.B_label = torch.full((batch,), 0.0, device=device)
        self.B_separate = torch.zeros((batch, R.separate_dim(cfg)), device=device)
        self.ae_loss = self._ae_loss
        self.disc_loss = self._disc_loss
        if compile_mode is not None:
            if not hasattr(torch, "compile"):
                raise RuntimeError("torch.compile is not available in torch %s" % torch.__version__)
            kw = {} if compile_mode == "default" else {"mode": compile_mode}
            self.ae_loss = torch.compile(self._ae_loss, **kw)
            self.disc_loss = torch.compile(self._disc_loss, **kw)

    def _ae_loss(self, a, b):
        F, w = self.torch.nn.functional, self.cfg["disc_weight"]
        A_common, A_separate, B_common = self.e1(a), self.e2(a), self.e1(b)
        loss = F.mse_loss(self.dec(A_common, A_separate), a) + F.mse_loss(self.dec(B_common, self.B_separate), b)
        if w > 0:  # train.py: both codes pushed towards the B label
            loss = loss + w * (F.binary_cross_entropy(self.disc(A_common), self.B_label)
                               + F.binary_cross_entropy(self.disc(B_common), self.B_label))
        return loss

    def _disc_loss(self, a, b):
        F = self.torch.nn.functional
        A_common, B_common = self.e1(a), self.e1(b)  # not detached, as in train.py
        return (F.binary_cross_entropy(self.disc(A_common), self.A_label)
                + F.binary_cross_entropy(self.disc(B_common), self.B_label))

    def step(self, a, b):
        clip = self.torch.nn.utils.clip_grad_norm_
        self.ae_opt.zero_grad()
        loss = self.ae_loss(a, b)
        loss.backward()
        if self.cfg["clip"] > 0:
            clip(self.ae_params, self.cfg["clip"])
        self.ae_opt.step()
        if self.cfg["disc_weight"] > 0:
            self.disc_opt.zero_grad()
            dloss = self.disc_loss(a, b)
            dloss.backward()
            if self.cfg["clip"] > 0:
                clip(self.disc_params, self.cfg["clip"])
            self.disc_opt.step()
        return loss


def torch_versions(torch, device):
    v = {"torch": torch.__version__, "cuda": torch.version.cuda or "-", "cudnn": "-", "gpu": "-"}
    try:
        if torch.backends.cudnn.is_available():
            v["cudnn"] = str(torch.backends.cudnn.version())
    except Exception:  # noqa: BLE001
        pass
    if device == "cuda":
        p = torch.cuda.get_device_properties(0)
        v["gpu"] = "%s (sm_%d%d, %.0f GiB)" % (p.name, p.major, p.minor, p.total_memory / 2.0 ** 30)
    return v


def worker(args):
    """Runs one PyTorch row in this process and prints RESULT_TAG + JSON last."""
    res = {"ok": False, "variant": args.worker}
    try:
        import disco_reference as R
        torch = R.require_torch(reexec=False)
        if torch is None:
            raise RuntimeError("cannot import torch / numpy under %s" % sys.executable)
        label, flags, compiled = VARIANTS[args.worker]
        dev = args.device
        cuda = dev == "cuda"
        res["versions"] = torch_versions(torch, dev)
        apply_flags(torch, flags)
        res["flags"] = describe_flags(torch)
        print("%s: %s" % (label, res["flags"]), flush=True)
        cfg = R.make_config(resolution=args.resolution)
        st = TorchStep(torch, R, cfg, args.batch, dev, args.compile_mode if compiled else None)
        a_np, b_np = R.random_batch(cfg, args.batch, 0)
        a, b = torch.from_numpy(a_np).to(dev), torch.from_numpy(b_np).to(dev)

        def sync():
            if cuda:
                torch.cuda.synchronize()

        sync()
        times, first_s, first_loss = [], None, None
        for i in range(args.warmup + args.steps):
            if i == args.warmup and cuda:
                res["warmup_peak_bytes"] = torch.cuda.max_memory_allocated()
                torch.cuda.reset_peak_memory_stats()
            t0 = time.perf_counter()
            loss = st.step(a, b)
            sync()
            dt = time.perf_counter() - t0
            if i == 0:
                first_s, first_loss = dt, float(loss)
                print("first step %.2f s (ae loss %.6f)" % (dt, first_loss), flush=True)
            if i >= args.warmup:
                times.append(dt * 1e3)
                if args.verbose:
                    print("step %d: %.3f ms" % (i - args.warmup, dt * 1e3), flush=True)
        last_loss = float(loss)
        if not (last_loss == last_loss and abs(last_loss) < float("inf")):
            raise RuntimeError("the loss is not finite (%r)" % last_loss)
        res.update(ok=True, ms=statistics.median(times) if times else None, ms_min=min(times) if times else None,
                   ms_max=max(times) if times else None, first_step_s=first_s, first_loss=first_loss,
                   last_loss=last_loss)
        if cuda:
            steady = torch.cuda.max_memory_allocated()
            res["steady_peak_bytes"] = steady if times else None
            res["peak_bytes"] = max(steady, res.get("warmup_peak_bytes", 0))
    except BaseException as e:  # noqa: BLE001 (reported, the parent decides)
        import traceback
        traceback.print_exc()
        res["error"] = "%s: %s" % (type(e).__name__, str(e).strip().splitlines()[0] if str(e).strip() else "")
    print(RESULT_TAG + json.dumps(res), flush=True)
    return 0 if res["ok"] else 1


# ---------------------------------------------------------------------------------------
# the parent: run the rows, disco, and write the report
# ---------------------------------------------------------------------------------------
def run_logged(cmd, timeout, log_path, env=None):
    """Run cmd in its own process group (so a time-out also ends its children, e.g. the
    inductor compile workers); -> (returncode or None on time-out, output text)."""
    t0 = time.time()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    _children.append(p)
    try:
        out, _ = p.communicate(timeout=max(1.0, timeout))
        rc = p.returncode
    except subprocess.TimeoutExpired:
        _kill_group(p)
        out, _ = p.communicate()
        rc = None
    finally:
        _children.remove(p)
    text = out.decode("utf-8", "replace")
    with open(log_path, "w") as f:
        f.write("$ %s\n" % " ".join(cmd))
        f.write(text)
        f.write("\n# exit %s after %.1f s\n" % ("TIMEOUT" if rc is None else rc, time.time() - t0))
    return rc, text


def _kill_group(p):
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _on_term(signum, _frame):
    for p in list(_children):
        _kill_group(p)
    print("step_vs_pytorch: stopped by signal %d" % signum, flush=True)
    sys.exit(128 + signum)


def tail(text, n=15):
    lines = [l for l in text.strip().splitlines() if l.strip()]
    return "\n".join("    | " + l for l in lines[-n:])


def run_torch_row(name, args, remaining, out_dir):
    limit = min(args.compile_timeout if VARIANTS[name][2] else args.row_timeout, remaining)
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", name, "--device", args.device,
           "--batch", str(args.batch), "--resolution", str(args.resolution), "--steps", str(args.steps),
           "--warmup", str(args.warmup), "--compile-mode", args.compile_mode] + (["--verbose"] if args.verbose else [])
    print("[%s] running (limit %.0f s) ..." % (name, limit), flush=True)
    rc, text = run_logged(cmd, limit, os.path.join(out_dir, "step_vs_pytorch_%s.log" % name))
    res = None
    for line in text.splitlines():
        if line.startswith(RESULT_TAG):
            try:
                res = json.loads(line[len(RESULT_TAG):])
            except ValueError:
                pass
    if res is None:
        res = {"ok": False, "error": "timed out after %.0f s" % limit if rc is None else
               "exit %s without a result" % rc}
    res["name"], res["label"] = name, VARIANTS[name][0]
    if res.get("ok"):
        print("[%s] median %.2f ms/step (first step %.1f s)" % (name, res["ms"], res["first_step_s"]), flush=True)
    else:
        print("[%s] FAILED: %s\n%s" % (name, res.get("error"), tail(text)), flush=True)
    if args.verbose:
        print(tail(text, 200))
    return res


def find_disco_bench(args):
    if args.disco_bench:
        return os.path.abspath(args.disco_bench)
    cands = []
    if os.environ.get("DISCO_BUILD_DIR"):
        cands.append(os.path.join(os.environ["DISCO_BUILD_DIR"], "benchmarks", "train_step"))
    cands += [os.path.join(ROOT, d, "benchmarks", "train_step") for d in ("build-gpu", "build")]
    for c in cands:
        if os.path.isfile(c) and os.access(c, os.X_OK):
            return c
    return cands[0]


DISCO_VARIANTS = ("fp32", "tf32", "bf16", "fp32_graph", "tf32_graph", "bf16_graph", "tf32_graph_cudnn",
                  "bf16_graph_cudnn", "tf32_graph_auto", "bf16_graph_auto", "bf16_graph_nhwc", "bf16_graph_wgmma")
DEFAULT_DISCO_VARIANTS = ("fp32,tf32,bf16,tf32_graph,bf16_graph,bf16_graph_cudnn,tf32_graph_auto,bf16_graph_auto,"
                          "bf16_graph_wgmma")


def run_disco_row(args, remaining, out_dir, variant="fp32"):
    name = "disco_" + variant
    parts = variant.split("_")
    math, graph, cudnn, auto = parts[0], "graph" in parts, "cudnn" in parts, "auto" in parts
    # _nhwc / _wgmma: every conv on that kernel family where it is offered, untuned (--conv-prefer)
    prefer = next((f for f in ("nhwc", "wgmma") if f in parts), None)
    label = "disco %s%s%s" % (math, " + CUDA graph" if graph else "",
                              ", cuDNN convs" if cudnn else (", auto convs (per layer disco or cuDNN)" if auto else
                                                             (", every conv on %s where offered (untuned)" % prefer
                                                              if prefer else "")))
    res = {"name": name, "label": label, "ok": False}
    exe = find_disco_bench(args)
    res["bench"] = exe
    if not (os.path.isfile(exe) and os.access(exe, os.X_OK)):
        res["error"] = "not built (%s)" % exe
        res["not_built"] = True
        print("[%s] %s" % (name, res["error"]), flush=True)
        return res
    cmd = [exe, "--device", args.device, "--resolution", str(args.resolution), "--batch", str(args.batch),
           "--steps", str(args.steps), "--warmup", str(args.warmup)]
    if args.device == "cuda":
        cmd += ["--math", math] + (["--graph"] if graph else []) + (["--conv-algo", "cudnn"] if cudnn else (["--conv-algo", "auto"] if auto else []))
        cmd += ["--conv-prefer", prefer] if prefer else []
    limit = min(args.row_timeout, remaining)
    print("[%s] running (limit %.0f s): %s" % (name, limit, " ".join(cmd)), flush=True)
    rc, text = run_logged(cmd, limit, os.path.join(out_dir, "step_vs_pytorch_%s.log" % name))
    med = re.findall(r"^median_ms:\s*([0-9.eE+-]+)", text, re.M)
    pipe = re.findall(r"^pipelined_ms:\s*([0-9.eE+-]+)", text, re.M)
    peak = re.findall(r"^peak_mem_bytes:\s*([0-9]+)", text, re.M)
    steady_peak = re.findall(r"^steady_peak_mem_bytes:\s*([0-9]+)", text, re.M)
    steps = [float(x) for x in re.findall(r"^step \d+:\s*([0-9.eE+-]+) ms", text, re.M)]
    loss = re.findall(r"^step \d+:.*\(ae loss ([0-9.eE+-]+|nan|inf|-inf)\)", text, re.M)
    cuda_line = re.findall(r"^cuda: (.*)$", text, re.M)
    plans = re.findall(r"^conv_plans: (.*)$", text, re.M)
    if rc is None:
        res["error"] = "timed out after %.0f s" % limit
    elif re.search(r"^SKIP:", text, re.M):
        res["error"] = "skipped: " + re.findall(r"^SKIP:.*$", text, re.M)[0]
    elif rc != 0 or not med:
        res["error"] = "exit %d%s%s" % (rc, "" if med else ", no 'median_ms:' line",
                                         (" (" + cuda_line[-1] + ")") if cuda_line else "")
    else:
        res.update(ok=True, ms=float(med[-1]), ms_min=min(steps) if steps else None,
                   ms_max=max(steps) if steps else None, peak_bytes=int(peak[-1]) if peak else None,
                   steady_peak_bytes=int(steady_peak[-1]) if steady_peak else None,
                   last_loss=float(loss[-1]) if loss else None,
                   pipelined_ms=float(pipe[-1]) if pipe else None,
                   flags=(cuda_line[-1] if cuda_line else "") +
                   ("; back to back %.2f ms/step" % float(pipe[-1]) if pipe else "") +
                   ("; conv " + plans[-1] if plans else ""))
    if res["ok"]:
        print("[%s] median %.2f ms/step%s" % (name, res["ms"], ", peak %.0f MiB" % (res["peak_bytes"] / 2.0 ** 20)
                                              if res.get("peak_bytes") else ""), flush=True)
    else:
        print("[%s] FAILED: %s\n%s" % (name, res["error"], tail(text)), flush=True)
    if args.verbose:
        print(tail(text, 200))
    return res


def mib(x):
    return "%.0f" % (x / 2.0 ** 20) if x else "-"


def fmt(x, f="%.2f"):
    return f % x if x is not None else "-"


def report(rows, args, versions, out_dir):
    eager = next((r for r in rows if r["name"] == "eager" and r.get("ok")), None)
    for r in rows:
        r["pairs_per_s"] = args.batch / (r["ms"] / 1e3) if r.get("ok") and r.get("ms") else None
        r["time_vs_eager"] = r["ms"] / eager["ms"] if (eager and r.get("ok") and r.get("ms")) else None
    vline = "torch %s, CUDA %s, cuDNN %s, GPU %s, driver %s, triton %s" % (
        versions.get("torch", "-"), versions.get("cuda", "-"), versions.get("cudnn", "-"), versions.get("gpu", "-"),
        versions.get("driver", "-"), versions.get("triton", "-"))
    setting = "%d px, batch %d + %d (pairs/step %d), %d warm-up + %d timed steps, device %s" % (
        args.resolution, args.batch, args.batch, args.batch, args.warmup, args.steps, args.device)

    hdr = ("row", "ms/step", "pairs/s", "peak MiB", "steady MiB", "time/eager", "note")
    table = []
    for r in rows:
        if r.get("ok"):
            note = r.get("flags", "")
            if r.get("first_step_s") is not None and VARIANTS.get(r["name"], (0, 0, False))[2]:
                note = "first step (compile) %.1f s; " % r["first_step_s"] + note
            table.append((r["label"], fmt(r["ms"]), fmt(r["pairs_per_s"], "%.1f"), mib(r.get("peak_bytes")),
                          mib(r.get("steady_peak_bytes")), fmt(r["time_vs_eager"]), note))
        else:
            table.append((r["label"], "-", "-", "-", "-", "-", "FAILED: %s" % r.get("error")))
    w = [max(len(hdr[i]), *(len(t[i]) for t in table)) for i in range(6)]
    print("")
    print("== one official training step (autoencoder + discriminator), " + setting)
    print("   " + vline)
    print("  ".join(hdr[i].ljust(w[i]) if i == 0 else hdr[i].rjust(w[i]) for i in range(6)) + "  " + hdr[6])
    for t in table:
        print("  ".join(t[i].ljust(w[i]) if i == 0 else t[i].rjust(w[i]) for i in range(6)) + "  " + t[6])
    print("time/eager: the row's median step time / PyTorch eager (defaults); < 1 is faster. "
          "Peak: torch.cuda.max_memory_allocated / disco's caching-allocator peak, whole run; steady: "
          "the timed steps alone.")

    csv_path = os.path.join(out_dir, "step_vs_pytorch.csv")
    cols = ["row", "label", "ok", "ms_per_step", "ms_min", "ms_max", "pairs_per_s", "peak_mib", "steady_peak_mib",
            "time_vs_eager", "first_step_s", "first_loss", "last_loss", "flags", "error", "resolution", "batch",
            "steps", "warmup", "device", "gpu", "torch", "cuda", "cudnn", "driver", "triton", "date"]
    with open(csv_path, "w", newline="") as f:
        wr = csv.writer(f)
        wr.writerow(cols)
        for r in rows:
            wr.writerow([r["name"], r["label"], int(bool(r.get("ok"))), fmt(r.get("ms"), "%.4f"),
                         fmt(r.get("ms_min"), "%.4f"), fmt(r.get("ms_max"), "%.4f"),
                         fmt(r.get("pairs_per_s"), "%.2f"),
                         fmt(r["peak_bytes"] / 2.0 ** 20 if r.get("peak_bytes") else None, "%.1f"),
                         fmt(r["steady_peak_bytes"] / 2.0 ** 20 if r.get("steady_peak_bytes") else None, "%.1f"),
                         fmt(r.get("time_vs_eager"), "%.4f"), fmt(r.get("first_step_s"), "%.3f"),
                         fmt(r.get("first_loss"), "%.6f"), fmt(r.get("last_loss"), "%.6f"), r.get("flags", ""),
                         r.get("error", ""), args.resolution, args.batch, args.steps, args.warmup, args.device,
                         versions.get("gpu", "-"), versions.get("torch", "-"), versions.get("cuda", "-"),
                         versions.get("cudnn", "-"), versions.get("driver", "-"), versions.get("triton", "-"),
                         datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")])
    md_path = os.path.join(out_dir, "step_vs_pytorch.md")
    with open(md_path, "w") as f:
        f.write("One official training step (autoencoder + discriminator), %s.  \n" % setting)
        f.write("%s, %s.\n\n" % (vline, datetime.date.today().isoformat()))
        f.write("| row | ms/step | pairs/s | peak MiB | steady MiB | time / eager | note |\n"
                "|---|---:|---:|---:|---:|---:|---|\n")
        for t in table:
            f.write("| %s |\n" % " | ".join(x.replace("|", "/") for x in t))
        f.write("\nMedian of %d CUDA-synchronised steps after %d warm-up steps; pairs/s = batch / median "
                "seconds; peak = torch.cuda.max_memory_allocated() (PyTorch) or disco's caching-allocator "
                "peak (`peak_mem_bytes`), over the whole run; steady = the same over the timed steps alone "
                "(`steady_peak_mem_bytes`: without warm-up, compilation, conv tuning, graph capture); time / eager < 1 is faster than PyTorch eager "
                "with its defaults.\n" % (args.steps, args.warmup))
    print("wrote %s and %s" % (csv_path, md_path))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=32, help="images per domain per step (32, as train.py)")
    p.add_argument("--resolution", type=int, default=128)
    p.add_argument("--steps", type=int, default=30, help="timed steps (the median is reported; >= 20 advised)")
    p.add_argument("--warmup", type=int, default=5, help="untimed steps first (compile, cuDNN autotuning)")
    p.add_argument("--disco-bench", metavar="PATH",
                   help="disco's train_step (default $DISCO_BUILD_DIR/benchmarks/train_step, else "
                        "build-gpu/ or build/ of this repository)")
    p.add_argument("--out", metavar="DIR", help="output folder (default $DISCO_OUT_DIR, else .)")
    p.add_argument("--variants", default=DEFAULT_VARIANTS,
                   help="PyTorch rows, comma separated, of %s (default %s)" % (",".join(VARIANTS), DEFAULT_VARIANTS))
    p.add_argument("--no-compile", action="store_true", help="leave out the torch.compile rows")
    p.add_argument("--compile-mode", default="default",
                   help="torch.compile mode: default, reduce-overhead, max-autotune, max-autotune-no-cudagraphs")
    p.add_argument("--skip-disco", action="store_true")
    p.add_argument("--disco-variants", default=DEFAULT_DISCO_VARIANTS,
                   help="disco rows, comma separated, of %s (default %s)" % (",".join(DISCO_VARIANTS),
                                                                             DEFAULT_DISCO_VARIANTS))
    p.add_argument("--device", default="cuda", choices=("cuda", "cpu"),
                   help="cpu: debugging of the code paths only (tiny configs)")
    p.add_argument("--budget", type=float, default=840.0,
                   help="seconds for everything (gpu_check gives this step 900); later rows get what is left")
    p.add_argument("--row-timeout", type=float, default=300.0, help="seconds per eager row and for disco")
    p.add_argument("--compile-timeout", type=float, default=420.0, help="seconds per torch.compile row")
    p.add_argument("--verbose", action="store_true", help="print every step and the rows' full output")
    p.add_argument("--worker", choices=sorted(VARIANTS), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.batch < 1 or args.steps < 1 or args.warmup < 0:
        p.error("--batch and --steps must be >= 1, --warmup >= 0")
    if args.worker:
        return worker(args)

    t_start = time.time()
    import disco_reference as R
    torch = R.require_torch()  # may re-run this script under a python3 that has torch
    if torch is not None and args.device == "cuda" and not torch.cuda.is_available():
        print("SKIP: no CUDA device")
        return 77
    signal.signal(signal.SIGTERM, _on_term)
    out_dir = os.path.abspath(args.out or os.environ.get("DISCO_OUT_DIR") or ".")
    os.makedirs(out_dir, exist_ok=True)

    dnames = [v.strip() for v in args.disco_variants.split(",") if v.strip()]
    bad = [v for v in dnames if v not in DISCO_VARIANTS]
    if bad:
        p.error("unknown disco variant(s) %s (known: %s)" % (", ".join(bad), ", ".join(DISCO_VARIANTS)))
    if args.device == "cpu":
        dnames = ["fp32"]  # the CPU has one arithmetic and no graphs
    names = [v.strip() for v in args.variants.split(",") if v.strip()]
    bad = [v for v in names if v not in VARIANTS]
    if bad:
        p.error("unknown variant(s) %s (known: %s)" % (", ".join(bad), ", ".join(VARIANTS)))
    if args.no_compile:
        names = [v for v in names if not VARIANTS[v][2]]
    # the compile rows last: they take longest and are the most likely to fail
    names = [v for v in names if not VARIANTS[v][2]] + [v for v in names if VARIANTS[v][2]]

    versions = {"torch": torch.__version__ if torch is not None else "not installed"}
    try:
        from importlib import metadata
        versions["triton"] = metadata.version("triton")
    except Exception:  # noqa: BLE001
        versions["triton"] = "-"
    if args.device == "cuda":
        try:
            versions["driver"] = subprocess.run(
                ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"], stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL, timeout=30).stdout.decode().strip().splitlines()[0]
        except Exception:  # noqa: BLE001
            pass
    print("step_vs_pytorch: %d px, batch %d, %d warm-up + %d timed steps on %s; python %s; output in %s"
          % (args.resolution, args.batch, args.warmup, args.steps, args.device, sys.executable, out_dir), flush=True)

    rows = []

    def remaining():
        return args.budget - (time.time() - t_start)

    torch_rows = [] if torch is None else names
    if torch is None:
        print("PyTorch: not installed for any python3 here; disco only")
    disco_done = False
    for name in torch_rows:
        if VARIANTS[name][2] and not disco_done and not args.skip_disco:
            rows += [run_disco_row(args, remaining(), out_dir, v) for v in dnames]
            disco_done = True
        if remaining() < 10:
            rows.append({"name": name, "label": VARIANTS[name][0], "ok": False, "error": "no time left (--budget)"})
            continue
        r = run_torch_row(name, args, remaining(), out_dir)
        rows.append(r)
        for k, v in (r.get("versions") or {}).items():
            if v and v != "-":
                versions.setdefault(k, v)
                if k == "torch":
                    versions[k] = v
    if not disco_done and not args.skip_disco:
        rows += [run_disco_row(args, remaining(), out_dir, v) for v in dnames]
    # table order: PyTorch rows as asked, then disco's
    order = {n: i for i, n in enumerate(names + ["disco_" + v for v in dnames])}
    rows.sort(key=lambda r: order.get(r["name"], 99))
    report(rows, args, versions, out_dir)

    failed = []
    if torch is not None and "eager" in names and not any(r["name"] == "eager" and r.get("ok") for r in rows):
        failed.append("PyTorch eager")
    drows = [r for r in rows if r["name"].startswith("disco_")]
    disco = next((r for r in drows if not r.get("ok")), None)
    if disco is not None:
        if disco.get("not_built") and not args.disco_bench:
            # e.g. gpu_check --cuda-only, which does not build train_step: its build step reports
            # build failures; here the PyTorch rows alone are the result
            print("step_vs_pytorch: note: disco's train_step is not built; PyTorch rows only")
        else:
            failed.append("disco")
    if failed:
        print("step_vs_pytorch: FAILED: %s" % ", ".join(failed))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
