"""PyTorch reference of disco's model and training step.

The model is the *earlier* variant of the official code of Press et al., ICLR 2019,
"Emerging Disentanglement in Auto-Encoder Based Unsupervised Image Content Transfer"
(github.com/oripress/ContentDisentanglement, models.py / train.py): plain nn.Sequential
encoders and decoder, no `res` skip branch. Parameter names are the official state-dict
names with the prefixes e1. e2. decoder. disc.:

    E1       e1.full        [Conv2d(k4,s2,p1), InstanceNorm2d, LeakyReLU(0.2)] x L
                            channels 3 -> b, 2b, 4b, 8b, C-sep, C-sep
    E2       e2.full        same blocks, 3 -> b, 2b, 4b, 4b, 4b, sep
    Decoder  decoder.main   [ConvTranspose2d(k4,s2,p1), InstanceNorm2d, ReLU] x (L-1),
                            channels C -> C, 8b, 4b, 2b, b, then ConvTranspose2d(b -> 3), Tanh
    Disc     disc.classify  Linear((C-sep)*s*s -> H), LeakyReLU(0.2), Linear(H -> 1), Sigmoid

with b = base_channels (official 32), C = code_channels (official 512), H = disc_hidden
(512). L = 6 stride-2 layers (128 and 256 px, as the official model) or 5 at 64 px, where
the second-to-last E1 layer, the last 4b E2 layer and the first C->C decoder layer are
dropped; the bottleneck is s x s with s = resolution / 2^L (2 at 64 and 128 px).

`official_step` runs one step of the official training loop (train.py) from fresh Adam
state and returns what `disco step` writes (losses, pre-clip gradients, parameters).

The module also holds a dependency-free safetensors reader/writer (numpy only) and the
torch-free parts (config, parameter shapes) that the tools share. Importing it does not
import torch; call `require_torch()` (or `torch_or_exit()`).
"""

import json
import os
import struct
import subprocess
import sys

try:
    import numpy as np
except ImportError:  # the tools then re-run under a python3 that has torch and numpy, or skip
    np = None

DEFAULTS = dict(resolution=128, sep=25, code_channels=512, base_channels=32, disc_hidden=512,
                recon_loss="mse", disc_weight=0.001, lr=2e-4, disc_lr=2e-4, beta1=0.5,
                beta2=0.999, clip=5.0, seed=0)
ARCH_KEYS = ("resolution", "sep", "code_channels", "base_channels", "disc_hidden")
SKIP_RETURN_CODE = 77


# ---------------------------------------------------------------------------------------
# torch availability
# ---------------------------------------------------------------------------------------
def _python_with_torch():
    """Another python3 on this machine that can import torch and numpy, or None."""
    seen = {os.path.realpath(sys.executable)}
    cands = []
    for d in os.environ.get("PATH", "").split(os.pathsep):
        cands.append(os.path.join(d, "python3"))
    cands += ["/usr/bin/python3", "/usr/local/bin/python3", "/bin/python3"]
    for c in cands:
        if not (os.path.isfile(c) and os.access(c, os.X_OK)):
            continue
        r = os.path.realpath(c)
        if r in seen:
            continue
        seen.add(r)
        try:
            ok = subprocess.run([c, "-c", "import torch, numpy"], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, timeout=60).returncode == 0
        except (OSError, subprocess.SubprocessError):
            ok = False
        if ok:
            return c
    return None


def require_torch(reexec=True):
    """Import torch (and check numpy). When this interpreter lacks it (e.g. a pyenv python3 shadowing the
    system one that has python3-torch), re-run the current script under a python3 that has
    it; return None when there is none."""
    try:
        import numpy  # noqa: F401 (needed by the tools)
        import torch  # noqa: F401
        return torch
    except ImportError:
        pass
    if reexec and not os.environ.get("DISCO_REFERENCE_NO_REEXEC"):
        other = _python_with_torch()
        if other:
            print("note: %s cannot import torch; re-running under %s" % (sys.executable, other),
                  file=sys.stderr, flush=True)
            os.environ["DISCO_REFERENCE_NO_REEXEC"] = "1"
            os.execv(other, [other] + sys.argv)
    return None


