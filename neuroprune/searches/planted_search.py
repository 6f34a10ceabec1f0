"""``kind: planted``: every method against tickets planted in wide networks (Plant 'n' Seek).

For each task, method, sparsity (the configured sweep plus the planted sparsity and one below
it) and seed: the method prunes the wide network that carries the planted target (its
``init``), the pruned network is scored untrained (``quality_pruned``) and after the final
training (``quality_trained``); quality is accuracy (circle) or R^2 (relu, helix). The kept
connections are compared with the planted mask (precision, recall, IoU).
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator
from tqdm.auto import tqdm

from .._io import atomic_write, atomic_write_csv, atomic_write_text
from ..backends.ray_actors import shared_ray
from ..config import (MethodConfig, _distinct, _methods, _seeds, _sparsities, method_entries,
                      to_dict)
from ..engine import EvalTask, StackedTrainer, TrainSettings
from ..masks import flatten, load_mask, make_layout
from ..models import build_model
from ..planted import make_task, recovery
from ..report.planted import table
from ..rundir import RunDir
from ..section import Section
from ..tracking import open_tracking
from ..workbench import Workbench
from .kinds import Kind
from .mask_search import MaskSearch

COLUMNS = ["task", "method", "sparsity", "seed", "planted_sparsity", "quality_pruned",
           "quality_trained", "precision", "recall", "iou", "wall_seconds"]


def sweep(configured: list[float], planted: float) -> list[float]:
    below = 1 - (1 - planted) * 0.5  # half the planted ticket's weights
    return sorted({round(s, 6) for s in configured} | {round(planted, 6), round(below, 6)})


def run_planted(bench: Workbench, out: str | Path, progress: bool = True) -> dict[str, Any]:
    cfg = bench.config
    with shared_ray(cfg.backend, cfg.ray.address):  # one Ray for every cell
        return _run_planted(bench, out, progress)


def _run_planted(bench: Workbench, out: str | Path, progress: bool) -> dict[str, Any]:
    t0, cfg = time.time(), bench.config
    pc = cfg.planted
    rd = RunDir(out, open_tracking(cfg.logging, out, cfg.name)).create()
    rd.write_config(to_dict(cfg))
    tasks = {t: make_task(t, pc.depth, pc.width, pc.samples, seed=0) for t in pc.tasks}
    entries = pc.method_entries()
    plan = [(t, e, s, seed) for t, task in tasks.items() for e in entries
            for s in sweep(pc.sparsities, task.planted_sparsity) for seed in pc.seeds]
    rows = []
    # Untrained quality of a mask on the planted weights: one local trainer per task serves
    # the planted mask (the ceiling) and every cell; no training, so no backend is needed.
    scorers = {t: scorer(task, bench.device) for t, task in tasks.items()}

    def untrained(t: str, mask) -> float:
        trainer = scorers[t]
        bits = flatten(trainer.layout, mask).unsqueeze(0)
        res = trainer.run(EvalTask(masks=bits, init=tasks[t].init, epochs=0, test=True))
        return res.row(0)["test_accuracy"]

    oracle = {t: untrained(t, task.mask) for t, task in tasks.items()}
    for t, entry, sparsity, seed in tqdm(plan, desc="planted", unit="cell",
                                         disable=not progress):
        task = tasks[t]
        cell = cfg.model_copy(deep=True, update={
            "kind": "mask_search", "seed": seed, "method": MethodConfig(**entry),
            "sparsity": cfg.sparsity.model_copy(update={"target": sparsity}),
            "training": cfg.training.model_copy(update={"loss": task.loss})})
        name = f"{t}-{entry['name']}-s{sparsity:g}-seed{seed}"
        cell_dir = rd.path / "cells" / name
        search = MaskSearch(bench.derive(cell, data=task.data, spec=task.spec, init=task.init))
        summary = (RunDir(cell_dir).read_summary() if RunDir(cell_dir).is_complete()
                   else search.run(cell_dir, progress=False, resume=cell_dir.exists(),
                                   tracking=rd.child_tracking(name)))
        found, _ = load_mask(cell_dir / "best_mask.safetensors")
        rows.append({"task": t, "method": entry["name"], "sparsity": sparsity, "seed": seed,
                     "planted_sparsity": task.planted_sparsity,
                     "quality_pruned": untrained(t, found),
                     "quality_trained": summary["test_accuracy"],
                     **recovery(found, task.mask), "wall_seconds": summary["wall_seconds"]})
        atomic_write_csv(rd.path / "results.csv", rows, COLUMNS)
    atomic_write_text(rd.path / "planted.md", table(rows, oracle))
    _plot(rows, rd.path / "planted.png")
    summary = {"status": "complete", "kind": "planted", "cells": len(rows),
               "planted_sparsity": {t: task.planted_sparsity for t, task in tasks.items()},
               "planted_mask_quality": oracle,
               "wall_seconds": round(time.time() - t0, 3)}
    rd.write_summary(summary)
    return summary


def scorer(task, device: str) -> StackedTrainer:
    """A trainer that scores masks of ``task``'s network untrained."""
    params = dict(build_model(task.spec).named_parameters())
    layout = make_layout({k: tuple(params[k].shape) for k in task.mask}, 0.0, "global")
    return StackedTrainer(task.spec, task.data, TrainSettings(loss=task.loss), layout, device)


def _plot(rows, path: Path) -> None:
    try:
        import matplotlib
    except ImportError:
        return
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(dict.fromkeys(r["task"] for r in rows))
    fig, axes = plt.subplots(1, len(tasks), figsize=(5 * len(tasks), 4), squeeze=False)
    for ax, t in zip(axes[0], tasks):
        rs = [r for r in rows if r["task"] == t]
        for m in dict.fromkeys(r["method"] for r in rs):
            pts = sorted({r["sparsity"] for r in rs if r["method"] == m})
            ys = [statistics.mean(r["quality_trained"] for r in rs
                                  if r["method"] == m and r["sparsity"] == s) for s in pts]
            ax.plot([1 - s for s in pts], ys, marker="o", label=m)
        ax.axvline(1 - rs[0]["planted_sparsity"], color="k", linestyle="--", label="planted")
        ax.set_xscale("log")
        ax.set_xlabel("weights kept (log)")
        ax.set_ylabel("test quality")
        ax.set_title(t)
        ax.legend(fontsize=7)
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png"))
    plt.close(fig)


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


class PlantedKind(Kind):
    name = "planted"
    section = "planted"
    Config = PlantedConfig
    columns = ("task", "method", "sparsity", "seed", "planted_sparsity", "quality_trained",
               "iou")
    reporter = "neuroprune.report.planted:report"
    not_tunable = ("the planted-ticket benchmark is a fixed sweep with a known answer; tune a "
                   "method with kind: mask_search")

    def run(self, out, *, progress=True, resume=False, log=print, on_generation=None):
        from .planted_search import run_planted
        return run_planted(self.bench, out, progress)

    def lines(self, summary, out):
        return [(out / "planted.md").read_text().rstrip("\n"),
                f"{summary['cells']} cells in {summary['wall_seconds']:.0f}s; "
                f"run directory: {out}"]
