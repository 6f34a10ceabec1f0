"""SynFlow: data-free iterative pruning by synaptic flow.

Tanaka, Kunin, Yamins and Ganguli, "Pruning neural networks without any data by iteratively
conserving synaptic flow", NeurIPS 2020 (arXiv 2006.05467).

The network's parameters are replaced by their absolute values, an all-ones input is passed
through, and each weight is scored ``|w * dR/dw|`` with ``R`` the sum of the outputs; the
density is lowered exponentially over ``iterations`` rounds. Double precision keeps R finite.
"""

from __future__ import annotations

from pydantic import Field

from .base import Method, MethodContext, MethodParams, MethodResult
from .scores import SynFlowPruning


class SynFlowParams(MethodParams):
    iterations: int = Field(100, ge=1, description="pruning rounds (exponential schedule)")


class SynFlow(Method):
    name = "synflow"
    one_shot = True
    summary = "data-free iterative pruning that conserves synaptic flow"
    citation = "Tanaka et al. 2020, arXiv 2006.05467"
    Params = SynFlowParams

    def find(self, ctx: MethodContext) -> MethodResult:
        res = ctx.evaluator.evaluate(ctx.task(None, 0, size=1, rescale_init=False, hooks=(
            SynFlowPruning(ctx.layout, self.params.iterations),)))
        return MethodResult(bits=res.extras["bits"][0], init=ctx.init)
