"""VGG-11 and VGG-16 for 32x32 inputs with BatchNorm (Simonyan & Zisserman 2015, in the CIFAR
form of Liu et al., "Learning Efficient Convolutional Networks through Network Slimming",
ICCV 2017, that SNIP, GraSP, SynFlow and OpenLTH use).

3x3 convolutions without bias, each followed by BatchNorm and ReLU, 2x2 max pooling between
stages; after the last stage the features are averaged over space (``AdaptiveAvgPool2d(1)``;
the 2x2 average pool of the original on 32x32 inputs) and one Linear layer classifies.
He (Kaiming) normal initialisation.
"""

from __future__ import annotations

from functools import partial

from torch import nn

from .base import image_shape, initialise, make_activation, need_size

CONFIGS = {
    "vgg11": (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512),
    "vgg16": (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512),
}


def vgg(name: str, input_shape: tuple[int, ...], num_classes: int, *, width: float = 1.0,
        activation: str = "relu", init: str = "kaiming_normal") -> nn.Module:
    """VGG ``name``; ``width`` scales every layer's channels (0.25 for quick experiments)."""
    c, h, w = image_shape(input_shape, name)
    need_size(name, (h, w), 16)
    layers: list[nn.Module] = []
    for item in CONFIGS[name]:
        if item == "M":
            layers.append(nn.MaxPool2d(2))
            continue
        out = max(1, round(int(item) * width))
        layers += [nn.Conv2d(c, out, 3, padding=1, bias=False), nn.BatchNorm2d(out),
                   make_activation(activation)]
        c = out
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, num_classes)]
    return initialise(nn.Sequential(*layers), init)


vgg11 = partial(vgg, "vgg11")
vgg16 = partial(vgg, "vgg16")
