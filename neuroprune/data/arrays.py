"""In-memory arrays (numpy or torch) as :class:`DataSplits`, for the Python API."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..errors import DataError
from .base import DataSplits, standardise
from .config import DataConfig
from .sklearn_sets import split


def _array(a: Any, name: str) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        a = a.detach().cpu().numpy()
    try:
        out = np.asarray(a)
    except Exception as exc:
        raise DataError(f"{name} is not an array: {exc}") from None
    if out.dtype == object:
        raise DataError(f"{name} holds mixed or ragged values; give a numeric array")
    return out


def from_arrays(x: Any, y: Any, cfg: DataConfig, x_test: Any = None,
                y_test: Any = None) -> DataSplits:
    """Split ``(x, y)`` into train / validation / test (stratified, ``cfg``'s fractions and
    split seed), or into train / validation with ``(x_test, y_test)`` as the test split.

    ``x`` is ``[N, features]`` (standardised per feature) or images ``[N, H, W]`` /
    ``[N, C, H, W]`` (standardised with one mean and std, as for digits). Labels may be any
    hashable values; they are numbered in sorted order. The split's ``preprocessing`` records
    the mean and std (networks trained on it take ``x``'s raw values once it is attached,
    :mod:`neuroprune.preprocess`); ``provenance`` records the classes in their order.
    """
    x, y = _array(x, "X"), _array(y, "y")
    if len(x) != len(y):
        raise DataError(f"X has {len(x)} rows but y has {len(y)} labels")
    if x.ndim < 2:
        raise DataError(f"X must be [samples, features] or images, got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.number) or not np.isfinite(x.astype(np.float64)).all():
        raise DataError("X must hold finite numbers (no NaN or inf)")
    has_test = x_test is not None
    if has_test:
        xt, yt = _array(x_test, "X_test"), _array(y_test, "y_test")
        if xt.shape[1:] != x.shape[1:] or len(xt) != len(yt):
            raise DataError(f"X_test has shape {xt.shape}, X has {x.shape}; they must match")
        classes, codes = np.unique(np.concatenate([y, yt]), return_inverse=True)
        y_codes, yt_codes = codes[:len(y)], codes[len(y):]
    else:
        classes, y_codes = np.unique(y, return_inverse=True)
    if len(classes) < 2:
        raise DataError("y has a single class; a classifier needs at least two")
    if np.bincount(y_codes).min() < (2 if has_test else 3):
        raise DataError("every class needs at least 3 samples (train, validation, test)")
    images = x.ndim >= 3
    flat = x.reshape(len(x), -1).astype(np.float32)
    if has_test:
        from sklearn.model_selection import train_test_split
        xtr, xva, ytr, yva = train_test_split(flat, y_codes, test_size=cfg.val_fraction,
                                              random_state=cfg.split_seed, stratify=y_codes)
        xte, yte = xt.reshape(len(xt), -1).astype(np.float32), yt_codes
    else:
        xtr, ytr, xva, yva, xte, yte = split(flat, y_codes, cfg)
    tr, va, te, pre = standardise(*(torch.from_numpy(np.ascontiguousarray(a))
                                    for a in (xtr, xva, xte)), per_feature=not images,
                                  enabled=cfg.standardise)
    shape = x.shape[1:] if x.ndim != 3 else (1, *x.shape[1:])
    lab = lambda a: torch.from_numpy(np.asarray(a, dtype=np.int64))  # noqa: E731
    return DataSplits(name="arrays", train_x=tr.reshape(-1, *shape), train_y=lab(ytr),
                      val_x=va.reshape(-1, *shape), val_y=lab(yva),
                      test_x=te.reshape(-1, *shape), test_y=lab(yte),
                      num_classes=len(classes), preprocessing=pre,
                      provenance={"source": "arrays", "protocol": "given test split" if has_test
                                  else "split", "split_seed": cfg.split_seed,
                                  "classes": [c.item() if hasattr(c, "item") else c
                                              for c in classes]})
