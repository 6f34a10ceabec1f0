"""A dataset's own options: the keyword-only parameters of its loader.

A loader is ``load_NAME(cfg, *, option=default, ...)``: ``cfg`` is the ``data:`` section
(root, splits, standardisation: what every dataset shares) and its keyword-only parameters are
the options that sit beside ``data.dataset`` in a config (``data.samples`` for ``blobs``), as a
zoo model's options sit beside ``model.name`` (the pieces both use are in
:mod:`neuroprune.section`). Their annotations (with a pydantic ``Field`` for the bounds and the
help text) validate them; their defaults are what ``config.yaml`` writes. The types below are
the options several loaders share.
"""

from __future__ import annotations

import warnings
from typing import Annotated, Any, Callable, Literal

from pydantic import Field

from ..errors import ConfigError
from ..section import check_option, keyword_options, option_hints

Samples = Annotated[int, Field(ge=30, description="generated sets: how many samples")]
Features = Annotated[int, Field(ge=1, description="features per sample")]
Classes = Annotated[int, Field(ge=2, description="classes (multilabel: labels)")]
ImageSize = Annotated[int, Field(ge=4, description="height and width of the images")]
Protocol = Annotated[Literal["auto", "full", "10k"], Field(
    description="full 60k/10k, or MNIST-10k (the 10k test images only); auto picks full "
    "when the training images are there")]

#: the options every ``data:`` section held before datasets owned them, at their old
#: defaults: a config.yaml written then holds them whatever its dataset, and loads
LEGACY = {"protocol": "auto", "path": None, "label_column": "label", "samples": 2000,
          "features": 20, "classes": 10, "image_size": 32}


def described(loader: Callable) -> list[tuple[str, Any, str]]:
    """``(option, default, help)`` for each option of ``loader``."""
    hints, rows = option_hints(loader), []
    for name, p in keyword_options(loader).items():
        meta = getattr(hints.get(name), "__metadata__", ())
        text = next((m.description for m in meta if getattr(m, "description", None)), "")
        rows.append((name, None if p.default is p.empty else p.default, text))
    return rows


def validate(dataset: str, loader: Callable, options: dict[str, Any]) -> dict[str, Any]:
    """``options`` checked against ``loader``'s signature (names, types, bounds). An option
    of other datasets is dropped (with a warning naming them, unless it holds the default
    every config.yaml of an earlier version wrote: ``LEGACY``); an option no dataset takes
    is a one-line :class:`ConfigError`, as is a bad value."""
    params, out = keyword_options(loader), {}
    for key, value in options.items():
        if key not in params:
            if key in LEGACY and value == LEGACY[key]:
                continue
            owners = _owners(key)
            if owners:  # a config switched to another dataset (--set data.dataset=digits)
                warnings.warn(f"data.{key} is an option of {', '.join(owners)}; dataset "
                              f"{dataset} does not use it (dropped)", UserWarning, stacklevel=2)
                continue
            takes = ", ".join(f"data.{n}" for n in params) or "no options of its own"
            raise ConfigError(f"data.{key}: dataset {dataset} has no option '{key}' (it takes "
                              f"{takes}); drop it or choose a dataset that takes it")
        try:
            out[key] = check_option(loader, key, value)
        except ValueError as exc:
            raise ConfigError(f"data.{key}: {exc} for dataset {dataset} (got {value!r})") \
                from None
    return out


def _owners(option: str) -> list[str]:
    """The registered datasets that take ``option``."""
    from .registry import DATASETS
    found = []
    for name in DATASETS:
        try:
            if option in keyword_options(DATASETS.load(name)):
                found.append(name)
        except Exception:  # a loader whose extra is missing takes nothing we can see
            continue
    return found
