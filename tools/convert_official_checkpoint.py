#!/usr/bin/env python3
"""Convert a checkpoint of the official PyTorch code into disco's formats.

    python3 tools/convert_official_checkpoint.py OFFICIAL_CHECKPOINT --out weights.safetensors
        [--checkpoint disco_checkpoint.safetensors] [--disc-weight 0.001] [--lr X] [--disc-lr X]
        [--seed 0] [--unsafe-load]
    python3 tools/convert_official_checkpoint.py --self-test

The official code (github.com/oripress/ContentDisentanglement, utils.save_model) saves

    torch.save({'e1': e1.state_dict(), 'e2': ..., 'decoder': ..., 'disc': ...,
                'ae_opt': ae_optimizer.state_dict(), 'disc_opt': disc_optimizer.state_dict(),
                'iters': iteration}, path)

(also accepted: 'ae_optimizer' / 'disc_optimizer' / 'iter', and a 'module.' prefix left
by nn.DataParallel). Only the earlier variant of the official model is supported: E1/E2
as `full` Sequentials and the decoder as `main`, no `res` skip branch.

--out writes a disco weights file: safetensors with every parameter under its prefixed
official name (e1.full.0.weight, ..., disc.classify.2.bias) as float32 and __metadata__
{"format": "disco-weights", "config": "{...}"}. The architecture (resolution, sep,
code/base channels, discriminator width) is inferred from the tensor shapes: sep is the
output channels of E2's last conv, code_channels = sep + E1's last conv's outputs,
base_channels = E1's first conv's outputs, the bottleneck s from the discriminator's
in-features (code_channels - sep) * s * s, and resolution = s * 2^(number of stride-2
convs). lr and betas are taken from the optimizer state when present.

--checkpoint also writes a disco training checkpoint: the weights plus both Adam states as
optim.ae.exp_avg.<name>, optim.ae.exp_avg_sq.<name>, optim.disc.exp_avg.<name>, ...
(mapped by parameter order: e1, e2, decoder for the autoencoder optimizer, disc for the
discriminator's, as train.py builds them), __metadata__ format "disco-checkpoint",
"step" (completed steps: the Adam step count, else iters + 1), "optim.ae.step",
"optim.disc.step" and "official.iters".

Loading uses a restricted unpickler (tensors, storages and plain containers only, so no
code runs from the file); --unsafe-load allows full unpickling (only for trusted files).

Exit status: 0 done, 1 the input is not a usable checkpoint, 2 usage error; --self-test:
0 pass, 1 fail, 77 skipped (python3-torch not installed).
"""

import argparse
import json
import math
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import disco_reference as R  # noqa: E402

MODULES = ("e1", "e2", "decoder", "disc")
OPT_KEYS = {"ae": ("ae_opt", "ae_optimizer"), "disc": ("disc_opt", "disc_optimizer")}
ITER_KEYS = ("iters", "iter")


class ConvertError(Exception):
    pass


def _load(torch, path, unsafe):
    if not os.path.isfile(path):
        raise ConvertError("%s: no such file" % path)
    with open(path, "rb") as f:
        head = f.read(16)
    if len(head) >= 9 and head[8:9] == b"{":
        raise ConvertError("%s: this is a safetensors file, not a torch.save checkpoint of the official code" % path)
    import inspect
    try:
        has_wo = "weights_only" in inspect.signature(torch.load).parameters
    except (TypeError, ValueError):
        has_wo = False
    if unsafe:
        try:
            return torch.load(path, map_location="cpu", **({"weights_only": False} if has_wo else {}))
        except Exception as e:
            raise ConvertError("%s: not a PyTorch checkpoint (torch.load failed: %s)" % (path, _first_line(e)))
    # 1. torch's own safe loader (torch 1.13's cannot read the floats of an optimizer state_dict)
    if has_wo:
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except Exception:
            pass
    # 2. torch's loaders with a restricted unpickler. torch.load itself ignores pickle_module
    # unless weights_only is False, and some versions (Debian's 1.13) ignore it even then,
    # so call the zip / legacy loaders it dispatches to.
    ser = torch.serialization
    mod = _safe_pickle_module()
    try:
        with open(path, "rb") as f:
            if ser._is_zipfile(f):
                with ser._open_zipfile_reader(f) as zf:
                    return ser._load(zf, "cpu", mod, encoding="utf-8")
            return ser._legacy_load(f, "cpu", mod, encoding="utf-8")
    except (AttributeError, TypeError) as e:
        if "is not allowed" not in str(e) and "serialization" in repr(e):
            raise ConvertError("%s: this torch (%s) has no loader this tool can restrict (%s); rerun with "
                               "--unsafe-load if you trust the file" % (path, torch.__version__, _first_line(e)))
        raise ConvertError("%s: not a PyTorch checkpoint (torch.load failed: %s)" % (path, _first_line(e)))
    except Exception as e:  # torch raises many types for a bad file
        msg = _first_line(e)
        if "is not allowed" in msg:
            raise ConvertError("%s: refusing to unpickle it (%s); rerun with --unsafe-load if you trust the file"
                               % (path, msg))
        raise ConvertError("%s: not a PyTorch checkpoint (torch.load failed: %s)" % (path, msg))


