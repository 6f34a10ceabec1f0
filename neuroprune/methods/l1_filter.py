"""L1-norm filter pruning: train, remove the filters (and neurons) of smallest L1 norm,
fine-tune.

Li, Kadav, Durdanovic, Samet and Graf, "Pruning Filters for Efficient ConvNets", ICLR 2017
(arXiv 1608.08710). A filter's importance is the sum of its absolute kernel weights; the
feature map it produces, its BatchNorm entries and the next layer's matching kernels go with
it. The paper prunes each layer by a ratio chosen from a sensitivity analysis; here one
global ranking meets the budget, with each layer's norms divided by their mean
(``normalise``, an option) so that layers of different size compete fairly.
"""

from __future__ import annotations

import torch

from .structured import StructuredPruning


class L1Filter(StructuredPruning):
    name = "l1_filter"
    summary = "train, remove the filters and neurons of smallest L1 norm, fine-tune"
    citation = "Li et al. 2017, arXiv 1608.08710"

    def scores(self, space, rows: torch.Tensor) -> torch.Tensor:
        return space.channel_sums(rows.abs(), "filter")