def torch_or_exit():
    torch = require_torch()
    if torch is None:
        print("SKIP: python3-torch not installed (neither this python3 nor another python3 on the machine can import torch and numpy)")
        sys.exit(SKIP_RETURN_CODE)
    return torch


# ---------------------------------------------------------------------------------------
# config and shapes (no torch)
# ---------------------------------------------------------------------------------------
def make_config(**kw):
    c = dict(DEFAULTS)
    for k, v in kw.items():
        if v is not None:
            c[k] = v
    validate_config(c)
    return c


def validate_config(c):
    if c["resolution"] not in (64, 128, 256):
        raise ValueError("resolution %d is not supported (expected 64, 128 or 256)" % c["resolution"])
    if not 1 <= c["sep"] < c["code_channels"]:
        raise ValueError("sep %d must be in [1, code_channels %d)" % (c["sep"], c["code_channels"]))
    if c["base_channels"] < 1 or c["disc_hidden"] < 1:
        raise ValueError("base_channels and disc_hidden must be positive")


def num_layers(c):
    return 5 if c["resolution"] == 64 else 6


def bottleneck(c):
    return c["resolution"] >> num_layers(c)


def common_dim(c):
    s = bottleneck(c)
    return (c["code_channels"] - c["sep"]) * s * s


def separate_dim(c):
    s = bottleneck(c)
    return c["sep"] * s * s


def e1_channels(c):
    b, cc = c["base_channels"], c["code_channels"] - c["sep"]
    v = [b, 2 * b, 4 * b, 8 * b, cc, cc]
    if num_layers(c) == 5:
        del v[4]
    return v


def e2_channels(c):
    b = c["base_channels"]
    v = [b, 2 * b, 4 * b, 4 * b, 4 * b, c["sep"]]
    if num_layers(c) == 5:
        del v[4]
    return v


def decoder_channels(c):
    """Input channels of each transposed conv; the last one maps to 3."""
    b, cc = c["base_channels"], c["code_channels"]
    v = [cc, cc, 8 * b, 4 * b, 2 * b, b]
    if num_layers(c) == 5:
        del v[1]
    return v


def param_shapes(c):
    """Ordered list of (name, shape, kind) of every parameter, in module order
    (e1, e2, decoder, disc). kind: 'conv_w', 'conv_b_prenorm' (bias of a conv followed by
    InstanceNorm: its gradient is mathematically zero), 'conv_b', 'linear_w', 'linear_b'."""
    out = []
    for prefix, chans in (("e1.full", e1_channels(c)), ("e2.full", e2_channels(c))):
        cin = 3
        for i, co in enumerate(chans):
            out.append(("%s.%d.weight" % (prefix, 3 * i), (co, cin, 4, 4), "conv_w"))
            out.append(("%s.%d.bias" % (prefix, 3 * i), (co,), "conv_b_prenorm"))
            cin = co
    d = decoder_channels(c)
    for i in range(len(d)):
        cin, co = d[i], (d[i + 1] if i + 1 < len(d) else 3)
        out.append(("decoder.main.%d.weight" % (3 * i), (cin, co, 4, 4), "conv_w"))  # ConvTranspose: [in, out, k, k]
        out.append(("decoder.main.%d.bias" % (3 * i), (co,),
                    "conv_b_prenorm" if i + 1 < len(d) else "conv_b"))
    h = c["disc_hidden"]
    out.append(("disc.classify.0.weight", (h, common_dim(c)), "linear_w"))
    out.append(("disc.classify.0.bias", (h,), "linear_b"))
    out.append(("disc.classify.2.weight", (1, h), "linear_w"))
    out.append(("disc.classify.2.bias", (1,), "linear_b"))
    return out


def weight_of(bias_name):
    return bias_name[: -len("bias")] + "weight"


def config_json(c):
    keys = ["resolution", "sep", "code_channels", "base_channels", "disc_hidden", "recon_loss",
            "disc_weight", "lr", "disc_lr", "beta1", "beta2", "clip", "seed"]
    return json.dumps({k: c[k] for k in keys}, separators=(",", ":"))


# ---------------------------------------------------------------------------------------
# safetensors (numpy only)
# ---------------------------------------------------------------------------------------
_DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "I16": "<i2",
           "I8": "i1", "U8": "u1", "BOOL": "?", "U16": "<u2", "U32": "<u4", "U64": "<u8"}
