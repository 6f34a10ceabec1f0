"""i-SpaSP: structured pruning as sparse signal recovery.

Wolfe and Kyrillidis, "i-SpaSP: Structured Neural Pruning via Sparse Signal Recovery",
L4DC 2022 (arXiv 2112.04905). After dense training, the units to keep are chosen by a
CoSaMP-like loop on the residual between the dense network's output and the pruned one's
on a batch of training data: each iteration scores every unit by how much its gate would
reduce the residual (``|d/dg 1/2 ||f_dense(x) - f_g(x)||^2|`` with the gates ``g`` at the
current selection), merges the best candidates outside the selection with it (as many as it
holds: CoSaMP's 2s identification), and prunes the merged set back to the budget by each
unit's contribution to the output with the merged set on (``||df/dg_c||^2``, estimated by
``projections`` random projections: the estimation step); the first selection ranks the
dense network's units the same way, and the selection with the smallest residual is kept.
The paper prunes one hidden layer at a time against that layer's output; here every layer's
units are selected together against the network's output, with the budget shared through
the dependency graph's groups (``iterations``, ``projections`` and ``batch`` are options;
the paper's per-layer schedule is left out).
"""

from __future__ import annotations

import torch
from pydantic import Field
from torch.func import functional_call

from ..masks import unflatten
from ..models import build_model
from .structured import StructuredParams, StructuredPruning


class ISpaSPParams(StructuredParams):
    iterations: int = Field(5, ge=1, description="identification / estimation rounds")
    projections: int = Field(8, ge=1, description="random projections estimating each "
                             "unit's contribution to the output")
    batch: int = Field(256, ge=1, description="training samples the residual is taken on")
    normalise: bool = Field(False, description="the selection is already global")


class ISpaSP(StructuredPruning):
    name = "ispasp"
    summary = "select units by sparse recovery of the dense network's output (CoSaMP-like)"
    citation = "Wolfe & Kyrillidis 2022, arXiv 2112.04905"
    Params = ISpaSPParams

    def unit_scores(self, ctx, trained, rows: torch.Tensor) -> torch.Tensor:
        """The selection as scores: the kept units above the rest, each side ordered by its
        residual score, so that meeting the budget keeps the selection."""
        space = ctx.structure
        model = build_model(ctx.spec).eval()
        state = {k: v[0].float() for k, v in trained.weights.items()}
        x = ctx.data.train_x[:self.params.batch].float()
        with torch.no_grad():
            target = functional_call(model, state, (x,))

        def gated(gates: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            g = gates.float()[None].requires_grad_(True)
            scaled = space.scale_channels(rows[:1], g, "out")
            params = {**state, **{k: v[0] for k, v in unflatten(space.layout, scaled).items()}}
            return g, functional_call(model, params, (x,))

        def residual(gates: torch.Tensor) -> tuple[float, torch.Tensor]:
            """The residual's size and its gradient's magnitude per gate."""
            g, out = gated(gates)
            loss = 0.5 * (out - target).square().sum() / len(x)
            loss.backward()
            return float(loss.detach()), g.grad[0].abs()

        gen = torch.Generator().manual_seed(ctx.seed)

        def energy(gates: torch.Tensor) -> torch.Tensor:
            """What each unit adds to the output, ``||d f / d g_c||^2``, estimated with
            random projections (one backward pass each)."""
            total = torch.zeros(space.size)
            for _ in range(self.params.projections):
                g, out = gated(gates)
                (out * torch.randn(out.shape, generator=gen)).sum().backward()
                total += g.grad[0].square()
            return total

        def within(scores: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
            return space.meet(torch.where(allowed, scores, torch.tensor(-1.0))[None],
                              ctx.budget, ctx.target)[0]

        keep = within(energy(torch.ones(space.size)), torch.ones(space.size, dtype=torch.bool))
        best_err, best = residual(keep)[0], keep
        for _ in range(self.params.iterations):
            _, grad = residual(keep)  # identification: the gates that most reduce it
            outside = torch.where(keep, torch.tensor(-1.0), grad)
            merged = keep.clone()
            merged[outside.topk(min(int(keep.sum()), int((~keep).sum()))).indices] = True
            keep = within(energy(merged.float()), merged)  # estimation, back to the budget
            err = residual(keep)[0]
            if err < best_err:
                best_err, best = err, keep
            elif torch.equal(keep, best):
                break
        score = energy(best.float())
        return (best.float() + 1e-3 * score / (1 + score.max()))[None]
