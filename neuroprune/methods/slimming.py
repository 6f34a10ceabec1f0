"""Network Slimming: L1 on the BatchNorm scales during training, then remove the channels with
the smallest scales and fine-tune.

Liu, Li, Shen, Huang, Yan and Zhang, "Learning Efficient Convolutional Networks through
Network Slimming", ICCV 2017 (arXiv 1708.06519). The penalty is ``strength * sum |gamma|``
over every BatchNorm scale (the paper's lambda, 1e-4 to 1e-5).

Ranking (``normalise: false``, the default, the paper's): one global threshold on the raw
scales ``|gamma|`` of every BatchNorm channel, as the paper and its code (a percentile of all
scales pooled) prune. Channels without a BatchNorm (Linear neurons, convolutions without one)
have no scale and the paper does not prune them; here they are removed only after every
scaled channel, ranked among themselves by their filters' L1 norm over their layer's mean, so
that a budget the scaled channels cannot meet alone is still met (a model without BatchNorm
is ranked as ``l1_filter`` ranks it). ``normalise: true`` (ours) divides each layer's scales
by their mean before the global ranking instead.
"""

from __future__ import annotations

import warnings

import torch
from pydantic import Field

from .base import MethodContext, MethodResult
from .structured import Penalty, StructuredParams, StructuredPruning, layer_normalised


class ScaleL1(Penalty):
    """``sum |gamma|`` of the BatchNorm scales in the structure."""

    def penalty(self, rows: torch.Tensor) -> torch.Tensor:
        return self.space.channel_sums(rows.abs(), "scale").sum(1)


class SlimmingParams(StructuredParams):
    normalise: bool = Field(False, description="false (the paper): one global threshold on the "
                            "raw BatchNorm scales |gamma|; true (ours): each layer's scores "
                            "divided by their mean magnitude before the global ranking")


class Slimming(StructuredPruning):
    name = "slimming"
    summary = "L1 on BatchNorm scales while training, remove the smallest channels, fine-tune"
    citation = "Liu et al. 2017, arXiv 1708.06519"
    Params = SlimmingParams
    penalty = ScaleL1

    def scores(self, space, rows: torch.Tensor) -> torch.Tensor:
        has = space.has_scale.to(rows.device)
        if self.params.normalise:  # the template divides every layer by its mean
            return torch.where(has, space.channel_sums(rows.abs(), "scale"),
                               space.channel_sums(rows.abs(), "filter"))
        rows = rows.double()  # the offset below must not swallow small differences
        scale = space.channel_sums(rows.abs(), "scale")
        filt = space.channel_sums(rows.abs(), "filter")
        if not bool(has.any()):
            return layer_normalised(space, filt)
        # unscaled units after every scaled channel, in the order of their filter norms
        above = scale[:, has].max(1, keepdim=True).values + 1.0
        return torch.where(has, scale, above + layer_normalised(space, filt))

    def find(self, ctx: MethodContext) -> MethodResult:
        if ctx.structure is not None and not bool(ctx.structure.has_scale.any()):
            warnings.warn("slimming: the model has no BatchNorm scale to penalise, so every "
                          "unit is ranked by its filters' L1 norm, as l1_filter does",
                          stacklevel=2)
        return super().find(ctx)
