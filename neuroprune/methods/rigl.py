"""RigL: drop by magnitude, grow by dense gradient magnitude, fixed sparsity.

Evci, Gale, Menick, Castro and Elsen, "Rigging the Lottery: Making All Tickets Winners",
ICML 2020 (arXiv 1911.11134).
"""

from __future__ import annotations

from .dst import DropGrowUpdater, DynamicSparseMethod


class RigLUpdater(DropGrowUpdater):
    def grow_scores(self, name, state, activations):
        return state.params[name].grad.abs()


class RigL(DynamicSparseMethod):
    name = "rigl"
    summary = "dynamic sparse training: drop smallest |w|, grow largest dense |gradient|"
    citation = "Evci et al. 2020, arXiv 1911.11134"
    updater_cls = RigLUpdater