_RANK = ["BOOL", "U8", "I8", "I16", "U16", "F16", "BF16", "I32", "U32", "F32", "F64", "I64", "U64"]


def _st_dtype(a):
    for k, v in _DTYPES.items():
        if np.dtype(v) == a.dtype.newbyteorder("<") or np.dtype(v) == a.dtype:
            return k
    raise ValueError("safetensors: unsupported numpy dtype %s" % a.dtype)


def write_safetensors(path, tensors, metadata=None):
    """tensors: name -> numpy array (or anything np.asarray accepts). metadata: str -> str.
    Layout as the reference writer: tensors by descending dtype size/rank then name, compact
    JSON header with __metadata__ first, padded with spaces to a multiple of 8. Written to a
    temp file and renamed."""
    arrs = {}
    for k, v in tensors.items():
        a = np.asarray(v)
        if a.dtype == np.float64 or a.dtype == np.float32 or a.dtype.kind in "iub":
            pass
        else:
            a = a.astype(np.float32)
        arrs[k] = np.ascontiguousarray(a.astype(a.dtype.newbyteorder("<")))
    order = sorted(arrs, key=lambda k: (-arrs[k].dtype.itemsize, -_RANK.index(_st_dtype(arrs[k])), k))
    header = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in sorted(metadata.items())}
    off = 0
    for k in order:
        n = arrs[k].nbytes
        header[k] = {"dtype": _st_dtype(arrs[k]), "shape": list(arrs[k].shape), "data_offsets": [off, off + n]}
        off += n
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * ((8 - len(h) % 8) % 8)
    tmp = path + ".tmp%d" % os.getpid()
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for k in order:
            f.write(arrs[k].tobytes())
    os.replace(tmp, path)


