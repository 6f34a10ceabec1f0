"""Layer 6: pruning and sparse-training methods, registered by name."""

from __future__ import annotations

import importlib

from ..errors import ConfigError
from .base import Method, MethodContext, MethodParams, MethodResult

#: name -> "module:Class". One line per method.
METHODS: dict[str, str] = {
    "kstarts": "neuroprune.methods.kstarts:KStarts",
    "random": "neuroprune.methods.random_masks:RandomMasks",
    "magnitude": "neuroprune.methods.magnitude:MagnitudeAtInit",
    "snip": "neuroprune.methods.snip:Snip",
}


def get_method_class(name: str) -> type[Method]:
    if name not in METHODS:
        raise ConfigError(f"method.name: unknown method '{name}'; choose one of "
                          f"{', '.join(sorted(METHODS))} (see `neuroprune methods`)")
    module, _, cls = METHODS[name].partition(":")
    return getattr(importlib.import_module(module), cls)


__all__ = ["METHODS", "Method", "MethodContext", "MethodParams", "MethodResult",
           "get_method_class"]
