"""neuroprune: evolutionary and AutoML search for sparse neural networks.

Public entry points for notebooks and scripts::

    import neuroprune
    result = neuroprune.prune(MyNet, data=(X, y), method="kstarts", sparsity=0.95)
    masks, meta = neuroprune.load_mask("runs/quickstart/best_mask.safetensors")
    neuroprune.apply_mask(model, masks)

Attributes are imported on first use, so ``import neuroprune`` (and ``neuroprune --help``)
does not load torch.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.2.0"

_LAZY = {
    "Mask": ("neuroprune.masks", "Mask"),
    "apply_mask": ("neuroprune.masks", "apply_mask"),
    "load_mask": ("neuroprune.masks", "load_mask"),
    "load_model": ("neuroprune.export", "load_model"),
    "prune": ("neuroprune.api", "prune"),
    "load_ensemble": ("neuroprune.searches.ensemble_search", "load_ensemble"),
    "PruneResult": ("neuroprune.api", "PruneResult"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib
        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'neuroprune' has no attribute '{name}'")


__all__ = ["Mask", "PruneResult", "__version__", "apply_mask", "load_ensemble", "load_mask",
           "load_model", "prune"]
