"""Methods side by side: methods x sparsities x seeds on the same data, architecture and data
splits, with the training each method spent on the record.

Each cell is an ordinary mask search in ``cells/<label>-s<sparsity>-seed<seed>/``, run by the
sweep runner (:mod:`.sweep`): a finished cell is read back, not run again, so an interrupted
comparison resumes where it stopped. A method entry may carry a ``label`` (to compare two
settings of one method).

The final network of every method gets ``training.epochs``, unless ``comparison.budget`` gives
every cell the same training compute: then a cell's final training gets the budget's
network-epochs minus what its method's search spends (``Method.search_network_epochs``).

``results.csv`` has one row per cell (accuracy, sparsity, network-epochs and training FLOPs);
``comparison.md`` the mean and standard deviation of the test accuracy per method and
sparsity, the compute each spent, and Welch's t-test of every method against each baseline
that ran: every entry of method ``random``, ``dissipating_gradients`` or ``l1_filter``, under
its label (:mod:`neuroprune.report.comparison`); ``report/`` the figures ``neuroprune report``
draws: accuracy against weights remaining (or against FLOPs, at FLOPs or parameter budgets)
and against training compute.

With ``comparison.reuse`` (the default) a training that several cells ask for alike is run
once and read by the others from ``memo/`` (:mod:`neuroprune.engine.memo`): a structured
method's dense and regularised training is the same at every FLOPs budget, so a sweep over
three budgets trains it once instead of three times. Every cell still records the method's
whole cost in its network-epochs (``reused_network_epochs`` says how much of it an earlier
cell trained), so the compute columns compare methods as if each had run alone; its wall
time is what it took. ``memo/`` is removed once every cell is done.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from ..config import (MethodConfig, RunConfig, _methods, _seeds, _sparsities,
                      method_entries, method_params)
from ..errors import ConfigError
from ..methods import METHODS
from ..rundir import RunDir
from ..section import Section
from ..workbench import Workbench
from .mask_search import MaskSearch
from .sweep import Cell, Sweep, SweepKind

#: a comparison row's efficiency columns (beside flops, params, latency, flops_dense and
#: latency_dense): what was deployed and compacted with what, the deployed network's batch-256
#: latency quartiles, and its speedup over the dense network with the 95% interval
EFFICIENCY_COLUMNS = ["deployed", "compacted_with", "compact_error", "latency_q1",
                      "latency_q3", "speedup", "speedup_low", "speedup_high"]


def row_figures(summary: dict[str, Any]) -> dict[str, Any]:
    """:data:`EFFICIENCY_COLUMNS` of one cell from its ``summary.json``."""
    deployed = summary.get("deployed") or ("compact" if "flops_compact" in summary
                                           else "masked" if "flops" in summary else None)
    iqr = summary.get(f"latency_b256_{deployed}_iqr") or [None, None]
    ci = summary.get("speedup_b256_ci") or [None, None]
    return {"deployed": deployed, "compacted_with": summary.get("compacted_with"),
            "compact_error": summary.get("compact_error"),
            "latency_q1": iqr[0], "latency_q3": iqr[1],
            "speedup": summary.get("speedup_b256"), "speedup_low": ci[0], "speedup_high": ci[1]}


COLUMNS = ["method", "sparsity", "seed", "test_accuracy", "val_accuracy", "actual_sparsity",
           "kept_weights", "network_epochs", "training_flops", "final_epochs", "wall_seconds",
           "flops", "params", "latency", "flops_dense", "latency_dense", "reused_network_epochs",
           *EFFICIENCY_COLUMNS]


def cell_name(label: str, sparsity: float, seed: int) -> str:
    return f"{label}-s{sparsity:g}-seed{seed}"


def labelled_entries(cfg: RunConfig) -> list[tuple[str, dict[str, Any]]]:
    """``(label, method entry)`` for every method of the comparison (labels are unique:
    :func:`~neuroprune.config.method_entries` refuses two of one label)."""
    out = []
    for entry in cfg.comparison.method_entries():
        entry = dict(entry)
        out.append((str(entry.pop("label", entry["name"])), entry))
    return out


def final_epochs(cfg: RunConfig, entry: dict[str, Any], sparsity: float) -> int:
    """The final training's epochs of a cell: ``training.epochs``, or what is left of the
    budget after the method's search."""
    budget = cfg.comparison.budget
    if budget is None:
        return cfg.training.epochs
    method = METHODS.load(entry["name"])(method_params(MethodConfig(**entry)))
    for epochs in range(budget, 0, -1):
        if epochs + method.search_network_epochs(epochs, sparsity) <= budget:
            return epochs
    raise ConfigError(f"comparison.budget: {entry['name']} spends "
                      f"{method.search_network_epochs(1, sparsity)} network-epochs searching at "
                      f"sparsity {sparsity:g}, which leaves no epoch of the {budget} for its "
                      f"final training; raise the budget or shrink its search")


