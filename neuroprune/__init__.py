"""neuroprune: evolutionary and AutoML search for sparse neural networks.

Public entry points for notebooks and scripts::

    import neuroprune
    masks, meta = neuroprune.load_mask("runs/quickstart/best_mask.safetensors")
    neuroprune.apply_mask(model, masks)
"""

__version__ = "0.1.0"

from .masks import Mask, apply_mask, load_mask  # noqa: E402


def load_model(path):
    """Rebuild the trained sparse network of an exported file (see :mod:`neuroprune.export`)."""
    from .export import load_model as _load_model
    return _load_model(path)


__all__ = ["Mask", "__version__", "apply_mask", "load_mask", "load_model"]
