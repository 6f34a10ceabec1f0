"""OICSR: out-in-channel sparsity regularisation.

Li, Gong, Zhang, Jiang, Zhang and Zhu, "OICSR: Out-In-Channel Sparsity Regularization for
Compact Deep Neural Networks", CVPR 2019 (arXiv 1905.11664). A group joins a layer's output
channel with the next layer's matching input channel (here: every entry the dependency graph
couples to the channel, BatchNorm and residual ties included); training adds
``strength * sum_g ||w_g||_2`` over these out-in groups, so the redundancy of both layers is
squeezed into the same channels. A channel's importance is its group's energy (the sum of
squared entries), and channels are removed globally, greedily by that energy, until the
budget is met, then fine-tuned. The paper prunes and fine-tunes over several rounds; one
round is taken here (each round would be another run of this method from the last's
weights), and the energies are compared across layers after dividing by each layer's mean
when ``normalise`` (the paper compares raw energies: ``normalise: false``).
"""

from __future__ import annotations

import torch

from .group_lasso import GroupNorms
from .structured import StructuredPruning


class OutInNorms(GroupNorms):
    """``sum_g ||w_g||_2`` over out-in channel groups."""

    entries = "all"


class OICSR(StructuredPruning):
    name = "oicsr"
    summary = "group lasso over out-in channel groups, remove the lowest-energy channels"
    citation = "Li et al. 2019, arXiv 1905.11664"
    penalty = OutInNorms

    def scores(self, space, rows: torch.Tensor) -> torch.Tensor:
        return space.channel_sums(rows.square(), "all")
