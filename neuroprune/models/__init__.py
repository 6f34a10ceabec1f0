"""Layer 2: architectures as plain ``nn.Module`` factories, looked up by name.

Prunable tensors are the weights of ``Linear`` and ``Conv`` layers (:func:`prunable_names`).
Every model is built from a :class:`ModelSpec` plus the data's input shape and class count, so
a spec stored in a checkpoint's metadata rebuilds the same network.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from ..errors import ConfigError

class RoleActivation(nn.Module):
    """A hidden activation whose function is chosen per network by its role (``first``,
    ``middle``, ``last`` hidden layer): what activation-function search evolves. ReLU until a
    function is set."""

    elementwise = True

    def __init__(self, role: str):
        super().__init__()
        self.role = role
        self.fn = torch.relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)

    def extra_repr(self) -> str:
        return f"role={self.role}"


ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU, "silu": nn.SiLU,
               "sigmoid": nn.Sigmoid, "evolved": RoleActivation}


def hidden_roles(n_hidden: int) -> list[str]:
    """Role of each hidden activation: first, middle..., last (one layer: first)."""
    if n_hidden == 1:
        return ["first"]
    return ["first"] + ["middle"] * (n_hidden - 2) + ["last"]


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to rebuild an architecture."""

    arch: str
    input_shape: tuple[int, ...]
    num_classes: int
    widths: tuple[int, ...] = (300, 100)
    activation: str = "relu"
    channels: tuple[int, ...] = field(default=(6, 16))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ModelSpec":
        d = dict(d)
        for k in ("input_shape", "widths", "channels"):
            if k in d:
                d[k] = tuple(d[k])
        return cls(**d)


def mlp(spec: ModelSpec) -> nn.Module:
    """Fully connected network; LeNet-300-100 is ``widths=(300, 100)``."""
    roles = hidden_roles(len(spec.widths))
    layers: list[nn.Module] = [nn.Flatten()]
    fan_in = math.prod(spec.input_shape)
    for w, role in zip(spec.widths, roles):
        act = RoleActivation(role) if spec.activation == "evolved" else \
            ACTIVATIONS[spec.activation]()
        layers += [nn.Linear(fan_in, w), act]
        fan_in = w
    layers.append(nn.Linear(fan_in, spec.num_classes))
    return nn.Sequential(*layers)


def lenet5(spec: ModelSpec) -> nn.Module:
    """LeNet-5 (LeCun et al. 1998): two 5x5 convs with pooling, then ``widths`` (120, 84).

    Small inputs (8x8 digits) are padded so that the two pooling stages still fit.
    """
    act = ACTIVATIONS[spec.activation]
    c_in, h, w = spec.input_shape if len(spec.input_shape) == 3 else (1, *spec.input_shape)
    pad = 2 if min(h, w) >= 16 else 4
    c1, c2 = spec.channels
    feats = nn.Sequential(
        nn.Conv2d(c_in, c1, 5, padding=pad), act(), nn.MaxPool2d(2),
        nn.Conv2d(c1, c2, 5), act(), nn.MaxPool2d(2), nn.Flatten(),
    )
    h = ((h + 2 * pad - 4) // 2 - 4) // 2
    w = ((w + 2 * pad - 4) // 2 - 4) // 2
    if h < 1 or w < 1:
        raise ConfigError(f"model.arch=lenet5 needs inputs of at least 8x8, got {spec.input_shape}")
    widths = spec.widths if spec.widths != (300, 100) else (120, 84)
    layers: list[nn.Module] = [feats]
    fan_in = c2 * h * w
    for width in widths:
        layers += [nn.Linear(fan_in, width), act()]
        fan_in = width
    layers.append(nn.Linear(fan_in, spec.num_classes))
    return nn.Sequential(*layers)


MODELS = {"mlp": (mlp, "fully connected; LeNet-300-100 is widths [300, 100]"),
          "lenet5": (lenet5, "LeNet-5: two conv layers, then fully connected")}


def build_model(spec: ModelSpec) -> nn.Module:
    """Build an untrained module for ``spec`` (initialised from torch's global RNG)."""
    if spec.arch not in MODELS:
        raise ConfigError(f"model.arch: unknown architecture '{spec.arch}'; choose one of "
                          f"{', '.join(MODELS)}")
    if spec.activation not in ACTIVATIONS:
        raise ConfigError(f"model.activation: unknown '{spec.activation}'; choose one of "
                          f"{', '.join(ACTIVATIONS)}")
    return MODELS[spec.arch][0](spec)


def prunable_names(module: nn.Module) -> list[str]:
    """Parameter names of the weights of Linear and Conv layers, in module order."""
    names = []
    for mod_name, mod in module.named_modules():
        if isinstance(mod, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            names.append(f"{mod_name}.weight" if mod_name else "weight")
    return names


__all__ = ["ModelSpec", "build_model", "prunable_names", "MODELS", "ACTIVATIONS"]
