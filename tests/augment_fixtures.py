"""Known-answer fixtures for test_augment: runs torchvision 0.14's functional
transforms on float tensors at fixed parameters and writes the inputs and
the expected outputs for the C implementation to reproduce.

Usage: augment_fixtures.py OUTDIR [FASHION_MNIST_DIR]

Writes into OUTDIR:
  inputs.u8        N images, uint8 CHW 3x96x96 (real Fashion-MNIST pictures
                   combined into colour images, a grey one, a synthetic one)
  expected.f32     float32 little-endian outputs, concatenated
  manifest.txt     one case per line:
                   NAME INPUT OP NPARAMS P1..Pn OC OH OW OFFSET
                   (OFFSET in floats into expected.f32)
  fmnist.u8        the first 4 training images resized to 96x96 as uint8
                   by F.resize (what fmnist2stl10 must produce), and
  fmnist_labels.u8 their labels (0..9)
"""
import gzip
import os
import sys

import numpy as np
import torch
import torchvision.transforms.functional as F
from torchvision.transforms import InterpolationMode

torch.set_num_threads(1)


def read_idx(path):
    with gzip.open(path) if path.endswith(".gz") else open(path, "rb") as f:
        data = f.read()
    magic = int.from_bytes(data[0:4], "big")
    ndim = magic & 0xFF
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def find(src, name):
    for cand in (name + ".gz", name):
        p = os.path.join(src, cand)
        if os.path.exists(p):
            return p
    raise SystemExit(f"augment_fixtures.py: {os.path.join(src, name)}[.gz]: not found")


def resize96(img28):
    t = torch.from_numpy(np.array(img28))[None]
    return F.resize(t, [96, 96], InterpolationMode.BILINEAR, antialias=False)[0].numpy()


