"""The ``sparsity:`` config section."""

from __future__ import annotations

from pydantic import Field, field_validator

from ..section import Section, registered
from .allocation import ALLOCATIONS


class SparsityConfig(Section):
    """How sparse, and how the kept weights are shared between layers."""

    target: float = Field(0.9, description="fraction of prunable weights removed, in [0, 1)")
    allocation: registered(ALLOCATIONS, "erk", "how the kept weights are shared between "
                           "layers (uniform, global, erk)")
    rescale_init: bool = Field(True, description="when a mask is trained from the initial "
                               "weights, multiply its kept weights by 1/sqrt(layer density)")
    exclude: list[str] = Field([], description="layers kept dense and outside the mask: "
                               "'first' (the first prunable layer), 'output' (the output "
                               "layer) or parameter names")

    latency_repeats: int = Field(3, ge=0, description="timed CPU forward passes behind each "
                                 "latency figure of summary.json (dense, masked, compact at "
                                 "batch 1 and 256); 0 leaves latency out")

    @field_validator("target")
    @classmethod
    def _range(cls, v: float) -> float:
        if not 0.0 <= v < 1.0:
            raise ValueError(f"must be in [0, 1) (0.9 keeps 10% of the weights), got {v}")
        return v
