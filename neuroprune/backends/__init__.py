"""Layer 8: backends that implement :class:`~neuroprune.engine.Evaluator`, chosen by name.

Registered as lazy ``"module:Class"`` strings, so an optional dependency (Ray) is imported only
when its backend is used.
"""

from __future__ import annotations

import importlib

from ..errors import ConfigError
from ..engine import Evaluator

BACKENDS: dict[str, tuple[str, str]] = {
    "local": ("neuroprune.backends.local:LocalEvaluator",
              "one device, the population trained as one vectorised batch (default)"),
    "sequential": ("neuroprune.backends.local:SequentialEvaluator",
                   "reference: one plain nn.Module at a time"),
    "ray": ("neuroprune.backends.ray_actors:RayEvaluator",
            "population shards on Ray actors, one per GPU (or CPU worker)"),
}


def make_evaluator(name: str, **kwargs: object) -> Evaluator:
    """Build the backend ``name`` with the model spec, data, settings and device."""
    if name not in BACKENDS:
        raise ConfigError(f"backend: unknown '{name}'; choose one of {', '.join(BACKENDS)}")
    module, _, cls = BACKENDS[name][0].partition(":")
    return getattr(importlib.import_module(module), cls)(**kwargs)
