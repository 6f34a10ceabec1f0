"""The interface of every pruning / sparse-training method."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field, replace
from typing import Any, Callable, ClassVar

import torch
from pydantic import BaseModel, ConfigDict

from ..data import DataSplits
from ..engine import EvalTask, Evaluator, PopulationResult, State, TrainSettings
from ..masks import Layout
from ..models import ModelSpec


class MethodParams(BaseModel):
    """Base of every method's parameters (unknown keys are refused)."""

    model_config = ConfigDict(extra="forbid")


@dataclass
class MethodContext:
    """What a method may use. It never sees which backend the evaluator is.

    Six fields are needed (the model, data, masks' layout, training settings, evaluator and
    initial weights); the rest have defaults, so a test builds one with those six (or takes
    :func:`neuroprune.testing.method_context`)."""

    spec: ModelSpec
    data: DataSplits
    layout: Layout
    settings: TrainSettings
    evaluator: Evaluator
    init: State
    seed: int = 0
    final_epochs: int = 0
    commit: Callable[[int, list[dict[str, Any]], dict[str, Any]], None] | None = None
    resume_state: dict[str, Any] | None = None
    progress: bool = True
    rescale_init: bool = False  # sparsity.rescale_init: for training masks from ``init``
    device: torch.device = torch.device("cpu")  # where populations of masks live
    structure: Any = None  # StructureSpace of a structured run (sparsity.structure)
    budget: str = "sparsity"  # sparsity.budget: what the target removes
    target: float = 0.0  # sparsity.target: the fraction of it removed

    def with_layout(self, layout: Layout) -> "MethodContext":
        """The same context at another layout (another sparsity)."""
        return replace(self, layout=layout)

    def without_commit(self) -> "MethodContext":
        """The same context for a step whose rows are not recorded."""
        return replace(self, commit=None)

    def task(self, masks: torch.Tensor | None, epochs: int, **options: Any) -> EvalTask:
        """An evaluation of ``masks`` (``[P, n]`` rows) trained from ``init`` with the run's
        data order; ``options`` are further :class:`EvalTask` fields."""
        options.setdefault("init", self.init)
        options.setdefault("rescale_init", self.rescale_init)
        return EvalTask(masks=masks, epochs=epochs, data_seed=self.seed, **options)


@dataclass
class MethodResult:
    """The mask found (flat bits in ``layout`` order) and the weights to train it from.

    ``from_init`` is False when ``init`` holds trained weights (IMP with a learning-rate
    restart, retraining after magnitude pruning): they are not rescaled. A method that trains
    its own final network (RigL, SET) sets ``trained`` (a one-network result).
    """

    bits: torch.Tensor
    init: State
    from_init: bool = True
    trained: PopulationResult | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def exact(self) -> bool:
        """Whether every unit of the run's layout keeps exactly its count of connections (a
        method that meets its budget otherwise says ``info["exact"] = False``)."""
        return bool(self.info.get("exact", True))


class Method(ABC):
    """One pruning or sparse-training method. Add one: one file, one line in the registry."""

    name: ClassVar[str]
    summary: ClassVar[str]
    citation: ClassVar[str] = ""
    Params: ClassVar[type[MethodParams]] = MethodParams
    #: True: removes neurons and channels (bits over ``ctx.structure.layout``), not weights
    structured: ClassVar[bool] = False
    #: True: scores the given weights once and trains nothing itself, so it can prune a
    #: trained model without any training (``training.epochs: 0``)
    one_shot: ClassVar[bool] = False

    def __init__(self, params: MethodParams | None = None):
        self.params = params if params is not None else self.Params()

    @abstractmethod
    def find(self, ctx: MethodContext) -> MethodResult:
        """Search for a mask at the layout's sparsity."""

    def resumes(self, state: dict[str, Any]) -> bool:
        """Whether :meth:`find` continues from ``state``, what its last committed generation
        saved (``ctx.resume_state``). A method that does not runs its search again from the
        start when its run is resumed (deterministically, to the same result), and what the
        interrupted run trained is not counted twice."""
        return False

    def search_network_epochs(self, final_epochs: int, sparsity: float) -> int:
        """Network-epochs of training the search itself spends (one network trained for one
        epoch is one) when the final training has ``final_epochs`` and the target is
        ``sparsity``, that training not included: what an equal-compute comparison subtracts
        from its budget."""
        return 0

    def state_bytes(self, layout: Layout) -> int:
        """Memory the search's own state needs on the engine's device (a population of
        masks, say); checked against the free memory before anything runs."""
        return 0
