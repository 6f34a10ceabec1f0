"""Any CSV file with a class column, split and standardised like the bundled sets; and the
Yeast multi-label table that a package ships."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Annotated

import numpy as np
import pandas as pd
import torch
from pydantic import Field

from ..errors import DataError
from .base import DataSplits, standardise
from .config import DataConfig
from .sklearn_sets import split

#: the largest feature magnitude accepted: beyond it, float32 sums and squares overflow
LARGEST = 1e15


def load_csv(cfg: DataConfig, *,
             path: Annotated[str | None, Field(description="the CSV file")] = None,
             label_column: Annotated[str, Field(description="the column holding the class")]
             = "label") -> DataSplits:
    """A CSV file of numeric feature columns and one class column, split (stratified) by
    ``data.val_fraction``, ``data.test_fraction`` and ``data.split_seed``."""
    if not path:
        raise DataError("dataset csv needs data.path (e.g. --set data.path=my.csv)")
    p = Path(path)
    if not p.is_file():
        raise DataError(f"data.path {p} is not a file")
    try:
        df = pd.read_csv(p)
        with open(p, encoding="utf-8", newline="") as f:
            header = next(csv.reader(f), [])
    except Exception as exc:
        raise DataError(f"cannot read {p} as CSV: {exc}") from None
    twice = sorted({c for c in header if header.count(c) > 1})
    if twice:  # pandas would rename the second 'label' to 'label.1' and use it as a feature
        raise DataError(f"{p} names the column(s) {', '.join(map(repr, twice))} twice; give "
                        f"every column its own name")
    if label_column not in df:
        raise DataError(f"{p} has no column '{label_column}' (columns: "
                        f"{', '.join(map(str, df.columns[:10]))}); set data.label_column")
    features = df.drop(columns=[label_column])
    if features.shape[1] == 0:
        raise DataError(f"{p} has no feature columns besides '{label_column}'")
    if df[label_column].isna().any():
        raise DataError(f"{p}: {int(df[label_column].isna().sum())} rows have no label in "
                        f"'{label_column}'; label or drop them first")
    bad = [c for c in features if not pd.api.types.is_numeric_dtype(features[c])]
    if bad:
        raise DataError(f"{p}: non-numeric feature columns {bad[:5]}; encode them first")
    if features.isna().any().any():
        raise DataError(f"{p} has missing values; fill or drop them first")
    _check_labels(p, df[label_column])
    labels, classes = pd.factorize(df[label_column], sort=True)
    x = features.to_numpy(np.float64)
    if not np.isfinite(x).all() or np.abs(x).max() > LARGEST:
        raise DataError(f"{p} holds infinite values or values beyond {LARGEST:g}, which "
                        f"float32 training cannot handle; clean or rescale the features")
    if len(classes) < 2:
        raise DataError(f"{p}: every row has the label {classes[0]!r}; a classifier needs at "
                        f"least two classes")
    x = x.astype(np.float32)
    y = labels.astype(np.int64)
    if np.bincount(y).min() < 3:
        raise DataError(f"{p}: every class needs at least 3 rows for a train/val/test split")
    xtr, ytr, xva, yva, xte, yte = split(x, y, cfg)
    xtr, xva, xte, pre = standardise(*(torch.from_numpy(a) for a in (xtr, xva, xte)),
                                     per_feature=True, enabled=cfg.standardise)
    return DataSplits(name=p.stem, train_x=xtr, train_y=torch.from_numpy(ytr), val_x=xva,
                      val_y=torch.from_numpy(yva), test_x=xte, test_y=torch.from_numpy(yte),
                      num_classes=len(classes), preprocessing=pre,
                      provenance={"source": "csv", "files": [p.name], "protocol": "split",
                                  "split_seed": cfg.split_seed,
                                  "classes": [str(c) for c in classes]})


def _check_labels(p: Path, labels: pd.Series) -> None:
    """Refuse labels that are not values: ``NAN``, ``+nan`` or ``inf`` (which pandas leaves as
    text, or reads as infinity) would each become a class of their own."""
    def number(v) -> float | None:
        try:
            return float(v)
        except (TypeError, ValueError):
            return None

    values = [number(v) for v in labels.unique()]
    bad = [str(v) for v, f in zip(labels.unique(), values) if f is not None and
           not np.isfinite(f)]
    if bad:
        raise DataError(f"{p}: the labels in '{labels.name}' include {', '.join(bad[:3])}, "
                        f"which is no class; label or drop those rows first")


#: Yeast's labels (MULAN's Class1..Class14: functional categories of a gene)
YEAST_LABELS = tuple(f"Class{i}" for i in range(1, 15))


def yeast_file() -> Path:
    """The Yeast multi-label file that the ``river`` package ships (found without importing
    river, whose import is slow); a :class:`MissingDependencyError` without it."""
    import importlib.util

    from ..errors import MissingDependencyError
    try:
        spec = importlib.util.find_spec("river")
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError("river", "multilabel", "dataset yeast")
    path = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "yeast.csv.gz"
    if not path.is_file():
        raise DataError(f"the installed river has no {path.name} (river 0.26 and newer ship "
                        f"it): pip install -U 'neuroprune[multilabel]'")
    return path


def load_yeast(cfg: DataConfig) -> DataSplits:
    """Yeast (Elisseeff & Weston 2002; MULAN's multi-label version, OpenML 40597): 2,417
    genes, 103 micro-array expression and phylogenetic-profile features, 14 functional
    categories (4.2 per gene on average), as the ``river`` package ships it
    (``neuroprune[multilabel]``). A real multi-label set with dependent labels. Split at
    random by ``data.split_seed`` into ``data.val_fraction`` / ``data.test_fraction``
    (a multi-label set has no class to stratify by); features standardised per column."""
    import gzip

    path = yeast_file()
    try:
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            frame = pd.read_csv(fh)
    except (OSError, EOFError, ValueError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read {path} ({type(exc).__name__}); reinstall river") from None
    missing = [c for c in YEAST_LABELS if c not in frame.columns]
    if missing or frame.shape[1] != 103 + len(YEAST_LABELS):
        raise DataError(f"{path} is not the Yeast table (103 features, labels Class1..Class14)")
    y = torch.from_numpy(frame[list(YEAST_LABELS)].to_numpy(dtype=np.float32))
    x = torch.from_numpy(frame.drop(columns=list(YEAST_LABELS)).to_numpy(dtype=np.float32))
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(cfg.split_seed))
    n = len(y)
    n_test, n_val = int(cfg.test_fraction * n), int(cfg.val_fraction * n)
    a, b = n - n_test - n_val, n - n_test
    x, y = x[order], y[order]
    xtr, xva, xte, pre = standardise(x[:a], x[a:b], x[b:], per_feature=True,
                                     enabled=cfg.standardise)
    return DataSplits(name="yeast", train_x=xtr.contiguous(), train_y=y[:a], val_x=xva,
                      val_y=y[a:b], test_x=xte, test_y=y[b:], num_classes=len(YEAST_LABELS),
                      preprocessing=pre,
                      provenance={"source": "river datasets/yeast.csv.gz (MULAN Yeast)",
                                  "protocol": "split", "split_seed": cfg.split_seed,
                                  "task": "multilabel", "labels": list(YEAST_LABELS)})
