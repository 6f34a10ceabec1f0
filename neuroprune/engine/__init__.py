"""Layer 4: the population engine and the evaluator interface every backend implements."""

from .evaluator import EvalTask, Evaluator
from .population import PopulationResult, PopulationTrainer, State, init_state
from .reference import ReferenceTrainer
from .settings import TrainSettings, batch_order

__all__ = ["EvalTask", "Evaluator", "PopulationResult", "PopulationTrainer", "ReferenceTrainer",
           "State", "TrainSettings", "batch_order", "init_state"]
