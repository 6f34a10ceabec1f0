"""Layer 1: datasets as in-memory tensors with fixed splits, looked up by name."""

from __future__ import annotations

from typing import Any

from .base import DataSplits, check_splits, pad_images
from .config import DataConfig
from .registry import AUGMENTATIONS, DATASETS


def load_dataset(config: DataConfig | str = "digits", **options: Any) -> DataSplits:
    """Load a dataset from a :class:`DataConfig`, or by name with ``data:`` keys as keyword
    arguments (``load_dataset("mnist", root="DIR")``). Unknown keys are errors."""
    if isinstance(config, str):
        from pydantic import ValidationError

        from ..errors import ConfigError
        try:
            config = DataConfig(dataset=config, **options)
        except ValidationError as exc:
            err = exc.errors()[0]
            raise ConfigError(f"data.{'.'.join(map(str, err['loc']))}: "
                              f"{err['msg'].removeprefix('Value error, ')}") from None
    elif options:
        config = config.model_copy(update=options)
    if ":" in config.dataset:
        from .streamed import load_callable
        data = check_splits(load_callable(config))
    else:
        data = check_splits(DATASETS.load(config.dataset)(config, **config.options))
    return pad_images(data, config.pad) if config.pad else data


__all__ = ["AUGMENTATIONS", "DATASETS", "DataConfig", "DataSplits", "load_dataset"]
