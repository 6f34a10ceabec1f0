"""Mask updates during training (dynamic sparse training: RigL, SET, CTRE).

An updater is called by the trainer after the backward pass of a step it says is due, with the
stacked parameters (their ``.grad`` holds the *dense* gradient: pruned weights get gradients
too), the stacked float masks (changed in place) and, when it asks for them, each Linear layer's
input and output activations on the current batch.
"""

from __future__ import annotations

from typing import Any

import torch


class MaskUpdater:
    """Base class: never due. Subclasses set ``needs_activations`` and implement ``update``."""

    needs_activations = False

    def start(self, params: dict[str, torch.Tensor], masks: dict[str, torch.Tensor]) -> None:
        """Called once per chunk before training."""

    def due(self, step: int, total_steps: int) -> bool:
        return False

    def update(self, step: int, total_steps: int, params: dict[str, torch.Tensor],
               masks: dict[str, torch.Tensor], activations: dict[str, Any] | None) -> None:
        raise NotImplementedError


def reset_pruned_state(opt: torch.optim.Optimizer, params: dict[str, torch.Tensor],
                       masks: dict[str, torch.Tensor]) -> None:
    """Zero pruned weights and their optimizer state after a mask change.

    Dropped weights must not come back through momentum; grown ones start from zero with a
    clean state (as RigL does).
    """
    with torch.no_grad():
        for k, m in masks.items():
            p = params[k]
            p.mul_(m)
            for v in opt.state.get(p, {}).values():
                if isinstance(v, torch.Tensor) and v.shape == p.shape:
                    v.mul_(m)
