"""What ``neuroprune report`` is given: run folders of every kind, and tuning folders.

Each input is checked where it enters: a path that does not exist, a file, an empty folder or
one that is not a run, a run that has not committed anything yet, a CSV that cannot be read
or lacks the columns its kind writes, all end with one line naming the path.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from .. import results
from ..errors import UserError
from ..rundir import FILES
from ..searches.registry import KINDS

JOURNAL = "optuna.journal"


@dataclass
class Run:
    """A run folder: its kind, config, summary (None while unfinished) and results."""

    path: Path
    kind: str
    config: dict[str, Any]
    summary: dict[str, Any] | None
    results: pd.DataFrame

    @property
    def name(self) -> str:
        return self.path.resolve().name

    @property
    def status(self) -> str:
        """``complete``, ``interrupted`` (Ctrl-C: a best-so-far summary) or ``unfinished``."""
        if self.summary is None:
            return "unfinished"
        return self.summary.get("status", "complete")

    @property
    def finished(self) -> bool:
        return self.status == "complete"

    def committed_generations(self) -> int:
        """Search generations in the ledger (a generation whose masks were all carried over
        unchanged has no row in results.csv, but is committed)."""
        from ..rundir import RunDir

        return sum(1 for g in RunDir(self.path).committed() if g != "final")


@dataclass
class StudyFolder:
    """A ``neuroprune tune`` folder: the journal holding one or more Optuna studies."""

    path: Path
    journal: Path
    kind = "tuning"

    @property
    def name(self) -> str:
        return self.path.resolve().name


def open_input(path: str | Path) -> Run | StudyFolder:
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path} does not exist")
    if path.is_file():
        if path.name == JOURNAL:
            return StudyFolder(path.parent, path)
        raise UserError(f"{path} is a file; give a run folder or a tuning folder")
    if (path / JOURNAL).is_file():
        return StudyFolder(path, path / JOURNAL)
    if not (path / FILES.config).is_file():
        raise UserError(f"{path} is not a neuroprune run folder (no config.yaml, results.csv "
                        f"or {JOURNAL} in it)")
    config = results.config(path)
    kind = config.get("kind", "mask_search")
    if kind not in KINDS:
        raise UserError(f"{path / FILES.config} names an unknown kind '{kind}'")
    owner = KINDS.load(kind)  # the table its rows are in and the columns it writes
    table = owner.table
    source = path / (table or FILES.summary)
    if not source.is_file():
        raise UserError(f"{path} has no results yet (the run stopped before it committed "
                        f"{'its first generation' if table == FILES.results else source.name})")
    summary = results.read_json(path / FILES.summary) \
        if (path / FILES.summary).is_file() else None
    if table is None:
        df = pd.DataFrame([summary])
    elif table == FILES.results:
        df = results.load(path)
    else:
        df = results.read_csv(source)
    missing = [c for c in owner.columns if c not in df.columns]
    if missing:
        raise UserError(f"{source} lacks the column(s) {', '.join(missing)} of a {kind} run")
    if df.empty:
        raise UserError(f"{source} holds no rows yet")
    return Run(path, kind, config, summary, df)
