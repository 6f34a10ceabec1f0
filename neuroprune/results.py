"""Results of a run as pandas DataFrames, for notebooks and reports.

    import neuroprune.results
    df = neuroprune.results.load("runs/quickstart-...")   # one row per evaluation
    curve = neuroprune.results.curve("runs/quickstart-...")  # the final training, per epoch

Every reader refuses a file it cannot use with a one-line :class:`~neuroprune.errors.UserError`
naming the file (a corrupt CSV, a missing column), never a pandas traceback.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

import pandas as pd
import yaml

from ._io import YAMLLimitError, load_yaml
from .errors import UserError
from .rundir import FILES


def read_csv(path: str | Path, columns: Iterable[str] = ()) -> pd.DataFrame:
    """A CSV file with at least ``columns``; a one-line error for anything unreadable."""
    path = Path(path)
    try:
        df = pd.read_csv(path)
    except FileNotFoundError:
        raise UserError(f"{path} does not exist") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError,
            ValueError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"{path} is not a readable CSV file ({reason})") from None
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise UserError(f"{path} lacks the column(s) {', '.join(missing)}; was it written by "
                        f"neuroprune?")
    return df


def read_json(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path} is not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path} does not hold a JSON object")
    return data


def config(run_dir: str | Path) -> dict[str, Any]:
    """The resolved config a run wrote (``config.yaml``)."""
    path = Path(run_dir) / FILES.config
    try:
        tree = load_yaml(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{run_dir} has no config.yaml (is it a neuroprune run directory?)") \
            from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        why = f": it {exc}" if isinstance(exc, YAMLLimitError) else ""
        raise UserError(f"{path} is not valid YAML{why}") from None
    if not isinstance(tree, dict):
        raise UserError(f"{path} does not hold a config mapping")
    return tree


def load(run_dir: str | Path) -> pd.DataFrame:
    """``results.csv`` of a run (search rows with an int ``generation``; the final network's
    row has ``phase == "final"``), or of a comparison or planted sweep (one row per cell).

    A generation named ``<stage>:<n>`` (an activation search's strategies) reads as ``n``.
    """
    path = Path(run_dir) / FILES.results
    if not path.is_file():
        raise UserError(f"{run_dir} has no results.csv (is it a neuroprune run directory?)")
    df = read_csv(path)
    if "generation" in df:
        raw = df["generation"].astype(str)
        df["phase"] = (raw == "final").map({True: "final", False: "search"})
        df["generation"] = pd.to_numeric(raw.str.rpartition(":")[2],
                                         errors="coerce").astype("Int64")
    return df


def summary(run_dir: str | Path) -> dict:
    path = Path(run_dir) / FILES.summary
    if not path.is_file():
        raise UserError(f"{run_dir} has no summary.json (unfinished run?)")
    return read_json(path)


def curve(run_dir: str | Path) -> pd.DataFrame | None:
    """The final training's learning curve (epoch, train_loss, val_loss, val_accuracy), or
    None when the run has none (unfinished, or a kind without one)."""
    path = Path(run_dir) / FILES.curve
    return read_csv(path, ["epoch"]) if path.is_file() else None


def per_generation(df: pd.DataFrame, run_dir: str | Path | None = None) -> pd.DataFrame:
    """Best, mean and std of the fitness per generation.

    From the population logbook (``logbook.csv``, elites included) when the run has one;
    otherwise from the evaluated rows, with ``best`` as the best so far.
    """
    book = Path(run_dir) / FILES.logbook if run_dir is not None else None
    if book is not None and book.is_file():
        lb = read_csv(book, ["best", "mean"]).rename(columns={"gen": "generation"})
        if "std" not in lb:
            lb["std"] = float("nan")
        return lb[["generation", "best", "mean", "std"]]
    search = df[df["phase"] == "search"] if "phase" in df else df
    col = "fitness" if "fitness" in search and search["fitness"].notna().any() else "val_accuracy"
    out = search.groupby("generation")[col].agg(best="max", mean="mean", std="std").reset_index()
    out["best"] = out["best"].cummax()
    return out