def read_safetensors(path):
    """-> (dict name -> numpy array, metadata dict). Raises ValueError on a malformed file."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 8:
        raise ValueError("%s: not a safetensors file (%d bytes)" % (path, len(data)))
    (n,) = struct.unpack("<Q", data[:8])
    if n > len(data) - 8 or n > 100000000:
        raise ValueError("%s: not a safetensors file (header length %d)" % (path, n))
    try:
        header = json.loads(data[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise ValueError("%s: safetensors header is not valid JSON: %s" % (path, e))
    if not isinstance(header, dict):
        raise ValueError("%s: safetensors header is not a JSON object" % path)
    meta = header.pop("__metadata__", {}) or {}
    buf = memoryview(data)[8 + n:]
    out = {}
    for k, info in header.items():
        dt = info.get("dtype")
        if dt not in _DTYPES:
            raise ValueError("%s: tensor %s has unsupported dtype %s" % (path, k, dt))
        b, e = info["data_offsets"]
        if not 0 <= b <= e <= len(buf):
            raise ValueError("%s: tensor %s has data_offsets [%d, %d] outside the buffer" % (path, k, b, e))
        a = np.frombuffer(buf[b:e], dtype=np.dtype(_DTYPES[dt]))
        shape = tuple(info["shape"])
        if a.size != int(np.prod(shape, dtype=np.int64)):
            raise ValueError("%s: tensor %s: %d elements for shape %s" % (path, k, a.size, list(shape)))
        out[k] = a.reshape(shape).copy()
    return out, meta


# ---------------------------------------------------------------------------------------
# the PyTorch model (built lazily so this module imports without torch)
# ---------------------------------------------------------------------------------------
def build_model(c, seed=0, dtype=None):
    """Returns dict {'e1','e2','decoder','disc'} of nn.Modules with the official attribute
    names (full/full/main/classify), initialised with torch.manual_seed(seed) and PyTorch's
    default init, created in the official order e1, e2, decoder, disc."""
    torch = require_torch(reexec=False)
    nn = torch.nn
    validate_config(c)
    s = bottleneck(c)

    class Encoder(nn.Module):
        def __init__(self, chans):
            super().__init__()
            layers, cin = [], 3
            for co in chans:
                layers += [nn.Conv2d(cin, co, 4, 2, 1), nn.InstanceNorm2d(co), nn.LeakyReLU(0.2)]
                cin = co
            self.full = nn.Sequential(*layers)

        def forward(self, x):
            y = self.full(x)
            return y.reshape(y.shape[0], -1)

    class Decoder(nn.Module):
        def __init__(self, chans):
            super().__init__()
            layers = []
            for i in range(len(chans) - 1):
                layers += [nn.ConvTranspose2d(chans[i], chans[i + 1], 4, 2, 1), nn.InstanceNorm2d(chans[i + 1]),
                           nn.ReLU()]
            layers += [nn.ConvTranspose2d(chans[-1], 3, 4, 2, 1), nn.Tanh()]
            self.main = nn.Sequential(*layers)

        def forward(self, common, separate):
            x = torch.cat([common, separate], dim=1).view(-1, c["code_channels"], s, s)
            return self.main(x)

    class Disc(nn.Module):
        def __init__(self):
            super().__init__()
            self.classify = nn.Sequential(nn.Linear(common_dim(c), c["disc_hidden"]), nn.LeakyReLU(0.2),
                                          nn.Linear(c["disc_hidden"], 1), nn.Sigmoid())

        def forward(self, x):
            return self.classify(x.view(-1, common_dim(c))).view(-1)

    torch.manual_seed(seed)
    m = {"e1": Encoder(e1_channels(c)), "e2": Encoder(e2_channels(c)), "decoder": Decoder(decoder_channels(c)),
         "disc": Disc()}
    if dtype is not None:
        for v in m.values():
            v.to(dtype)
    # sanity: names and shapes are what the torch-free table says
    got = [(n, tuple(p.shape)) for n, p in named_parameters(m)]
    want = [(n, s_) for n, s_, _ in param_shapes(c)]
    assert got == want, "reference model does not match param_shapes():\n%s\n%s" % (got, want)
    return m


def named_parameters(m):
    out = []
    for k in ("e1", "e2", "decoder", "disc"):
        for n, p in m[k].named_parameters():
            out.append((k + "." + n, p))
    return out


def state_numpy(m):
    """name -> float32 numpy copy of every parameter."""
    return {n: p.detach().cpu().float().numpy().copy() for n, p in named_parameters(m)}


def load_numpy(m, tensors):
    torch = require_torch(reexec=False)
    with torch.no_grad():
        for n, p in named_parameters(m):
            p.copy_(torch.from_numpy(np.asarray(tensors[n])).to(p.dtype))


def random_batch(c, n, seed=0):
    """Two float32 batches a, b [n, 3, R, R] uniform in [-1, 1] (numpy)."""
    rng = np.random.default_rng(seed + 1000003)
    r = c["resolution"]
    a = rng.uniform(-1, 1, size=(n, 3, r, r)).astype(np.float32)
    b = rng.uniform(-1, 1, size=(n, 3, r, r)).astype(np.float32)
    return a, b


def official_step(m, c, a, b, dtype=None, ae_optimizer=None, disc_optimizer=None, grad_adjust=None,
                  activation_hook=None):
    """One step of the official train.py loop on batches a (domain A) and b (domain B).

    m: model from build_model (modified in place). a, b: numpy or torch [N,3,R,R].
    Fresh Adam state unless optimizers are given. grad_adjust(name -> param), when given, is
    called right after the autoencoder backward and may change the .grad tensors (used to
    replay another implementation's ReLU kink decisions). activation_hook(phase, module
    name, input tensor), when given, sees every ReLU/LeakyReLU input of the autoencoder
    ('ae') and discriminator ('disc') steps. Returns an ordered dict of numpy float64
    arrays with the names `disco step` writes: loss.recon_a, loss.recon_b, loss.adv,
    loss.ae, loss.disc, grad.ae.<name> (autoencoder-step gradients before clipping),
    grad.disc.<name> (discriminator-step gradients before clipping), param.<name>."""
    torch = require_torch(reexec=False)
    nn = torch.nn
    if dtype is None:
        dtype = next(m["e1"].parameters()).dtype
    a = torch.as_tensor(np.asarray(a)).to(dtype)
    b = torch.as_tensor(np.asarray(b)).to(dtype)
    n = a.shape[0]
    e1, e2, dec, disc = m["e1"], m["e2"], m["decoder"], m["disc"]
    for v in m.values():
        v.train()
    mse, bce = nn.MSELoss(), nn.BCELoss()
    A_label = torch.full((n,), 1.0, dtype=dtype)
    B_label = torch.full((b.shape[0],), 0.0, dtype=dtype)
    B_separate = torch.zeros((b.shape[0], separate_dim(c)), dtype=dtype)
    ae_params = list(e1.parameters()) + list(e2.parameters()) + list(dec.parameters())
    disc_params = list(disc.parameters())
    ae_opt = ae_optimizer or torch.optim.Adam(ae_params, lr=c["lr"], betas=(c["beta1"], c["beta2"]))
    disc_opt = disc_optimizer or torch.optim.Adam(disc_params, lr=c["disc_lr"], betas=(c["beta1"], c["beta2"]))
    names = [nm for nm, _ in named_parameters(m)]
    ae_names = [nm for nm in names if not nm.startswith("disc.")]
    disc_names = [nm for nm in names if nm.startswith("disc.")]
    out = {}

    def f64(t):
        return t.detach().to(torch.float64).cpu().numpy().copy()  # never alias p.grad (clipped in place later)

    hooks = []
    phase = ["ae"]
    if activation_hook is not None:
        for k, mod in m.items():
            for nm, sub in mod.named_modules():
                if isinstance(sub, (nn.ReLU, nn.LeakyReLU)):
                    hooks.append(sub.register_forward_hook(
                        lambda mod_, inp, outp, _n=k + "." + nm: activation_hook(phase[0], _n, inp[0])))

    # ---- autoencoder step ----
    ae_opt.zero_grad()
    A_common = e1(a)
    A_separate = e2(a)
    B_common = e1(b)
    A_decoding = dec(A_common, A_separate)
    B_decoding = dec(B_common, B_separate)
    recon_a = mse(A_decoding, a)
    recon_b = mse(B_decoding, b)
    loss = recon_a + recon_b
    if c["disc_weight"] > 0:  # as train.py: the confusion term only when it is weighted in
        adv = bce(disc(A_common), torch.zeros((n,), dtype=dtype)) + bce(disc(B_common), B_label)
        loss = loss + c["disc_weight"] * adv
    else:
        adv = torch.zeros((), dtype=dtype)
    loss.backward()
    if grad_adjust is not None:
        grad_adjust(dict(named_parameters(m)))
    out["loss.recon_a"] = f64(recon_a)
    out["loss.recon_b"] = f64(recon_b)
    out["loss.adv"] = f64(adv)
    out["loss.ae"] = f64(loss)
    for nm, p in zip(ae_names, ae_params):
        out["grad.ae." + nm] = f64(p.grad) if p.grad is not None else np.zeros(tuple(p.shape))
    if c["clip"] > 0:
        torch.nn.utils.clip_grad_norm_(ae_params, c["clip"])
    ae_opt.step()

    # ---- discriminator step ----
    phase[0] = "disc"
    if c["disc_weight"] > 0:
        disc_opt.zero_grad()
        A_common = e1(a)
        B_common = e1(b)
        dloss = bce(disc(A_common), A_label) + bce(disc(B_common), B_label)
        dloss.backward()
        out["loss.disc"] = f64(dloss)
        for nm, p in zip(disc_names, disc_params):
            out["grad.disc." + nm] = f64(p.grad)
        if c["clip"] > 0:
            torch.nn.utils.clip_grad_norm_(disc_params, c["clip"])
        disc_opt.step()
    else:
        out["loss.disc"] = np.zeros(())
    for h in hooks:
        h.remove()
    for nm, p in named_parameters(m):
        out["param." + nm] = f64(p)
    return out


class OfficialTrainer:
    """The official train.py loop body without any bookkeeping (for timing): persistent
    Adam optimizers, B's zero separate code and the labels made once, as train.py does."""

    def __init__(self, m, c, batch):
        torch = require_torch(reexec=False)
        self.torch, self.m, self.c = torch, m, c
        dtype = next(m["e1"].parameters()).dtype
        self.ae_params = list(m["e1"].parameters()) + list(m["e2"].parameters()) + list(m["decoder"].parameters())
        self.disc_params = list(m["disc"].parameters())
        self.ae_opt = torch.optim.Adam(self.ae_params, lr=c["lr"], betas=(c["beta1"], c["beta2"]))
        self.disc_opt = torch.optim.Adam(self.disc_params, lr=c["disc_lr"], betas=(c["beta1"], c["beta2"]))
        self.A_label = torch.full((batch,), 1.0, dtype=dtype)
        self.B_label = torch.full((batch,), 0.0, dtype=dtype)
        self.B_separate = torch.zeros((batch, separate_dim(c)), dtype=dtype)
        self.mse, self.bce = torch.nn.MSELoss(), torch.nn.BCELoss()
        for v in m.values():
            v.train()

    def step(self, a, b):
        e1, e2, dec, disc = self.m["e1"], self.m["e2"], self.m["decoder"], self.m["disc"]
        mse, bce, w = self.mse, self.bce, self.c["disc_weight"]
        self.ae_opt.zero_grad()
        A_common, A_separate, B_common = e1(a), e2(a), e1(b)
        loss = mse(dec(A_common, A_separate), a) + mse(dec(B_common, self.B_separate), b)
        if w > 0:
            loss = loss + w * (bce(disc(A_common), self.B_label) + bce(disc(B_common), self.B_label))
        loss.backward()
        self.torch.nn.utils.clip_grad_norm_(self.ae_params, self.c["clip"])
        self.ae_opt.step()
        if w > 0:
            self.disc_opt.zero_grad()
            A_common, B_common = e1(a), e1(b)
            dloss = bce(disc(A_common), self.A_label) + bce(disc(B_common), self.B_label)
            dloss.backward()
            self.torch.nn.utils.clip_grad_norm_(self.disc_params, self.c["clip"])
            self.disc_opt.step()
        return float(loss)


