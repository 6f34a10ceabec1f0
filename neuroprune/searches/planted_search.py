"""``kind: planted``: every method against tickets planted in wide networks (Plant 'n' Seek).

For each task, method, sparsity (the configured sweep plus the planted sparsity and one below
it) and seed: the method prunes the wide network that carries the planted target (its
``init``), the pruned network is scored untrained (``quality_pruned``) and after the final
training (``quality_trained``); quality is accuracy (circle) or R^2 (relu, helix). The kept
connections are compared with the planted mask (precision, recall, IoU).

The cells run through the sweep runner (:mod:`.sweep`); ``planted.md`` holds the table per
task and ``report/`` the figure that ``neuroprune report`` draws (:mod:`neuroprune.report.planted`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from ..config import MethodConfig, _distinct, _methods, _seeds, _sparsities, method_entries
from ..engine import EvalTask, StackedTrainer, TrainSettings
from ..masks import flatten, load_mask, make_layout
from ..models import build_model
from ..planted import make_task, recovery
from ..rundir import FILES
from ..section import Section
from ..workbench import Workbench
from .mask_search import MaskSearch
from .sweep import Cell, Sweep, SweepKind

COLUMNS = ["task", "method", "sparsity", "seed", "planted_sparsity", "quality_pruned",
           "quality_trained", "precision", "recall", "iou", "wall_seconds"]


def sparsities(configured: list[float], planted: float) -> list[float]:
    """The sparsities a task is pruned to: the configured ones, the planted one, and one that
    keeps half the planted ticket's weights."""
    below = 1 - (1 - planted) * 0.5
    return sorted({round(s, 6) for s in configured} | {round(planted, 6), round(below, 6)})


class Planted(Sweep):
    """Every cell of the planted sweep, prepared from one workbench: each task's data, wide
    network and planted mask are made once."""

    kind, columns, tables = "planted", COLUMNS, "planted.md"

    def __init__(self, bench: Workbench):
        pc = bench.config.planted
        self.tasks = {t: make_task(t, pc.depth, pc.width, pc.samples, seed=0) for t in pc.tasks}
        super().__init__(bench, [self._cell(bench, t, e, s, seed)
                                 for t, task in self.tasks.items() for e in pc.method_entries()
                                 for s in sparsities(pc.sparsities, task.planted_sparsity)
                                 for seed in pc.seeds])
        self._scorers: dict[str, StackedTrainer] = {}

    def _cell(self, bench: Workbench, t: str, entry: dict[str, Any], sparsity: float,
              seed: int) -> Cell:
        task, cfg = self.tasks[t], bench.config
        cell = cfg.model_copy(deep=True, update={
            "kind": "mask_search", "seed": seed, "method": MethodConfig(**entry),
            "sparsity": cfg.sparsity.model_copy(update={"target": sparsity}),
            "training": cfg.training.model_copy(update={"loss": task.loss})})
        search = MaskSearch(bench.derive(cell, data=task.data, spec=task.spec, init=task.init))
        return Cell(f"{t}-{entry['name']}-s{sparsity:g}-seed{seed}", search,
                    {"task": t, "method": entry["name"], "sparsity": sparsity, "seed": seed})

    def untrained(self, t: str, mask) -> float:
        """Quality of ``mask`` on task ``t``'s planted weights, untrained: one local trainer
        per task serves the planted mask (the ceiling) and every cell; no training, so no
        backend is needed."""
        task = self.tasks[t]
        if t not in self._scorers:
            self._scorers[t] = scorer(task, self.bench.device)
        trainer = self._scorers[t]
        bits = flatten(trainer.layout, mask).unsqueeze(0)
        res = trainer.run(EvalTask(masks=bits, init=task.init, epochs=0, test=True))
        return res.row(0)["test_accuracy"]

    def row(self, cell: Cell, summary: dict[str, Any], path: Path) -> dict[str, Any]:
        task = self.tasks[cell.key["task"]]
        found, _ = load_mask(path / FILES.best_mask)
        return {**cell.key, "planted_sparsity": task.planted_sparsity,
                "quality_pruned": self.untrained(cell.key["task"], found),
                "quality_trained": summary["test_accuracy"],
                **recovery(found, task.mask), "wall_seconds": summary["wall_seconds"]}

    def summary(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        return {"planted_sparsity": {t: task.planted_sparsity for t, task in self.tasks.items()},
                "planted_mask_quality": {t: self.untrained(t, task.mask)
                                         for t, task in self.tasks.items()}}


def scorer(task, device: str) -> StackedTrainer:
    """A trainer that scores masks of ``task``'s network untrained."""
    params = dict(build_model(task.spec).named_parameters())
    layout = make_layout({k: tuple(params[k].shape) for k in task.mask}, 0.0, "global")
    return StackedTrainer(task.spec, task.data, TrainSettings(loss=task.loss), layout, device)


class PlantedConfig(Section):
    """``kind: planted``: tasks, network size, sweep and methods."""

    tasks: list[Literal["relu", "circle", "helix"]] = Field(
        ["relu", "circle", "helix"], min_length=1, description="planted tasks")
    depth: int = Field(5, ge=3, description="linear layers of target and wide network")
    width: int = Field(50, ge=16, description="width of the wide network")
    samples: int = Field(3000, ge=100, description="samples per task")
    sparsities: list[float] = Field([0.9, 0.99], description="swept sparsities; the planted "
                                    "one (and one below it) are added")
    methods: list[str | dict[str, Any]] = Field(["random", "magnitude", "snip", "kstarts"],
                                                min_length=1, description="methods compared")
    seeds: list[int] = Field([0], min_length=1, description="seeds")

    _sparsities = field_validator("sparsities")(classmethod(lambda cls, v: _sparsities(v)))
    _seeds = field_validator("seeds")(classmethod(lambda cls, v: _seeds(v)))
    _tasks = field_validator("tasks")(classmethod(lambda cls, v: _distinct(v, "task")))
    _methods = field_validator("methods")(classmethod(lambda cls, v: _methods(v)))

    def method_entries(self) -> list[dict[str, Any]]:
        return method_entries(self.methods, "planted.methods")


class PlantedKind(SweepKind):
    name = "planted"
    section = "planted"
    Config = PlantedConfig
    columns = ("task", "method", "sparsity", "seed", "planted_sparsity", "quality_trained",
               "iou")
    reporter = "neuroprune.report.planted:report"
    not_tunable = ("the planted-ticket benchmark is a fixed sweep with a known answer; tune a "
                   "method with kind: mask_search")
    sweep = Planted
