#!/usr/bin/python3
"""PyTorch reference for simclrc step dumps.

    torch_step.py MODEL.xml DUMP.safetensors OUT.safetensors [--double]
    torch_step.py --batch-file LIST [--double]    (lines: MODEL DUMP OUT [OUT_F32])
    torch_step.py --make-dump MODEL.xml OUT.safetensors [--seed S] [--batch B]

The first form reads a model description (docs: model-format.md) and a step
dump written by `simclrc --emit=step-dump` (docs: cli.md), rebuilds the
model as torch.nn modules whose state_dict keys are the canonical parameter
names of compiler/ir.h, loads the dump's parameters and input, runs one
training step in train mode (encoder -> head -> the spec's loss: L2
normalise + NT-Xent, Barlow Twins or VICReg),
and writes OUT with `loss`, `grad/NAME` for every parameter and
`running/NAME` for every batchnorm buffer after the step, all F32.

It fails (exit 1) when the dump's parameter names or order differ from the
names derived here from the XML: that cross-checks the compiler's naming.

--batch-file LIST runs several (MODEL DUMP OUT) jobs, one per line
(tab-separated, or whitespace-separated when there is no tab), paying
torch's import once; a fourth field OUT_F32 also writes the step computed
in float32 there, so that a test can measure PyTorch float32's own error
against the float64 OUT. --double computes in float64, to tell precision
effects from semantic ones. --make-dump writes a dump in simclrc's format
from PyTorch's own seeded default initialisation and a random input, for
testing this script and the C comparison without the compiler.
"""

import contextlib
import json
import math
import os
import struct
import sys
import xml.etree.ElementTree as ET

PROG = "torch_step.py"


class SpecError(Exception):
    """Bad input: a model file, a dump, or a mismatch between the two."""


# ---------------------------------------------------------------------------
# safetensors (only what step dumps need; no dependency on the package)

_DTYPES = {"F32": ("f", 4), "F64": ("d", 8), "I64": ("q", 8), "U8": ("B", 1)}


