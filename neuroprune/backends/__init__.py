"""Layer 8: backends that implement :class:`~neuroprune.engine.Evaluator`, chosen by name.

Registered as lazy ``"module:Class"`` strings, so an optional dependency (Ray) is imported only
when its backend is used.
"""

from __future__ import annotations

from ..registry import Registry

BACKENDS = Registry("backend", "backend", {
    "local": ("neuroprune.backends.local:LocalEvaluator",
              "one device, the population trained as one vectorised batch (default)"),
    "sequential": ("neuroprune.backends.local:SequentialEvaluator",
                   "reference: one network at a time, with its plain nn.Module"),
    "ray": ("neuroprune.backends.ray_actors:RayEvaluator",
            "population shards on Ray actors, one per GPU (or CPU worker)"),
})

__all__ = ["BACKENDS"]
