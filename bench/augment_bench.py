"""torchvision side of bench/augment_bench.sh: the reference recipe
(models/resnet18-stl10.xml's <augment>) with torchvision 0.14 on one
thread, on the same STL-10-layout images, decode included.

Usage: augment_bench.py DATA_DIR VIEWS_PER_RUN RUNS {tensor,pil}
Prints one "run K: N images/s" line per run and the median."""
import statistics
import sys
import time

import numpy as np
import torch
import torchvision.transforms as T
from PIL import Image

torch.set_num_threads(1)
data_dir, views, runs, mode = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
raw = np.fromfile(f"{data_dir}/train_X.bin", np.uint8).reshape(-1, 3, 96, 96)
n = raw.shape[0]

recipe = [
    T.RandomHorizontalFlip(0.5),
    T.RandomResizedCrop(96, scale=(0.08, 1.0), ratio=(0.75, 1.3333333),
                        interpolation=T.InterpolationMode.BILINEAR),
    T.RandomApply([T.ColorJitter(0.5, 0.5, 0.5, 0.1)], p=0.8),
    T.RandomGrayscale(0.2),
    T.GaussianBlur(9, sigma=(0.1, 2.0)),
]
if mode == "tensor":
    # uint8 CHW tensor -> float in [0, 1] first, then every transform on tensors.
    pipeline = T.Compose([T.ConvertImageDtype(torch.float32)] + recipe
                         + [T.Normalize([0.5] * 3, [0.5] * 3)])

    def decode(i):
        return torch.from_numpy(np.ascontiguousarray(raw[i].transpose(0, 2, 1)))
else:
    # The usual notebook pipeline: PIL images, ToTensor at the end.
    pipeline = T.Compose(recipe + [T.ToTensor(), T.Normalize([0.5] * 3, [0.5] * 3)])

    def decode(i):
        return Image.fromarray(np.ascontiguousarray(raw[i].transpose(2, 1, 0)))

torch.manual_seed(0)
rates = []
for r in range(-1, runs):  # run -1 warms up
    t0 = time.perf_counter()
    for v in range(views):
        out = pipeline(decode(v // 2 % n))
    dt = time.perf_counter() - t0
    if r >= 0:
        rates.append(views / dt)
        print(f"run {r + 1}: {views / dt:.1f} images/s", flush=True)
print(f"median: {statistics.median(rates):.1f} images/s")
