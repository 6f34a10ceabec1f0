"""One cell loop for the sweeps (``kind: comparison``, ``kind: planted``).

A sweep is a plan of cells, each an ordinary mask search in ``cells/<name>/`` of one run
folder, run one after another. A cell with a finished ``summary.json`` is read back, not run
again; one that had started (its ``config.yaml`` is there) resumes; so an interrupted sweep
goes on where it stopped. Every cell runs in one Ray session when the backend is ``ray``,
not one per cell. With ``reuse``, a training that several cells ask for alike is run once and
read by the others from ``memo/`` (:mod:`neuroprune.engine.memo`), which is removed once
every cell is done.

``results.csv`` gets one row per cell (the kind says what it holds) as each cell ends. A
finished sweep writes ``summary.json``, its tables (``comparison.md``, ``planted.md``) and,
into ``report/``, what ``neuroprune report RUN`` draws for it, with the same
:func:`~neuroprune.report.make_report`.
"""

from __future__ import annotations

import importlib.util
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from tqdm.auto import tqdm

from .._io import atomic_write_csv, atomic_write_text
from ..backends.ray_actors import shared_ray
from ..config import to_dict
from ..rundir import FILES, RunDir
from ..tracking import Tracking, open_tracking
from ..workbench import Workbench
from .kinds import Kind, Log
from .mask_search import MaskSearch

#: the folder of a finished sweep's report, where ``neuroprune report RUN`` writes it too
REPORT = "report"


@dataclass
class Cell:
    """One mask search of a sweep, run in ``cells/<name>/``. ``key``: the columns of its
    row that the plan knows (method label, sparsity, seed, task)."""

    name: str
    search: MaskSearch
    key: dict[str, Any] = field(default_factory=dict)


class Sweep:
    """Base of a sweep kind's run: a subclass plans its cells and says what a finished cell's
    row holds (:meth:`row`) and what the sweep's summary adds (:meth:`summary`)."""

    #: the kind (the summary's ``kind``, the progress bar's label)
    kind: ClassVar[str]
    #: the columns of ``results.csv``
    columns: ClassVar[list[str]]
    #: the markdown file of the finished sweep's tables
    tables: ClassVar[str]

    def __init__(self, bench: Workbench, cells: list[Cell], reuse: bool = False):
        self.bench, self.cells, self.reuse = bench, cells, reuse

    def row(self, cell: Cell, summary: dict[str, Any], path: Path) -> dict[str, Any]:
        """The results row of a finished ``cell`` (its ``summary.json``, its folder)."""
        raise NotImplementedError

    def summary(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        """What the sweep's ``summary.json`` holds besides status, kind, cells, wall time."""
        return {}

    def start(self, rd: RunDir) -> None:
        """Write what the run folder holds before its first cell."""
        rd.write_config(to_dict(self.bench.config))

    def run(self, out: str | Path, progress: bool = True, log: Log = print) -> dict[str, Any]:
        """Run (or read back, or resume) every cell into ``out``; the sweep's summary.
        ``log`` is not written to: cells run quietly, under one progress bar."""
        cfg, t0 = self.bench.config, time.time()
        rd = RunDir(out, open_tracking(cfg.logging, out, cfg.name)).create()
        self.start(rd)
        memo = rd.path / "memo" if self.reuse else None
        for cell in self.cells:
            cell.search.bench.memo = memo
        with shared_ray(cfg.backend, cfg.ray.address):
            rows = self._run_cells(rd, progress)
        summary = {"status": "complete", "kind": self.kind, "cells": len(rows),
                   "wall_seconds": round(time.time() - t0, 3), **self.summary(rows)}
        rd.write_summary(summary)
        draw(rd.path, self.tables)
        if memo is not None:  # a cache: every cell that could read it is done
            shutil.rmtree(memo, ignore_errors=True)
        return summary

    def _run_cells(self, rd: RunDir, progress: bool) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        for cell in tqdm(self.cells, desc=self.kind, unit="cell", disable=not progress):
            path = rd.path / "cells" / cell.name
            summary = run_cell(cell, path, rd.child_tracking(cell.name))
            rows.append(self.row(cell, summary, path))
            atomic_write_csv(rd.path / FILES.results, rows, self.columns)
        return rows


class SweepKind(Kind):
    """A kind whose run is a :class:`Sweep` (``sweep``, built from the workbench when the
    kind is prepared); its closing lines are the sweep's tables and where they are."""

    sweep: ClassVar[type[Sweep]]

    def __init__(self, bench: Workbench):
        super().__init__(bench)
        self.planned = self.sweep(bench)

    def run(self, out, *, progress=True, resume=False, log=print, on_generation=None):
        return self.planned.run(out, progress=progress, log=log)

    def lines(self, summary, out):
        return [(out / self.sweep.tables).read_text().rstrip("\n"),
                f"{summary['cells']} cells in {summary['wall_seconds']:.0f}s; "
                f"run directory: {out}"]


def run_cell(cell: Cell, path: Path, tracking: Tracking | None = None) -> dict[str, Any]:
    """The summary of ``cell`` in ``path``: read back when it finished, else run (resumed
    when it had started)."""
    folder = RunDir(path)
    if folder.is_complete():
        return folder.read_summary()
    return cell.search.run(path, progress=False, resume=(path / FILES.config).is_file(),
                           log=lambda _: None, tracking=tracking)


def draw(path: Path, tables: str) -> None:
    """The finished sweep at ``path``: its tables into ``path/tables``, and what
    ``neuroprune report`` draws into ``path/report/`` (nothing without matplotlib)."""
    from .. import report  # the layer above, reached once the sweep is done

    atomic_write_text(path / tables, report.tables(path))
    if importlib.util.find_spec("matplotlib") is not None:
        report.make_report([path], path / REPORT)
