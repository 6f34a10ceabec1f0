"""Layer 4: the population engine: trainers, training hooks, precision, the evaluator
interface every backend implements."""

from .evaluator import Evaluator
from .hooks import (EpochSelection, GradientStatistics, LearningCurve, TrainingHook,
                    TrainState)
from .settings import EngineConfig, TrainSettings, batch_order
from .task import EvalTask, PopulationResult, StackedState, State
from .autotune import make_trainer
from .trainers import PerNetworkTrainer, StackedTrainer, Trainer, init_state

__all__ = ["EngineConfig", "EpochSelection", "EvalTask", "Evaluator", "GradientStatistics",
           "LearningCurve",
           "PerNetworkTrainer", "PopulationResult", "StackedState", "StackedTrainer", "State",
           "TrainSettings", "TrainState", "Trainer", "TrainingHook", "batch_order", "init_state",
           "make_trainer"]