def st_read(path):
    """Returns (tensors: dict name -> (dtype, shape, bytes), metadata)."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise SpecError("%s: cannot read: %s" % (path, e.strerror))
    if len(raw) < 8:
        raise SpecError("%s: not a safetensors file (too short)" % path)
    (hlen,) = struct.unpack("<Q", raw[:8])
    if hlen > len(raw) - 8:
        raise SpecError("%s: header length %d exceeds the file" % (path, hlen))
    try:
        header = json.loads(raw[8:8 + hlen].decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise SpecError("%s: bad JSON header: %s" % (path, e))
    if not isinstance(header, dict):
        raise SpecError("%s: header is not a JSON object" % path)
    data = raw[8 + hlen:]
    meta = header.pop("__metadata__", {}) or {}
    tensors = {}
    for name, info in header.items():
        try:
            dtype, shape, (b, e) = info["dtype"], info["shape"], info["data_offsets"]
        except (KeyError, TypeError, ValueError):
            raise SpecError("%s: tensor %r: malformed entry" % (path, name))
        if dtype not in _DTYPES:
            raise SpecError("%s: tensor %r: unsupported dtype %s" % (path, name, dtype))
        numel = 1
        for d in shape:
            numel *= d
        if not (0 <= b <= e <= len(data)) or e - b != numel * _DTYPES[dtype][1]:
            raise SpecError("%s: tensor %r: bad data offsets [%d, %d]" % (path, name, b, e))
        tensors[name] = (dtype, list(shape), data[b:e])
    return tensors, meta


def st_write(path, tensors, meta):
    """tensors: list of (name, torch tensor), written as F32 in that order."""
    header = {}
    chunks = []
    off = 0
    for name, t in tensors:
        buf = t.detach().to("cpu").float().contiguous().numpy().astype("<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape),
                        "data_offsets": [off, off + len(buf)]}
        chunks.append(buf)
        off += len(buf)
    if meta:
        header["__metadata__"] = meta
    hdr = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hdr += b" " * (-len(hdr) % 8)   # keeps the data 8-byte aligned
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(hdr)))
        f.write(hdr)
        for c in chunks:
            f.write(c)
    os.replace(tmp, path)


def st_tensor(torch, path, tensors, name):
    if name not in tensors:
        raise SpecError("%s: tensor %r is missing" % (path, name))
    dtype, shape, buf = tensors[name]
    if dtype != "F32":
        raise SpecError("%s: tensor %r is %s, expected F32" % (path, name, dtype))
    if len(buf) == 0:
        return torch.zeros(shape, dtype=torch.float32)
    return torch.frombuffer(bytearray(buf), dtype=torch.float32).reshape(shape).clone()


# ---------------------------------------------------------------------------
# The model description (model-format.md), parsed with its defaults

LAYER_ATTRS = {
    "conv": {"filters", "kernel", "stride", "pad", "bias", "groups", "dilation"},
    "batchnorm": {"momentum", "eps"},
    "relu": set(),
    "maxpool": {"kernel", "stride", "pad"},
    "avgpool": {"kernel", "stride", "pad"},
    "global-avgpool": set(),
    "flatten": set(),
    "linear": {"units", "bias"},
    "residual": {"activation"},
    "stage": {"block", "filters", "blocks", "stride", "expansion", "groups", "width"},
    "silu": set(),
    "gelu": set(),
    "leaky-relu": {"slope"},
}


class Layer:
    def __init__(self, kind):
        self.kind = kind
        self.name = None
        self.a = {}
        self.body = []
        self.shortcut = []


def _int(path, el, key, default=None, minimum=1):
    v = el.get(key)
    if v is None:
        if default is None:
            raise SpecError("%s: <%s> needs %s" % (path, el.tag, key))
        return default
    try:
        n = int(v.strip())
    except ValueError:
        raise SpecError("%s: <%s> %s=%r is not an integer" % (path, el.tag, key, v))
    if n < minimum:
        raise SpecError("%s: <%s> %s=%d must be >= %d" % (path, el.tag, key, n, minimum))
    return n


def _float(path, el, key, default=None):
    v = el.get(key)
    if v is None:
        if default is None:
            raise SpecError("%s: <%s> needs %s" % (path, el.tag, key))
        return default
    try:
        x = float(v.strip())
    except ValueError:
        raise SpecError("%s: <%s> %s=%r is not a number" % (path, el.tag, key, v))
    if not math.isfinite(x):
        raise SpecError("%s: <%s> %s=%r is not finite" % (path, el.tag, key, v))
    return x


def _bool(path, el, key, default):
    v = el.get(key)
    if v is None:
        return default
    v = v.strip()
    if v in ("true", "1"):
        return True
    if v in ("false", "0"):
        return False
    raise SpecError("%s: <%s> %s=%r is not a boolean" % (path, el.tag, key, v))


def parse_layers(path, parent):
    layers = []
    for el in parent:
        if not isinstance(el.tag, str):
            continue   # comments
        if el.tag not in LAYER_ATTRS:
            raise SpecError("%s: unknown layer <%s> in <%s>" % (path, el.tag, parent.tag))
        extra = set(el.keys()) - LAYER_ATTRS[el.tag] - {"name"}
        if extra:
            raise SpecError("%s: <%s> has unknown attribute(s) %s"
                            % (path, el.tag, ", ".join(sorted(extra))))
        L = Layer(el.tag)
        L.name = el.get("name")
        k = el.tag
        if k == "conv":
            L.a = dict(filters=_int(path, el, "filters"), kernel=_int(path, el, "kernel"),
                       stride=_int(path, el, "stride", 1), pad=_int(path, el, "pad", 0, 0),
                       bias=_bool(path, el, "bias", False),
                       groups=_int(path, el, "groups", 1), dilation=_int(path, el, "dilation", 1))
        elif k == "batchnorm":
            L.a = dict(momentum=_float(path, el, "momentum", 0.1),
                       eps=_float(path, el, "eps", 1e-5))
        elif k in ("maxpool", "avgpool"):
            kern = _int(path, el, "kernel")
            L.a = dict(kernel=kern, stride=_int(path, el, "stride", kern),
                       pad=_int(path, el, "pad", 0, 0))
        elif k == "linear":
            L.a = dict(units=_int(path, el, "units"), bias=_bool(path, el, "bias", True))
        elif k == "leaky-relu":
            L.a = dict(slope=_float(path, el, "slope", 0.01))
        elif k == "residual":
            act = el.get("activation", "relu")
            if act not in ("relu", "none"):
                raise SpecError("%s: <residual> activation=%r" % (path, act))
            L.a = dict(relu=(act == "relu"))
            bodies = [c for c in el if isinstance(c.tag, str)]
            tags = [c.tag for c in bodies]
            if tags not in (["body"], ["body", "shortcut"]):
                raise SpecError("%s: <residual> must hold <body> and an optional <shortcut>, got %s"
                                % (path, tags))
            L.body = parse_layers(path, bodies[0])
            if len(bodies) == 2:
                L.shortcut = parse_layers(path, bodies[1])
        elif k == "stage":
            block = el.get("block")
            if block not in ("basic", "bottleneck"):
                raise SpecError("%s: <stage> block=%r" % (path, block))
            L.a = dict(block=block, filters=_int(path, el, "filters"),
                       blocks=_int(path, el, "blocks"), stride=_int(path, el, "stride", 1),
                       expansion=_int(path, el, "expansion", 4),
                       groups=_int(path, el, "groups", 1), width=_int(path, el, "width", 64))
        layers.append(L)
    return layers


class Spec:
    pass


def parse_spec(path):
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as e:
        raise SpecError("%s: cannot parse: %s" % (path, e))
    if root.tag != "simclr":
        raise SpecError("%s: root element is <%s>, expected <simclr>" % (path, root.tag))
    s = Spec()
    s.name = root.get("name", "")
    kids = {c.tag: c for c in root if isinstance(c.tag, str)}
    for need in ("input", "encoder", "head", "loss"):
        if need not in kids:
            raise SpecError("%s: <%s> is missing" % (path, need))
    inp = kids["input"]
    s.input = (_int(path, inp, "channels"), _int(path, inp, "height"), _int(path, inp, "width"))
    s.encoder = parse_layers(path, kids["encoder"])
    s.head = parse_layers(path, kids["head"])
    loss = kids["loss"]
    s.loss = loss.get("type", "nt-xent")
    s.predictor = []
    if s.loss == "nt-xent":
        s.temperature = _float(path, loss, "temperature")
        if s.temperature <= 0:
            raise SpecError("%s: temperature must be > 0" % path)
    elif s.loss == "barlow-twins":
        s.coef = (_float(path, loss, "lambda", 0.0051), _float(path, loss, "scale", 1.0))
    elif s.loss == "vicreg":
        s.coef = tuple(_float(path, loss, k, dv) for k, dv in
                       (("sim-coeff", 25.0), ("std-coeff", 25.0), ("cov-coeff", 1.0), ("eps", 1e-4)))
    elif s.loss == "byol":
        # BYOL: the online network's predictor; the target network is a
        # copy of encoder + head, its parameters an EMA (byol_torch.py).
        if "predictor" not in kids:
            raise SpecError("%s: <loss type=\"byol\"> needs <predictor>" % path)
        s.predictor = parse_layers(path, kids["predictor"])
        s.tau_base = _float(path, loss, "tau-base", 0.99)
    else:
        raise SpecError("%s: <loss> type=%r" % (path, s.loss))
    s.batch = _int(path, kids["train"], "batch") if "train" in kids and kids["train"].get("batch") else None
    return s


# ---------------------------------------------------------------------------
# The PyTorch model

def build(torch, spec):
    """Returns (root module, program, canonical param names, buffer names).

    The program is a nested list of steps the forward pass interprets; the
    modules also hang off the root at their canonical dotted names, so that
    root.state_dict() keys are exactly the names of ir.h."""
    import torch.nn as nn
    from torchvision.models.resnet import BasicBlock, Bottleneck

    root = nn.Module()
    params, buffers = [], []
    ns = [""]  # "target." while building BYOL's target network

    def attach(prefix, module):
        parts = prefix.split(".")
        node = root
        for p in parts[:-1]:
            if p not in node._modules:
                node.add_module(p, nn.Module())
            node = node._modules[p]
        if parts[-1] in node._modules:
            raise SpecError("layer name %r is used twice" % prefix)
        try:
            node.add_module(parts[-1], module)
        except (KeyError, TypeError) as e:
            raise SpecError("layer name %r cannot be a module name: %s" % (prefix, e))
        # The dump has no num_batches_tracked; None keeps it out of state_dict.
        for m in module.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.register_buffer("num_batches_tracked", None)
        for n, _ in module.named_parameters(prefix=prefix):
            # the target's parameters are the compiler's buffers
            (buffers if ns[0] else params).append(n)
        for n, _ in module.named_buffers(prefix=prefix):
            buffers.append(n)

    def bn(c, rank, momentum=0.1, eps=1e-5):
        cls = nn.BatchNorm2d if rank == 4 else nn.BatchNorm1d
        return cls(c, eps=eps, momentum=momentum)

    def layers(ls, base, shape):
        """shape is per sample: (C, H, W) or (D,). Returns (program, shape)."""
        prog = []
        for i, L in enumerate(ls):
            prefix = ns[0] + L.name if L.name else "%s.%d" % (base, i)
            k, a = L.kind, L.a
            where = "layer %s (<%s>)" % (prefix, k)
            if k in ("conv", "maxpool", "avgpool", "global-avgpool", "flatten", "stage") \
                    and len(shape) != 3:
                raise SpecError("%s needs a 4-D input, got [N, %s]" % (where, shape[0]))
            if k == "conv":
                c, h, w = shape
                m = nn.Conv2d(c, a["filters"], a["kernel"], stride=a["stride"],
                              padding=a["pad"], bias=a["bias"], groups=a["groups"],
                              dilation=a["dilation"])
                attach(prefix, m)
                prog.append(("module", m))
                shape = (a["filters"], _out(h, a, where), _out(w, a, where))
            elif k == "batchnorm":
                m = bn(shape[0], len(shape) + 1, a["momentum"], a["eps"])
                attach(prefix, m)
                prog.append(("module", m))
            elif k == "relu":
                prog.append(("relu",))
            elif k in ("silu", "gelu", "leaky-relu"):
                prog.append((k, a.get("slope")))
            elif k == "maxpool":
                if 2 * a["pad"] > a["kernel"]:
                    raise SpecError("%s: pad must be at most half the kernel" % where)
                prog.append(("module", nn.MaxPool2d(a["kernel"], a["stride"], a["pad"])))
                shape = (shape[0], _out(shape[1], a, where), _out(shape[2], a, where))
            elif k == "avgpool":
                if 2 * a["pad"] > a["kernel"]:
                    raise SpecError("%s: pad must be at most half the kernel" % where)
                prog.append(("module", nn.AvgPool2d(a["kernel"], a["stride"], a["pad"],
                                                    count_include_pad=True)))
                shape = (shape[0], _out(shape[1], a, where), _out(shape[2], a, where))
            elif k == "global-avgpool":
                prog.append(("gap",))
                shape = (shape[0],)
            elif k == "flatten":
                prog.append(("flatten",))
                shape = (shape[0] * shape[1] * shape[2],)
            elif k == "linear":
                if len(shape) != 1:
                    raise SpecError("%s needs a 2-D input, got [N, %s]"
                                    % (where, ", ".join(map(str, shape))))
                m = nn.Linear(shape[0], a["units"], bias=a["bias"])
                attach(prefix, m)
                prog.append(("module", m))
                shape = (a["units"],)
            elif k == "residual":
                body, bshape = layers(L.body, prefix + ".body", shape)
                sc, sshape = layers(L.shortcut, prefix + ".shortcut", shape)
                if bshape != sshape:
                    raise SpecError("%s: body gives %s, shortcut %s" % (where, bshape, sshape))
                prog.append(("residual", body, sc, a["relu"]))
                shape = bshape
            elif k == "stage":
                c, h, w = shape
                seq = nn.Sequential()
                for j in range(a["blocks"]):
                    s = a["stride"] if j == 0 else 1
                    if a["block"] == "basic":
                        out = a["filters"]
                        cls = BasicBlock
                    else:
                        out = a["filters"] * a["expansion"]
                        # torchvision's Bottleneck reads its class attribute.
                        cls = type("Bottleneck%d" % a["expansion"], (Bottleneck,),
                                   {"expansion": a["expansion"]})
                    down = None
                    if s != 1 or c != out:
                        down = nn.Sequential(nn.Conv2d(c, out, 1, stride=s, bias=False),
                                             nn.BatchNorm2d(out))
                    extra = {} if a["block"] == "basic" else \
                        dict(groups=a["groups"], base_width=a["width"])  # ResNeXt
                    seq.append(cls(c, a["filters"], stride=s, downsample=down, **extra))
                    c = out
                    # conv 3x3 pad 1 (or 1x1 pad 0) with stride s: same rule.
                    h, w = (h - 1) // s + 1, (w - 1) // s + 1
                attach(prefix, seq)
                prog.append(("module", seq))
                shape = (c, h, w)
            else:
                raise AssertionError(k)
        return prog, shape

    enc, shape = layers(spec.encoder, "encoder", spec.input)
    head, shape = layers(spec.head, "head", shape)
    if len(shape) != 1:
        raise SpecError("the head's output must be 2-D, got [N, %s]"
                        % ", ".join(map(str, shape)))
    nets = (enc, head)
    if spec.loss == "byol":
        pred, _ = layers(spec.predictor, "predictor", shape)
        ns[0] = "target."
        tenc, tshape = layers(spec.encoder, "target.encoder", spec.input)
        thead, _ = layers(spec.head, "target.head", tshape)
        ns[0] = ""
        nets = (enc, head, pred, tenc, thead)
    # Cross-check the dotted names against what torch itself reports.
    if set(root.state_dict().keys()) != set(params) | set(buffers):
        raise SpecError("internal: state_dict keys differ from the derived names")
    return root, nets, params, buffers


def _out(n, a, where):
    span = a.get("dilation", 1) * (a["kernel"] - 1) + 1  # a dilated window
    o = (n + 2 * a["pad"] - span) // a["stride"] + 1
    if n + 2 * a["pad"] < span or o < 1:
        raise SpecError("%s: kernel %d larger than padded input %d"
                        % (where, span, n + 2 * a["pad"]))
    return o


def run_program(torch, prog, x):
    import torch.nn.functional as F
    for step in prog:
        op = step[0]
        if op == "module":
            x = step[1](x)
        elif op == "relu":
            x = F.relu(x)
        elif op == "silu":
            x = F.silu(x)
        elif op == "gelu":
            x = F.gelu(x, approximate="none")
        elif op == "leaky-relu":
            x = F.leaky_relu(x, negative_slope=step[1])
        elif op == "gap":
            x = x.mean(dim=(2, 3))
        elif op == "flatten":
            x = x.flatten(1)
        elif op == "residual":
            y = run_program(torch, step[1], x) + run_program(torch, step[2], x)
            x = F.relu(y) if step[3] else y
    return x


def nt_xent(torch, h, temperature):
    import torch.nn.functional as F
    n2 = h.shape[0]
    z = F.normalize(h, dim=1)
    s = z @ z.t() / temperature
    s = s.masked_fill(torch.eye(n2, dtype=torch.bool), float("-inf"))
    target = (torch.arange(n2) + n2 // 2) % n2
    return F.cross_entropy(s, target)


def barlow_twins(torch, h, lam, scale):
    """facebookresearch/barlowtwins: BatchNorm1d(affine=False) per view."""
    import torch.nn.functional as F
    n = h.shape[0] // 2
    def bn(v):
        return F.batch_norm(v, None, None, training=True, momentum=0.0, eps=1e-5)
    c = bn(h[:n]).t() @ bn(h[n:]) / n
    on = (torch.diagonal(c) - 1).pow(2).sum()
    off = (c - torch.diag(torch.diagonal(c))).pow(2).sum()
    return scale * (on + lam * off)


def vicreg(torch, h, sim, std, cov, eps):
    """The VICReg paper's algorithm 1 (Bardes et al., ICLR 2022)."""
    import torch.nn.functional as F
    n, d = h.shape[0] // 2, h.shape[1]
    x, y = h[:n], h[n:]
    repr_loss = F.mse_loss(x, y)
    x = x - x.mean(dim=0)
    y = y - y.mean(dim=0)
    std_x = torch.sqrt(x.var(dim=0) + eps)
    std_y = torch.sqrt(y.var(dim=0) + eps)
    std_loss = torch.mean(F.relu(1 - std_x)) / 2 + torch.mean(F.relu(1 - std_y)) / 2
    off = ~torch.eye(d, dtype=torch.bool)
    cov_loss = ((x.t() @ x) / (n - 1))[off].pow(2).sum() / d + ((y.t() @ y) / (n - 1))[off].pow(2).sum() / d
    return sim * repr_loss + std * std_loss + cov * cov_loss


