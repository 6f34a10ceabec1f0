"""SNIP: single-shot pruning by connection sensitivity |g * w| at initialisation.

Lee, Ajanthan and Torr, "SNIP: Single-shot Network Pruning based on Connection Sensitivity",
ICLR 2019 (arXiv 1810.02340).
"""

from __future__ import annotations

import torch
from pydantic import Field

from ..masks import flatten, top_bits
from ..models import build_model
from .base import Method, MethodContext, MethodParams, MethodResult


class SnipParams(MethodParams):
    batches: int = Field(1, ge=1, description="mini-batches the sensitivity is summed over")


def connection_sensitivity(ctx: MethodContext, batches: int) -> dict[str, torch.Tensor]:
    """|dL/dw * w| of every prunable weight at ``ctx.init``, summed over ``batches``."""
    model = build_model(ctx.spec)
    model.load_state_dict(ctx.init)
    params = dict(model.named_parameters())
    g = torch.Generator().manual_seed(ctx.seed)
    perm = torch.randperm(len(ctx.data.train_y), generator=g)
    bs = ctx.settings.batch_size
    model.zero_grad()
    for b in range(batches):
        idx = perm[b * bs:(b + 1) * bs]
        if len(idx) == 0:
            break
        ctx.settings.per_network_loss(model(ctx.data.train_x[idx]).unsqueeze(0),
                                      ctx.data.train_y[idx])[0].backward()
    return {k: (params[k].grad * params[k]).abs().detach() for k in ctx.layout.names}


class Snip(Method):
    name = "snip"
    summary = "keep the connections with the largest |gradient x weight| at init (one shot)"
    citation = "Lee et al. 2019, arXiv 1810.02340"
    Params = SnipParams

    def find(self, ctx: MethodContext) -> MethodResult:
        scores = connection_sensitivity(ctx, self.params.batches)
        return MethodResult(bits=top_bits(ctx.layout, flatten(ctx.layout, scores)),
                            init=ctx.init)
