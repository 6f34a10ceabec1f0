"""The small interface every backend implements. Searches receive an :class:`Evaluator` and
never import a backend, so the same search runs locally, one network at a time or on Ray."""

from __future__ import annotations

from abc import ABC, abstractmethod

from .task import EvalTask, PopulationResult


class Evaluator(ABC):
    """Evaluates whole populations. Implementations: ``sequential``, ``local``, ``ray``."""

    name: str = "evaluator"
    device: str = "cpu"

    @abstractmethod
    def evaluate(self, task: EvalTask) -> PopulationResult:
        """Results for every network of ``task``, in order."""

    def describe(self) -> str:
        """One line on where and how populations are trained."""
        return self.name

    def close(self) -> None:
        """Release workers and device memory."""

    def __enter__(self) -> "Evaluator":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Metered(Evaluator):
    """An evaluator that records the training it was asked for: network-epochs (one network
    trained for one epoch is one) over every task, the compute a method spent."""

    def __init__(self, inner: Evaluator):
        self.inner = inner
        self.name, self.device = inner.name, inner.device
        self.network_epochs = 0

    def evaluate(self, task: EvalTask) -> PopulationResult:
        self.network_epochs += len(task) * task.epochs
        return self.inner.evaluate(task)

    def describe(self) -> str:
        return self.inner.describe()

    def close(self) -> None:
        self.inner.close()
