#!/usr/bin/python3
"""PyTorch side of test_export: a simclrc binary's exported encoder in
torchvision's ResNet-18.

    export_torch.py BINARY CHECKPOINT WORKDIR

Runs `BINARY export --ckpt CHECKPOINT -o WORKDIR/encoder.safetensors`,
loads the file into torchvision.models.resnet18() with strict=False and
checks that nothing is unexpected and that the only missing keys are fc.*
(and the batchnorms' num_batches_tracked counters, which eval mode does
not read). Then feeds the same seeded images (F32 [5, 3, 96, 96]) to
`BINARY encode` and to the model in eval mode with fc = Identity (the
avgpool output), and requires the features to agree within 1e-4.

To show that the comparison can fail, the checkpoint's batchnorm running
statistics must differ from their initial 0 and 1 (a training step
happened), and a freshly initialised resnet18 must disagree with the
binary's features by far more than the tolerance.
"""

import json
import struct
import subprocess
import sys

import torch
import torchvision

PROG = "export_torch.py"
TOL = 1e-4
N = 5  # not a multiple of the test's encode batch (2): the last chunk is padded


def fail(msg):
    sys.stderr.write("%s: %s\n" % (PROG, msg))
    sys.exit(1)


def st_read(path):
    with open(path, "rb") as f:
        raw = f.read()
    (hlen,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + hlen])
    data = raw[8 + hlen:]
    meta = header.pop("__metadata__", {})
    out = {}
    for name, t in header.items():
        if t["dtype"] != "F32":
            fail("%s: tensor %s has dtype %s, expected F32" % (path, name, t["dtype"]))
        a, b = t["data_offsets"]
        buf = bytearray(data[a:b])
        out[name] = torch.frombuffer(buf, dtype=torch.float32).reshape(t["shape"]).clone()
    return out, meta


def st_write(path, tensors):
    header, off, blobs = {}, 0, []
    for name, t in tensors.items():
        b = t.to(torch.float32).contiguous().numpy().astype("<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        off += len(b)
        blobs.append(b)
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def run(argv):
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        fail("%s exited with %d:\n%s%s" % (" ".join(argv), r.returncode, r.stdout, r.stderr))
    return r.stdout


def main():
    if len(sys.argv) != 4:
        fail("usage: export_torch.py BINARY CHECKPOINT WORKDIR")
    binary, ckpt, work = sys.argv[1:]
    torch.set_num_threads(1)
    enc = work + "/encoder.safetensors"
    run([binary, "export", "--ckpt", ckpt, "-o", enc])
    sd, meta = st_read(enc)
    if meta.get("names") != "torchvision":
        fail("the export's names are %r, expected torchvision" % meta.get("names"))

    moved = [k for k in sd if k.endswith("running_mean") and sd[k].abs().max() > 0]
    if not moved:
        fail("every running_mean in the export is zero: no training step reached the checkpoint")

    model = torchvision.models.resnet18()
    res = model.load_state_dict(sd, strict=False)
    if res.unexpected_keys:
        fail("unexpected keys: %s" % res.unexpected_keys)
    missing = sorted(k for k in res.missing_keys if not k.endswith("num_batches_tracked"))
    if missing != ["fc.bias", "fc.weight"]:
        fail("missing keys other than fc.*: %s" % missing)
    model.fc = torch.nn.Identity()
    model.eval()

    gen = torch.Generator().manual_seed(3)
    x = torch.randn(N, 3, 96, 96, generator=gen)
    inp, feats = work + "/input.safetensors", work + "/features.safetensors"
    st_write(inp, {"input": x})
    run([binary, "encode", "--ckpt", ckpt, "--input", inp, "-o", feats])
    got, _ = st_read(feats)
    got = got["features"]
    with torch.no_grad():
        want = model(x)
    if got.shape != want.shape:
        fail("features have shape %s, torchvision gives %s" % (list(got.shape), list(want.shape)))
    diff = (got - want).abs().max().item()
    scale = want.abs().max().item()
    sys.stderr.write("%s: %d features per image, max |binary - torchvision| = %.3g (max |feature| %.3g)\n"
                     % (PROG, want.shape[1], diff, scale))
    if not diff <= TOL:
        fail("features differ by %.3g > %g" % (diff, TOL))

    fresh = torchvision.models.resnet18()
    fresh.fc = torch.nn.Identity()
    fresh.eval()
    with torch.no_grad():
        other = (fresh(x) - got).abs().max().item()
    if other < 100 * TOL:
        fail("a freshly initialised resnet18 agrees within %.3g: the comparison proves nothing" % other)
    return 0


if __name__ == "__main__":
    sys.exit(main())
