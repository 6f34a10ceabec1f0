"""Iterative pruning by an importance score: first-order Taylor importance of connections.

Molchanov, Mallya, Tyree, Frosio and Kautz, "Importance Estimation for Neural Network
Pruning", CVPR 2019 (arXiv 1906.10771). The importance of a parameter is the squared
first-order Taylor estimate of the change in loss when it is removed, ``(g * w)^2``, averaged
over the mini-batches since the last pruning step; the paper prunes iteratively: train, remove
the least important, fine-tune, repeat. Its experiments prune neurons and filters (the score
summed over a unit); here the unit is the single connection (the unit of the
``sparsity.structure: element`` masks this method searches), so a pruned connection is
deactivated and the rest keep training.

Open in the paper, named options here: ``score`` (``squared``: the paper's ``(g w)^2``;
``abs``: ``|g w|``, its first-order variant without squaring), ``rate`` (share of the remaining
connections removed per round; rounds are repeated until the target, as IMP's), and
``round_epochs`` (fine-tuning between pruning steps). Weights are never rewound: each round
continues from the last, and the final training fine-tunes the pruned network. Any
elementwise optimiser works (``training.optimizer``: sgd or adam).
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from pydantic import Field

from ..engine import TrainingHook, TrainState
from ..masks import flatten_rows, unflatten
from .base import MethodContext, MethodResult
from .preset import preset_info
from .schedule import RoundsMethod, RoundsParams, dense_bits, prune_to


class TaylorScores(TrainingHook):
    """Mean over the training steps of ``(dL/dw * w)^2`` (or ``|dL/dw * w|``) of the
    layout's weights: the extra ``scores`` (``[P, n]`` in layout order)."""

    def __init__(self, layout, score: str):
        self.layout, self.score = layout, score
        self.sums: dict[str, torch.Tensor] = {}

    def start(self, state: TrainState) -> None:
        self.sums = {k: torch.zeros_like(state.params[k]) for k in self.layout.names}

    def after_backward(self, state: TrainState) -> None:
        for k, acc in self.sums.items():
            g = state.params[k].grad
            if g is not None:
                gw = g * state.params[k]
                acc.add_(gw * gw if self.score == "squared" else gw.abs())

    def finish(self, state: TrainState) -> dict[str, Any]:
        steps = max(state.step, 1)
        mean = {k: v / steps for k, v in self.sums.items()}
        return {"scores": flatten_rows(self.layout, mean).detach().cpu()}


class TaylorParams(RoundsParams):
    score: Literal["squared", "abs"] = Field("squared", description="squared: (g w)^2, the "
                                             "paper's; abs: |g w|")


class TaylorPruning(RoundsMethod):
    name = "taylor"
    summary = "iterative pruning by first-order Taylor importance (g w)^2, fine-tuning between"
    citation = "Molchanov et al. 2019, arXiv 1906.10771"
    Params = TaylorParams

    def find(self, ctx: MethodContext) -> MethodResult:
        layout, epochs, steps = self.plan(ctx)
        bits, weights = dense_bits(layout), ctx.init
        for r, sparsity in enumerate(steps):
            res = ctx.evaluator.evaluate(ctx.task(
                bits.unsqueeze(0), epochs, init=weights, keep_weights=True,
                hooks=(TaylorScores(layout, self.params.score),), rescale_init=False))
            weights = res.weights_of(0)
            scores = unflatten(layout, res.extras["scores"][:1])
            bits = prune_to(layout, sparsity, {k: v[0] for k, v in scores.items()}, bits)
            self.commit_round(ctx, r, res, bits)
        return MethodResult(bits=bits, init=weights,
                            info={"rounds": len(steps), **preset_info(ctx, layout, bits)},
                            from_init=False)
