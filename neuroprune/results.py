"""Results of a run as pandas DataFrames, for notebooks.

    import neuroprune.results
    df = neuroprune.results.load("runs/quickstart-...")   # one row per evaluation
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from .errors import UserError


def load(run_dir: str | Path) -> pd.DataFrame:
    """``results.csv`` of a run (search rows with an int ``generation``; the final network's
    row has ``phase == "final"``), or of a comparison (one row per cell)."""
    path = Path(run_dir) / "results.csv"
    if not path.is_file():
        raise UserError(f"{run_dir} has no results.csv (is it a neuroprune run directory?)")
    df = pd.read_csv(path)
    if "generation" in df:
        df["phase"] = (df["generation"].astype(str) == "final").map({True: "final",
                                                                     False: "search"})
        df["generation"] = pd.to_numeric(df["generation"], errors="coerce").astype("Int64")
    return df


def summary(run_dir: str | Path) -> dict:
    path = Path(run_dir) / "summary.json"
    if not path.is_file():
        raise UserError(f"{run_dir} has no summary.json (unfinished run?)")
    return json.loads(path.read_text())


def per_generation(df: pd.DataFrame, run_dir: str | Path | None = None) -> pd.DataFrame:
    """Best, mean and std of the fitness per generation.

    From the population logbook (``logbook.csv``, elites included) when the run has one;
    otherwise from the evaluated rows, with ``best`` as the best so far.
    """
    book = Path(run_dir) / "logbook.csv" if run_dir is not None else None
    if book is not None and book.is_file():
        lb = pd.read_csv(book).rename(columns={"gen": "generation"})
        return lb[["generation", "best", "mean", "std"]]
    search = df[df["phase"] == "search"] if "phase" in df else df
    col = "fitness" if "fitness" in search and search["fitness"].notna().any() else "val_accuracy"
    out = search.groupby("generation")[col].agg(best="max", mean="mean", std="std").reset_index()
    out["best"] = out["best"].cummax()
    return out
