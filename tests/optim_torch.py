#!/usr/bin/python3
"""PyTorch reference for the runtime's optimizers and schedules (test_optim).

    optim_torch.py OUT.safetensors

Writes one safetensors file holding a small multi-tensor parameter set,
a seeded sequence of STEPS gradients, and for every optimizer case the
parameters and optimizer state after STEPS updates by torch.optim (SGD,
Adam, AdamW) or by the LARS below (the SimCLR reference algorithm written
in PyTorch), plus learning-rate schedule values from the direct formula.

Layout of OUT (all little-endian):
  metadata  params     comma-separated tensor names, in order
            no_decay   comma-separated 0/1 flags, same order
            steps      number of updates
            cases      comma-separated case names
            case/NAME  "kind=K momentum=M nesterov=N wd=W lr=L scaling=S
                        batch=B schedule=constant|cosine warmup=E epochs=E
                        spe=STEPS_PER_EPOCH"
            scheds     number of schedule checks
            sched/I    the same keys as a case, without kind/momentum/...
  tensors   init/P                 F32 initial values of P
            grad/S/P               F32 gradient of P at step S (0-based)
            lr/NAME                F64 [steps] learning rate used per step
            final/NAME/P           F32 P after the last step
            state/NAME/STATE/P     F32 optimizer state of P (torch names)
            sched/I                F64 lr at steps 0 .. total + 2

Weight decay groups: tensors flagged no_decay get weight_decay 0 (and no
LARS adaptation); the others get the case's weight decay.

The schedule (for step s, 0-based; W warmup steps, T total steps):
  s < W: base * s / W; then constant: base; cosine:
  base * 0.5 * (1 + cos(pi * min(s - W, T - W) / (T - W))).
The cosine part is cross-checked here against
torch.optim.lr_scheduler.CosineAnnealingLR.
"""

import json
import math
import struct
import sys

import torch

PROG = "optim_torch.py"
STEPS = 20

# name, shape, no_decay, initial values, gradient scale
TENSORS = [
    ("encoder.0.weight", (6, 3, 3, 3), 0, "normal0.2", 1.0),
    ("encoder.1.weight", (6,), 1, "ones", 0.05),
    ("encoder.1.bias", (6,), 1, "zeros", 0.05),
    ("head.0.weight", (10, 6), 0, "normal0.3", 0.5),
    ("head.0.bias", (10,), 1, "normal0.1", 0.02),
    ("head.2.weight", (4, 10), 0, "zeros", 2.0),    # ||w|| = 0 at the first step
    ("head.2.bias", (4,), 1, "normal0.1", 0.1),
]
# (tensor, steps) whose gradient is zero there: ||g|| = 0 for LARS without decay
ZERO_GRADS = {"head.0.weight": {3, 4, 11}, "head.2.bias": {0, 2, 4, 6}}

CASES = [
    ("sgd", dict(kind="sgd", momentum=0.9, nesterov=0, wd=0.05, lr=0.05, scaling=0,
                 batch=256, schedule="constant", warmup=0, epochs=5, spe=4)),
    ("sgd_plain", dict(kind="sgd", momentum=0.0, nesterov=0, wd=0.02, lr=0.1, scaling=0,
                       batch=256, schedule="cosine", warmup=0, epochs=5, spe=4)),
    ("sgd_nesterov", dict(kind="sgd", momentum=0.9, nesterov=1, wd=0.05, lr=0.05, scaling=0,
                          batch=256, schedule="cosine", warmup=1, epochs=5, spe=4)),
    ("adam", dict(kind="adam", momentum=0.9, nesterov=0, wd=0.05, lr=0.01, scaling=0,
                  batch=256, schedule="constant", warmup=0, epochs=5, spe=4)),
    ("adam_cosine", dict(kind="adam", momentum=0.9, nesterov=0, wd=0.1, lr=0.02, scaling=1,
                         batch=128, schedule="cosine", warmup=1, epochs=5, spe=4)),
    ("adamw", dict(kind="adamw", momentum=0.9, nesterov=0, wd=0.5, lr=0.01, scaling=0,
                   batch=256, schedule="cosine", warmup=1, epochs=5, spe=4)),
    ("adamw_constant", dict(kind="adamw", momentum=0.9, nesterov=0, wd=0.2, lr=0.005, scaling=0,
                            batch=256, schedule="constant", warmup=0, epochs=5, spe=4)),
    ("lars", dict(kind="lars", momentum=0.9, nesterov=0, wd=0.05, lr=0.3, scaling=1,
                  batch=4096, schedule="cosine", warmup=1, epochs=5, spe=4)),
    ("lars_nodecay", dict(kind="lars", momentum=0.9, nesterov=0, wd=0.0, lr=3.0, scaling=0,
                          batch=256, schedule="constant", warmup=0, epochs=5, spe=4)),
    ("lars_nesterov", dict(kind="lars", momentum=0.8, nesterov=1, wd=0.01, lr=0.5, scaling=1,
                           batch=1024, schedule="cosine", warmup=2, epochs=5, spe=4)),
]

