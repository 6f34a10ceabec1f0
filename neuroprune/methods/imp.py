"""Iterative magnitude pruning with rewinding: lottery tickets.

Frankle and Carbin, "The Lottery Ticket Hypothesis: Finding Sparse, Trainable Neural
Networks", ICLR 2019 (arXiv 1803.03635); rewinding to an early step: Frankle et al., "Linear
Mode Connectivity and the Lottery Ticket Hypothesis", ICML 2020 (arXiv 1912.05671); retraining
with a learning-rate restart instead of rewinding (SLR): Zimmer, Spiegel and Pokutta, "How I
Learned To Stop Worrying And Love Retraining", ICLR 2023 (arXiv 2111.00843).

Each round trains the masked network, removes ``rate`` of the remaining weights with the
smallest trained magnitude, and rewinds the rest to their initial (or early-epoch) values, or
keeps the trained values and restarts the learning-rate schedule (``retrain: lr_restart``).

``preset: paper`` (the default): every round removes the smallest weights of all layers at
once, as open_lth's ``sparse_global`` (the reference code of the rewinding papers) and the
lottery-ticket paper's deeper networks do. ``preset: ours``: each layer keeps what
``sparsity.allocation`` (ERK) gives it at every round's sparsity. BatchNorm plays no part in
the score (trained magnitudes).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .base import MethodContext, MethodResult
from .preset import preset_info
from .schedule import RoundsMethod, RoundsParams, dense_bits, prune_to, train


class IMPParams(RoundsParams):
    rewind_epoch: int = Field(0, ge=0, description="rewind to the weights after this many "
                              "epochs of dense training (0: to init)")
    retrain: Literal["rewind", "lr_restart"] = Field(
        "rewind", description="rewind: retrain from the rewound weights; lr_restart: keep the "
        "trained weights and restart the learning-rate schedule")


class IMP(RoundsMethod):
    name = "imp"
    summary = "iterative magnitude pruning, rewinding to init or epoch k (lottery tickets)"
    citation = "Frankle & Carbin 2019, arXiv 1803.03635; Zimmer et al. 2023 (SLR)"
    Params = IMPParams

    def find(self, ctx: MethodContext) -> MethodResult:
        p = self.params
        layout, epochs, steps = self.plan(ctx)
        bits = dense_bits(layout)
        rewind = ctx.init
        if p.rewind_epoch > 0:
            rewind = train(ctx, bits, ctx.init, p.rewind_epoch).weights_of(0)
        start = rewind
        for r, sparsity in enumerate(steps):
            res = train(ctx, bits, start, epochs)
            trained = res.weights_of(0)
            bits = prune_to(layout, sparsity, {k: trained[k].abs() for k in layout.names}, bits)
            start = rewind if p.retrain == "rewind" else trained
            self.commit_round(ctx, r, res, bits)
        return MethodResult(bits=bits, init=start,
                            info={"rounds": len(steps), **preset_info(ctx, layout, bits)},
                            from_init=p.retrain == "rewind" and p.rewind_epoch == 0)
