"""The ``sparsity:`` config section."""

from __future__ import annotations

from pydantic import Field, field_validator

from ..section import Section, registered
from .allocation import ALLOCATIONS
from .groups import STRUCTURES
from .structure import BUDGETS


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

    structure: str = Field(
        "element", description="what a mask removes: single weights (element), whole neurons "
        "of Linear layers, whole channels / filters of convolutions, or both (all); "
        "structured masks also remove the coupled biases, BatchNorm entries and inputs")
    budget: str = Field(
        "sparsity", description="structured masks: what target removes: a fraction of the "
        "prunable weights (sparsity), of the parameters or of the FLOPs")
    layers: list[str] | None = Field(None, description="structured masks: only the units of "
                                     "these layers (module names; default: every layer but "
                                     "the output)")
    latency_repeats: int = Field(3, ge=0, le=1000,
                                 description="least interleaved timing rounds behind "
                                 "each CPU latency figure of summary.json (dense, masked, "
                                 "compact at batch 1 and 256); more are run until each "
                                 "median's 95% interval is within 5% (at least 6, about 1 s "
                                 "per batch size); 0 leaves latency out")

    @field_validator("structure")
    @classmethod
    def _structure(cls, v: str) -> str:
        if v != "element" and v not in STRUCTURES:
            raise ValueError(f"choose element or one of {', '.join(STRUCTURES)}, got '{v}'")
        return v

    @field_validator("budget")
    @classmethod
    def _budget(cls, v: str) -> str:
        if v not in BUDGETS:
            raise ValueError(f"choose one of {', '.join(BUDGETS)}, got '{v}'")
        return v

    @field_validator("target")
    @classmethod
    def _range(cls, v: float) -> float:
        if not 0.0 <= v < 1.0:
            raise ValueError(f"must be in [0, 1) (0.9 keeps 10% of the weights), got {v}")
        return v
