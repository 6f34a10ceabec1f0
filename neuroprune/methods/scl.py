"""Sparse connectivity learning (SCL), structured form: a trainable gate per neuron or channel.

Tang, Liu, Yang, Xu and Zhang, "Automatic Sparse Connectivity Learning for Neural Networks",
IEEE TNNLS 2022 (arXiv 2201.05020). Every unit has a trainable score ``s``; its mask is the
unit step ``m = 1[s > 0]``, whose gradient is taken by the identity straight-through
estimator: ``dL/ds = dL/dm = sum over the unit's entries of dL/dw * w`` (what produces the
unit: filter, bias, BatchNorm). The mask gradients are normalised per feature (here: divided
by their largest magnitude within the layer, which the paper leaves open: ``normalise_by``),
and a penalty on the number of kept connections adds ``strength * (connections of the unit) /
(connections of its layer)`` to each score's gradient, so the mask keeps shrinking where
the data does not hold it up. Scores follow SGD with their own rate (``mask_lr``).

The population engine keeps masked weights at zero, so a unit switched off restarts from
zero if its score comes back (the paper's weights survive under the mask; ``dL/dw * w`` is
then zero and the penalty keeps it off). After training the units are ranked by their score
and the budget is met exactly as the other structured methods do; fine-tuning follows.
"""

from __future__ import annotations

from typing import Any

import torch
from pydantic import Field

from ..masks import unflatten
from .structured import Penalty, StructuredParams, StructuredPruning


class SCLParams(StructuredParams):
    strengths: list[float] = Field([1e-3], min_length=1, description="weight of the "
                                   "connection-count penalty: one network per value")
    mask_lr: float = Field(0.05, gt=0, description="SGD rate of the unit scores")
    normalise_by: str = Field("layer_max", pattern="^(layer_max|none)$",
                              description="how mask gradients are normalised per feature: "
                              "by the layer's largest magnitude, or not at all")


class UnitStepGates(Penalty):
    """Trainable unit scores, masks by a unit step, identity straight-through gradients."""

    def __init__(self, space, strengths: torch.Tensor, params: SCLParams):
        super().__init__(space, strengths, params)
        self.scores: torch.Tensor | None = None
        ones = torch.ones(1, space.layout.numel)
        # connections each unit carries, as a share of its layer's
        per_unit = space.channel_sums(ones, "out")[0]
        self.cost = torch.cat([per_unit[a:b] / per_unit[a:b].sum()
                               for a, b in zip(space.offsets, space.offsets[1:])])

    def loss(self, state) -> None:
        return None

    def start(self, state) -> None:
        self.scores = torch.ones(state.p, self.space.size, device=state.device)

    def after_backward(self, state) -> None:
        space = self.space
        g = self.gate_gradient(state, space.rows_of(state.params))
        if self.params.normalise_by == "layer_max":
            for a, b in zip(space.offsets, space.offsets[1:]):
                g[:, a:b] /= g[:, a:b].abs().amax(1, keepdim=True).clamp_min(1e-12)
        g = g + self.network_strengths(state)[:, None] * self.cost.to(state.device)
        self.scores -= self.params.mask_lr * g
        # every layer keeps its best unit, so no layer is cut through
        for a, b in zip(space.offsets, space.offsets[1:]):
            best = self.scores[:, a:b].argmax(1, keepdim=True)
            self.scores[:, a:b].scatter_(1, best, self.scores[:, a:b].gather(1, best).clamp_min(
                1e-6))
        rows = space.expand(self.scores > 0)
        for name, m in unflatten(space.layout, rows).items():
            state.masks[name].copy_(m)
        state.masks_updated()

    def finish(self, state) -> dict[str, Any]:
        return {"unit_scores": self.scores.cpu()}


class SCL(StructuredPruning):
    name = "scl"
    summary = "trainable unit gates (unit step, straight-through), connection-count penalty"
    citation = "Tang et al. 2022, arXiv 2201.05020"
    Params = SCLParams
    masked_training = True
    penalty = UnitStepGates
    score_extra = "unit_scores"
