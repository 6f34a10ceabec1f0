"""The small interface every backend implements. Searches receive an :class:`Evaluator` and
never import a backend, so the same search runs locally, one-by-one or on Ray."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Sequence

import torch

from .population import PopulationResult, State


@dataclass
class EvalTask:
    """Train ``len(masks)`` networks for ``epochs`` from ``init`` and score them.

    ``init`` is one state shared by every network or one per network. ``data_seed`` fixes the
    mini-batch order, so an evaluation is a pure function of the task.
    """

    masks: Sequence[dict[str, torch.Tensor]]
    init: State | Sequence[State]
    epochs: int
    data_seed: int
    collect_grads: bool = False
    keep_weights: bool = False
    test: bool = False
    updater: object | None = None  # a MaskUpdater: masks change during training
    activations: Sequence[dict[str, str]] | None = None  # per network: role -> formula
    rescale_init: bool = False  # kept initial weights x 1/sqrt(layer density), per network
    curve: bool = False  # record train loss, validation loss and accuracy after every epoch

    def __len__(self) -> int:
        return len(self.masks)

    def slice(self, start: int, stop: int) -> "EvalTask":
        init = self.init if isinstance(self.init, dict) else list(self.init)[start:stop]
        return EvalTask(masks=list(self.masks)[start:stop], init=init, epochs=self.epochs,
                        data_seed=self.data_seed, collect_grads=self.collect_grads,
                        keep_weights=self.keep_weights, test=self.test, updater=self.updater,
                        activations=None if self.activations is None
                        else list(self.activations)[start:stop],
                        rescale_init=self.rescale_init, curve=self.curve)


def run_task(trainer, task: EvalTask) -> PopulationResult:
    """Run ``task`` on a PopulationTrainer or ReferenceTrainer (what every backend does)."""
    return trainer.run(task.init, task.masks, task.epochs, task.data_seed,
                       collect_grads=task.collect_grads, keep_weights=task.keep_weights,
                       test=task.test, updater=task.updater, activations=task.activations,
                       rescale_init=task.rescale_init, curve=task.curve)


class Evaluator(ABC):
    """Evaluates whole populations. Implementations: ``sequential``, ``local``, ``ray``."""

    name: str = "evaluator"
    device: str = "cpu"

    @abstractmethod
    def evaluate(self, task: EvalTask) -> PopulationResult:
        """Results for every network of ``task``, in order."""

    def close(self) -> None:
        """Release workers and device memory."""

    def __enter__(self) -> "Evaluator":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
