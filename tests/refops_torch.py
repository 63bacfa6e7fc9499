"""Recompute the reference kernels' results with PyTorch and compare.

Usage: refops_torch.py DUMP  (written by test_refops_torch.c)

Each case holds the inputs, an upstream gradient r and the C results; torch
recomputes the forward in float64 and the backward by autograd on
L = sum(r * y). Exits 1 listing every mismatch.
"""
import sys

import torch
import torch.nn.functional as F

RTOL = 1e-10


def parse(path):
    cases = []
    with open(path) as f:
        for line in f:
            parts = line.split()
            if not parts:
                continue
            if parts[0] == "case":
                attrs = dict(p.split("=") for p in parts[2:])
                cases.append((parts[1], attrs, {}))
            else:
                vals = torch.tensor([float(v) for v in parts[1:]],
                                    dtype=torch.float64)
                cases[-1][2][parts[0]] = vals
    return cases


def leaf(t, shape):
    return t.reshape(shape).clone().requires_grad_(True)


def conv2d(a, t):
    n, c, h, w, o, k, s, p = (int(a[x]) for x in "n c h w o k s p".split())
    x = leaf(t["x"], (n, c, h, w))
    g, d = int(a.get("g", "1")), int(a.get("d", "1"))
    wt = leaf(t["w"], (o, c // g, k, k))
    b = leaf(t["b"], (o,)) if a["bias"] == "1" else None
    y = F.conv2d(x, wt, b, stride=s, padding=p, dilation=d, groups=g)
    (y * t["r"].reshape(y.shape)).sum().backward()
    out = {"y": y, "dx": x.grad, "dw": wt.grad}
    # db is the bias gradient whether or not the layer has a bias.
    out["db"] = t["r"].reshape(y.shape).sum(dim=(0, 2, 3))
    if b is not None:
        out["db_autograd"] = b.grad
    return out


def batchnorm(a, t):
    n, c, h, w = (int(a[x]) for x in "n c h w".split())
    eps, momentum = float(a["eps"]), float(a["momentum"])
    shape = (n, c, h, w) if h * w > 1 else (n, c)
    x = leaf(t["x"], shape)
    g, b = leaf(t["gamma"], (c,)), leaf(t["beta"], (c,))
    rm, rv = t["running_mean_in"].clone(), t["running_var_in"].clone()
    y = F.batch_norm(x, rm, rv, g, b, training=True, momentum=momentum,
                     eps=eps)
    (y * t["r"].reshape(shape)).sum().backward()
    dims = (0, 2, 3) if len(shape) == 4 else (0,)
    xd = x.detach()
    return {"y": y, "dx": x.grad, "dgamma": g.grad, "dbeta": b.grad,
            "mean": xd.mean(dim=dims),
            "var": xd.var(dim=dims, unbiased=False),
            "running_mean": rm, "running_var": rv}


def batchnorm_relu(a, t):
    n, c, h, w = (int(a[x]) for x in "n c h w".split())
    eps = float(a["eps"])
    shape = (n, c, h, w) if h * w > 1 else (n, c)
    x = leaf(t["x"], shape)
    g, b = leaf(t["gamma"], (c,)), leaf(t["beta"], (c,))
    y = torch.relu(F.batch_norm(x, None, None, g, b, training=True, eps=eps))
    (y * t["r"].reshape(shape)).sum().backward()
    dims = (0, 2, 3) if len(shape) == 4 else (0,)
    xd = x.detach()
    return {"y": y, "dx": x.grad, "dgamma": g.grad, "dbeta": b.grad,
            "mean": xd.mean(dim=dims),
            "var": xd.var(dim=dims, unbiased=False)}


def add_relu(a, t):
    """y = relu(a + b) consumed twice: a and b get the summed gradient."""
    x, b = leaf(t["a"], (-1,)), leaf(t["b"], (-1,))
    y = torch.relu(x + b)
    ((y * t["r1"]).sum() + (y * t["r2"]).sum()).backward()
    return {"y": y, "da": x.grad, "db": b.grad}


def relu(a, t):
    x = leaf(t["x"], (-1,))
    y = torch.relu(x)
    (y * t["r"]).sum().backward()
    return {"y": y, "dx": x.grad}


def activation(fn):
    """silu, gelu (exact, erf) or leaky_relu with the case's slope."""
    def run(a, t):
        x = leaf(t["x"], (-1,))
        y = fn(x, float(a["slope"]))
        (y * t["r"]).sum().backward()
        return {"y": y, "dx": x.grad}
    return run


def pool(a, t, avg):
    n, c, h, w, k, s, p = (int(a[x]) for x in "n c h w k s p".split())
    x = leaf(t["x"], (n, c, h, w))
    if avg:
        y = F.avg_pool2d(x, k, s, p, count_include_pad=True)
    else:
        y = F.max_pool2d(x, k, s, p)
    (y * t["r"].reshape(y.shape)).sum().backward()
    return {"y": y, "dx": x.grad}


def global_avgpool(a, t):
    n, c, h, w = (int(a[x]) for x in "n c h w".split())
    x = leaf(t["x"], (n, c, h, w))
    y = F.adaptive_avg_pool2d(x, 1).reshape(n, c)
    (y * t["r"].reshape(n, c)).sum().backward()
    return {"y": y, "dx": x.grad}


def linear(a, t):
    n, i, o = int(a["n"]), int(a["in"]), int(a["out"])
    x, w = leaf(t["x"], (n, i)), leaf(t["w"], (o, i))
    b = leaf(t["b"], (o,)) if a["bias"] == "1" else None
    y = F.linear(x, w, b)
    (y * t["r"].reshape(n, o)).sum().backward()
    out = {"y": y, "dx": x.grad, "dw": w.grad,
           "db": t["r"].reshape(n, o).sum(dim=0)}
    if b is not None:
        out["db_autograd"] = b.grad
    return out


def l2norm(a, t):
    n, d = int(a["n"]), int(a["d"])
    x = leaf(t["x"], (n, d))
    y = F.normalize(x, dim=1)
    (y * t["r"].reshape(n, d)).sum().backward()
    return {"y": y, "dx": x.grad}


def ntxent(a, t):
    """The usual SimCLR formulation, written independently of refops.c."""
    n2, d, temp = int(a["n2"]), int(a["d"]), float(a["t"])
    z = leaf(t["z"], (n2, d))
    sim = z @ z.T / temp
    eye = torch.eye(n2, dtype=torch.bool)
    sim = sim.masked_fill(eye, float("-inf"))
    target = (torch.arange(n2) + n2 // 2) % n2
    loss = F.cross_entropy(sim, target)
    loss.backward()
    return {"loss": loss.reshape(1), "dz": z.grad}


def barlow(a, t):
    """facebookresearch/barlowtwins: BatchNorm1d(affine=False) per view."""
    n2, d = int(a["n2"]), int(a["d"])
    lam, scale = float(a["c0"]), float(a["c1"])
    z = leaf(t["z"], (n2, d))
    n = n2 // 2
    def bn(x):
        return F.batch_norm(x, None, None, training=True, momentum=0.0, eps=1e-5)
    c = bn(z[:n]).T @ bn(z[n:]) / n
    on = (torch.diagonal(c) - 1).pow(2).sum()
    off = (c - torch.diag(torch.diagonal(c))).pow(2).sum()
    loss = scale * (on + lam * off)
    loss.backward()
    return {"loss": loss.reshape(1), "dz": z.grad}


def vicreg(a, t):
    """The VICReg paper's pseudo-code (Bardes et al. 2022, algorithm 1)."""
    n2, d = int(a["n2"]), int(a["d"])
    sim, std, cov, eps = (float(a[k]) for k in ("c0", "c1", "c2", "c3"))
    z = leaf(t["z"], (n2, d))
    n = n2 // 2
    x, y = z[:n], z[n:]
    repr_loss = F.mse_loss(x, y)
    x = x - x.mean(dim=0)
    y = y - y.mean(dim=0)
    std_x = torch.sqrt(x.var(dim=0) + eps)
    std_y = torch.sqrt(y.var(dim=0) + eps)
    std_loss = torch.mean(F.relu(1 - std_x)) / 2 + torch.mean(F.relu(1 - std_y)) / 2
    off = ~torch.eye(d, dtype=torch.bool)
    cov_x = (x.T @ x) / (n - 1)
    cov_y = (y.T @ y) / (n - 1)
    cov_loss = cov_x[off].pow(2).sum() / d + cov_y[off].pow(2).sum() / d
    loss = sim * repr_loss + std * std_loss + cov * cov_loss
    loss.backward()
    return {"loss": loss.reshape(1), "dz": z.grad}
def byol(a, t):
    """BYOL: mean over images of 2 - 2 cos(q1, sg(t2)) + 2 - 2 cos(q2, sg(t1))."""
    n2, d = int(a["n2"]), int(a["d"])
    q, tt = leaf(t["q"], (n2, d)), t["t"].reshape(n2, d)
    n = n2 // 2
    cos = F.cosine_similarity(q, tt.roll(n, dims=0).detach(), dim=1, eps=0.0)
    loss = (2 - 2 * cos).sum() / n
    loss.backward()
    return {"loss": loss.reshape(1), "dq": q.grad}


OPS = {
    "conv2d": conv2d,
    "batchnorm": batchnorm,
    "relu": relu,
    "batchnorm_relu": batchnorm_relu,
    "add_relu": add_relu,
    "maxpool": lambda a, t: pool(a, t, False),
    "avgpool": lambda a, t: pool(a, t, True),
    "global_avgpool": global_avgpool,
    "linear": linear,
    "l2norm": l2norm,
    "ntxent": ntxent,
    "barlow": barlow,
    "vicreg": vicreg,
    "byol": byol,
    "silu": activation(lambda x, s: F.silu(x)),
    "gelu": activation(lambda x, s: F.gelu(x, approximate="none")),
    "leaky_relu": activation(lambda x, s: F.leaky_relu(x, negative_slope=s)),
}


def main():
    torch.set_default_dtype(torch.float64)
    cases = parse(sys.argv[1])
    bad = 0
    checked = 0
    for idx, (op, attrs, tensors) in enumerate(cases):
        ref = OPS[op](attrs, tensors)
        for name, want in ref.items():
            key = "db" if name == "db_autograd" else name
            if key not in tensors:
                print(f"case {idx} {op}: C dump lacks {key}")
                bad += 1
                continue
            got = tensors[key]
            want = want.detach().reshape(-1)
            if got.shape != want.shape:
                print(f"case {idx} {op} {name}: {got.numel()} values, "
                      f"torch has {want.numel()}")
                bad += 1
                continue
            # Elementwise, so a tensor mixing magnitudes (l2norm's clamped
            # rows have gradients near 1e12) cannot hide an error elsewhere.
            scale = want.abs().clamp(min=1.0)
            err = ((got - want).abs() / scale).max().item()
            checked += 1
            if not err <= RTOL:
                print(f"case {idx} {op} {attrs} {name}: relative error "
                      f"{err:.3g}")
                bad += 1
    if checked == 0:
        print("no cases")
        return 1
    print(f"{checked} tensors compared, {bad} mismatches")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
