"""Fully connected networks. LeNet-300-100 (LeCun et al. 1998; the MNIST network of Han et
al. 2015, Frankle & Carbin 2019 and SNIP) is ``mlp`` with ``widths: [300, 100]``."""

from __future__ import annotations

from torch import nn

from .base import DropRate, Widths, flat_features, hidden_roles, initialise, make_activation


def mlp(input_shape: tuple[int, ...], num_classes: int, *, widths: Widths = (300, 100),
        activation: str = "relu", dropout: DropRate = 0.0,
        init: str = "default") -> nn.Module:
    """``Flatten``, then ``Linear`` + activation (+ dropout) per hidden width, then the output
    ``Linear``. Module indices are fixed (``1.weight`` is the first layer), so masks saved by
    earlier versions still name the same tensors when ``dropout`` is 0."""
    layers: list[nn.Module] = [nn.Flatten()]
    fan_in = flat_features(input_shape)
    for layer, (width, role) in enumerate(zip(widths, hidden_roles(len(widths))), 1):
        layers += [nn.Linear(fan_in, int(width)), make_activation(activation, role, layer)]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        fan_in = int(width)
    layers.append(nn.Linear(fan_in, num_classes))
    return initialise(nn.Sequential(*layers), init)


def lenet_300_100(input_shape: tuple[int, ...], num_classes: int, *,
                  activation: str = "relu", init: str = "default") -> nn.Module:
    """LeNet-300-100: 784-300-100-10 on MNIST."""
    return mlp(input_shape, num_classes, widths=(300, 100), activation=activation,
               init=init)
