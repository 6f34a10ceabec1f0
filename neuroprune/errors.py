"""User-facing errors.

Anything raised as a :class:`UserError` is reported by the command line as one line on stderr
with exit code 2 and no traceback (``--debug`` shows it). Raise it where bad input enters, with
a message that says what is wrong and how to fix it.
"""

from __future__ import annotations

import importlib.util
from typing import Sequence


class UserError(Exception):
    """Bad input from the user (config, flags, files). Exit code 2 on the command line."""

    exit_code = 2


class ConfigError(UserError):
    """A config value is missing, unknown or out of range."""


class DataError(UserError):
    """A dataset cannot be found or read."""


#: optional packages by import name: (pip name, the extra that installs it)
OPTIONAL = {"optuna": ("optuna", "tune"), "optuna_dashboard": ("optuna-dashboard", "dashboard"),
            "ray": ("ray", "ray"), "onnx": ("onnx", "onnx"), "onnxruntime": ("onnxruntime", "onnx"),
            "torch_pruning": ("torch-pruning", "structured"), "matplotlib": ("matplotlib", "plots"),
            "mlflow": ("mlflow-skinny", "mlflow"), "tensorboard": ("tensorboard", "tensorboard"),
            "torchvision": ("torchvision", "vision"), "psycopg": ("psycopg", "postgres"),
            "pymysql": ("pymysql", "mysql"), "redis": ("redis", "redis"),
            "gymnasium": ("gymnasium", "neuro"), "neat": ("neat-python", "neuro"),
            "opacus": ("opacus", "privacy"), "PIL": ("pillow", "images"),
            "river": ("river", "multilabel")}


class MissingDependencyError(UserError):
    """An optional dependency is needed for the requested feature: one line naming every
    missing package and one pip command installing all of them."""

    def __init__(self, package: str | Sequence[str], extra: str | Sequence[str], feature: str):
        packages = [package] if isinstance(package, str) else list(package)
        extras = list(dict.fromkeys([extra] if isinstance(extra, str) else extra))
        names = " and ".join(f"'{p}'" for p in packages)
        super().__init__(f"{feature} needs the {names} package{'s' * (len(packages) > 1)}: "
                         f"pip install 'neuroprune[{','.join(extras)}]'")
        self.packages, self.extras = packages, extras

    @classmethod
    def of(cls, exc: ImportError, feature: str) -> "MissingDependencyError | None":
        """The error for an import of an optional package that failed; None for any other
        module (a bug or a broken install, which keeps its traceback)."""
        root = (exc.name or "").split(".")[0]
        if root not in OPTIONAL:
            return None
        return cls(*OPTIONAL[root], feature)


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a finder refused it, or a broken half-import
        return False


def require(modules: Sequence[str], feature: str) -> None:
    """Raise one :class:`MissingDependencyError` naming every one of the optional
    ``modules`` (import names, keys of :data:`OPTIONAL`) that is not installed."""
    missing = [m for m in modules if not _importable(m)]
    if missing:
        raise MissingDependencyError([OPTIONAL[m][0] for m in missing],
                                     [OPTIONAL[m][1] for m in missing], feature)