def cell_configs(cfg: RunConfig) -> list[tuple[RunConfig, str, str]]:
    """Every cell's config, label and folder name, in table order."""
    comp = cfg.comparison
    out = []
    for label, entry in labelled_entries(cfg):
        for sparsity in comp.sparsities:
            epochs = final_epochs(cfg, entry, sparsity)
            for seed in comp.seeds:
                cell = cfg.model_copy(deep=True, update={
                    "kind": "mask_search", "comparison": None, "seed": seed,
                    "method": MethodConfig(**entry),
                    "training": cfg.training.model_copy(update={"epochs": epochs}),
                    "sparsity": cfg.sparsity.model_copy(update={"target": sparsity})})
                out.append((cell, label, cell_name(label, sparsity, seed)))
    return out


class Comparison(Sweep):
    """Every cell prepared from one workbench (the data is loaded once and shared)."""

    kind, columns, tables = "comparison", COLUMNS, "comparison.md"

    def __init__(self, bench: Workbench):
        super().__init__(bench, [Cell(name, MaskSearch(bench.derive(c)), {"method": label})
                                 for c, label, name in cell_configs(bench.config)],
                         reuse=bench.config.comparison.reuse)

    def start(self, rd: RunDir) -> None:
        super().start(rd)
        rd.write_data_record(self.bench.data.record())

    def row(self, cell: Cell, summary: dict[str, Any], path: Path) -> dict[str, Any]:
        compute, cfg = summary.get("compute", {}), cell.search.cfg
        return {**cell.key, "sparsity": cfg.sparsity.target,
                "seed": summary["seed"], "test_accuracy": summary["test_accuracy"],
                "val_accuracy": summary["val_accuracy"], "actual_sparsity": summary["sparsity"],
                # what the deployed network (compact, else masked) costs: FLOPs per sample,
                # params, CPU seconds at batch 256 (absent without the efficiency figures)
                "flops": summary.get("flops"), "params": summary.get("params"),
                "latency": summary.get("latency"),
                # the same figures of the dense network it was cut from
                "flops_dense": summary.get("flops_dense"),
                "latency_dense": summary.get("latency_b256_dense"),
                **row_figures(summary),
                "kept_weights": summary["kept_weights"],
                "network_epochs": compute.get("network_epochs"),
                "training_flops": compute.get("training_flops"),
                "reused_network_epochs": compute.get("reused_network_epochs"),
                "final_epochs": cfg.training.epochs, "wall_seconds": summary["wall_seconds"]}

    def summary(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        spent = sum(r["network_epochs"] or 0 for r in rows)
        reused = sum(r["reused_network_epochs"] or 0 for r in rows)
        # the cells' own wall time, over every process that ran them (a resumed comparison);
        # what the cells' methods cost, and what of it was trained once for several
        return {"cell_wall_seconds": round(sum(r["wall_seconds"] for r in rows), 3),
                "network_epochs": spent, "trained_network_epochs": spent - reused,
                "best": max(rows, key=lambda r: r["val_accuracy"]),
                "data": self.bench.data.record(), "device": self.bench.device}


class ComparisonConfig(Section):
    """``kind: comparison``: the grid of methods, sparsities and seeds."""

    methods: list[str | dict[str, Any]] = Field(
        ["random", "snip", "kstarts"], min_length=1,
        description="method names, or {name: ..., <params>} entries")
    sparsities: list[float] = Field([0.9], min_length=1, description="target sparsities")
    seeds: list[int] = Field([0], min_length=1, description="seeds (initial weights, masks, "
                             "data order)")
    budget: int | None = Field(None, ge=1, description="network-epochs every cell trains in "
                               "all (its search and its final training); none: every final "
                               "training gets training.epochs")
    reuse: bool = Field(True, description="train what several cells ask for alike (the dense "
                        "or regularised training a structured method prunes at every "
                        "sparsity, IMP's first round) once and share it through the run "
                        "folder's memo/; the results are the same as without")

    _sparsities = field_validator("sparsities")(classmethod(lambda cls, v: _sparsities(v)))
    _seeds = field_validator("seeds")(classmethod(lambda cls, v: _seeds(v)))
    _methods = field_validator("methods")(classmethod(lambda cls, v: _methods(v)))

    def method_entries(self) -> list[dict[str, Any]]:
        return method_entries(self.methods, "comparison.methods")


class ComparisonKind(SweepKind):
    name = "comparison"
    section = "comparison"
    Config = ComparisonConfig
    columns = ("method", "sparsity", "seed", "test_accuracy", "wall_seconds")
    reporter = "neuroprune.report.comparison:report"
    not_tunable = ("a comparison is already a grid over methods, sparsities and seeds; tune "
                   "one method with kind: mask_search")
    sweep = Comparison
