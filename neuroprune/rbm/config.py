"""The ``rbm:`` config section (``kind: rbm_connectivity``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from ..section import Section
from .machine import VARIANTS

Variant = Literal["full", "random", "learned"]


class RBMConfig(Section):
    """Shape, training and evaluation of the RBMs compared by ``kind: rbm_connectivity``."""

    variants: list[Variant] = Field(
        list(VARIANTS), min_length=1, description="connectivities compared at one budget: "
        "full (fully connected, full_hidden units), random (a fixed random pattern), learned "
        "(network connectivity gradients)")
    hidden: int = Field(100, ge=1, description="hidden units of the sparse RBMs")
    full_hidden: int = Field(20, ge=1, description="hidden units of the fully connected RBM; "
                             "the connection budget of every variant is full_hidden x visible")
    epochs: int = Field(10, ge=1, description="passes over the training split")
    batch_size: int = Field(100, ge=1, description="examples per CD update")
    lr: float = Field(0.1, gt=0, description="learning rate of weights and biases")
    strength_lr: float = Field(1.0, gt=0, description="learning rate of the connection "
                               "strengths (learned variant)")
    pattern_every: int = Field(1, ge=1, description="CD updates between two choices of the "
                               "learned pattern from the strengths (1: every update); the "
                               "paper leaves it open")
    cd_steps: int = Field(1, ge=1, description="Gibbs steps of CD-k")
    persistent: bool = Field(False, description="persistent CD (chains kept across updates)")
    weight_decay: float = Field(0.0, ge=0, description="L2 decay of the weights")
    init_std: float = Field(0.1, gt=0, description="std of the initial weights (and range "
                            "of the initial strengths)")
    connection_gradient: Literal["weight", "magnitude"] = Field(
        "weight", description="what drives a strength: |G_ij| (magnitude) or G_ij * w_ij, "
        "the gradient of the connection's indicator (weight); the paper leaves it open")
    inactive_weights: Literal["learn", "frozen"] = Field(
        "learn", description="learned variant: weights of absent connections follow their CD "
        "gradient (learn) or stay (frozen)")
    binarise: Literal["threshold", "sample", "none"] = Field(
        "threshold", description="pixels scaled to [0, 1] by the training split's range, then "
        "> threshold (threshold), drawn once as Bernoulli (sample, seeded), or taken as they "
        "are and refused unless already 0/1 (none)")
    threshold: float = Field(0.5, gt=0, lt=1, description="binarise=threshold: the cut")
    eval_every: int = Field(1, ge=1, description="epochs between log-likelihood estimates "
                            "(the last epoch always has one)")
    ais_runs: int = Field(100, ge=2, description="AIS runs per estimate")
    ais_betas: int = Field(14500, ge=10, description="AIS intermediate distributions "
                           "(Salakhutdinov & Murray use 14,500)")
    objective_variant: Variant | None = Field(
        None, description="the variant whose last-epoch validation figures are the summary's "
        "val_log_likelihood and val_reconstruction_error (objectives of neuroprune tune); "
        "default: learned when compared, else the first of variants")

    @field_validator("variants")
    @classmethod
    def _distinct(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError(f"lists a variant twice: {v}")
        return v

    @model_validator(mode="after")
    def _compared(self) -> "RBMConfig":
        if self.objective_variant is not None and self.objective_variant not in self.variants:
            raise ValueError(f"objective_variant {self.objective_variant} is not among the "
                             f"variants {self.variants}; add it there or choose one of them")
        return self

    @property
    def scored_variant(self) -> str:
        """The variant whose validation figures are the run's objectives."""
        if self.objective_variant is not None:
            return self.objective_variant
        return "learned" if "learned" in self.variants else self.variants[0]