def main():
    out = sys.argv[1]
    src = sys.argv[2] if len(sys.argv) > 2 else "/usr/share/datasets/fashion-mnist"
    images = read_idx(find(src, "train-images-idx3-ubyte"))
    labels = read_idx(find(src, "train-labels-idx1-ubyte"))

    big = [resize96(images[i]) for i in range(12)]
    inputs = []
    # Real pictures as colour: three garments as the R, G and B planes give
    # real edges and texture with every hue present.
    inputs.append(np.stack([big[0], big[1], big[2]]))
    inputs.append(np.stack([big[3], ((big[4].astype(np.int32) + big[3]) // 2).astype(np.uint8),
                            big[5]]))
    # A grey picture: exercises the achromatic paths (saturation, hue).
    inputs.append(np.stack([big[6]] * 3))
    # A smooth synthetic colour field with some noise.
    yy, xx = np.mgrid[0:96, 0:96] / 95.0
    rng = np.random.default_rng(0)
    planes = []
    for k, (fx, fy, ph) in enumerate([(1.3, 0.7, 0.0), (0.6, 1.9, 1.0), (2.2, 1.1, 2.5)]):
        v = 0.5 + 0.45 * np.sin(2 * np.pi * (fx * xx + fy * yy) + ph)
        v = v + rng.normal(0, 0.03, v.shape)
        planes.append(np.clip(np.rint(v * 255), 0, 255).astype(np.uint8))
    inputs.append(np.stack(planes))
    inputs = np.stack(inputs)

    cases = []

    def add(name, inp, op, params, result):
        r = result.detach().contiguous().numpy().astype(np.float32)
        cases.append((name, inp, op, [float(p) for p in params], r))

    def tensor(i):
        return torch.from_numpy(inputs[i].copy()).float().div(255)

    def jitter(x, order, fb, fc, fs, fh):
        for k in order:
            if k == 0:
                x = F.adjust_brightness(x, fb)
            elif k == 1:
                x = F.adjust_contrast(x, fc)
            elif k == 2:
                x = F.adjust_saturation(x, fs)
            else:
                x = F.adjust_hue(x, fh)
        return x

    for i in range(len(inputs)):
        x = tensor(i)
        add(f"to_float{i}", i, "tofloat", [], x)
        for (top, left, h, w, oh, ow) in [(0, 0, 96, 96, 96, 96), (10, 20, 50, 30, 96, 96),
                                          (5, 7, 13, 17, 96, 96), (0, 0, 96, 96, 32, 32),
                                          (30, 12, 61, 77, 40, 56), (95, 95, 1, 1, 96, 96),
                                          (0, 1, 95, 95, 96, 96)]:
            r = F.resized_crop(x, top, left, h, w, [oh, ow], InterpolationMode.BILINEAR,
                               antialias=False)
            add(f"crop{i}_{top}_{left}_{h}_{w}_{oh}x{ow}", i, "crop", [top, left, h, w, oh, ow], r)
        add(f"hflip{i}", i, "hflip", [], F.hflip(x))
        for f in (0.0, 0.5, 1.37, 2.0):
            add(f"brightness{i}_{f}", i, "brightness", [f], F.adjust_brightness(x, f))
        for f in (0.0, 0.5, 1.37, 2.0):
            add(f"contrast{i}_{f}", i, "contrast", [f], F.adjust_contrast(x, f))
        for f in (0.0, 0.5, 1.37, 2.0):
            add(f"saturation{i}_{f}", i, "saturation", [f], F.adjust_saturation(x, f))
        for f in (-0.5, -0.27, -0.1, 0.0, 0.1, 0.33, 0.5):
            add(f"hue{i}_{f}", i, "hue", [f], F.adjust_hue(x, f))
        add(f"grayscale{i}", i, "grayscale", [], F.rgb_to_grayscale(x, 3))
        for (k, s) in [(9, 0.1), (9, 1.3), (9, 2.0), (3, 0.5), (23, 4.0), (1, 1.0)]:
            add(f"blur{i}_{k}_{s}", i, "blur", [k, s], F.gaussian_blur(x, [k, k], [s, s]))
        mean, std = [0.4914, 0.4822, 0.4465], [0.2470, 0.2435, 0.2616]
        add(f"normalize{i}", i, "normalize", mean + std, F.normalize(x, mean, std))
        for (order, fb, fc, fs, fh) in [([3, 0, 2, 1], 1.3, 0.6, 1.4, -0.07),
                                        ([0, 1, 2, 3], 0.5, 1.5, 0.2, 0.1),
                                        ([2, 3, 1, 0], 1.49, 0.51, 0.0, 0.45)]:
            add(f"jitter{i}_{''.join(map(str, order))}", i, "jitter", order + [fb, fc, fs, fh],
                jitter(x, order, fb, fc, fs, fh))
        # Sizes that are not a multiple of 4 take the scalar tails of the
        # vectorised loops: crop to 37x53 first, then each transform.
        small = F.resized_crop(x, 3, 5, 60, 70, [37, 53], InterpolationMode.BILINEAR,
                               antialias=False)
        for (op, params, r) in [
                ("hflip", [], F.hflip(small)),
                ("brightness", [1.3], F.adjust_brightness(small, 1.3)),
                ("contrast", [0.6], F.adjust_contrast(small, 0.6)),
                ("saturation", [1.4], F.adjust_saturation(small, 1.4)),
                ("hue", [0.23], F.adjust_hue(small, 0.23)),
                ("grayscale", [], F.rgb_to_grayscale(small, 3)),
                ("blur", [9, 1.5], F.gaussian_blur(small, [9, 9], [1.5, 1.5])),
                ("normalize", [0.5, 0.4, 0.3, 0.2, 0.25, 0.3],
                 F.normalize(small, [0.5, 0.4, 0.3], [0.2, 0.25, 0.3]))]:
            add(f"small_{op}{i}", i, "small_" + op, params, r)
        # The reference recipe's chain at fixed parameters.
        for (flip, box, order, f4, gray, k, s) in [
                (1, (12, 3, 70, 81), [1, 3, 0, 2], (1.2, 0.8, 1.3, 0.05), 0, 9, 1.1),
                (0, (40, 40, 20, 25), [2, 0, 3, 1], (0.7, 1.4, 0.6, -0.1), 1, 9, 0.4)]:
            y = F.hflip(x) if flip else x
            y = F.resized_crop(y, *box, [96, 96], InterpolationMode.BILINEAR, antialias=False)
            y = jitter(y, order, *f4)
            if gray:
                y = F.rgb_to_grayscale(y, 3)
            y = F.gaussian_blur(y, [k, k], [s, s])
            y = F.normalize(y, [0.5] * 3, [0.5] * 3)
            add(f"chain{i}_{flip}{gray}", i, "chain",
                [flip, *box] + order + list(f4) + [gray, k, s], y)

    os.makedirs(out, exist_ok=True)
    inputs.tofile(os.path.join(out, "inputs.u8"))
    offset = 0
    with open(os.path.join(out, "expected.f32"), "wb") as fe, \
            open(os.path.join(out, "manifest.txt"), "w") as fm:
        for (name, inp, op, params, r) in cases:
            oc, oh, ow = r.shape
            fm.write(f"{name} {inp} {op} {len(params)} "
                     + "".join(f"{p!r} " for p in params)
                     + f"{oc} {oh} {ow} {offset}\n")
            fe.write(r.astype("<f4").tobytes())
            offset += r.size
    np.stack(big[:4]).tofile(os.path.join(out, "fmnist.u8"))
    labels[:4].astype(np.uint8).tofile(os.path.join(out, "fmnist_labels.u8"))


if __name__ == "__main__":
    main()