SCHEDS = [
    dict(lr=0.3, scaling=1, batch=512, schedule="cosine", warmup=10, epochs=100, spe=7),
    dict(lr=5e-4, scaling=0, batch=256, schedule="cosine", warmup=0, epochs=3, spe=13),
    dict(lr=0.1, scaling=0, batch=64, schedule="constant", warmup=2, epochs=4, spe=5),
    dict(lr=1.0, scaling=1, batch=100, schedule="constant", warmup=0, epochs=2, spe=3),
    dict(lr=0.2, scaling=0, batch=256, schedule="cosine", warmup=3, epochs=3, spe=4),
]


def fail(msg):
    sys.stderr.write("%s: %s\n" % (PROG, msg))
    sys.exit(1)


def st_write(path, tensors, meta):
    """tensors: list of (name, dtype, shape, bytes)."""
    header, off, blobs = {}, 0, []
    for name, dtype, shape, data in tensors:
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [off, off + len(data)]}
        off += len(data)
        blobs.append(data)
    header["__metadata__"] = meta
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def f32(t):
    return t.detach().to(torch.float32).contiguous().numpy().astype("<f4").tobytes()


def f64(values):
    return struct.pack("<%dd" % len(values), *values)


def sched_lr(c, s):
    """The documented formula, in double."""
    base = c["lr"] * c["batch"] / 256.0 if c["scaling"] else c["lr"]
    w, t = c["warmup"] * c["spe"], c["epochs"] * c["spe"]
    if s < w:
        return base * s / w
    if c["schedule"] == "constant" or t <= w:
        return base
    done = min(s - w, t - w)
    return base * 0.5 * (1 + math.cos(math.pi * done / (t - w)))


def check_against_torch_cosine(c):
    """The cosine part of sched_lr against torch's CosineAnnealingLR."""
    base = c["lr"] * c["batch"] / 256.0 if c["scaling"] else c["lr"]
    w, t = c["warmup"] * c["spe"], c["epochs"] * c["spe"]
    if c["schedule"] != "cosine" or t <= w:
        return
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=base)
    sch = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=t - w, eta_min=0.0)
    for s in range(w, t + 1):
        got = opt.param_groups[0]["lr"]
        want = sched_lr(c, s)
        if abs(got - want) > 1e-12 * base + 1e-15:
            fail("schedule %s: step %d: CosineAnnealingLR gives %.17g, the formula %.17g"
                 % (c, s, got, want))
        opt.step()
        sch.step()


class LARS(torch.optim.Optimizer):
    """LARS as in the SimCLR reference implementation (classic momentum):
    g += wd * w; trust = eta * ||w|| / ||g|| when both norms are > 0,
    else 1 (1 for groups with lars_adapt False); v = m * v + lr * trust * g;
    w -= v (Nesterov: w -= m * v + lr * trust * g)."""

    def __init__(self, params, lr, momentum, weight_decay, eta=0.001, nesterov=False):
        defaults = dict(lr=lr, momentum=momentum, weight_decay=weight_decay, eta=eta,
                        nesterov=nesterov, lars_adapt=True)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            lr, m, wd, eta = group["lr"], group["momentum"], group["weight_decay"], group["eta"]
            for p in group["params"]:
                g = p.grad
                if wd != 0:
                    g = g.add(p, alpha=wd)
                trust = torch.ones((), dtype=p.dtype)
                if group["lars_adapt"]:
                    wn, gn = torch.norm(p), torch.norm(g)
                    trust = torch.where(wn > 0, torch.where(gn > 0, eta * wn / gn, trust), trust)
                scaled = g * (lr * trust)
                state = self.state[p]
                if m != 0:
                    if "momentum_buffer" not in state:
                        state["momentum_buffer"] = torch.zeros_like(p)
                    v = state["momentum_buffer"]
                    v.mul_(m).add_(scaled)
                else:
                    v = scaled
                p.sub_(v * m + scaled if group["nesterov"] else v)


