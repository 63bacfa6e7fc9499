"""Reference parameter lists for the shipped models, from torchvision.

Prints, for each model named on the command line, a "# MODEL" line, then
one line per state_dict entry in PyTorch's order: "NAME D0,D1,..." (parameters and batchnorm
running stats; num_batches_tracked is left out, simclrc has no such
buffer). test_frontend.c compares the compiler's canonical lists with this
output, so the expected names, shapes and counts come from torchvision
itself, not from the compiler.
"""
import sys

import torch.nn as nn
from torchvision.models import resnet


def stage(block, inplanes, planes, blocks, stride, **kw):
    """torchvision's ResNet._make_layer, standalone (kw: groups, base_width)."""
    downsample = None
    if stride != 1 or inplanes != planes * block.expansion:
        downsample = nn.Sequential(
            resnet.conv1x1(inplanes, planes * block.expansion, stride),
            nn.BatchNorm2d(planes * block.expansion))
    layers = [block(inplanes, planes, stride, downsample, **kw)]
    inplanes = planes * block.expansion
    layers += [block(inplanes, planes, **kw) for _ in range(1, blocks)]
    return nn.Sequential(*layers), inplanes


def encoder_from(tv):
    """A torchvision ResNet without its fc: children in document order."""
    return nn.Sequential(*list(tv.children())[:-1])


def head(dims):
    layers = []
    for i in range(1, len(dims)):
        layers.append(nn.Linear(dims[i - 1], dims[i]))
        if i + 1 < len(dims):
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def small():
    layers = [nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU()]
    c = 16
    for planes, stride in ((16, 1), (32, 2), (64, 2)):
        s, c = stage(resnet.BasicBlock, c, planes, 1, stride)
        layers.append(s)
    layers.append(nn.AdaptiveAvgPool2d(1))
    return nn.Sequential(*layers), head([64, 64, 32])


def resnext_small():
    layers = [nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU()]
    c = 16
    for planes, stride in ((8, 1), (16, 2), (32, 2)):
        s, c = stage(resnet.Bottleneck, c, planes, 1, stride, groups=4, base_width=32)
        layers.append(s)
    layers.append(nn.AdaptiveAvgPool2d(1))
    return nn.Sequential(*layers), head([128, 64, 32])


def cifar():
    tv = resnet.resnet18()
    tv.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
    children = list(tv.children())[:-1]
    children.remove(tv.maxpool)
    return nn.Sequential(*children), head([512, 512, 128])


MODELS = {
    "resnet18-stl10": lambda: (encoder_from(resnet.resnet18()), head([512, 512, 128])),
    "resnet18-stl10-paper": lambda: (encoder_from(resnet.resnet18()), head([512, 512, 128])),
    "resnet50-stl10": lambda: (encoder_from(resnet.resnet50()), head([2048, 2048, 128])),
    "resnet18-cifar": cifar,
    "resnet-small": small,
    "resnext-small": resnext_small,
}


def main():
    for model in sys.argv[1:]:
        print("# " + model)
        enc, hd = MODELS[model]()
        for prefix, module in (("encoder", enc), ("head", hd)):
            for name, t in module.state_dict().items():
                if name.endswith("num_batches_tracked"):
                    continue
                print("%s.%s %s" % (prefix, name, ",".join(str(d) for d in t.shape)))


if __name__ == "__main__":
    main()
