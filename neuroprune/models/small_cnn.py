"""The CNN of Lapid & Sipper, "Evolution of Activation Functions for Deep Learning-Based Image
Classification" (GECCO 2022, arXiv 2206.12089): two 3x3 convolutions (32 and 64 filters), a
fully connected layer of 1000 units and the output layer, one activation slot after each of
the three hidden layers (roles ``first``, ``middle``, ``last``).

The paper gives the layers, not the pooling; a 2x2 max pooling after the second convolution
(as in PyTorch's MNIST example, which this network follows) is the default, ``pool: 1`` drops
it.
"""

from __future__ import annotations

from torch import nn

from ..errors import ConfigError
from .base import Widths, image_shape, initialise, make_activation, need_size


def cnn_32_64(input_shape: tuple[int, ...], num_classes: int, *,
              channels: Widths = (32, 64), widths: Widths = (1000,), pool: int = 2,
              activation: str = "relu", init: str = "default") -> nn.Module:
    """Conv 3x3 ``channels[0]``, conv 3x3 ``channels[1]``, max pool ``pool``, fully connected
    ``widths``, output. Slots: first convolution, second convolution (``middle``), fully
    connected layers (``last``)."""
    c, h, w = image_shape(input_shape, "cnn_32_64")
    need_size("cnn_32_64", (h, w), 4 + pool)
    if len(channels) != 2:
        raise ConfigError(f"model.channels: cnn_32_64 has two convolutions, got {channels}")
    layers: list[nn.Module] = []
    for filters, role in zip(channels, ("first", "middle")):
        layers += [nn.Conv2d(c, int(filters), 3), make_activation(activation, role)]
        c, h, w = int(filters), h - 2, w - 2
    if pool > 1:
        layers.append(nn.MaxPool2d(pool))
        h, w = h // pool, w // pool
    layers.append(nn.Flatten())
    fan_in = c * h * w
    for units in widths:
        layers += [nn.Linear(fan_in, int(units)), make_activation(activation, "last")]
        fan_in = int(units)
    layers.append(nn.Linear(fan_in, num_classes))
    return initialise(nn.Sequential(*layers), init)
