"""SynFlow: data-free iterative pruning by synaptic flow.

Tanaka, Kunin, Yamins and Ganguli, "Pruning neural networks without any data by iteratively
conserving synaptic flow", NeurIPS 2020 (arXiv 2006.05467).

The network's parameters are replaced by their absolute values, an all-ones input is passed
through, and each weight is scored ``|w * dR/dw|`` with ``R`` the sum of the outputs; the
density is lowered exponentially over ``iterations`` rounds. Double precision keeps R finite.
BatchNorm is in evaluation mode, as in the authors' code (``model.eval()`` in its prune loop).

``preset: paper`` (the default): every round ranks the weights over all layers at once, as the
paper and its code (``mask_scope: global``) do; that ranking is what keeps layers from
collapsing, the paper's point. ``preset: ours``: each layer keeps what
``sparsity.allocation`` (ERK) gives it in every round.
"""

from __future__ import annotations

from pydantic import Field

from .base import Method, MethodContext, MethodResult
from .preset import PresetParams, preset_info, ranking_layout
from .scores import SynFlowPruning


class SynFlowParams(PresetParams):
    iterations: int = Field(100, ge=1, description="pruning rounds (exponential schedule)")


class SynFlow(Method):
    name = "synflow"
    one_shot = True
    summary = "data-free iterative pruning that conserves synaptic flow"
    citation = "Tanaka et al. 2020, arXiv 2006.05467"
    Params = SynFlowParams

    def find(self, ctx: MethodContext) -> MethodResult:
        layout = ranking_layout(ctx, self.params.preset)
        res = ctx.evaluator.evaluate(ctx.task(None, 0, size=1, rescale_init=False, hooks=(
            SynFlowPruning(layout, self.params.iterations),)))
        bits = res.extras["bits"][0]
        return MethodResult(bits=bits, init=ctx.init, info=preset_info(ctx, layout, bits))