def objective(torch, spec, h):
    if spec.loss == "barlow-twins":
        return barlow_twins(torch, h, *spec.coef)
    if spec.loss == "vicreg":
        return vicreg(torch, h, *spec.coef)
    return nt_xent(torch, h, spec.temperature)


def byol_loss(torch, q, t):
    """mean over images of 2 - 2 cos(q1, t2) + 2 - 2 cos(q2, t1)."""
    import torch.nn.functional as F
    n = q.shape[0] // 2
    qn, tn = F.normalize(q, dim=1), F.normalize(t, dim=1)
    return (2 - 2 * (qn[:n] * tn[n:]).sum(1)).mean() + (2 - 2 * (qn[n:] * tn[:n]).sum(1)).mean()


def target_copy(torch, root, params):
    """BYOL: the target network's parameters := the online ones."""
    tmap = dict(root.named_parameters())
    with torch.no_grad():
        for n in params:
            if "target." + n in tmap:
                tmap["target." + n].copy_(tmap[n])
                tmap["target." + n].requires_grad_(False)


def step(torch, spec, root, prog, x, autocast=None):
    """autocast: a context for the forward pass and the loss (e.g.
    torch.autocast("cpu", dtype=torch.bfloat16)); backward runs outside it,
    as PyTorch recommends."""
    root.train()
    with autocast if autocast is not None else contextlib.nullcontext():
        h = run_program(torch, prog[1], run_program(torch, prog[0], x))
        if spec.loss == "byol":
            q = run_program(torch, prog[2], h)
            with torch.no_grad():  # the target: forward only, no gradient
                t = run_program(torch, prog[4], run_program(torch, prog[3], x))
            loss = byol_loss(torch, q, t)
        else:
            loss = objective(torch, spec, h)
    root.zero_grad(set_to_none=True)
    loss.backward()
    return loss


