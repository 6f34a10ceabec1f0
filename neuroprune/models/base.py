"""Pieces every model family shares: activations by name, role-tagged activation slots,
initialisation schemes, and the small checks on input sizes."""

from __future__ import annotations

import math
from typing import Annotated

import torch
from annotated_types import Len
from pydantic import Field, PositiveInt
from torch import nn

from ..errors import ConfigError
from ..registry import Registry

#: hidden layer widths of a zoo model: at least one layer, every width positive
Widths = Annotated[tuple[PositiveInt, ...], Len(min_length=1)]
#: a dropout probability: 1 would drop every unit
DropRate = Annotated[float, Field(ge=0, lt=1, allow_inf_nan=False)]

#: activation name -> nn.Module class (``evolved``: a slot whose function is set per network)
ACTIVATIONS = Registry("activation", "model.activation", {
    "relu": ("torch.nn:ReLU", "max(0, x)"),
    "tanh": ("torch.nn:Tanh", "hyperbolic tangent"),
    "gelu": ("torch.nn:GELU", "Gaussian error linear unit"),
    "silu": ("torch.nn:SiLU", "x * sigmoid(x)"),
    "sigmoid": ("torch.nn:Sigmoid", "logistic"),
    "leaky_relu": ("torch.nn:LeakyReLU", "max(0.01 x, x)"),
    "elu": ("torch.nn:ELU", "exponential linear unit"),
    "all_relu": ("neuroprune.models.base:AllReLU", "All-ReLU (Curci, Mocanu & Pechenizkiy "
                 "2021): x for x > 0, else a fixed slope whose sign alternates by layer"),
    "evolved": ("neuroprune.models.base:RoleActivation",
                "a slot whose function activation search sets per network"),
})


class RoleActivation(nn.Module):
    """A hidden activation whose function is chosen per network by its role (``first``,
    ``middle``, ``last`` hidden layer): what activation-function search evolves. ReLU until a
    function is set."""

    elementwise = True

    def __init__(self, role: str = "first"):
        super().__init__()
        self.role = role
        self.fn = torch.relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)

    def extra_repr(self) -> str:
        return f"role={self.role}"


def hidden_roles(n_hidden: int) -> list[str]:
    """Role of each hidden activation: first, middle..., last (one layer: first)."""
    if n_hidden == 1:
        return ["first"]
    return ["first"] + ["middle"] * (n_hidden - 2) + ["last"]


class AllReLU(nn.Module):
    """All-ReLU (Curci, Mocanu & Pechenizkiy, "Truly sparse neural networks at scale", 2021):
    ``x`` for ``x > 0``; otherwise ``-alpha * x`` in even hidden layers and ``alpha * x`` in odd
    ones (``layer`` counts hidden layers from 1). The slope is fixed, not trained, and keeps
    gradients flowing through negative inputs of very sparse layers. ``alpha`` is a named
    option (the paper tunes it per data set; 0.6 here by default)."""

    def __init__(self, layer: int = 1, alpha: float = 0.6):
        super().__init__()
        self.layer, self.alpha = int(layer), float(alpha)

    def forward(self, x):
        slope = -self.alpha if self.layer % 2 == 0 else self.alpha
        return torch.where(x > 0, x, slope * x)

    def extra_repr(self) -> str:
        return f"layer={self.layer}, alpha={self.alpha}"


def make_activation(name: str, role: str = "first", layer: int = 1) -> nn.Module:
    """A fresh activation module; ``evolved`` gives a :class:`RoleActivation` for ``role``,
    ``all_relu`` an :class:`AllReLU` for hidden layer ``layer`` (from 1)."""
    cls = ACTIVATIONS.load(name)
    if cls is AllReLU:
        return cls(layer)
    return cls(role) if cls is RoleActivation else cls()


INITS = ("default", "kaiming_normal", "xavier_normal")


def initialise(model: nn.Module, scheme: str) -> nn.Module:
    """Re-initialise Linear and Conv weights (biases to zero) by ``scheme``; ``default`` keeps
    PyTorch's own initialisation. BatchNorm starts at weight 1, bias 0 (PyTorch's default)."""
    if scheme not in INITS:
        raise ConfigError(f"model.init: unknown scheme '{scheme}'; choose one of "
                          f"{', '.join(INITS)}")
    if scheme == "default":
        return model
    for mod in model.modules():
        if isinstance(mod, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            if scheme == "kaiming_normal":
                nn.init.kaiming_normal_(mod.weight, nonlinearity="relu")
            else:
                nn.init.xavier_normal_(mod.weight)
            if mod.bias is not None:
                nn.init.zeros_(mod.bias)
    return model


def image_shape(input_shape: tuple[int, ...], model: str) -> tuple[int, int, int]:
    """``(channels, height, width)`` of an image input; a clear error for other inputs."""
    if len(input_shape) == 3:
        return tuple(int(d) for d in input_shape)  # type: ignore[return-value]
    if len(input_shape) == 2:
        return (1, int(input_shape[0]), int(input_shape[1]))
    raise ConfigError(f"model {model} needs image inputs (channels, height, width); this "
                      f"dataset has feature vectors of shape {tuple(input_shape)} (use mlp)")


def need_size(model: str, hw: tuple[int, int], minimum: int) -> None:
    if min(hw) < minimum:
        raise ConfigError(f"model {model} needs inputs of at least {minimum}x{minimum}, this "
                          f"dataset has {hw[0]}x{hw[1]}")


def flat_features(input_shape: tuple[int, ...]) -> int:
    return math.prod(input_shape)


def load_weights(model: nn.Module, weights, strict: bool = True):
    """``model.load_state_dict(weights)`` with the model's own version metadata attached: a
    state dict rebuilt from tensors (a file, a dict) has none, and some modules (torchvision's
    MNASNet) refuse to load without it."""
    from collections import OrderedDict

    state = OrderedDict(weights)
    if getattr(weights, "_metadata", None) is None:
        meta = getattr(model.state_dict(), "_metadata", None)
        if meta is not None:
            state._metadata = meta  # type: ignore[attr-defined]
    else:
        state._metadata = weights._metadata  # type: ignore[attr-defined]
    return model.load_state_dict(state, strict=strict)
