"""SNIP: single-shot pruning by connection sensitivity |g * w| at initialisation.

Lee, Ajanthan and Torr, "SNIP: Single-shot Network Pruning based on Connection Sensitivity",
ICLR 2019 (arXiv 1810.02340).
"""

from __future__ import annotations

import torch
from pydantic import Field

from ..masks import flatten, top_bits, unflatten
from .base import Method, MethodContext, MethodParams, MethodResult
from .scores import SnipScores


class SnipParams(MethodParams):
    batches: int = Field(1, ge=1, description="mini-batches the sensitivity is summed over")


def connection_sensitivity(ctx: MethodContext, batches: int) -> dict[str, torch.Tensor]:
    """|dL/dw * w| of every prunable weight at ``ctx.init``, summed over ``batches``,
    computed on the evaluator's device."""
    res = ctx.evaluator.evaluate(ctx.task(None, 0, size=1, rescale_init=False,
                                          hooks=(SnipScores(ctx.layout, batches),)))
    return {k: v[0] for k, v in unflatten(ctx.layout, res.extras["scores"]).items()}


class Snip(Method):
    name = "snip"
    one_shot = True
    summary = "keep the connections with the largest |gradient x weight| at init (one shot)"
    citation = "Lee et al. 2019, arXiv 1810.02340"
    Params = SnipParams

    def find(self, ctx: MethodContext) -> MethodResult:
        scores = connection_sensitivity(ctx, self.params.batches)
        return MethodResult(bits=top_bits(ctx.layout, flatten(ctx.layout, scores)),
                            init=ctx.init)