def _first_line(e):
    t = str(e).strip()
    return t.splitlines()[0] if t else type(e).__name__


def _safe_pickle_module():
    """A pickle module for torch.load whose Unpickler only resolves the globals a
    state_dict / optimizer state_dict checkpoint needs (tensors, storages, OrderedDict),
    so loading runs no code from the file. (torch 1.13's weights_only loader cannot read
    the floats of an optimizer state_dict.)"""
    import pickle
    import types
    allowed = {("collections", "OrderedDict"), ("torch._utils", "_rebuild_tensor_v2"),
               ("torch._utils", "_rebuild_tensor"), ("torch._utils", "_rebuild_parameter"),
               ("torch._utils", "_rebuild_parameter_with_state"), ("torch", "Size"), ("torch", "device"),
               ("torch", "dtype"), ("builtins", "set"), ("builtins", "frozenset"), ("builtins", "complex")}

    class SafeUnpickler(pickle.Unpickler):
        def find_class(self, module, name):
            if (module, name) in allowed or (module == "torch" and (name.endswith("Storage") or name in (
                    "float32", "float64", "float16", "bfloat16", "int64", "int32", "uint8", "bool"))):
                return super().find_class(module, name)
            raise pickle.UnpicklingError("global %s.%s is not allowed" % (module, name))

    mod = types.ModuleType("disco_safe_pickle")
    mod.Unpickler = SafeUnpickler
    mod.load = lambda f, **kw: SafeUnpickler(f, **kw).load()
    mod.loads = lambda b, **kw: SafeUnpickler(__import__("io").BytesIO(b), **kw).load()
    mod.__name__ = "disco_safe_pickle"
    return mod


def _strip(sd):
    out = {}
    for k, v in sd.items():
        out[k[7:] if k.startswith("module.") else k] = v
    return out


def infer_config(sd):
    """Architecture from the tensor shapes. sd: {prefixed name: tensor}."""
    def shape(n):
        if n not in sd:
            raise ConvertError("missing tensor %s" % n)
        return tuple(sd[n].shape)

    def convs(prefix):
        idx = sorted(int(k.split(".")[2]) for k in sd if k.startswith(prefix + ".") and k.endswith(".weight"))
        return idx

    e1, e2 = convs("e1.full"), convs("e2.full")
    if not e1 or not e2:
        raise ConvertError("no e1.full.* / e2.full.* convolution weights")
    L = len(e1)
    sep = shape("e2.full.%d.weight" % e2[-1])[0]
    common = shape("e1.full.%d.weight" % e1[-1])[0]
    base = shape("e1.full.0.weight")[0]
    hidden, infeat = shape("disc.classify.0.weight")
    s = int(round(math.sqrt(infeat / float(common))))
    if s < 1 or s * s * common != infeat:
        raise ConvertError("disc.classify.0.weight has %d in-features, not (code_channels - sep) * s * s with "
                           "code_channels - sep = %d" % (infeat, common))
    res = s * (1 << L)
    try:
        cfg = R.make_config(resolution=res, sep=sep, code_channels=common + sep, base_channels=base,
                            disc_hidden=hidden)
    except ValueError as e:
        raise ConvertError("inferred %d px (%d stride-2 layers, %dx%d bottleneck): %s" % (res, L, s, s, e))
    if R.num_layers(cfg) != L or R.bottleneck(cfg) != s:
        raise ConvertError("%d stride-2 layers with a %dx%d bottleneck (%d px) is not a layout disco supports "
                           "(64 px: 5 layers, 128/256 px: 6)" % (L, s, s, res))
    want = R.param_shapes(cfg)
    problems = []
    for n, shp, _ in want:
        if n not in sd:
            problems.append("missing " + n)
        elif tuple(sd[n].shape) != tuple(shp):
            problems.append("%s has shape %s, expected %s" % (n, list(sd[n].shape), list(shp)))
    known = {n for n, _, _ in want}
    problems += ["unexpected " + n for n in sd if n not in known]
    if problems:
        raise ConvertError("tensors do not match the inferred architecture (%d px, sep %d, code %d, base %d): %s%s"
                           % (res, sep, common + sep, base, "; ".join(problems[:6]),
                              "; ... %d more" % (len(problems) - 6) if len(problems) > 6 else ""))
    return cfg


