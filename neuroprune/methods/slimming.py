"""Network Slimming: L1 on the BatchNorm scales during training, then remove the channels with
the smallest scales and fine-tune.

Liu, Li, Shen, Huang, Yan and Zhang, "Learning Efficient Convolutional Networks through
Network Slimming", ICCV 2017 (arXiv 1708.06519). The penalty is ``strength * sum |gamma|``
over every BatchNorm scale (the paper's lambda, 1e-4 to 1e-5). Channels without a BatchNorm
(Linear neurons, convolutions without one) have no scale; the paper does not prune them, here
they are ranked by their filters' L1 norm divided by the layer's mean (an option the paper
leaves open: ``normalise``), beside the scales divided by theirs.
"""

from __future__ import annotations

import warnings

import torch

from .base import MethodContext, MethodResult
from .structured import Penalty, StructuredPruning


class ScaleL1(Penalty):
    """``sum |gamma|`` of the BatchNorm scales in the structure."""

    def penalty(self, rows: torch.Tensor) -> torch.Tensor:
        return self.space.channel_sums(rows.abs(), "scale").sum(1)


class Slimming(StructuredPruning):
    name = "slimming"
    summary = "L1 on BatchNorm scales while training, remove the smallest channels, fine-tune"
    citation = "Liu et al. 2017, arXiv 1708.06519"
    penalty = ScaleL1

    def scores(self, space, rows: torch.Tensor) -> torch.Tensor:
        scale = space.channel_sums(rows.abs(), "scale")
        filt = space.channel_sums(rows.abs(), "filter")
        return torch.where(space.has_scale.to(rows.device), scale, filt)

    def find(self, ctx: MethodContext) -> MethodResult:
        if ctx.structure is not None and not bool(ctx.structure.has_scale.any()):
            warnings.warn("slimming: the model has no BatchNorm scale to penalise, so every "
                          "unit is ranked by its filters' L1 norm, as l1_filter does",
                          stacklevel=2)
        return super().find(ctx)
