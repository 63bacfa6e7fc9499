#!/usr/bin/python3
"""PyTorch reference for the linear probe's logistic regression (test_logreg).

    logreg_torch.py OUT.safetensors

Draws a seeded, overlapping 4-class problem (400 rows, 12 features, F64)
and minimises, in float64 with torch.optim.LBFGS (strong Wolfe line
search, run until the gradient is ~1e-9), for two weight decays lambda

    mean cross-entropy(x W^T + b, y) + lambda / 2 * ||W||^2

(the bias is not decayed). From zeros, every iterate keeps sum_k b_k = 0
and sum_k W_k = 0 (the gradient does), which picks the one solution among
those that differ by a shift of b. Writes x [N, D] (F64), y [N] (I64), and per
lambda index k: wb{k} (W row-major then b, F64) and the metadata
lambda{k} and loss{k}.
"""

import json
import struct
import sys

import torch

PROG = "logreg_torch.py"
N, D, C = 400, 12, 4
LAMBDAS = [1e-2, 1e-1]


def fail(msg):
    sys.stderr.write("%s: %s\n" % (PROG, msg))
    sys.exit(1)


def st_write(path, tensors, meta):
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


def objective(x, y, w, b, lam):
    return torch.nn.functional.cross_entropy(x @ w.t() + b, y) + 0.5 * lam * (w * w).sum()


def fit(x, y, lam):
    w = torch.zeros(C, D, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(C, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1, max_iter=5000, tolerance_grad=1e-11,
                            tolerance_change=0, history_size=20, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        f = objective(x, y, w, b, lam)
        f.backward()
        return f

    opt.step(closure)
    f = objective(x, y, w, b, lam)
    gw, gb = torch.autograd.grad(f, [w, b])
    g = max(gw.abs().max().item(), gb.abs().max().item())
    # Near the optimum f stops resolving steps (changes below 1e-16 f), so
    # a gradient of ~1e-9 is as far as any line search gets.
    if g > 1e-8:
        fail("LBFGS stopped at gradient %.3g for lambda %g" % (g, lam))
    return w.detach(), b.detach(), f.item()


def main():
    if len(sys.argv) != 2:
        fail("usage: logreg_torch.py OUT.safetensors")
    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(7)
    centres = 0.4 * torch.randn(C, D, generator=gen, dtype=torch.float64)
    y = torch.randint(0, C, (N,), generator=gen)
    x = centres[y] + torch.randn(N, D, generator=gen, dtype=torch.float64)
    tensors = [("x", "F64", x.shape, x.contiguous().numpy().astype("<f8").tobytes()),
               ("y", "I64", y.shape, y.numpy().astype("<i8").tobytes())]
    meta = {}
    for k, lam in enumerate(LAMBDAS):
        w, b, f = fit(x, y, lam)
        wb = torch.cat([w.reshape(-1), b])
        tensors.append(("wb%d" % k, "F64", wb.shape, wb.numpy().astype("<f8").tobytes()))
        meta["lambda%d" % k] = repr(lam)
        meta["loss%d" % k] = repr(f)
        acc = ((x @ w.t() + b).argmax(1) == y).double().mean().item()
        sys.stderr.write("%s: lambda %g loss %.12f train accuracy %.3f\n" % (PROG, lam, f, acc))
    st_write(sys.argv[1], tensors, meta)
    return 0


if __name__ == "__main__":
    sys.exit(main())
