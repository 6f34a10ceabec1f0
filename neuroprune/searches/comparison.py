"""Methods side by side: methods x sparsities x seeds on the same data, architecture, training
budget for the final network, and data splits.

Each cell is an ordinary mask search in ``cells/<method>-s<sparsity>-seed<seed>/``; a cell
with a ``summary.json`` is done and is not run again, so an interrupted comparison resumes
where it stopped. ``results.csv`` has one row per cell and ``comparison.md`` the mean and
standard deviation of the test accuracy per method and sparsity.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from .._io import atomic_write_csv, atomic_write_text
from ..config import MethodConfig, RunConfig, to_dict
from ..backends.ray_actors import shared_ray
from ..rundir import RunDir
from ..tracking import open_tracking
from ..workbench import Workbench
from .mask_search import MaskSearch

COLUMNS = ["method", "sparsity", "seed", "test_accuracy", "val_accuracy", "actual_sparsity",
           "kept_weights", "wall_seconds"]


def cell_name(method: str, sparsity: float, seed: int) -> str:
    return f"{method}-s{sparsity:g}-seed{seed}"


def cell_configs(cfg: RunConfig) -> list[tuple[RunConfig, str]]:
    """Every cell's config and folder name, in table order."""
    comp = cfg.comparison
    out = []
    for entry in comp.method_entries():
        for sparsity in comp.sparsities:
            for seed in comp.seeds:
                cell = cfg.model_copy(deep=True, update={
                    "kind": "mask_search", "comparison": None, "seed": seed,
                    "method": MethodConfig(**entry),
                    "sparsity": cfg.sparsity.model_copy(update={"target": sparsity})})
                out.append((cell, cell_name(entry["name"], sparsity, seed)))
    return out


class Comparison:
    """Every cell prepared from one workbench (the data is loaded once and shared)."""

    def __init__(self, bench: Workbench):
        self.bench = bench
        self.searches = [(MaskSearch(bench.derive(c)), name)
                         for c, name in cell_configs(bench.config)]

    def run(self, out: str | Path, progress: bool = True, log=print) -> dict[str, Any]:
        cfg = self.bench.config
        rd = RunDir(out, open_tracking(cfg.logging, out, cfg.name)).create()
        rd.write_config(to_dict(cfg))
        t0 = time.time()
        rows: list[dict[str, Any]] = []
        with shared_ray(cfg.backend, cfg.ray.address):
            _run_cells(self.searches, rd, rows, progress, log)
        atomic_write_text(rd.path / "comparison.md", comparison_table(rows))
        summary = {"status": "complete", "kind": "comparison", "cells": len(rows),
                   "wall_seconds": round(time.time() - t0, 3),
                   "best": max(rows, key=lambda r: r["test_accuracy"]),
                   "device": self.bench.device}
        rd.write_summary(summary)
        return summary


def _run_cells(searches, rd, rows, progress, log) -> None:
    for search, name in tqdm(searches, desc="comparison", unit="cell", disable=not progress):
        cell_dir = rd.path / "cells" / name
        if RunDir(cell_dir).is_complete():
            summary = RunDir(cell_dir).read_summary()
        else:
            resume = (cell_dir / "config.yaml").is_file()
            summary = search.run(cell_dir, progress=False, resume=resume, log=log,
                                 tracking=rd.child_tracking(name))
        rows.append({"method": summary["method"], "sparsity": search.cfg.sparsity.target,
                     "seed": summary["seed"], "test_accuracy": summary["test_accuracy"],
                     "val_accuracy": summary["val_accuracy"],
                     "actual_sparsity": summary["sparsity"],
                     "kept_weights": summary["kept_weights"],
                     "wall_seconds": summary["wall_seconds"]})
        atomic_write_csv(rd.path / "results.csv", rows, COLUMNS)


def _mean_std(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}"


def comparison_table(rows: list[dict[str, Any]]) -> str:
    """Markdown: test accuracy mean ± std (over seeds) per method and sparsity, and wall time."""
    methods = list(dict.fromkeys(r["method"] for r in rows))
    sparsities = sorted({r["sparsity"] for r in rows})
    n_seeds = len({r["seed"] for r in rows})
    head = "| method | " + " | ".join(f"{s:.0%} sparse" for s in sparsities) + \
        " | mean wall s |\n"
    head += "| --- |" + " --- |" * (len(sparsities) + 1) + "\n"
    lines = []
    for m in methods:
        cellsm = [r for r in rows if r["method"] == m]
        accs = [_mean_std([r["test_accuracy"] for r in cellsm if r["sparsity"] == s]) or "-"
                if any(r["sparsity"] == s for r in cellsm) else "-" for s in sparsities]
        wall = statistics.mean(r["wall_seconds"] for r in cellsm)
        lines.append(f"| {m} | " + " | ".join(accs) + f" | {wall:.1f} |")
    return (f"Test accuracy, mean ± std over {n_seeds} seed(s); the final network of every "
            f"method gets the same training budget.\n\n" + head + "\n".join(lines) + "\n")
