"""The tracker interface: one run in one experiment-tracking tool.

A tracker receives scalars under tags and the run's config; the tags and what they mean are
chosen once, in :mod:`neuroprune.tracking.records`, so every tool shows the same names. A
tracker is opened for a run directory (a resumed run continues the same tracker run where the
tool allows it), may open nested runs for the cells of a sweep (``child``), and is closed
with the run's status.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any, ClassVar

from ..errors import MissingDependencyError


class Tracker:
    """Base of every tracker (registered in :data:`~neuroprune.tracking.registry.LOGGERS`)."""

    name: ClassVar[str]
    #: (module that must be importable, its PyPI name, neuroprune extra that installs it)
    requires: ClassVar[tuple[str, str, str]]

    @classmethod
    def check(cls) -> None:
        """Refuse, with an install hint, when the tool is not installed (nothing imported)."""
        module, package, extra = cls.requires
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):  # ValueError: blocked in sys.modules (set to None)
            found = False
        if not found:
            raise MissingDependencyError(package, extra, f"logging: [{cls.name}]")

    @classmethod
    def open(cls, run_dir: Path, experiment: str) -> "Tracker":
        """The tracker run of ``run_dir`` (``experiment``: the config's name)."""
        raise NotImplementedError

    def log_params(self, params: dict[str, str]) -> None:
        """The run's resolved config, flattened to dotted keys."""
        raise NotImplementedError

    def log_scalars(self, scalars: dict[str, float], step: int) -> None:
        raise NotImplementedError

    def child(self, name: str) -> "Tracker":
        """A nested run (a cell of a comparison, a strategy of an activation search)."""
        raise NotImplementedError

    def flush(self) -> None:
        """Make what was logged visible to readers (called after each generation)."""

    def close(self, status: str) -> None:
        """``status``: ``complete``, ``interrupted`` or ``unfinished`` (no summary)."""
        raise NotImplementedError


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """``{"training": {"lr": 0.1}}`` -> ``{"training.lr": "0.1"}``."""
    out: dict[str, str] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = str(value)
    return out
