"""GraSP: prune at initialisation while preserving gradient flow.

Wang, Zhang and Grosse, "Picking Winning Tickets Before Training by Preserving Gradient Flow",
ICLR 2020 (arXiv 2002.07376). Each weight is scored ``-w * (H g)``, where ``g`` is the gradient
of the loss at initialisation and ``H g`` its Hessian-gradient product (a second backward pass
through ``g^T grad L``); the weights with the *highest* scores are removed, since removing them
reduces the gradient norm the least (or increases it).

As in the authors' code, the logits are divided by a temperature (``temperature``, 200) and the
batch holds ``samples_per_class`` examples of every class (10); both are options. BatchNorm
uses the batch's statistics (training mode) and its running statistics are left untouched.
"""

from __future__ import annotations

import torch
from pydantic import Field

from ..masks import top_bits
from .base import Method, MethodContext, MethodParams, MethodResult
from .scores import GraspScores


class GraSPParams(MethodParams):
    temperature: float = Field(200.0, gt=0, description="logits are divided by this")
    samples_per_class: int = Field(10, ge=1, description="examples of each class in the batch")


def balanced_batch(y: torch.Tensor, per_class: int, seed: int) -> torch.Tensor:
    """Indices of up to ``per_class`` random examples of every class, fixed by ``seed``."""
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(y), generator=g)
    ranked = y.cpu()[perm]
    # rank of each example among those of its class, in the random order
    order = torch.argsort(ranked, stable=True)
    first = torch.searchsorted(ranked[order], ranked[order])
    rank = torch.empty_like(order)
    rank[order] = torch.arange(len(order)) - first
    return perm[rank < per_class]


class GraSP(Method):
    name = "grasp"
    one_shot = True
    summary = "keep the weights whose removal would reduce gradient flow most (Hessian-gradient)"
    citation = "Wang et al. 2020, arXiv 2002.07376"
    Params = GraSPParams

    def find(self, ctx: MethodContext) -> MethodResult:
        p = self.params
        res = ctx.evaluator.evaluate(ctx.task(None, 0, size=1, rescale_init=False, hooks=(
            GraspScores(ctx.layout, p.temperature, p.samples_per_class, ctx.seed),)))
        # the lowest scores are kept: top_bits keeps the highest, so negate
        return MethodResult(bits=top_bits(ctx.layout, -res.extras["scores"][0]), init=ctx.init)
