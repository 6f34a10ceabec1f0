"""SNIP: single-shot pruning by connection sensitivity |g * w| at initialisation.

Lee, Ajanthan and Torr, "SNIP: Single-shot Network Pruning based on Connection Sensitivity",
ICLR 2019 (arXiv 1810.02340).

``preset: paper`` (the default): the weights with the largest sensitivity over all layers at
once (the paper's single threshold on the normalised sensitivities; the normalisation by
their sum does not change the ranking), scored with BatchNorm and dropout in inference mode,
as the authors' code scores (``is_train: False`` when it prunes). ``preset: ours``: each layer
keeps what ``sparsity.allocation`` (ERK) gives it, scored in training mode. The authors'
code also ranks the biases; here only the weights of the mask are ranked.
"""

from __future__ import annotations

import torch
from pydantic import Field

from ..masks import flatten, top_bits, unflatten
from .base import Method, MethodContext, MethodResult
from .preset import PresetParams, preset_info, ranking_layout
from .scores import SnipScores


class SnipParams(PresetParams):
    batches: int = Field(1, ge=1, description="mini-batches the sensitivity is summed over")


def connection_sensitivity(ctx: MethodContext, batches: int,
                           training: bool = True) -> dict[str, torch.Tensor]:
    """|dL/dw * w| of every prunable weight at ``ctx.init``, summed over ``batches``,
    computed on the evaluator's device with BatchNorm in training mode or not."""
    res = ctx.evaluator.evaluate(ctx.task(None, 0, size=1, rescale_init=False,
                                          hooks=(SnipScores(ctx.layout, batches, training),)))
    return {k: v[0] for k, v in unflatten(ctx.layout, res.extras["scores"]).items()}


class Snip(Method):
    name = "snip"
    one_shot = True
    summary = "keep the connections with the largest |gradient x weight| at init (one shot)"
    citation = "Lee et al. 2019, arXiv 1810.02340"
    Params = SnipParams

    def find(self, ctx: MethodContext) -> MethodResult:
        p = self.params
        scores = connection_sensitivity(ctx, p.batches, training=p.preset == "ours")
        layout = ranking_layout(ctx, p.preset)
        bits = top_bits(layout, flatten(layout, scores))
        return MethodResult(bits=bits, init=ctx.init, info=preset_info(ctx, layout, bits))
