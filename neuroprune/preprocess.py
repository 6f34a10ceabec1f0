"""What turns a user's raw inputs into what a network was trained on, kept with the network.

Every dataset is standardised with its training split's mean and std (one value, one per
feature, or one per image channel), and images may be padded (``data.pad``). The loader
records that as a plain dict (JSON in every export)::

    {"mean": [...], "std": [...], "shape": [...], "pad": 0, "fill": [...],
     "scale": 1/255, "resize": [H, W]}

``shape`` is the shape the flat ``mean`` and ``std`` take against one input (``[]``: one
value; ``[F]``: per feature; ``[C, 1, 1]``: per channel); ``fill`` is the padding's value
per channel, after standardisation. Raw inputs are what the loader reads before scaling:
arrays and CSV features as given, scikit-learn's digits as 0..16, the MNIST family, CIFAR and
image folders as float pixels in [0, 1] (uint8 / 255, what torchvision's ``ToTensor``
gives). ``scale`` (images read as 0..255 pixels only) is that factor: a raw input given as
integers (a uint8 image) is multiplied by it first, as torchvision's ``ToDtype(scale=True)``
does, so both forms give the run's outputs; a float input is taken as already scaled.
``resize`` (an image folder's ``data.image_size``) is the size every image was resized to
(bilinear, by PIL) before that: raw inputs must have it, nothing resizes them. Records
written before these keys have neither and load as before.

:class:`Preprocess` applies such a record; :func:`attach` puts it in front of a network as a
forward pre-hook, so the network takes raw inputs while its parameters, state dict and mask
names stay those of the architecture.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


def standardisation(mean: torch.Tensor, std: torch.Tensor) -> dict[str, Any]:
    """The record of ``(x - mean) / std`` with ``mean`` and ``std`` shaped against one input."""
    return {"mean": mean.flatten().tolist(), "std": std.flatten().tolist(),
            "shape": list(mean.shape), "pad": 0, "fill": []}


def pixels(record: dict[str, Any] | None, size: int | None = None) -> dict[str, Any] | None:
    """``record`` of images read as 0..255 pixels and divided by 255 (``resize``d to
    ``size`` x ``size`` first when ``size``)."""
    if record is None:
        return None
    return {**record, "scale": 1 / 255, **({"resize": [size, size]} if size else {})}


def describe(record: dict[str, Any] | None) -> str:
    """One line for people (ONNX metadata, summaries)."""
    if not record:
        return "none: the network takes its inputs as they are"
    n = len(record["mean"])
    how = ("one mean and std" if n == 1 else
           f"a mean and std per {'channel' if len(record['shape']) == 3 else 'feature'} ({n})")
    text = f"(x - mean) / std with the training split's {how}"
    if record.get("scale"):
        text = (f"raw inputs are float pixels in [0, 1] (0..255 pixels times "
                f"{_fraction(record['scale'])}: integer inputs are scaled so first), then "
                + text)
    if record.get("resize"):
        h, w = record["resize"]
        text = f"images resized to {h}x{w} (bilinear) when read; " + text
    if record.get("pad"):
        text += f", then {record['pad']} pixels of background padding around each image"
    return text


def _fraction(scale: float) -> str:
    """``1/255`` for 1 / 255: the factor as people write it."""
    return f"1/{round(1 / scale)}" if abs(1 / scale - round(1 / scale)) < 1e-6 else f"{scale:g}"


class Preprocess(nn.Module):
    """Raw inputs ``[N, ...]`` to the network's: integer pixels times the record's ``scale``,
    ``(x - mean) / std``, then the padding."""

    def __init__(self, record: dict[str, Any]):
        super().__init__()
        self.record = dict(record)
        view = (1, *record["shape"])
        self.register_buffer("mean", torch.tensor(record["mean"], dtype=torch.float32).view(view))
        self.register_buffer("std", torch.tensor(record["std"], dtype=torch.float32).view(view))
        self.pad = int(record.get("pad") or 0)
        self.scale = float(record.get("scale") or 1.0)
        fill = torch.tensor(record.get("fill") or [0.0], dtype=torch.float32)
        self.register_buffer("fill", fill.view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not x.is_floating_point():  # integer pixels (a uint8 image): to the run's range
            x = x.to(self.mean.dtype) * self.scale
        x = (x - self.mean) / self.std
        if self.pad:
            p = [self.pad] * 4
            # zero padding plus the fill on the border only: inside, x stays bit for bit
            inner = F.pad(torch.ones_like(x[:1, :1]), p)
            x = F.pad(x, p) + self.fill * (1 - inner)
        return x

    def extra_repr(self) -> str:
        return describe(self.record)


class RawInputs:
    """A forward pre-hook that applies a :class:`Preprocess` to a network's first input."""

    def __init__(self, transform: Preprocess):
        self.transform = transform

    def __call__(self, module: nn.Module, args: tuple) -> tuple:
        x, t = args[0], self.transform
        if not isinstance(x, torch.Tensor):  # raw inputs as the user has them (numpy arrays)
            x = torch.as_tensor(x, device=t.mean.device)  # integer pixels stay integers
            x = x.to(t.mean.dtype) if x.is_floating_point() else x
        if t.mean.device != x.device:
            t.to(x.device)
        return (t(x), *args[1:])


def preprocessing_of(model: nn.Module) -> Preprocess | None:
    """The :class:`Preprocess` attached to ``model`` by :func:`attach`, or None."""
    for hook in model._forward_pre_hooks.values():
        if isinstance(hook, RawInputs):
            return hook.transform
    return None


def detach(model: nn.Module) -> Preprocess | None:
    """Remove the attached preprocessing (the network then takes standardised inputs); the
    removed :class:`Preprocess`, or None."""
    for key, hook in list(model._forward_pre_hooks.items()):
        if isinstance(hook, RawInputs):
            del model._forward_pre_hooks[key]
            return hook.transform
    return None


def attach(model: nn.Module, record: dict[str, Any] | None) -> nn.Module:
    """Make ``model`` take raw inputs: ``record``'s preprocessing runs in front of its forward
    (replacing one attached before). ``model`` itself is returned; nothing when ``record`` is
    None."""
    if record is None:
        return model
    detach(model)
    model.register_forward_pre_hook(RawInputs(Preprocess(record)))
    return model


def with_preprocessing(model: nn.Module, record: dict[str, Any] | None) -> nn.Module:
    """``Preprocess`` then ``model`` as one module (``nn.Sequential``), for exporters that
    should see the preprocessing as graph nodes (ONNX); ``model`` alone without a record."""
    return model if record is None else nn.Sequential(Preprocess(record), model)


def raw_shape(input_shape: tuple[int, ...], record: dict[str, Any] | None) -> tuple[int, ...]:
    """The shape of one raw input for a network of ``input_shape``: without the padding."""
    pad = int((record or {}).get("pad") or 0)
    if not pad:
        return tuple(input_shape)
    c, h, w = input_shape
    return (c, h - 2 * pad, w - 2 * pad)
