"""Variational Bernoulli pruning of units and filters.

Guenter and Sideris, "Robust Learning of Parsimonious Deep Neural Networks" (arXiv
2205.04650). Every unit (neuron or filter, with everything coupled to it) carries a Bernoulli
variable ``z_c`` with a learnt keep probability ``theta_c``; the variational objective is the
expected training loss under ``z ~ Bernoulli(theta)`` plus ``strength`` times the KL
divergence from a Bernoulli prior of keep probability ``prior`` (which pushes unneeded units
towards ``theta = 0``). Each step draws ``z`` per network (seeded per network, so a network
trains alike in any population), trains the weights through the drawn network, and moves
``theta`` by the gradient of the objective.

Open details, as options: the gradient of the expected loss with respect to ``theta`` is
estimated by the straight-through estimator at the drawn ``z`` (``dL/dz_c = sum of dL/dw *
w`` over what produces the unit), which may differ from the paper's estimator; ``theta`` is
learnt through its logit with its own rate (``theta_lr``); the KL is divided by the number of
training samples (one term per sample of the evidence lower bound). After training, the units
are ranked by ``theta`` until the budget is met, and fine-tuned.
"""

from __future__ import annotations

from typing import Any

import torch
from pydantic import Field

from ..masks import unflatten
from .structured import Penalty, StructuredParams, StructuredPruning

_DRAW = 0xB3  # purpose of the per-network uniforms of the Bernoulli draws


class BernoulliParams(StructuredParams):
    strengths: list[float] = Field([1.0], min_length=1, description="weight of the KL term: "
                                   "one network per value, trained together")
    prior: float = Field(0.1, gt=0, lt=1, description="keep probability of the prior")
    theta_lr: float = Field(0.5, gt=0, description="SGD rate of the keep logits")


class BernoulliGates(Penalty):
    """Bernoulli unit gates drawn every step; keep probabilities learnt variationally."""

    def __init__(self, space, strengths: torch.Tensor, params: BernoulliParams):
        super().__init__(space, strengths, params)
        self.logits: torch.Tensor | None = None
        self.full: dict[str, torch.Tensor] = {}

    def loss(self, state) -> None:
        return None

    def start(self, state) -> None:
        self.logits = torch.full((state.p, self.space.size), 2.0, device=state.device)
        self.full = {n: state.params[n].detach().clone() for n in self.space.layout.names}
        self._draw(state)

    def _draw(self, state) -> None:
        """Draw ``z`` for the next step: masks and weights of the drawn networks."""
        z = state.uniform(_DRAW, (self.space.size,)) < torch.sigmoid(self.logits)
        rows = self.space.expand(z)
        with torch.no_grad():
            for name, m in unflatten(self.space.layout, rows).items():
                state.masks[name].copy_(m)
                state.params[name].copy_(self.full[name] * m)
        self.z = z

    def after_backward(self, state) -> None:
        p = self.params
        dz = self.gate_gradient(state, self.space.rows_of(self.full))
        theta = torch.sigmoid(self.logits)
        s = self.network_strengths(state)
        prior = torch.tensor(p.prior)
        dkl = torch.logit(theta.clamp(1e-6, 1 - 1e-6)) - torch.logit(prior)
        n = len(state.data.train_y) if state.data is not None else 1
        grad_theta = dz + s[:, None] * dkl / n
        self.logits -= p.theta_lr * grad_theta * theta * (1 - theta)

    def after_step(self, state) -> None:
        with torch.no_grad():  # what the drawn network learnt goes back to the full weights
            for name, m in unflatten(self.space.layout, self.space.expand(self.z)).items():
                self.full[name] = torch.where(m.bool(), state.params[name], self.full[name])
        self._draw(state)

    def finish(self, state) -> dict[str, Any]:
        with torch.no_grad():  # the trained weights, not the last draw
            for name in self.space.layout.names:
                state.params[name].copy_(self.full[name])
        return {"keep_probability": torch.sigmoid(self.logits).cpu()}


class VariationalBernoulli(StructuredPruning):
    name = "bernoulli"
    summary = "Bernoulli unit gates with variationally learnt keep probabilities"
    citation = "Guenter & Sideris 2022, arXiv 2205.04650"
    Params = BernoulliParams
    masked_training = True
    penalty = BernoulliGates
    score_extra = "keep_probability"
