"""``preset: paper | ours`` of the methods that rank weights once or in rounds (SNIP, GraSP,
SynFlow, IMP).

``paper``: one ranking over every prunable layer at once (the papers' global threshold, also
their authors' code and open_lth's ``sparse_global``), whatever ``sparsity.allocation`` says;
the run's kept count is kept, so both presets keep as many weights. BatchNorm is in the mode
the authors' code scores in (each method says which). A global ranking can leave a layer
without a weight at extreme sparsity (layer collapse, Tanaka et al. 2020): a warning says so.

``ours``: each layer keeps what ``sparsity.allocation`` (ERK by default) gives it, and
BatchNorm uses the batch's statistics; what the methods did before the presets existed.
"""

from __future__ import annotations

import warnings
from typing import Any, Literal

import torch
from pydantic import Field

from ..masks import Layout, check_bits
from .base import MethodContext, MethodParams

Preset = Literal["paper", "ours"]


class PresetParams(MethodParams):
    preset: Preset = Field("paper", description="paper: one ranking over all layers and "
                           "BatchNorm as the authors' code scores; ours: each layer keeps what "
                           "sparsity.allocation gives it, BatchNorm with the batch's statistics")


def ranking_layout(ctx: MethodContext, preset: str) -> Layout:
    """The layout a method ranks in: one unit over every layer at the run's kept count
    (``paper``), or the run's own (``ours``)."""
    layout = ctx.layout
    if preset == "ours" or layout.allocation == "global":
        return layout
    return Layout(names=layout.names, shapes=layout.shapes,
                  units=((0, layout.numel, layout.kept),), allocation="global")


def preset_info(ctx: MethodContext, layout: Layout, bits: torch.Tensor) -> dict[str, Any]:
    """What a result records of its ranking: the allocation it met (checked here when it is
    not the run's, whose units the search checks) and a warning for every layer a global
    ranking emptied."""
    info: dict[str, Any] = {"allocation": layout.allocation}
    if layout.units != ctx.layout.units:
        check_bits(layout, bits)
        info["exact"] = False  # exact in its own layout, not in the run's units
    offs = layout.offsets
    empty = [n for n, a, b in zip(layout.names, offs, offs[1:]) if not bool(bits[a:b].any())]
    if empty:
        warnings.warn(f"the global ranking left {', '.join(empty)} without a weight (layer "
                      f"collapse); preset: ours keeps every layer", stacklevel=3)
    return info
