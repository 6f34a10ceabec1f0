"""Dissipating gradients: remove the weights that stay nearest their initial value.

Haroon, "What to Prune and What Not to Prune at Initialization", arXiv 2209.02201 (2022), where
weights whose gradients dissipate early in training (so that they barely move from their
initial value) are judged unimportant.

The dense network is trained for ``epochs`` epochs; after each, the weights with the smallest
score are removed so that the target sparsity is reached at the last one (a linear ramp). The
score is how far a weight has moved from its initial value (``distance``), its accumulated
gradient magnitude (``gradient``), or the product of both ranks (``both``). The mask is then
trained from the initial weights (``rewind: true``) or from the trained ones.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field

from ..engine import State
from .base import Method, MethodContext, MethodParams, MethodResult
from .schedule import dense_bits, prune_to, round_row, train


class DGParams(MethodParams):
    epochs: int = Field(3, ge=1, description="dense epochs over which the target is reached")
    score: Literal["distance", "gradient", "both"] = "distance"
    rewind: bool = Field(True, description="train the final mask from the initial weights")


def _rank(x: torch.Tensor) -> torch.Tensor:
    flat = x.reshape(-1)
    r = torch.empty_like(flat, dtype=torch.float64)
    r[flat.argsort()] = torch.arange(len(flat), dtype=torch.float64)
    return (r / max(1, len(flat) - 1)).reshape(x.shape)


def dg_scores(kind: str, init: State, trained: State, grads: State, names) -> dict:
    out = {}
    for k in names:
        dist = (trained[k] - init[k]).abs()
        if kind == "distance":
            out[k] = dist
        elif kind == "gradient":
            out[k] = grads[k]
        else:
            out[k] = _rank(dist) * _rank(grads[k])
    return out


def dissipating_gradient_signal(ctx: MethodContext, epochs: int, score: str,
                                target: float, commit: bool = True):
    """Gradually prune the dense net by the DG score; returns (bits, trained weights, scores)."""
    bits = dense_bits(ctx.layout)
    weights = ctx.init
    grads_total: dict[str, torch.Tensor] = {}
    scores: dict[str, torch.Tensor] = {}
    for e in range(epochs):
        res = train(ctx, bits, weights, 1, collect_grads=True)
        weights = res.weights_of(0)
        for k in ctx.layout.names:
            grads_total[k] = grads_total.get(k, 0) + res.extras["grads"][k][0]
        scores = dg_scores(score, ctx.init, weights, grads_total, ctx.layout.names)
        bits = prune_to(ctx.layout, target * (e + 1) / epochs, scores, bits)
        if commit and ctx.commit is not None:
            ctx.commit(e, [round_row(e, res.row(0), bits)], {"generation": e})
    return bits, weights, scores


class DissipatingGradients(Method):
    name = "dissipating_gradients"
    summary = "prune the weights that moved least from init during the first dense epochs"
    citation = "Haroon 2022, arXiv 2209.02201"
    Params = DGParams

    def find(self, ctx: MethodContext) -> MethodResult:
        p = self.params
        bits, weights, _ = dissipating_gradient_signal(ctx, p.epochs, p.score,
                                                       ctx.layout.sparsity)
        return MethodResult(bits=bits, init=ctx.init if p.rewind else weights,
                            from_init=p.rewind)
