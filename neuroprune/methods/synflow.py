"""SynFlow: data-free iterative pruning by synaptic flow.

Tanaka, Kunin, Yamins and Ganguli, "Pruning neural networks without any data by iteratively
conserving synaptic flow", NeurIPS 2020 (arXiv 2006.05467).

The network's parameters are replaced by their absolute values, an all-ones input is passed
through, and each weight is scored ``|w * dR/dw|`` with ``R`` the sum of the outputs; the
density is lowered exponentially over ``iterations`` rounds. Double precision keeps R finite.
"""

from __future__ import annotations

import torch
from pydantic import Field

from ..masks import bits_to_mask, flatten, top_bits
from ..models import build_model
from .base import Method, MethodContext, MethodParams, MethodResult
from .schedule import dense_bits


class SynFlowParams(MethodParams):
    iterations: int = Field(100, ge=1, description="pruning rounds (exponential schedule)")


class SynFlow(Method):
    name = "synflow"
    summary = "data-free iterative pruning that conserves synaptic flow"
    citation = "Tanaka et al. 2020, arXiv 2006.05467"
    Params = SynFlowParams

    def find(self, ctx: MethodContext) -> MethodResult:
        model = build_model(ctx.spec).double()
        model.load_state_dict({k: v.double().abs() for k, v in ctx.init.items()})
        params = dict(model.named_parameters())
        orig = {k: params[k].detach().clone() for k in ctx.layout.names}
        ones = torch.ones(1, *ctx.spec.input_shape, dtype=torch.float64)
        bits = dense_bits(ctx.layout)
        density = 1.0 - ctx.layout.sparsity
        n = self.params.iterations
        for i in range(1, n + 1):
            mask = bits_to_mask(ctx.layout, bits)
            with torch.no_grad():
                for k in ctx.layout.names:
                    params[k].copy_(orig[k] * mask[k])
            model.zero_grad()
            model(ones).sum().backward()
            scores = {k: (params[k].grad * params[k]).abs().detach() for k in ctx.layout.names}
            sparsity = 1.0 - density ** (i / n)
            layout = ctx.layout.at(sparsity if i < n else ctx.layout.sparsity)
            bits = top_bits(layout, flatten(ctx.layout, scores), within=bits)
        return MethodResult(bits=bits, init=ctx.init)
