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
