"""Layer 6: pruning and sparse-training methods, registered by name."""

from __future__ import annotations

import importlib

from ..errors import ConfigError
from .base import Method, MethodContext, MethodParams, MethodResult

#: name -> "module:Class". One line per method.
METHODS: dict[str, str] = {
    "kstarts": "neuroprune.methods.kstarts:KStarts",
    "kstarts_dg": "neuroprune.methods.kstarts_dg:KStartsDG",
    "dissipating_gradients": "neuroprune.methods.dissipating:DissipatingGradients",
    "random": "neuroprune.methods.random_masks:RandomMasks",
    "magnitude": "neuroprune.methods.magnitude:MagnitudeAtInit",
    "magnitude_retrain": "neuroprune.methods.magnitude_retrain:MagnitudeRetrain",
    "snip": "neuroprune.methods.snip:Snip",
    "synflow": "neuroprune.methods.synflow:SynFlow",
    "imp": "neuroprune.methods.imp:IMP",
    "rigl": "neuroprune.methods.rigl:RigL",
    "set": "neuroprune.methods.set_:SET",
    "ctre": "neuroprune.methods.ctre:CTRE",
}


def get_method_class(name: str) -> type[Method]:
    if name not in METHODS:
        raise ConfigError(f"method.name: unknown method '{name}'; choose one of "
                          f"{', '.join(sorted(METHODS))} (see `neuroprune methods`)")
    module, _, cls = METHODS[name].partition(":")
    return getattr(importlib.import_module(module), cls)


__all__ = ["METHODS", "Method", "MethodContext", "MethodParams", "MethodResult",
           "get_method_class"]
