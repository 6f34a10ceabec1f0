"""K-starts combined with dissipating gradients, in both readings of the paper.

Haroon, "What to Prune and What Not to Prune at Initialization", arXiv 2209.02201 (2022),
claims the combination beats each method alone. The abstract does not say how they combine,
so both readings are here (``combination``):

* ``kstarts_then_dg``: K-starts first, at a lower sparsity (``kstarts_density`` times the
  target's kept weights), the winner by magnitude/gradient after ``search_epochs`` (the
  paper's variant, or our GA with ``variant: ga``); then dissipating gradients prunes the
  winner further to the target while it keeps training (``dg_epochs``, ``dg_rule``), and the
  final training goes on from there (no rewinding).
* ``dg_seeds_kstarts`` (our earlier version): the dense network trains for ``dg_epochs``;
  each weight's score is how far it moved (or its gradient, or both). The k starting masks are
  drawn from that score (Gumbel top-k: a weight that moved more is more likely kept;
  ``temperature`` 0 gives k copies of the top mask, large values approach random masks), then
  K-starts runs from them; with the GA, mutations drop the kept connections that moved least
  in each mask's own fitness training and regrow at random.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field

from ..evolution.operators import Draws
from ..masks import top_rows
from .base import MethodContext, MethodResult
from .dissipating import DGParams, _rank, prune_by_dissipation
from .kstarts import KStarts, KStartsParams


class KStartsDGParams(KStartsParams):
    combination: Literal["dg_seeds_kstarts", "kstarts_then_dg"] = Field(
        "dg_seeds_kstarts", description="kstarts_then_dg: K-starts at a lower sparsity, then "
        "DG prunes the winner to the target; dg_seeds_kstarts: the DG score draws K-starts' "
        "starting masks")
    mutation: Literal["random", "magnitude", "movement"] = Field(
        "movement", description="mutations drop the kept connections that moved least in "
        "the fitness training (the DG signal) and regrow at random")
    mutation_prob: float = Field(0.8, ge=0, le=1, description="probability that a child is "
                                 "mutated")
    mutation_rate: float = Field(0.2, gt=0, le=1, description="share of kept weights swapped")
    dg_epochs: int = Field(1, ge=1, description="epochs of the dissipating-gradient training")
    dg_score: Literal["distance", "gradient", "both"] = Field(
        "distance", description="what ranks the weights in the DG training")
    dg_rule: Literal["fraction", "ramp"] = Field(
        "ramp", description="kstarts_then_dg: how DG prunes the winner (see dissipating_"
        "gradients)")
    dg_fraction: float = Field(0.1, gt=0, description="kstarts_then_dg, fraction rule: "
                               "relative change below which a weight is dropped")
    kstarts_density: float = Field(2.0, ge=1, description="kstarts_then_dg: K-starts keeps "
                                   "this many times the target's kept weights")
    temperature: float = Field(0.5, ge=0, description="dg_seeds_kstarts: spread of the k "
                               "starting masks")


class KStartsDG(KStarts):
    name = "kstarts_dg"
    summary = "K-starts combined with dissipating gradients (both readings)"
    citation = "Haroon 2022, arXiv 2209.02201"
    Params = KStartsDGParams

    def dg(self, rule: str, target_epochs: int | None = None) -> DGParams:
        p = self.params
        return DGParams(rule=rule, epochs=target_epochs or p.dg_epochs, fraction=p.dg_fraction,
                        score=p.dg_score, rewind=False)

    def resumes(self, state) -> bool:
        # kstarts_then_dg's generations after the K-starts stage belong to DG, which starts
        # over; dg_seeds_kstarts is the GA after an uncommitted DG scoring
        return self.params.combination == "dg_seeds_kstarts" and super().resumes(state)

    def find(self, ctx: MethodContext) -> MethodResult:
        if self.params.combination == "dg_seeds_kstarts":
            return super().find(ctx)
        return self.kstarts_then_dg(ctx)

    def kstarts_then_dg(self, ctx: MethodContext) -> MethodResult:
        p, target = self.params, ctx.layout.sparsity
        loose = ctx.layout.at(max(0.0, 1.0 - (1.0 - target) * p.kstarts_density))
        first = KStarts(self.params)  # the K-starts stage, at the lower sparsity
        stage = first.find(ctx.with_layout(loose))
        after = 1 if p.variant == "paper" else p.generations  # the K-starts stage's rows
        bits, weights, _, _ = prune_by_dissipation(
            ctx, self.dg(p.dg_rule), target, bits=stage.bits, init=stage.init,
            generation=after)
        return MethodResult(bits=bits, init=weights, from_init=False,
                            info={**{k: v for k, v in stage.info.items() if k != "logbook"},
                                  "combination": "kstarts_then_dg",
                                  "kstarts_sparsity": loose.sparsity})

    def initial_bits(self, ctx: MethodContext, draws: Draws) -> torch.Tensor:
        """The starting masks drawn from the DG score (``dg_seeds_kstarts``)."""
        p = self.params
        _, _, scores, _ = prune_by_dissipation(ctx.without_commit(), self.dg("ramp"), 0.0)
        # ranks make the temperature mean the same thing for every score and layer
        logits = _rank(scores.to(draws.device).unsqueeze(0))[0] * 10.0
        u = draws.uniform(p.population, (len(logits),)).double().clamp(1e-12, 1 - 1e-12)
        gumbel = -torch.log(-torch.log(u))  # Gumbel top-k: one draw per mask
        return top_rows(ctx.layout, logits + p.temperature * 10.0 * gumbel)

    def search_network_epochs(self, final_epochs: int, sparsity: float) -> int:
        return self.params.dg_epochs + super().search_network_epochs(final_epochs, sparsity)
