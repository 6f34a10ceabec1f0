"""LeNet-5 and LeNet-5-Caffe.

* LeNet-5 (LeCun et al. 1998): two 5x5 convolutions (6 and 16 filters) with 2x2 pooling, then
  fully connected 120-84-classes.
* LeNet-5-Caffe: the Caffe example network used by Han et al. 2015, SNIP (Lee et al. 2019) and
  sparse group lasso (Bui et al. 2019): conv 20 (5x5), pool, conv 50 (5x5), pool, fully
  connected 500, classes. Caffe's network has no activation after its convolutions and a ReLU
  after the 500-unit layer only; ``conv_activation: true`` adds one after each convolution (as
  many PyTorch re-implementations do). The paper leaves this open, so it is an option.

Inputs smaller than 16x16 (scikit-learn's 8x8 digits) are zero-padded so that both pooling
stages still fit.
"""

from __future__ import annotations

from torch import nn

from ..errors import ConfigError
from .base import Widths, image_shape, initialise, make_activation


def _two_stages(input_shape, name: str, pad_28: int) -> tuple[int, int, int, int]:
    """``(channels, padding, height, width)`` after two 5x5 conv + 2x2 pool stages; inputs
    under 16x16 get 4 pixels of padding, others ``pad_28``."""
    c, h, w = image_shape(input_shape, name)
    pad = pad_28 if min(h, w) >= 16 else 4

    def out(n: int) -> int:
        return ((n + 2 * pad - 4) // 2 - 4) // 2
    if out(h) < 1 or out(w) < 1:
        raise ConfigError(f"model {name} needs inputs of at least 8x8, this dataset has {h}x{w}")
    return c, pad, out(h), out(w)


def lenet5(input_shape: tuple[int, ...], num_classes: int, *,
           widths: Widths = (120, 84), channels: tuple[int, int] = (6, 16),
           activation: str = "relu", init: str = "default") -> nn.Module:
    c, pad, oh, ow = _two_stages(input_shape, "lenet5", pad_28=2)
    c1, c2 = channels
    feats = nn.Sequential(
        nn.Conv2d(c, c1, 5, padding=pad), make_activation(activation), nn.MaxPool2d(2),
        nn.Conv2d(c1, c2, 5), make_activation(activation), nn.MaxPool2d(2), nn.Flatten(),
    )
    layers: list[nn.Module] = [feats]
    fan_in = c2 * oh * ow
    for width in widths:
        layers += [nn.Linear(fan_in, int(width)), make_activation(activation)]
        fan_in = int(width)
    layers.append(nn.Linear(fan_in, num_classes))
    return initialise(nn.Sequential(*layers), init)


def lenet5_caffe(input_shape: tuple[int, ...], num_classes: int, *,
                 conv_activation: bool = False, activation: str = "relu",
                 init: str = "default") -> nn.Module:
    c, pad, oh, ow = _two_stages(input_shape, "lenet5_caffe", pad_28=0)

    def conv_act() -> nn.Module:
        return make_activation(activation) if conv_activation else nn.Identity()
    return initialise(nn.Sequential(
        nn.Conv2d(c, 20, 5, padding=pad), conv_act(), nn.MaxPool2d(2),
        nn.Conv2d(20, 50, 5), conv_act(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(50 * oh * ow, 500), make_activation(activation),
        nn.Linear(500, num_classes),
    ), init)
