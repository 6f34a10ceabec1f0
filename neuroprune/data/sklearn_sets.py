"""scikit-learn's bundled datasets: no download, no files. ``digits`` is the embedded default."""

from __future__ import annotations

from dataclasses import replace
from functools import partial

import numpy as np
import torch
from sklearn.model_selection import train_test_split

from .base import DataSplits, standardise
from .config import DataConfig


def split(x: np.ndarray, y: np.ndarray, cfg: DataConfig):
    """Stratified train / val / test split, fixed by ``cfg.split_seed``."""
    try:
        x_rest, x_test, y_rest, y_test = train_test_split(
            x, y, test_size=cfg.test_fraction, random_state=cfg.split_seed, stratify=y)
        x_train, x_val, y_train, y_val = train_test_split(
            x_rest, y_rest, test_size=cfg.val_fraction / (1 - cfg.test_fraction),
            random_state=cfg.split_seed, stratify=y_rest)
    except ValueError as exc:  # a split too small to hold every class
        from ..errors import DataError
        why = str(exc).splitlines()[0]
        raise DataError(f"cannot split {len(y)} samples of {len(np.unique(y))} classes into "
                        f"train, validation and test with every class in each ({why}); give "
                        f"more samples per class, fewer classes, or other data.val_fraction "
                        f"and data.test_fraction") from None
    return x_train, y_train, x_val, y_val, x_test, y_test


def load_bundled(name: str, cfg: DataConfig) -> DataSplits:
    """One of scikit-learn's bundled sets, split by ``cfg``."""
    from sklearn import datasets

    bunch = getattr(datasets, f"load_{name}")()
    x = bunch.data.astype(np.float32)
    y = bunch.target.astype(np.int64)
    xtr, ytr, xva, yva, xte, yte = split(x, y, cfg)
    xtr, xva, xte = (torch.from_numpy(a) for a in (xtr, xva, xte))
    if name == "digits":
        # 8x8 grey images, 0..16: one global scale keeps the image structure (for convs).
        xtr, xva, xte, pre = standardise(xtr, xva, xte, enabled=cfg.standardise)
        xtr, xva, xte = (t.reshape(-1, 1, 8, 8) for t in (xtr, xva, xte))
    else:
        xtr, xva, xte, pre = standardise(xtr, xva, xte, per_feature=True,
                                         enabled=cfg.standardise)
    return DataSplits(name=name, train_x=xtr.contiguous(), train_y=torch.from_numpy(ytr),
                      val_x=xva.contiguous(), val_y=torch.from_numpy(yva),
                      test_x=xte.contiguous(), test_y=torch.from_numpy(yte),
                      num_classes=int(y.max()) + 1, preprocessing=pre,
                      provenance={"source": f"scikit-learn load_{name}", "protocol": "split",
                                  "split_seed": cfg.split_seed})


load_digits = partial(load_bundled, "digits")
load_breast_cancer = partial(load_bundled, "breast_cancer")
load_wine = partial(load_bundled, "wine")
load_iris = partial(load_bundled, "iris")


#: the labels of ``digits_attributes``, each a property of the digit shown
DIGIT_ATTRIBUTES = ("even", "prime", "five_or_more", "closed_loop", "straight_strokes",
                    "multiple_of_3")


def load_digits_attributes(cfg: DataConfig) -> DataSplits:
    """scikit-learn's digits images with six labels each, properties of the digit (even,
    prime, 5 or more, a closed loop: 0 6 8 9, straight strokes only: 1 4 7, a multiple of
    3): a multi-label task with real images whose labels depend on each other. Split as
    ``digits`` (stratified by digit)."""
    data = load_bundled("digits", cfg)
    table = torch.tensor([[d % 2 == 0, d in (2, 3, 5, 7), d >= 5, d in (0, 6, 8, 9),
                           d in (1, 4, 7), d % 3 == 0] for d in range(10)], dtype=torch.float32)
    return replace(data, name="digits_attributes", train_y=table[data.train_y],
                   val_y=table[data.val_y], test_y=table[data.test_y],
                   num_classes=len(DIGIT_ATTRIBUTES),
                   provenance={**data.provenance, "task": "multilabel",
                               "labels": list(DIGIT_ATTRIBUTES)})
