"""Random pruning at initialisation: the sanity baseline every method must beat.

Liu et al., "The Unreasonable Effectiveness of Random Pruning", ICLR 2022 (arXiv 2202.02643).
"""

from __future__ import annotations

import torch

from ..masks import random_bits
from .base import Method, MethodContext, MethodResult


class RandomMasks(Method):
    name = "random"
    one_shot = True
    summary = "uniformly random mask at the target sparsity (per allocation unit)"
    citation = "Liu et al. 2022, arXiv 2202.02643"

    def find(self, ctx: MethodContext) -> MethodResult:
        gen = torch.Generator().manual_seed(ctx.seed + 1)
        return MethodResult(bits=random_bits(ctx.layout, gen), init=ctx.init)
