"""Local backends: the configured trainer on one device, and the one-network-at-a-time
reference."""

from __future__ import annotations

from ..engine import EvalTask, Evaluator, PerNetworkTrainer, PopulationResult, make_trainer


class LocalEvaluator(Evaluator):
    """The whole population on one device, with the trainer ``engine.trainer`` picks."""

    name = "local"

    def __init__(self, spec, data, settings, layout=None, device="cpu", engine=None,
                 augment=()):
        self.trainer = make_trainer(spec, data, settings, layout, device, engine, augment)
        self.device = str(self.trainer.device)

    def evaluate(self, task: EvalTask) -> PopulationResult:
        return self.trainer.run(task)

    def describe(self) -> str:
        return self.trainer.describe()


class SequentialEvaluator(LocalEvaluator):
    """Reference backend: one network after another, each through its own ``nn.Module``."""

    name = "sequential"

    def __init__(self, spec, data, settings, layout=None, device="cpu", engine=None,
                 augment=()):
        self.trainer = PerNetworkTrainer(spec, data, settings, layout, device, engine, augment)
        self.device = str(self.trainer.device)
