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

from ..masks import flatten, top_bits
from ..models import build_model
from .base import Method, MethodContext, MethodParams, MethodResult


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


def grasp_scores(ctx: MethodContext, temperature: float, per_class: int) -> dict:
    """``-w * Hg`` of every prunable weight at ``ctx.init``."""
    model = build_model(ctx.spec)
    model.load_state_dict(ctx.init)
    model.train()
    buffers = {k: v.clone() for k, v in model.named_buffers()}
    params = dict(model.named_parameters())
    weights = [params[k] for k in ctx.layout.names]
    idx = balanced_batch(ctx.data.train_y, per_class, ctx.seed)
    x, y = ctx.data.train_x[idx], ctx.data.train_y[idx]

    def loss() -> torch.Tensor:
        out = model(x) / temperature
        return ctx.settings.per_network_loss(out.unsqueeze(0), y)[0]

    g = [t.detach() for t in torch.autograd.grad(loss(), weights)]
    grads = torch.autograd.grad(loss(), weights, create_graph=True)
    z = sum((a * b).sum() for a, b in zip(g, grads))
    hg = torch.autograd.grad(z, weights)
    model.load_state_dict({**model.state_dict(), **buffers})
    return {k: -(w.detach() * h) for k, w, h in zip(ctx.layout.names, weights, hg)}


class GraSP(Method):
    name = "grasp"
    summary = "keep the weights whose removal would reduce gradient flow most (Hessian-gradient)"
    citation = "Wang et al. 2020, arXiv 2002.07376"
    Params = GraSPParams

    def find(self, ctx: MethodContext) -> MethodResult:
        scores = grasp_scores(ctx, self.params.temperature, self.params.samples_per_class)
        # the lowest scores are kept: top_bits keeps the highest, so negate
        keep = top_bits(ctx.layout, -flatten(ctx.layout, scores))
        return MethodResult(bits=keep, init=ctx.init)
