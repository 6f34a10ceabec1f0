"""Dropout seeded per network, so that a network draws the same masks in a population as alone.

Every ``nn.Dropout`` of a model the engine trains is replaced by a :class:`SeededDropout` with
the same rate. Its mask is a counter-based hash (:mod:`.rng`) of the network's seed, the step
and the layer, read from the context the trainer sets around each forward pass
(:func:`dropout_seeds`): no generator state, nothing that depends on the batch of networks.
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from typing import Iterator

import torch
from torch import nn

from .rng import stream_id, uniform

_CONTEXT: ContextVar[tuple[torch.Tensor, int] | None] = ContextVar("neuroprune_dropout",
                                                                   default=None)
DROPOUT_STREAM = 1


@contextmanager
def dropout_seeds(seeds: torch.Tensor, step: int) -> Iterator[None]:
    """Dropout inside the block draws from ``seeds`` (one per network, or one 0-d tensor for a
    single network) at ``step``."""
    token = _CONTEXT.set((seeds, step))
    try:
        yield
    finally:
        _CONTEXT.reset(token)


def keep_mask(seeds: torch.Tensor, step: int, layer: int, p: float,
              shape: tuple[int, ...]) -> torch.Tensor:
    """``[P, *shape]`` bool: which units network ``p`` keeps in dropout layer ``layer``."""
    return uniform(seeds, stream_id(DROPOUT_STREAM, step, layer), shape) >= p


class SeededDropout(nn.Module):
    """``nn.Dropout(p)`` with per-network seeded masks (inverted dropout, as PyTorch's)."""

    def __init__(self, p: float, layer: int):
        super().__init__()
        self.p, self.layer = float(p), int(layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        context = _CONTEXT.get()
        if context is None:
            raise RuntimeError("SeededDropout needs the trainer's dropout_seeds context")
        seeds, step = context
        keep = keep_mask(seeds.reshape(1), step, self.layer, self.p, tuple(x.shape))[0]
        return x * keep / (1.0 - self.p)

    def extra_repr(self) -> str:
        return f"p={self.p}, layer={self.layer}"


class SeededStochasticDepth(nn.Module):
    """torchvision's ``StochasticDepth(p, mode)`` (a residual branch dropped per sample,
    ``"row"``, or per batch, ``"batch"``; survivors scaled by ``1 / (1 - p)``) with
    per-network seeded draws, as :class:`SeededDropout`."""

    def __init__(self, p: float, mode: str, layer: int):
        super().__init__()
        if mode not in ("row", "batch"):
            raise ValueError(f"stochastic depth mode must be 'row' or 'batch', got {mode!r}")
        self.p, self.mode, self.layer = float(p), mode, int(layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        context = _CONTEXT.get()
        if context is None:
            raise RuntimeError("SeededStochasticDepth needs the trainer's dropout_seeds context")
        seeds, step = context
        shape = (x.shape[0],) + (1,) * (x.ndim - 1) if self.mode == "row" else (1,) * x.ndim
        keep = keep_mask(seeds.reshape(1), step, self.layer, self.p, shape)[0]
        survival = 1.0 - self.p
        return x * keep / survival if survival > 0.0 else x * keep

    def extra_repr(self) -> str:
        return f"p={self.p}, mode={self.mode}, layer={self.layer}"


def _is_stochastic_depth(module: nn.Module) -> bool:
    return (type(module).__name__ == "StochasticDepth"
            and type(module).__module__.startswith("torchvision."))


def seed_dropout(model: nn.Module) -> nn.Module:
    """Replace every ``nn.Dropout`` of ``model`` (in place) by a :class:`SeededDropout` and
    every torchvision ``StochasticDepth`` by a :class:`SeededStochasticDepth`, numbered in
    module order; other dropout types are left alone."""
    layer = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is nn.Dropout:
                setattr(parent, name, SeededDropout(child.p, layer))
                layer += 1
            elif _is_stochastic_depth(child):
                setattr(parent, name, SeededStochasticDepth(child.p, child.mode, layer))
                layer += 1
    return model


def template(spec) -> nn.Module:
    """The model the engine trains: ``spec``'s (a :class:`~neuroprune.models.ModelSpec`),
    with per-network seeded dropout."""
    from ..models import build_model, torch_seeded

    with torch_seeded():
        return seed_dropout(build_model(spec))
