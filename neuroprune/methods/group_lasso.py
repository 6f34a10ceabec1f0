"""Group lasso on neurons and channels (structured sparsity learning), then remove the groups
of smallest norm and fine-tune.

Wen, Wu, Wang, Chen and Li, "Learning Structured Sparsity in Deep Neural Networks", NeurIPS
2016 (arXiv 1608.03665). The penalty is ``strength * sum_g ||w_g||_2`` over the groups; a
group is what produces one neuron or channel (the paper's filter-wise group: its filter, and
here also its bias and BatchNorm entries, which the dependency graph ties to it). The next
layers' matching inputs are OICSR's addition (``oicsr``). The paper zeroes groups whose norm
falls under a threshold; here the smallest go until the budget is met, ranked by their norm
(divided by the layer's mean with ``normalise``).
"""

from __future__ import annotations

import torch

from .structured import Penalty, StructuredPruning


class GroupNorms(Penalty):
    """``sum_g ||w_g||_2`` over every group channel, over its ``entries``."""

    entries = "out"

    def penalty(self, rows: torch.Tensor) -> torch.Tensor:
        return (self.space.channel_sums(rows.square(), self.entries) + 1e-12).sqrt().sum(1)


class GroupLasso(StructuredPruning):
    name = "group_lasso"
    summary = "group lasso on neurons and channels while training, remove the smallest groups"
    citation = "Wen et al. 2016, arXiv 1608.03665"
    penalty = GroupNorms

    def scores(self, space, rows: torch.Tensor) -> torch.Tensor:
        return space.channel_sums(rows.square(), self.penalty.entries).sqrt()
