"""The interface of every pruning / sparse-training method."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

import torch
from pydantic import BaseModel, ConfigDict

from ..data import DataSplits
from ..engine import Evaluator, PopulationResult, State, TrainSettings
from ..masks import Layout
from ..models import ModelSpec


class MethodParams(BaseModel):
    """Base of every method's parameters (unknown keys are refused)."""

    model_config = ConfigDict(extra="forbid")


@dataclass
class MethodContext:
    """What a method may use. It never sees which backend the evaluator is."""

    spec: ModelSpec
    data: DataSplits
    layout: Layout
    settings: TrainSettings
    evaluator: Evaluator
    init: State
    seed: int
    final_epochs: int
    commit: Callable[[int, list[dict[str, Any]], dict[str, Any]], None] | None = None
    resume_state: dict[str, Any] | None = None
    progress: bool = True
    rescale_init: bool = False  # sparsity.rescale_init: for training masks from ``init``


@dataclass
class MethodResult:
    """The mask found (flat bits in ``layout`` order) and the weights to train it from.

    A method that trains its own final network (RigL, SET) sets ``trained``.
    """

    bits: torch.Tensor
    init: State
    trained: PopulationResult | None = None
    info: dict[str, Any] = field(default_factory=dict)


class Method(ABC):
    """One pruning or sparse-training method. Add one: one file, one line in the registry."""

    name: ClassVar[str]
    summary: ClassVar[str]
    citation: ClassVar[str] = ""
    Params: ClassVar[type[MethodParams]] = MethodParams

    def __init__(self, params: MethodParams | None = None):
        self.params = params if params is not None else self.Params()

    @abstractmethod
    def find(self, ctx: MethodContext) -> MethodResult:
        """Search for a mask at the layout's sparsity."""
