"""scikit-learn's bundled datasets: no download, no files. ``digits`` is the embedded default."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.model_selection import train_test_split

from .base import DataSplits, standardise


def _split(x: np.ndarray, y: np.ndarray, seed: int, val_fraction: float, test_fraction: float):
    """Stratified train / val / test split, fixed by ``seed``."""
    x_rest, x_test, y_rest, y_test = train_test_split(
        x, y, test_size=test_fraction, random_state=seed, stratify=y
    )
    x_train, x_val, y_train, y_val = train_test_split(
        x_rest, y_rest, test_size=val_fraction / (1 - test_fraction), random_state=seed,
        stratify=y_rest,
    )
    return x_train, y_train, x_val, y_val, x_test, y_test


def load_sklearn(name: str, seed: int = 0, val_fraction: float = 0.15,
                 test_fraction: float = 0.2, **_: object) -> DataSplits:
    """Load one of scikit-learn's bundled sets (digits, breast_cancer, wine, iris)."""
    from sklearn import datasets

    bunch = getattr(datasets, f"load_{name}")()
    x = bunch.data.astype(np.float32)
    y = bunch.target.astype(np.int64)
    xtr, ytr, xva, yva, xte, yte = _split(x, y, seed, val_fraction, test_fraction)
    xtr, xva, xte = (torch.from_numpy(a) for a in (xtr, xva, xte))
    if name == "digits":
        # 8x8 grey images, 0..16: one global scale keeps the image structure (for convs).
        xtr, xva, xte = standardise(xtr, xva, xte)
        xtr, xva, xte = (t.reshape(-1, 1, 8, 8) for t in (xtr, xva, xte))
    else:
        xtr, xva, xte = standardise(xtr, xva, xte, per_feature=True)
    return DataSplits(
        name=name,
        train_x=xtr.contiguous(), train_y=torch.from_numpy(ytr),
        val_x=xva.contiguous(), val_y=torch.from_numpy(yva),
        test_x=xte.contiguous(), test_y=torch.from_numpy(yte),
        num_classes=int(y.max()) + 1,
    )
