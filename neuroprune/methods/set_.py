"""SET: sparse evolutionary training, drop by magnitude and grow at random.

Mocanu et al., "Scalable training of artificial neural networks with adaptive sparse
connectivity inspired by network science", Nature Communications 2018 (arXiv 1707.04780).
"""

from __future__ import annotations

from .dst import DropGrowUpdater, DynamicSparseMethod


class SETUpdater(DropGrowUpdater):
    def grow_scores(self, name, state, activations):
        return self.random_scores(name, state)


class SET(DynamicSparseMethod):
    name = "set"
    summary = "dynamic sparse training: drop smallest |w|, grow at random"
    citation = "Mocanu et al. 2018, arXiv 1707.04780"
    updater_cls = SETUpdater
