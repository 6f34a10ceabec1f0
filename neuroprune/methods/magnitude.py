"""Magnitude pruning at initialisation: keep the largest initial weights.

Frankle et al., "Pruning Neural Networks at Initialization: Why Are We Missing the Mark?",
ICLR 2021 (arXiv 2009.08576) use it as the at-init baseline; the criterion is Han et al.,
"Learning both Weights and Connections for Efficient Neural Networks", NeurIPS 2015.
"""

from __future__ import annotations

from ..masks import flatten, top_bits
from .base import Method, MethodContext, MethodResult


class MagnitudeAtInit(Method):
    name = "magnitude"
    one_shot = True
    summary = "keep the largest-magnitude initial weights (one shot, at init)"
    citation = "Han et al. 2015; Frankle et al. 2021, arXiv 2009.08576"

    def find(self, ctx: MethodContext) -> MethodResult:
        scores = flatten(ctx.layout, {k: ctx.init[k].abs() for k in ctx.layout.names})
        return MethodResult(bits=top_bits(ctx.layout, scores), init=ctx.init)