def _step_value(v):
    try:
        return int(round(float(v)))
    except (TypeError, ValueError):
        return 0


def _optimizer(torch, np, osd, names, shapes, tag):
    """torch Adam state_dict -> ({tensor name: array}, step, group hyper-parameters)."""
    if not isinstance(osd, dict) or "state" not in osd or "param_groups" not in osd:
        raise ConvertError("'%s' optimizer entry is not an optimizer state_dict" % tag)
    ids = []
    for g in osd["param_groups"]:
        ids += list(g.get("params", []))
    if len(ids) != len(names):
        raise ConvertError("the %s optimizer holds %d parameters, the model's %s group has %d"
                           % (tag, len(ids), tag, len(names)))
    out, steps = {}, []
    for pid, name in zip(ids, names):
        st = osd["state"].get(pid)
        if not st:
            continue
        for k in ("exp_avg", "exp_avg_sq"):
            if k not in st:
                raise ConvertError("%s optimizer state of %s has no %s (not Adam?)" % (tag, name, k))
            t = st[k]
            if tuple(t.shape) != tuple(shapes[name]):
                raise ConvertError("%s optimizer %s of %s has shape %s, expected %s"
                                   % (tag, k, name, list(t.shape), list(shapes[name])))
            out["optim.%s.%s.%s" % (tag, k, name)] = t.detach().cpu().to(torch.float32).numpy()
        steps.append(_step_value(st.get("step", 0)))
    group = osd["param_groups"][0] if osd["param_groups"] else {}
    return out, (max(steps) if steps else 0), group


