#!/usr/bin/python3
"""PyTorch's time for the training step that a simclrc binary's bench-step
times, for comparison (bench/step_bench.sh runs both).

    torch_step_bench.py MODEL.xml [--batch B] [--steps K] [--threads T]

Builds the model from its description with tests/torch_step.py (the same
modules, names and NT-Xent as the parity tests), then times K steps after
one warm-up step, each forward + NT-Xent + backward + SGD update, on a
fixed random input of 2B views. Prints views per second ("images/s", as
bench-step does), milliseconds per step and the process's peak resident
memory ("peak RSS X MB", MB = 10^6 bytes, as bench-step prints it; the
whole Python process: interpreter, torch and the model).
"""

import argparse
import os
import resource
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
import torch_step  # noqa: E402  (the model builder shared with the tests)


def main():
    ap = argparse.ArgumentParser(prog="torch_step_bench.py")
    ap.add_argument("model")
    ap.add_argument("--batch", type=int, default=None, help="images per step (default: the model's)")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    if a.steps < 1 or a.threads < 1 or (a.batch is not None and a.batch < 2):
        ap.error("--steps and --threads must be positive, --batch at least 2")

    import torch
    torch.set_num_threads(a.threads)
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
    opt = torch.optim.SGD(root.parameters(), lr=0.01, momentum=0.9)

    def one_step():
        loss = torch_step.step(torch, spec, root, prog, x)   # train mode, zero_grad, backward
        opt.step()
        return loss

    one_step()
    t0 = time.perf_counter()
    for _ in range(a.steps):
        loss = one_step()
    per = (time.perf_counter() - t0) / a.steps
    print("%s (PyTorch %s): batch %d (%d views), %d steps, %d threads"
          % (os.path.basename(a.model), torch.__version__, batch, 2 * batch, a.steps, a.threads))
    print("%.1f images/s  %.2f ms/step  (loss %.6g)" % (2 * batch / per, 1e3 * per, loss.item()))
    # Linux reports ru_maxrss in KiB.
    print("peak RSS %.1f MB" % (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6))
    return 0


if __name__ == "__main__":
    sys.exit(main())