def ae_loss_graph(m, c, a, b):
    """The autoencoder-step loss of official_step, with autograd graph, plus every
    ReLU/LeakyReLU call as (module name, input tensor, output tensor, negative slope).
    Used to find the activation elements whose input is within rounding of the kink and
    to compute the effect of the other slope choice on the parameter gradients."""
    torch = require_torch(reexec=False)
    nn = torch.nn
    dtype = next(m["e1"].parameters()).dtype
    a = torch.as_tensor(np.asarray(a)).to(dtype)
    b = torch.as_tensor(np.asarray(b)).to(dtype)
    acts, hooks = [], []
    for k, mod in m.items():
        for nm, sub in mod.named_modules():
            if isinstance(sub, (nn.ReLU, nn.LeakyReLU)):
                ns = sub.negative_slope if isinstance(sub, nn.LeakyReLU) else 0.0
                hooks.append(sub.register_forward_hook(
                    lambda mod_, inp, outp, _n=k + "." + nm, _s=ns: acts.append((_n, inp[0], outp, _s))))
    try:
        mse, bce = nn.MSELoss(), nn.BCELoss()
        A_common, A_separate, B_common = m["e1"](a), m["e2"](a), m["e1"](b)
        B_separate = torch.zeros((b.shape[0], separate_dim(c)), dtype=dtype)
        loss = mse(m["decoder"](A_common, A_separate), a) + mse(m["decoder"](B_common, B_separate), b)
        if c["disc_weight"] > 0:
            z = torch.zeros((a.shape[0],), dtype=dtype)
            loss = loss + c["disc_weight"] * (bce(m["disc"](A_common), z) + bce(m["disc"](B_common), z))
    finally:
        for h in hooks:
            h.remove()
    return loss, acts


def save_official_checkpoint(path, m, ae_opt=None, disc_opt=None, iters=0, keys=("ae_opt", "disc_opt", "iters"),
                             legacy=False):
    """Save as the official utils.save_model does: torch.save of a dict with the four
    module state dicts, both optimizer state dicts and the iteration counter. legacy:
    the pre-1.6 (non-zip) torch file format the official code's torch versions wrote."""
    torch = require_torch(reexec=False)
    st = {"e1": m["e1"].state_dict(), "e2": m["e2"].state_dict(), "decoder": m["decoder"].state_dict(),
          "disc": m["disc"].state_dict()}
    if ae_opt is not None:
        st[keys[0]] = ae_opt.state_dict()
    if disc_opt is not None:
        st[keys[1]] = disc_opt.state_dict()
    st[keys[2]] = iters
    if legacy:
        torch.save(st, path, _use_new_zipfile_serialization=False)
    else:
        torch.save(st, path)