def convert(path, out=None, checkpoint=None, overrides=None, unsafe=False, quiet=False):
    """Returns (config, weights {name: float32 array}, checkpoint tensors, metadata)."""
    torch = R.require_torch(reexec=False)
    if torch is None:
        raise ConvertError("reading a torch.save checkpoint needs python3-torch")
    import numpy as np
    obj = _load(torch, path, unsafe)
    if not isinstance(obj, dict):
        raise ConvertError("%s: expected the dict saved by the official save_model, got %s" % (path, type(obj).__name__))
    missing = [k for k in MODULES if k not in obj]
    if missing:
        raise ConvertError("%s: not an official ContentDisentanglement checkpoint: no %s (keys: %s)"
                           % (path, ", ".join(repr(k) for k in missing), ", ".join(sorted(map(str, obj))[:10])))
    sd = {}
    for mod in MODULES:
        part = obj[mod]
        if not isinstance(part, dict):
            raise ConvertError("%s: '%s' is a %s, expected a state_dict" % (path, mod, type(part).__name__))
        for k, v in _strip(part).items():
            if not hasattr(v, "shape"):
                raise ConvertError("%s: %s.%s is not a tensor" % (path, mod, k))
            sd[mod + "." + k] = v
    if any(k.startswith(("e1.first.", "e1.second.", "e1.res.", "decoder.first.", "decoder.second.")) for k in sd):
        raise ConvertError("%s: checkpoint of the later variant of the official code (E1 first/second/res, decoder "
                           "first/second with the res skip branch); disco implements the earlier variant "
                           "(e1.full, e2.full, decoder.main, disc.classify)" % path)
    try:
        cfg = infer_config(sd)
    except ConvertError as e:
        raise ConvertError("%s: %s" % (path, e))
    names = [n for n, _, _ in R.param_shapes(cfg)]
    shapes = {n: s for n, s, _ in R.param_shapes(cfg)}
    weights = {n: sd[n].detach().cpu().to(torch.float32).numpy() for n in names}
    for n, a in weights.items():
        if not np.all(np.isfinite(a)):
            raise ConvertError("%s: %s holds non-finite values" % (path, n))

    ckpt, steps, groups = {}, {"ae": 0, "disc": 0}, {}
    for tag, keys in OPT_KEYS.items():
        key = next((k for k in keys if k in obj), None)
        if key is None:
            continue
        group_names = [n for n in names if n.startswith("disc.") == (tag == "disc")]
        t, st, grp = _optimizer(torch, np, obj[key], group_names, shapes, tag)
        ckpt.update(t)
        steps[tag] = st
        groups[tag] = grp
    iters = next((obj[k] for k in ITER_KEYS if k in obj), None)

    cfg_over = {}
    if "ae" in groups and "lr" in groups["ae"]:
        cfg_over["lr"] = float(groups["ae"]["lr"])
        if "betas" in groups["ae"]:
            cfg_over["beta1"], cfg_over["beta2"] = (float(b) for b in groups["ae"]["betas"])
    if "disc" in groups and "lr" in groups["disc"]:
        cfg_over["disc_lr"] = float(groups["disc"]["lr"])
    cfg.update(cfg_over)
    for k, v in (overrides or {}).items():
        if v is not None:
            cfg[k] = v
    for tag, grp in groups.items():
        eps = grp.get("eps", 1e-8)
        if abs(float(eps) - 1e-8) > 1e-12 and not quiet:
            print("warning: the %s optimizer used eps %g; disco's Adam uses 1e-8" % (tag, eps), file=sys.stderr)

    meta_w = {"format": "disco-weights", "config": R.config_json(cfg)}
    done_steps = steps["ae"] if steps["ae"] else (_step_value(iters) + 1 if iters is not None else 0)
    meta_c = {"format": "disco-checkpoint", "config": R.config_json(cfg), "step": str(done_steps),
              "optim.ae.step": str(steps["ae"]), "optim.disc.step": str(steps["disc"]),
              "source": "convert_official_checkpoint.py " + os.path.basename(path)}
    if iters is not None:
        meta_c["official.iters"] = str(_step_value(iters))
    if out:
        R.write_safetensors(out, weights, meta_w)
    if checkpoint:
        t = dict(weights)
        t.update(ckpt)
        R.write_safetensors(checkpoint, t, meta_c)
    if not quiet:
        print("%s: %d px, sep %d, code %d, base %d, disc hidden %d (%d parameters in %d tensors)%s"
              % (path, cfg["resolution"], cfg["sep"], cfg["code_channels"], cfg["base_channels"], cfg["disc_hidden"],
                 sum(int(a.size) for a in weights.values()), len(weights),
                 "; Adam states: ae step %d, disc step %d" % (steps["ae"], steps["disc"]) if groups else
                 "; no optimizer state"))
        if out:
            print("wrote %s (disco-weights)" % out)
        if checkpoint:
            print("wrote %s (disco-checkpoint, step %d)" % (checkpoint, done_steps))
    return cfg, weights, ckpt, meta_c


# ---------------------------------------------------------------------------------------
# self-test
# ---------------------------------------------------------------------------------------
class _Evil:
    """Unpickling this would call print(): the restricted loader must refuse it."""

    def __reduce__(self):
        return (print, ("UNSAFE: code ran while loading a checkpoint",))