# ---------------------------------------------------------------------------
# Jobs

def reference(torch, model_path, dump_path, out_path, double):
    spec = parse_spec(model_path)
    try:
        root, prog, params, buffers = build(torch, spec)
    except SpecError as e:
        raise SpecError("%s: %s" % (model_path, e))
    tensors, meta = st_read(dump_path)
    if meta.get("format") != "simclrc-step-1":
        raise SpecError("%s: __metadata__ format is %r, expected 'simclrc-step-1'"
                        % (dump_path, meta.get("format")))
    names = meta.get("params", "")
    dumped = names.split(",") if names else []
    if dumped != params:
        only_d = [n for n in dumped if n not in params]
        only_x = [n for n in params if n not in dumped]
        first = next((i for i, (a, b) in enumerate(zip(dumped, params)) if a != b),
                     min(len(dumped), len(params)))
        raise SpecError(
            "%s: parameter names differ from those derived from %s\n"
            "  dump (%d): %s\n  xml  (%d): %s\n"
            "  only in dump: %s\n  only from xml: %s\n  first difference at position %d"
            % (dump_path, model_path, len(dumped), ",".join(dumped), len(params),
               ",".join(params), only_d or "-", only_x or "-", first))
    dtype = torch.float64 if double else torch.float32
    root.to(dtype)
    pmap = dict(root.named_parameters())
    with torch.no_grad():
        for n in params:
            t = st_tensor(torch, dump_path, tensors, n)
            if list(t.shape) != list(pmap[n].shape):
                raise SpecError("%s: %s has shape %s, expected %s"
                                % (dump_path, n, list(t.shape), list(pmap[n].shape)))
            pmap[n].copy_(t)
    target_copy(torch, root, params)
    # Buffers stay at construction defaults (running_mean 0, running_var 1).
    x = st_tensor(torch, dump_path, tensors, "input")
    c, hh, ww = spec.input
    if x.dim() != 4 or tuple(x.shape[1:]) != (c, hh, ww) or x.shape[0] % 2 or x.shape[0] < 2:
        raise SpecError("%s: input has shape %s, expected [2N, %d, %d, %d]"
                        % (dump_path, list(x.shape), c, hh, ww))
    loss = step(torch, spec, root, prog, x.to(dtype))
    bmap = dict(root.named_buffers())
    out = [("loss", loss.detach().reshape(1))]
    for n in params:
        g = pmap[n].grad
        out.append(("grad/" + n, g if g is not None else torch.zeros_like(pmap[n])))
    for n in buffers:
        out.append(("running/" + n, bmap[n] if n in bmap else pmap[n]))
    st_write(out_path, out, {"format": "simclrc-torch-ref-1", "params": ",".join(params),
                             "precision": "f64" if double else "f32"})


