"""The ``ensemble:`` config section (``kind: ensemble_search``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ..section import Section, registered, registered_list
from .pool import DEFAULT_POOL, POOL
from .search import ALGORITHMS, FUSIONS, INITS


class EnsembleConfig(Section):
    """Which classifiers to select from, how to fuse them, and the evolutionary search."""

    pool: registered_list(POOL) = Field(list(DEFAULT_POOL), min_length=1,
                                        description="scikit-learn classifiers to select from")
    algorithm: registered(ALGORITHMS, "ga", "ga, umda or pbil")
    fusion: registered(FUSIONS, "majority", "majority, weighted (evolves weights) or average")
    init: registered(INITS, "random", "random, all_ones or best_k")
    population: int = Field(30, ge=2, description="ensembles per generation")
    generations: int = Field(20, ge=1, description="generations")
    diversity_weight: float = Field(0.0, ge=0, description="weight of the diversity term")
    diversity: Literal["disagreement", "double_fault"] = Field(
        "disagreement", description="how diversity is measured")
    size_penalty: float = Field(0.0, ge=0, description="subtracted per selected share of "
                                "the pool")
    val_fraction: float = Field(0.3, gt=0, lt=1, description="share of the training data "
                                "held out to score ensembles")