def self_test():
    torch = R.torch_or_exit()
    import numpy as np
    torch.set_num_threads(2)
    failures = []

    def check(cond, what):
        if not cond:
            failures.append(what)
            print("  FAIL: " + what)

    tmp = tempfile.mkdtemp(prefix="disco_convert_selftest_")
    cases = [
        ("small 64 px", R.make_config(resolution=64, sep=8, code_channels=64, base_channels=16), 2, 2,
         ("ae_opt", "disc_opt", "iters"), False),
        ("small 64 px, pre-1.6 torch file format", R.make_config(resolution=64, sep=8, code_channels=64,
                                                                base_channels=16), 1, 1, ("ae_opt", "disc_opt", "iters"), True),
        ("official 128 px", R.make_config(), 1, 0, ("ae_optimizer", "disc_optimizer", "iter"), False),
    ]
    for label, cfg, steps, batch, keys, legacy in cases:
        print("case %s: %d px, sep %d, code %d, base %d; %d %s step(s), keys %s"
              % (label, cfg["resolution"], cfg["sep"], cfg["code_channels"], cfg["base_channels"], steps,
                 "official" if batch else "random-gradient Adam", ", ".join(keys)))
        m = R.build_model(cfg, 3)
        ae_params = list(m["e1"].parameters()) + list(m["e2"].parameters()) + list(m["decoder"].parameters())
        ae_opt = torch.optim.Adam(ae_params, lr=cfg["lr"], betas=(cfg["beta1"], cfg["beta2"]))
        disc_opt = torch.optim.Adam(m["disc"].parameters(), lr=cfg["disc_lr"], betas=(cfg["beta1"], cfg["beta2"]))
        for s in range(steps):
            if batch:
                a, b = R.random_batch(cfg, batch, s)
                R.official_step(m, cfg, a, b, ae_optimizer=ae_opt, disc_optimizer=disc_opt)
            else:  # Adam state from random gradients: the big model without a forward pass
                gen = torch.Generator().manual_seed(s)
                for opt in (ae_opt, disc_opt):
                    for grp in opt.param_groups:
                        for p in grp["params"]:
                            p.grad = torch.randn(p.shape, generator=gen) * 1e-3
                    opt.step()
        src = os.path.join(tmp, label.replace(" ", "_") + ".pth")
        R.save_official_checkpoint(src, m, ae_opt, disc_opt, iters=steps - 1, keys=keys, legacy=legacy)
        wpath, cpath = src + ".weights.safetensors", src + ".ckpt.safetensors"
        convert(src, wpath, cpath, quiet=True)
        w, wm = R.read_safetensors(wpath)
        c, cm = R.read_safetensors(cpath)
        named = dict(R.named_parameters(m))
        want = R.param_shapes(cfg)
        check(sorted(w) == sorted(n for n, _, _ in want), "%s: weight names" % label)
        for n, shp, _ in want:
            if n not in w:
                continue
            check(w[n].dtype == np.float32 and tuple(w[n].shape) == tuple(shp), "%s: %s dtype/shape" % (label, n))
            check(np.array_equal(w[n], named[n].detach().numpy()), "%s: %s values" % (label, n))
            check(np.array_equal(c.get(n), w[n]), "%s: checkpoint %s values" % (label, n))
        check(wm.get("format") == "disco-weights", "%s: weights format metadata" % label)
        got = json.loads(wm.get("config", "{}"))
        for k in R.ARCH_KEYS + ("lr", "disc_lr", "beta1", "beta2", "disc_weight", "clip"):
            check(got.get(k) == cfg[k], "%s: config %s = %r, expected %r" % (label, k, got.get(k), cfg[k]))
        check(cm.get("format") == "disco-checkpoint", "%s: checkpoint format" % label)
        check(cm.get("step") == str(steps) and cm.get("optim.ae.step") == str(steps)
              and cm.get("optim.disc.step") == str(steps) and cm.get("official.iters") == str(steps - 1),
              "%s: step metadata %s" % (label, {k: cm.get(k) for k in ("step", "optim.ae.step", "optim.disc.step",
                                                                          "official.iters")}))
        # optimizer state, by parameter order
        nopt = 0
        for tag, opt, plist in (("ae", ae_opt, ae_params), ("disc", disc_opt, list(m["disc"].parameters()))):
            pn = [n for n, p in named.items() if any(p is q for q in plist)]
            for n, p in zip(pn, plist):
                st = opt.state[p]
                for k in ("exp_avg", "exp_avg_sq"):
                    key = "optim.%s.%s.%s" % (tag, k, n)
                    check(key in c and np.array_equal(c[key], st[k].numpy()), "%s: %s" % (label, key))
                    nopt += 1
        check(nopt == 2 * len(named), "%s: optimizer tensor count %d" % (label, nopt))
        check(len(c) == len(w) + 2 * len(named), "%s: checkpoint holds %d tensors, expected %d"
              % (label, len(c), len(w) + 2 * len(named)))
        print("  converted and read back: %d weights, %d optimizer tensors, config %s" % (len(w), len(c) - len(w),
                                                                                      wm.get("config")))

    # error paths: one-line messages
    print("error cases:")
    bad = os.path.join(tmp, "garbage.pth")
    with open(bad, "wb") as f:
        f.write(b"this is not a checkpoint\n" * 10)
    st = os.path.join(tmp, "w.safetensors")
    R.write_safetensors(st, {"x": np.zeros(2, np.float32)})
    later = os.path.join(tmp, "later.pth")
    torch.save({"e1": {"first.0.weight": torch.zeros(32, 3, 4, 4)}, "e2": {}, "decoder": {}, "disc": {}}, later)
    other = os.path.join(tmp, "other.pth")
    torch.save({"model": {"w": torch.zeros(1)}}, other)
    mism = os.path.join(tmp, "mismatch.pth")
    small = R.build_model(R.make_config(resolution=64, sep=8, code_channels=64, base_channels=16), 0)
    sdd = {k: v.state_dict() for k, v in small.items()}
    sdd["decoder"]["main.3.weight"] = torch.zeros(7, 7, 4, 4)
    torch.save(sdd, mism)
    evil = os.path.join(tmp, "evil.pth")
    torch.save({"e1": {}, "e2": {}, "decoder": {}, "disc": {}, "x": _Evil()}, evil)
    evil_legacy = os.path.join(tmp, "evil_legacy.pth")
    torch.save({"e1": {}, "x": _Evil()}, evil_legacy, _use_new_zipfile_serialization=False)
    for path, expect in ((bad, "not a PyTorch checkpoint"), (evil, "refusing to unpickle"),
                         (evil_legacy, "refusing to unpickle"), (st, "safetensors file"),
                         (later, "later variant"), (other, "not an official ContentDisentanglement checkpoint"),
                         (mism, "decoder.main.3.weight has shape"), (os.path.join(tmp, "nope.pth"), "no such file")):
        try:
            convert(path, os.path.join(tmp, "x.safetensors"), quiet=True)
            check(False, "%s: no error" % os.path.basename(path))
        except ConvertError as e:
            msg = str(e)
            print("  %s -> %s" % (os.path.basename(path), msg))
            check(expect in msg and "\n" not in msg, "%s: message %r lacks %r" % (os.path.basename(path), msg, expect))
    import shutil
    shutil.rmtree(tmp, ignore_errors=True)
    if failures:
        print("self-test FAILED (%d)" % len(failures))
        return 1
    print("self-test passed")
    return 0


