"""Sparse group lasso with an l0 term, by variable splitting.

Bui, Alam, Nguyen, Nguyen and Xin, "Improving Network Slimming with Nonconvex Regularization"
/ "Structured Sparsity of Convolutional Neural Networks via Nonconvex Sparse Group
Regularization" (arXiv 1912.07868). The weights ``W`` are trained by SGD on
``loss + beta/2 ||W - V||^2`` while an auxiliary copy ``V`` carries the regulariser
``lambda_1 ||V||_1 + lambda_g sum_g ||V_g||_2 + lambda_0 ||V||_0``: after every step ``V`` is
the proximal point of ``W`` (soft threshold by ``lambda_1 / beta``, group shrinkage by
``lambda_g / beta``, then hard threshold at ``sqrt(2 lambda_0 / beta)``), and ``beta`` grows
by ``growth`` every ``every`` epochs, as in their code, so ``W`` is pulled onto the sparse
``V``. ``lambda_g`` is the per-network strength; ``lambda_1`` and ``lambda_0`` are
``l1_ratio`` and ``l0_ratio`` times it. Composing the three proximal steps in this order
(rather than solving the joint proximal problem) is what the paper leaves open and their
code does. Groups are what produces each neuron or channel (filter, bias, BatchNorm); the l1
and l0 terms act on the prunable weights. The channels whose ``V`` group has the smallest
norm go until the budget is met; with ``element_zeros`` the zeros ``V`` has inside the kept
channels are masked too; fine-tuning starts from ``V``.
"""

from __future__ import annotations

from typing import Any

import torch
from pydantic import Field

from .structured import Penalty, StructuredParams, StructuredPruning


class SparseGroupL0Params(StructuredParams):
    strengths: list[float] = Field([1e-4], min_length=1, description="lambda_g, the group "
                                   "term: one network per value, trained together")
    l1_ratio: float = Field(1.0, ge=0, description="lambda_1 / lambda_g")
    l0_ratio: float = Field(0.1, ge=0, description="lambda_0 / lambda_g")
    beta: float = Field(1.0, gt=0, description="initial coupling of W to V")
    growth: float = Field(1.25, ge=1, description="beta's factor every `every` epochs")
    every: int = Field(1, ge=1, description="epochs between beta's growth steps")
    element_zeros: bool = Field(True, description="also mask the weights V zeroed inside "
                                "the kept channels")


class SplitSparseGroupL0(Penalty):
    """``beta/2 ||W - V||^2`` in the loss; ``V`` the proximal point of ``W`` after each
    step."""

    def __init__(self, space, strengths: torch.Tensor, params: SparseGroupL0Params):
        super().__init__(space, strengths, params)
        self.beta = params.beta
        self.v: torch.Tensor | None = None
        self.weights = space.layout.offsets[len(space.weights)]  # weights come first

    def _lambda(self, state) -> torch.Tensor:
        return self.network_strengths(state)[:, None]

    def start(self, state) -> None:
        with torch.no_grad():
            self.v = self.prox(self.space.rows_of(state.params).detach(), self._lambda(state))

    def prox(self, w: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
        p, b, k = self.params, self.beta, self.weights
        v = w.clone()
        v[:, :k] = w[:, :k].sign() * (w[:, :k].abs() - p.l1_ratio * lam / b).clamp_min(0)
        norms = self.space.channel_sums(v.square(), "out").sqrt()  # [P, G]
        shrink = (1 - lam / (b * norms.clamp_min(1e-12))).clamp_min(0)
        v = self.space.scale_channels(v, shrink, "out")
        hard = (2 * p.l0_ratio * lam / b).sqrt()
        v[:, :k] = torch.where(v[:, :k].abs() < hard, torch.zeros_like(v[:, :k]), v[:, :k])
        return v

    def penalty(self, rows: torch.Tensor) -> torch.Tensor:
        return 0.5 * self.beta * (rows - self.v).square().sum(1)

    def loss(self, state) -> torch.Tensor:
        return self.penalty(self.space.rows_of(state.params))

    def after_step(self, state) -> None:
        with torch.no_grad():
            self.v = self.prox(self.space.rows_of(state.params), self._lambda(state))

    def end_epoch(self, state) -> None:
        if (state.epoch + 1) % self.params.every == 0:
            self.beta *= self.params.growth

    def finish(self, state) -> dict[str, Any]:
        return {"split": self.v.cpu()}


class SparseGroupL0(StructuredPruning):
    name = "sparse_group_l0"
    summary = "sparse group lasso plus l0 by variable splitting, remove the emptiest channels"
    citation = "Bui et al. 2019, arXiv 1912.07868"
    Params = SparseGroupL0Params
    penalty = SplitSparseGroupL0

    def trained_rows(self, space, trained) -> torch.Tensor:
        return trained.extras["split"].float()

    def scores(self, space, rows: torch.Tensor) -> torch.Tensor:
        return space.channel_sums(rows.square(), "out").sqrt()

    def refine(self, space, rows: torch.Tensor, trained: torch.Tensor) -> torch.Tensor:
        if not self.params.element_zeros:
            return rows
        k = space.layout.offsets[len(space.weights)]
        rows = rows.clone()
        rows[:, :k] &= trained[:, :k] != 0
        return rows