def make_dump(torch, model_path, out_path, seed, batch):
    spec = parse_spec(model_path)
    torch.manual_seed(seed)
    try:
        root, prog, params, _ = build(torch, spec)
    except SpecError as e:
        raise SpecError("%s: %s" % (model_path, e))
    target_copy(torch, root, params)
    n = batch or spec.batch or 4
    x = torch.randn(2 * n, *spec.input)
    loss = step(torch, spec, root, prog, x)
    pmap = dict(root.named_parameters())
    out = [(p, pmap[p]) for p in params] + [("input", x), ("loss", loss.detach().reshape(1))]
    out += [("grad/" + p, pmap[p].grad) for p in params]
    st_write(out_path, out, {"format": "simclrc-step-1", "params": ",".join(params)})


def usage():
    sys.stderr.write(__doc__.split("\n\n")[1] + "\n")
    sys.exit(2)


def main(argv):
    double = "--double" in argv
    args = [a for a in argv if a != "--double"]
    seed, batch = 0, None
    for flag in ("--seed", "--batch"):
        if flag in args:
            i = args.index(flag)
            if i + 1 >= len(args):
                usage()
            try:
                v = int(args[i + 1])
            except ValueError:
                usage()
            if flag == "--seed":
                seed = v
            else:
                batch = v
            del args[i:i + 2]
    if any(a.startswith("--") and a not in ("--batch-file", "--make-dump") for a in args):
        usage()
    if args[:1] == ["--batch-file"] and len(args) == 2:
        try:
            with open(args[1]) as f:
                lines = [l.rstrip("\n") for l in f if l.strip()]
        except OSError as e:
            raise SpecError("%s: cannot read: %s" % (args[1], e.strerror))
        jobs = []
        for l in lines:
            job = l.split("\t") if "\t" in l else l.split()
            if len(job) not in (3, 4):
                raise SpecError("%s: expected MODEL DUMP OUT [OUT_F32], got %r" % (args[1], l))
            jobs.append(job)
    elif args[:1] == ["--make-dump"] and len(args) == 3:
        jobs = None
    elif len(args) == 3 and not args[0].startswith("--"):
        jobs = [args]
    else:
        usage()

    import torch
    torch.set_num_threads(1)   # tiny tensors; the machine is shared
    if jobs is None:
        make_dump(torch, args[1], args[2], seed, batch)
        return 0
    status = 0
    for job in jobs:
        m, d, o = job[:3]
        try:
            reference(torch, m, d, o, double)
            if len(job) == 4:
                reference(torch, m, d, job[3], False)
        except SpecError as e:
            sys.stderr.write("%s: error: %s\n" % (PROG, e))
            status = 1
    return status


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except SpecError as e:
        sys.stderr.write("%s: error: %s\n" % (PROG, e))
        sys.exit(1)
