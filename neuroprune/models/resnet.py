"""ResNet-20/32/56 for 32x32 inputs: He, Zhang, Ren and Sun, "Deep Residual Learning for Image
Recognition", CVPR 2016 (arXiv 1512.03385), Section 4.2.

A 3x3 convolution (16 filters), three stages of ``n = (depth - 2) / 6`` basic blocks with 16,
32 and 64 filters (the second and third start with stride 2), global average pooling and one
Linear layer; every convolution is bias-free and followed by BatchNorm.

Where a block changes the shape, the paper's CIFAR networks use zero-padded identity
shortcuts (option A); OpenLTH and most pruning code use a 1x1 convolution with BatchNorm
(option B), whose channels can be pruned and coupled like any others. Both are here:
``shortcut: conv`` (default) or ``shortcut: pad``. He (Kaiming) normal initialisation.
"""

from __future__ import annotations

from functools import partial

import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from .base import image_shape, initialise, make_activation


class PadShortcut(nn.Module):
    """Option A: subsample by 2 and zero-pad the new channels."""

    def __init__(self, extra: int):
        super().__init__()
        self.extra = extra

    def forward(self, x):
        x = x[:, :, ::2, ::2]
        return F.pad(x, (0, 0, 0, 0, self.extra // 2, self.extra - self.extra // 2))


class BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int, shortcut: str, activation: str):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.act1 = make_activation(activation)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.act2 = make_activation(activation)
        if stride == 1 and c_in == c_out:
            self.shortcut: nn.Module = nn.Identity()
        elif shortcut == "pad":
            self.shortcut = PadShortcut(c_out - c_in)
        else:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False),
                                          nn.BatchNorm2d(c_out))

    def forward(self, x):
        out = self.act1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.act2(out + self.shortcut(x))


class CifarResNet(nn.Module):
    def __init__(self, depth: int, in_channels: int, num_classes: int, width: int,
                 shortcut: str, activation: str):
        super().__init__()
        if (depth - 2) % 6 or depth < 8:
            raise ConfigError(f"a CIFAR ResNet has depth 6n + 2 (20, 32, 56, ...), got {depth}")
        if shortcut not in ("conv", "pad"):
            raise ConfigError(f"model.shortcut: choose conv or pad, got '{shortcut}'")
        n = (depth - 2) // 6
        self.conv = nn.Conv2d(in_channels, width, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(width)
        self.act = make_activation(activation)
        blocks: list[nn.Module] = []
        c = width
        for stage, out in enumerate((width, 2 * width, 4 * width)):
            for i in range(n):
                stride = 2 if stage > 0 and i == 0 else 1
                blocks.append(BasicBlock(c, out, stride, shortcut, activation))
                c = out
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c, num_classes)

    def forward(self, x):
        out = self.blocks(self.act(self.bn(self.conv(x))))
        return self.fc(self.pool(out).flatten(1))


def resnet(depth: int, input_shape: tuple[int, ...], num_classes: int, *, width: int = 16,
           shortcut: str = "conv", activation: str = "relu",
           init: str = "kaiming_normal") -> nn.Module:
    """ResNet-``depth`` for small images; ``width`` is the first stage's filter count."""
    c, _, _ = image_shape(input_shape, f"resnet{depth}")
    return initialise(CifarResNet(depth, c, num_classes, width, shortcut, activation), init)


resnet20 = partial(resnet, 20)
resnet32 = partial(resnet, 32)
resnet56 = partial(resnet, 56)
