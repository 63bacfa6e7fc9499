#!/usr/bin/python3
"""PyTorch's time for the training step that a simclrc binary's bench-step
times, for comparison (bench/step_bench.sh runs both).

    torch_step_bench.py MODEL.xml [--batch B] [--steps K] [--threads T]
                        [--channels-last] [--bf16]

Builds the model from its description with tests/torch_step.py (the same
modules, names and NT-Xent as the parity tests), then times K steps after
one warm-up step, each forward + NT-Xent + backward + opt.step() of
torch.optim.SGD (lr 0.01, momentum 0.9, weight decay 1e-4 but none on
biases and batchnorm: bench-step's update), on a fixed random input of 2B
views. --channels-last puts the model and the input in channels_last
memory format; --bf16 runs the forward pass and the loss under
torch.autocast("cpu", dtype=torch.bfloat16).

Prints views per second ("images/s", as bench-step does), milliseconds per
step, the process's peak resident memory ("peak RSS X MB", MB = 10^6 bytes,
/proc/self/status VmHWM: interpreter, torch and the model) and, as
bench-step does, its rise above the resident size before the model's
tensors were allocated (after `import torch`) and before the first step.
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
import torch_step  # noqa: E402  (the model builder shared with the tests)

# bench-step's update (runtime/main.c, BENCH_LR): the same on both sides.
LR, MOMENTUM, WEIGHT_DECAY = 0.01, 0.9, 1e-4


def status_mb(field):
    """A "Vm...:  N kB" field of /proc/self/status in MB (10^6 bytes)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024 / 1e6
    raise RuntimeError("/proc/self/status has no " + field)


def main():
    ap = argparse.ArgumentParser(prog="torch_step_bench.py")
    ap.add_argument("model")
    ap.add_argument("--batch", type=int, default=None, help="images per step (default: the model's)")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--channels-last", action="store_true", help="model and input in channels_last")
    ap.add_argument("--bf16", action="store_true", help="forward and loss under bfloat16 autocast")
    a = ap.parse_args()
    if a.steps < 1 or a.threads < 1 or (a.batch is not None and a.batch < 2):
        ap.error("--steps and --threads must be positive, --batch at least 2")

    import torch
    torch.set_num_threads(a.threads)
    rss0 = status_mb("VmRSS")
    try:
        spec = torch_step.parse_spec(a.model)
        root, prog, _, _ = torch_step.build(torch, spec)
    except torch_step.SpecError as e:
        sys.stderr.write("torch_step_bench.py: error: %s\n" % e)
        return 1
    batch = a.batch or spec.batch
    if not batch:
        ap.error("%s has no <train batch>; give --batch" % a.model)
    torch.manual_seed(0)
    x = torch.randn(2 * batch, *spec.input)
    if a.channels_last:
        root = root.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    # bench-step's groups: no weight decay on 1-D tensors (biases, batchnorm).
    params = list(root.parameters())
    opt = torch.optim.SGD([dict(params=[p for p in params if p.dim() > 1], weight_decay=WEIGHT_DECAY),
                           dict(params=[p for p in params if p.dim() <= 1], weight_decay=0.0)],
                          lr=LR, momentum=MOMENTUM)

    def one_step():
        autocast = torch.autocast("cpu", dtype=torch.bfloat16) if a.bf16 else None
        loss = torch_step.step(torch, spec, root, prog, x, autocast)   # train mode, zero_grad, backward
        opt.step()
        return loss

    rss1 = status_mb("VmRSS")
    one_step()
    t0 = time.perf_counter()
    for _ in range(a.steps):
        loss = one_step()
    per = (time.perf_counter() - t0) / a.steps
    how = ", ".join(w for w, on in (("channels_last", a.channels_last), ("bf16 autocast", a.bf16)) if on)
    print("%s (PyTorch %s%s): batch %d (%d views), %d steps, %d threads"
          % (os.path.basename(a.model), torch.__version__, ", " + how if how else "", batch, 2 * batch,
             a.steps, a.threads))
    print("%.1f images/s  %.2f ms/step  (loss %.6g)" % (2 * batch / per, 1e3 * per, loss.item()))
    peak = status_mb("VmHWM")
    print("peak RSS %.1f MB" % peak)
    print("RSS before the model's tensors %.1f MB, peak rise above it %.1f MB" % (rss0, peak - rss0))
    print("RSS before the first step %.1f MB, peak rise above it %.1f MB" % (rss1, peak - rss1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