def main():
    p = argparse.ArgumentParser(description="Convert an official ContentDisentanglement checkpoint to disco's "
                                            "safetensors weights / checkpoint.")
    p.add_argument("official", nargs="?", help="checkpoint written by the official utils.save_model")
    p.add_argument("--out", help="disco weights file to write (safetensors)")
    p.add_argument("--checkpoint", help="also write a disco training checkpoint with the Adam states")
    p.add_argument("--disc-weight", type=float, help="config disc_weight to record (default 0.001)")
    p.add_argument("--lr", type=float, help="config lr (default: the optimizer's, else 2e-4)")
    p.add_argument("--disc-lr", type=float, help="config disc_lr (default: the optimizer's, else 2e-4)")
    p.add_argument("--seed", type=int, help="config seed to record (default 0)")
    p.add_argument("--unsafe-load", action="store_true", help="allow full unpickling (trusted files only)")
    p.add_argument("--self-test", action="store_true", help="round-trip test on reference models")
    args = p.parse_args()
    if args.self_test:
        return self_test()
    if not args.official or not (args.out or args.checkpoint):
        p.error("give the official checkpoint and --out (and/or --checkpoint)")
    if R.require_torch() is None:
        print("error: reading a torch.save checkpoint needs python3-torch (not installed)")
        return 2
    try:
        convert(args.official, args.out, args.checkpoint,
                {"disc_weight": args.disc_weight, "lr": args.lr, "disc_lr": args.disc_lr, "seed": args.seed},
                unsafe=args.unsafe_load)
    except ConvertError as e:
        print("error: %s" % e)
        return 1
    except (OSError, ValueError) as e:
        print("error: %s" % e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
