"""Local backends: the vectorised population engine, and the one-by-one reference."""

from __future__ import annotations

from ..engine import EvalTask, Evaluator, PopulationResult, PopulationTrainer, ReferenceTrainer
from ..engine.evaluator import run_task


class LocalEvaluator(Evaluator):
    """The whole population on one device, trained as stacked tensors."""

    name = "local"

    def __init__(self, spec, data, settings, device="cpu", chunk_size=None):
        self.trainer = PopulationTrainer(spec, data, settings, device=device,
                                         chunk_size=chunk_size)
        self.device = str(self.trainer.device)

    def evaluate(self, task: EvalTask) -> PopulationResult:
        return run_task(self.trainer, task)


class SequentialEvaluator(LocalEvaluator):
    """Reference backend: one plain ``nn.Module`` after another (slow; for checking).
    ``chunk_size`` does not apply: every network trains alone."""

    name = "sequential"

    def __init__(self, spec, data, settings, device="cpu", chunk_size=None):
        self.trainer = ReferenceTrainer(spec, data, settings, device=device)
        self.device = str(self.trainer.device)
