"""Generated classification data (for tests and quick experiments)."""

from __future__ import annotations

import torch

from .base import DataSplits, standardise


def load_blobs(seed: int = 0, n_samples: int = 1200, n_features: int = 20, n_classes: int = 4,
               **_: object) -> DataSplits:
    """Gaussian class clusters in ``n_features`` dimensions, split 60/20/20."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(n_classes, n_features, generator=g) * 2.0
    y = torch.randint(0, n_classes, (n_samples,), generator=g)
    x = centres[y] + torch.randn(n_samples, n_features, generator=g) * 1.5
    a, b = int(0.6 * n_samples), int(0.8 * n_samples)
    xtr, xva, xte = standardise(x[:a], x[a:b], x[b:], per_feature=True)
    return DataSplits(name="blobs", train_x=xtr, train_y=y[:a], val_x=xva, val_y=y[a:b],
                      test_x=xte, test_y=y[b:], num_classes=n_classes)
