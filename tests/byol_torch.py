#!/usr/bin/python3
"""PyTorch reference for BYOL training steps (test_byol).

    byol_torch.py MODEL.xml STEPS.safetensors [--control]

Reads a model with <loss type="byol"> and a dump of `dump-step --steps K`
(format simclrc-steps-1, sc_stepdump.h), rebuilds online and target
networks in float64 (torch_step.py), loads the online parameters before
step 0, copies them into the target, and runs K steps: forward of both,
backward of the online network only, torch.optim.SGD (the spec's
momentum and weight decay; 1-D tensors, biases and batchnorm parameters,
without decay) at the dump's per-step learning rate, then the EMA
target = tau_k target + (1 - tau_k) online with tau_k computed here from
the paper's formula (and checked against the dump's). Compares every
parameter of both networks and every running statistic after step K-1 with
the dump's after/NAME; prints the worst error and exits 1 above TOL.
--control leaves the target at its initial copy (no EMA): the comparison
must then fail, which shows that it sees the target's update.
"""

import math
import sys
import os

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_step as T  # noqa: E402

# max|binary - reference| / max(1, max|reference|) per tensor: float32
# steps against float64 ones. Measured worst (AMD EPYC Zen 5): 9.0e-7 on
# tests/specs/byol.xml after 3 steps (stem.weight); the issue asks for 1e-4.
TOL = 1e-5


def main(argv):
    import torch
    control = "--control" in argv
    argv = [a for a in argv if a != "--control"]
    if len(argv) != 2:
        print(__doc__)
        return 2
    model, dump = argv
    spec = T.parse_spec(model)
    if spec.loss != "byol":
        raise T.SpecError("%s: not a byol model" % model)
    root, prog, params, buffers = T.build(torch, spec)
    tensors, meta = T.st_read(dump)
    if meta.get("format") != "simclrc-steps-1":
        raise T.SpecError("%s: format %r" % (dump, meta.get("format")))
    if meta.get("params", "").split(",") != params:
        raise T.SpecError("%s: parameter names differ from the model's" % dump)
    steps = int(meta["steps"])
    lrs = [float(v) for v in meta["lr"].split(",")]
    taus = [float(v) for v in meta["tau"].split(",")]
    root.to(torch.float64)
    pmap = dict(root.named_parameters())
    with torch.no_grad():
        for n in params:
            pmap[n].copy_(T.st_tensor(torch, dump, tensors, n))
    T.target_copy(torch, root, params)

    train = [c for c in __import__("xml.etree.ElementTree", fromlist=["x"]).parse(model).getroot()
             if c.tag == "train"][0]
    if train.get("optimizer") != "sgd":
        raise T.SpecError("%s: this reference implements sgd only" % model)
    mom = float(train.get("momentum", "0.9"))
    wd = float(train.get("weight-decay", "0"))
    online = [pmap[n] for n in params]
    opt = torch.optim.SGD([{"params": [p for p in online if p.dim() > 1], "weight_decay": wd},
                           {"params": [p for p in online if p.dim() <= 1], "weight_decay": 0.0}],
                          lr=lrs[0], momentum=mom)
    worst_tau = 0.0
    for k in range(steps):
        x = T.st_tensor(torch, dump, tensors, "input/%d" % k).to(torch.float64)
        T.step(torch, spec, root, prog, x)
        for g in opt.param_groups:
            g["lr"] = lrs[k]
        opt.step()
        tau = 1 - (1 - spec.tau_base) * (math.cos(math.pi * k / steps) + 1) / 2
        worst_tau = max(worst_tau, abs(tau - taus[k]))
        with torch.no_grad():
            for n in params:
                t = pmap.get("target." + n)
                if t is not None and not control:
                    t.mul_(tau).add_(pmap[n], alpha=1 - tau)
    if worst_tau > 1e-15:
        print("tau differs from 1 - (1 - tau_base)(cos(pi k/K) + 1)/2 by %.3g" % worst_tau)
        return 1

    bmap = dict(root.named_buffers())
    worst, worst_name, bad, ntarget = 0.0, "", 0, 0
    for n in params + buffers:
        ref = (pmap[n] if n in pmap else bmap[n]).detach()
        got = T.st_tensor(torch, dump, tensors, "after/" + n).to(torch.float64)
        err = ((got - ref).abs().max() / max(1.0, ref.abs().max().item())).item()
        ntarget += n.startswith("target.")
        if err > worst:
            worst, worst_name = err, n
        if not err <= TOL:
            print("%s: error %.3g > %g" % (n, err, TOL))
            bad += 1
    if ntarget == 0:
        print("no target tensors compared")
        return 1
    print("%d steps, %d tensors (%d of the target), worst %s: %.3g" %
          (steps, len(params) + len(buffers), ntarget, worst_name, worst))
    return 1 if bad else 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except T.SpecError as e:
        print("byol_torch.py: %s" % e, file=sys.stderr)
        sys.exit(1)
