"""What a run directory records, as scalars under stable tags, fanned out to trackers.

==========================  ===================================================  ==============
tag                         value                                                step
==========================  ===================================================  ==============
``eval/<column>``           every numeric cell of an evaluated individual's row  evaluation
                            in ``results.csv`` (fitness, val_accuracy,           number, from 0
                            train_loss, magnitude, gradient, sparsity, ...)      over the run
``generation/<c>_max``,     best and mean over the generation's evaluations,     generation
``generation/<c>_mean``     for ``fitness`` and ``val_accuracy``
``generation/train_loss_min``, ``generation/train_loss_mean``, ``generation/evaluations``
``population/<stat>``       ``logbook.csv``: the whole population's fitness      generation
                            (``best``, ``mean``, ``std``), elites included
``curve/<column>``          the final training's ``learning_curve.csv``          epoch
                            (``train_loss``, ``val_loss``, ``val_accuracy``)
``final/<column>``          the final network's row (``val_accuracy``,           0 (candidate
                            ``test_accuracy``, ``train_loss``, ``sparsity``)     number)
``summary/<key>``           every number at the top level of ``summary.json``    0
==========================  ===================================================  ==============

A generation named ``<name>:<n>`` (the strategies of an activation search) is logged to the
nested run ``<name>`` at step ``n``, with the same tags, so a tool can overlay the strategies;
the cells of a comparison or planted sweep are nested runs named after their folders.

A tracker that fails mid-run (a tracking server gone) must not stop a search: its first error
is reported as a warning and that tracker is dropped.
"""

from __future__ import annotations

import math
import statistics
import warnings
from pathlib import Path
from typing import Any, Callable, Sequence

from .base import Tracker, flatten
from .registry import LOGGERS

STATUSES = ("complete", "interrupted")


def number(value: Any) -> float | None:
    """``value`` as a finite float, or None (text, empty cells, booleans, NaN)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def numbers(row: dict[str, Any], skip: tuple[str, ...] = ()) -> dict[str, float]:
    return {k: v for k, v in ((k, number(v)) for k, v in row.items() if k not in skip)
            if v is not None}


class Tracking:
    """The trackers of one run (or nested run), fed with what its run directory records.

    ``open_trackers`` is called on the first record, so that creating a run directory's
    tracking writes nothing before the run itself starts writing.
    """

    def __init__(self, open_trackers: Callable[[], Sequence[Tracker]]):
        self._open = open_trackers
        self._trackers: list[Tracker] | None = None
        self.closed = False
        self._children: dict[str, Tracking] = {}
        self._evaluations = 0
        self._logbook_seen: set[int] = set()

    @property
    def trackers(self) -> list[Tracker]:
        if self._trackers is None:
            self._trackers = list(self._open())
        return self._trackers

    # ------------------------------------------------------------- fan-out
    def _each(self, action: str, *args: Any) -> None:
        for tracker in list(self.trackers):
            try:
                getattr(tracker, action)(*args)
            except Exception as exc:  # a tracking tool must never stop the search
                self.trackers.remove(tracker)
                warnings.warn(f"{tracker.name} logging stopped: {type(exc).__name__}: "
                              f"{str(exc).splitlines()[0] if str(exc) else ''}")

    def _scalars(self, scalars: dict[str, float], step: int) -> None:
        if scalars and not self.closed:
            self._each("log_scalars", scalars, step)

    def child(self, name: str) -> "Tracking":
        """The nested run ``name`` (opened on first use)."""
        if name not in self._children:
            self._children[name] = Tracking(lambda: [t.child(name) for t in self.trackers])
        return self._children[name]

    def flush(self) -> None:
        for c in self._children.values():
            c.flush()
        if self._trackers is not None:
            self._each("flush")

    def close(self, status: str) -> None:
        if self.closed:
            return
        for c in self._children.values():
            c.close(status)
        if self._trackers is not None:  # never opened: nothing to close
            self._each("close", status)
        self.closed = True

    # ------------------------------------------------------------- records
    def config(self, config: dict[str, Any]) -> None:
        self._each("log_params", flatten(config))

    def resume(self, committed: dict[int | str, list[dict[str, Any]]]) -> None:
        """Continue the step numbers after what an earlier process committed and logged."""
        for generation, rows in committed.items():
            target, gen = self._route(generation)
            if target is not None:
                target._evaluations += len(rows)
                target._logbook_seen.add(gen)

    def _route(self, generation: int | str) -> tuple["Tracking | None", int]:
        if isinstance(generation, int):
            return self, generation
        name, sep, n = str(generation).rpartition(":")
        if sep and n.isdigit():
            return self.child(name), int(n)
        return None, 0

    def generation(self, generation: int | str, rows: list[dict[str, Any]]) -> None:
        """A committed generation (or the ``final`` rows)."""
        if generation == "final":
            self._final(rows)
            return
        target, gen = self._route(generation)
        if target is not None:
            target._generation(gen, rows)
            self.flush()

    def _generation(self, gen: int, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            self._scalars({f"eval/{k}": v for k, v in
                           numbers(row, ("generation", "index")).items()}, self._evaluations)
            self._evaluations += 1
        stats = {"generation/evaluations": float(len(rows))}
        for column, best, name in (("fitness", max, "max"), ("val_accuracy", max, "max"),
                                   ("train_loss", min, "min")):
            values = [v for v in (number(r.get(column)) for r in rows) if v is not None]
            if values:
                stats[f"generation/{column}_{name}"] = best(values)
                stats[f"generation/{column}_mean"] = statistics.fmean(values)
        self._scalars(stats, gen)

    def _final(self, rows: list[dict[str, Any]]) -> None:
        steps: dict[str, int] = {}
        for row in rows:
            target = self.child(row["strategy"]) if row.get("strategy") else self
            key = row.get("strategy") or ""
            step = steps[key] = steps.get(key, -1) + 1
            target._scalars({f"final/{k}": v for k, v in
                             numbers(row, ("generation", "index")).items()}, step)
        self.flush()

    def logbook(self, records: list[dict[str, Any]]) -> None:
        """Population statistics per generation; only generations not logged before."""
        for rec in records:
            gen = int(rec.get("gen", rec.get("generation", -1)))
            if gen >= 0 and gen not in self._logbook_seen:
                self._logbook_seen.add(gen)
                self._scalars({f"population/{k}": v for k, v in
                               numbers(rec, ("gen", "generation")).items()}, gen)
        self.flush()

    def curve(self, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            self._scalars({f"curve/{k}": v for k, v in numbers(row, ("epoch",)).items()},
                          int(row["epoch"]))
        self.flush()

    def summary(self, summary: dict[str, Any]) -> None:
        """The summary's numbers; a complete or interrupted run's trackers are closed."""
        self._scalars({f"summary/{k}": v for k, v in numbers(summary).items()}, 0)
        status = summary.get("status", "complete")
        if status in STATUSES:
            self.close(status)
        else:
            self.flush()


def check_loggers(names: Sequence[str]) -> None:
    """Every tracker in ``names`` is known and installed (nothing is written or imported)."""
    for name in names:
        LOGGERS.load(name).check()


def open_tracking(names: Sequence[str], run_dir: str | Path, experiment: str) -> Tracking | None:
    """The trackers named in a config's ``logging:`` list, opened for ``run_dir``; None when
    the list is empty (the default)."""
    if not names:
        return None
    check_loggers(names)
    return Tracking(lambda: [LOGGERS.load(n).open(Path(run_dir), experiment) for n in names])
