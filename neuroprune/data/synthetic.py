"""Generated classification data (for tests and quick experiments), fixed by
``data.split_seed``."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import DataSplits, standardise
from .config import DataConfig
from .options import Classes, Features, ImageSize, Samples


def _splits(name: str, x: torch.Tensor, y: torch.Tensor, cfg: DataConfig, per_feature: bool,
            classes: int) -> DataSplits:
    n = len(y)
    n_test, n_val = int(cfg.test_fraction * n), int(cfg.val_fraction * n)
    a, b = n - n_test - n_val, n - n_test
    xtr, xva, xte, pre = standardise(x[:a], x[a:b], x[b:], per_feature=per_feature,
                                     enabled=cfg.standardise)
    return DataSplits(name=name, train_x=xtr, train_y=y[:a], val_x=xva, val_y=y[a:b],
                      test_x=xte, test_y=y[b:], num_classes=classes, preprocessing=pre,
                      provenance={"source": "generated", "protocol": "split",
                                  "split_seed": cfg.split_seed})


def _check_size(cfg: DataConfig, samples: int, values_per_sample: int, knobs: str) -> None:
    """Refuse generated data that would not fit in memory, before drawing it (the draws,
    the split and the standardised copies hold about four float32 copies at once)."""
    from .._system import require_memory
    require_memory(16 * samples * values_per_sample,
                   f"{cfg.dataset} data of {samples:,} samples x {values_per_sample:,} "
                   f"values", f"lower {knobs}")


def load_blobs(cfg: DataConfig, *, samples: Samples = 2000, features: Features = 20,
               classes: Classes = 10) -> DataSplits:
    """Gaussian class clusters in ``features`` dimensions."""
    _check_size(cfg, samples, features, "data.samples or data.features")
    g = torch.Generator().manual_seed(cfg.split_seed)
    centres = torch.randn(classes, features, generator=g) * 2.0
    y = torch.randint(0, classes, (samples,), generator=g)
    x = centres[y] + torch.randn(samples, features, generator=g) * 1.5
    return _splits("blobs", x, y, cfg, True, classes)


def load_images(cfg: DataConfig, *, samples: Samples = 2000, classes: Classes = 10,
                image_size: ImageSize = 32) -> DataSplits:
    """Colour images (3 x ``image_size`` x ``image_size``): each class is a smooth random
    pattern; every sample is its class pattern, shifted by up to an eighth of the image,
    randomly mirrored, with pixel noise. Learnable by a small conv net, not by chance."""
    _check_size(cfg, samples, 3 * image_size ** 2, "data.samples or data.image_size")
    g = torch.Generator().manual_seed(cfg.split_seed)
    s, k = image_size, classes
    base = torch.randn(k, 3, max(2, s // 4), max(2, s // 4), generator=g)
    patterns = F.interpolate(base, size=(s, s), mode="bilinear", align_corners=False)
    y = torch.randint(0, k, (samples,), generator=g)
    shift = max(1, s // 8)
    dy = torch.randint(-shift, shift + 1, (samples,), generator=g)
    dx = torch.randint(-shift, shift + 1, (samples,), generator=g)
    flip = torch.rand(samples, generator=g) < 0.5
    x = torch.stack([torch.roll(patterns[c], (int(a), int(b)), dims=(1, 2))
                     for c, a, b in zip(y.tolist(), dy.tolist(), dx.tolist())])
    x = torch.where(flip[:, None, None, None], x.flip(3), x)
    x = x + 0.8 * torch.randn(x.shape, generator=g)
    return _splits("images", x, y, cfg, False, k)


def load_multilabel(cfg: DataConfig, *, samples: Samples = 2000, features: Features = 20,
                    classes: Classes = 10) -> DataSplits:
    """scikit-learn's ``make_multilabel_classification``: ``samples`` samples of
    ``features`` word counts, ``classes`` labels (two per sample on average)."""
    from dataclasses import replace

    from sklearn.datasets import make_multilabel_classification

    _check_size(cfg, samples, features, "data.samples or data.features")
    x, y = make_multilabel_classification(n_samples=samples, n_features=features,
                                          n_classes=classes, n_labels=2,
                                          random_state=cfg.split_seed)
    data = _splits("multilabel", torch.from_numpy(x).float(), torch.from_numpy(y).float(),
                   cfg, True, classes)
    return replace(data, provenance={**data.provenance, "task": "multilabel"})
