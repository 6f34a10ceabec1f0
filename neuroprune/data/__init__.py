"""Layer 1: datasets as in-memory tensors with fixed splits, looked up by name."""

from __future__ import annotations

from functools import partial
from typing import Callable

from ..errors import ConfigError
from .base import DataSplits

#: dataset name -> (loader, one-line description). Loaders take the ``data:`` config fields.
DATASETS: dict[str, tuple[str, str]] = {
    "digits": ("sklearn", "scikit-learn's 8x8 digits, 1,797 images, embedded (default)"),
    "breast_cancer": ("sklearn", "scikit-learn's breast cancer, 30 features, embedded"),
    "wine": ("sklearn", "scikit-learn's wine, 13 features, embedded"),
    "iris": ("sklearn", "scikit-learn's iris, 4 features, embedded"),
    "blobs": ("synthetic", "generated Gaussian clusters"),
    "csv": ("csv", "any CSV file (data.path) with a class column (data.label_column)"),
    "mnist": ("mnist", "MNIST from data.root (full 60k/10k or the MNIST-10k protocol)"),
    "fashion_mnist": ("mnist", "Fashion-MNIST from data.root"),
    "kmnist": ("mnist", "Kuzushiji-MNIST from data.root (IDX or the original .npz)"),
    "usps": ("mnist", "USPS through torchvision from data.root"),
}


def _loader(name: str) -> Callable[..., DataSplits]:
    kind = DATASETS[name][0]
    if kind == "sklearn":
        from .sklearn_sets import load_sklearn
        return partial(load_sklearn, name)
    if kind == "synthetic":
        from .synthetic import load_blobs
        return load_blobs
    if kind == "csv":
        from .tabular import load_csv
        return load_csv
    from .mnist import load_mnist_family
    return partial(load_mnist_family, name)


def load_dataset(name: str, **options: object) -> DataSplits:
    """Load dataset ``name`` with the options of the ``data:`` config section."""
    if name not in DATASETS:
        raise ConfigError(f"data.dataset: unknown dataset '{name}'; choose one of "
                          f"{', '.join(sorted(DATASETS))}")
    return _loader(name)(**options)


__all__ = ["DATASETS", "DataSplits", "load_dataset"]
