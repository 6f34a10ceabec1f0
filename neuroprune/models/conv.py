"""Conv-2, Conv-4 and Conv-6: the VGG-like CIFAR networks of Frankle & Carbin, "The Lottery
Ticket Hypothesis", ICLR 2019 (arXiv 1803.03635), Figure 2.

3x3 convolutions (64, 64 | 128, 128 | 256, 256 filters, padding 1), 2x2 max pooling after each
pair, then fully connected 256-256-classes; Glorot (Xavier) normal initialisation as in the
paper. ``batch_norm: true`` adds BatchNorm after every convolution (the paper has none).
"""

from __future__ import annotations

from functools import partial

from torch import nn

from .base import DropRate, Widths, image_shape, initialise, make_activation, need_size

STAGES = {"conv2": (64,), "conv4": (64, 128), "conv6": (64, 128, 256)}


def conv_net(name: str, input_shape: tuple[int, ...], num_classes: int, *,
             widths: Widths = (256, 256), width: float = 1.0, activation: str = "relu",
             batch_norm: bool = False, dropout: DropRate = 0.0,
             init: str = "xavier_normal") -> nn.Module:
    """Conv-2/4/6 (``name``) for ``input_shape`` images; ``width`` scales the convolutions'
    filter counts (0.25 for quick experiments)."""
    c, h, w = image_shape(input_shape, name)
    stages = STAGES[name]
    need_size(name, (h, w), 2 ** len(stages))
    layers: list[nn.Module] = []
    for filters in stages:
        filters = max(1, round(filters * width))
        for _ in range(2):
            layers.append(nn.Conv2d(c, filters, 3, padding=1, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm2d(filters))
            layers.append(make_activation(activation))
            c = filters
        layers.append(nn.MaxPool2d(2))
        h, w = h // 2, w // 2
    layers.append(nn.Flatten())
    fan_in = c * h * w
    for units in widths:
        layers += [nn.Linear(fan_in, int(units)), make_activation(activation)]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        fan_in = int(units)
    layers.append(nn.Linear(fan_in, num_classes))
    return initialise(nn.Sequential(*layers), init)


conv2 = partial(conv_net, "conv2")
conv4 = partial(conv_net, "conv4")
conv6 = partial(conv_net, "conv6")