def make_optimizer(c, params, flags):
    decay = [p for p, nd in zip(params, flags) if not nd]
    nodecay = [p for p, nd in zip(params, flags) if nd]
    k = c["kind"]
    if k == "lars":
        groups = [dict(params=decay, weight_decay=c["wd"], lars_adapt=True),
                  dict(params=nodecay, weight_decay=0.0, lars_adapt=False)]
        return LARS(groups, lr=c["lr"], momentum=c["momentum"], weight_decay=c["wd"],
                    nesterov=bool(c["nesterov"]))
    groups = [dict(params=decay, weight_decay=c["wd"]), dict(params=nodecay, weight_decay=0.0)]
    if k == "sgd":
        return torch.optim.SGD(groups, lr=c["lr"], momentum=c["momentum"], dampening=0,
                               nesterov=bool(c["nesterov"]))
    if k == "adam":
        return torch.optim.Adam(groups, lr=c["lr"], betas=(0.9, 0.999), eps=1e-8)
    if k == "adamw":
        return torch.optim.AdamW(groups, lr=c["lr"], betas=(0.9, 0.999), eps=1e-8)
    fail("unknown optimizer kind %s" % k)


def init_tensor(shape, how, gen):
    if how == "ones":
        return torch.ones(shape)
    if how == "zeros":
        return torch.zeros(shape)
    if how.startswith("normal"):
        return torch.randn(shape, generator=gen) * float(how[6:])
    fail("bad init %s" % how)


def keystr(d, keys):
    return " ".join("%s=%s" % (k, repr(d[k]) if isinstance(d[k], float) else d[k]) for k in keys)


def main():
    if len(sys.argv) != 2:
        fail("usage: optim_torch.py OUT.safetensors")
    out = sys.argv[1]
    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(1234)
    names = [t[0] for t in TENSORS]
    flags = [t[2] for t in TENSORS]
    init = [init_tensor(t[1], t[3], gen) for t in TENSORS]
    grads = []
    for s in range(STEPS):
        gs = []
        for (name, shape, _, _, scale) in TENSORS:
            g = torch.randn(shape, generator=gen) * scale
            if s in ZERO_GRADS.get(name, ()):
                g = torch.zeros(shape)
            gs.append(g)
        grads.append(gs)

    tensors = [("init/" + n, "F32", t.shape, f32(t)) for n, t in zip(names, init)]
    for s in range(STEPS):
        for n, g in zip(names, grads[s]):
            tensors.append(("grad/%d/%s" % (s, n), "F32", g.shape, f32(g)))
    meta = {"params": ",".join(names), "no_decay": ",".join(str(f) for f in flags),
            "steps": str(STEPS), "cases": ",".join(c[0] for c in CASES),
            "scheds": str(len(SCHEDS))}
    sched_keys = ["lr", "scaling", "batch", "schedule", "warmup", "epochs", "spe"]
    for cname, c in CASES:
        if c["epochs"] * c["spe"] != STEPS:
            fail("case %s: epochs x spe must be %d" % (cname, STEPS))
        meta["case/" + cname] = keystr(c, ["kind", "momentum", "nesterov", "wd"] + sched_keys)
        params = [t.clone().requires_grad_(True) for t in init]
        opt = make_optimizer(c, params, flags)
        lrs = []
        for s in range(STEPS):
            lr = sched_lr(c, s)
            lrs.append(lr)
            for group in opt.param_groups:
                group["lr"] = lr
            for p, g in zip(params, grads[s]):
                p.grad = g.clone()
            opt.step()
        tensors.append(("lr/" + cname, "F64", (STEPS,), f64(lrs)))
        for n, p in zip(names, params):
            tensors.append(("final/%s/%s" % (cname, n), "F32", p.shape, f32(p)))
            for key, val in opt.state[p].items():
                if torch.is_tensor(val) and val.shape == p.shape:
                    tensors.append(("state/%s/%s/%s" % (cname, key, n), "F32", p.shape, f32(val)))
    for i, c in enumerate(SCHEDS):
        check_against_torch_cosine(c)
        meta["sched/%d" % i] = keystr(c, sched_keys)
        t = c["epochs"] * c["spe"]
        tensors.append(("sched/%d" % i, "F64", (t + 3,), f64([sched_lr(c, s) for s in range(t + 3)])))
    st_write(out, tensors, meta)
    return 0


if __name__ == "__main__":
    sys.exit(main())
