"""Mask files: safetensors with the parameter names as tensor names.

A file written here loads with plain ``safetensors.torch.load_file`` and applies with
``torch.nn.utils.prune.custom_from_mask``. Metadata (strings only, as safetensors requires)
holds the architecture spec as JSON, the sparsity, the method and the seed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping

import torch
from torch import nn
from torch.nn.utils import prune

from .._io import atomic_write
from ..errors import UserError
from .mask import Mask

WEIGHT_PREFIX = "weights/"


def save_mask(path: str | Path, mask: Mapping[str, torch.Tensor], metadata: Mapping[str, object],
              weights: Mapping[str, torch.Tensor] | None = None) -> None:
    """Write ``mask`` (and optionally trained ``weights``) atomically to ``path``."""
    from safetensors.torch import save_file

    tensors = {k: v.detach().to("cpu", torch.bool).contiguous() for k, v in mask.items()}
    for k, v in (weights or {}).items():
        tensors[WEIGHT_PREFIX + k] = v.detach().to("cpu").contiguous()
    meta = {k: v if isinstance(v, str) else json.dumps(v) for k, v in metadata.items()}
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=meta))


def load_mask(path: str | Path) -> tuple[Mask, dict[str, object]]:
    """Read a mask file: ``(mask, metadata)``. Clear errors for missing or corrupt files."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise UserError(f"mask file {path} does not exist")
    try:
        with safe_open(str(path), framework="pt") as f:
            raw_meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as exc:
        raise UserError(f"{path} is not a readable safetensors file (truncated or corrupt?): "
                        f"{exc}") from exc
    meta: dict[str, object] = {}
    for k, v in raw_meta.items():
        try:
            meta[k] = json.loads(v)
        except (json.JSONDecodeError, TypeError):
            meta[k] = v
    mask = Mask({k: v for k, v in tensors.items() if not k.startswith(WEIGHT_PREFIX)})
    return mask, meta


def load_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """The trained weights stored beside the mask (empty if none were kept)."""
    from safetensors.torch import load_file

    return {k[len(WEIGHT_PREFIX):]: v for k, v in load_file(str(path)).items()
            if k.startswith(WEIGHT_PREFIX)}


def apply_mask(model: nn.Module, mask: Mapping[str, torch.Tensor]) -> nn.Module:
    """Attach ``mask`` to ``model`` with ``torch.nn.utils.prune.custom_from_mask``.

    Raises ``ValueError`` naming the tensor when a name or shape does not match.
    """
    params = dict(model.named_parameters())
    unknown = [k for k in mask if k not in params]
    if unknown:
        raise ValueError(f"mask names {unknown} are not parameters of the model")
    for k, m in mask.items():
        if tuple(m.shape) != tuple(params[k].shape):
            raise ValueError(f"mask '{k}' has shape {tuple(m.shape)}, the model's weight has "
                             f"{tuple(params[k].shape)}")
    modules = dict(model.named_modules())
    for name, m in mask.items():
        mod_name, _, pname = name.rpartition(".")
        prune.custom_from_mask(modules[mod_name], pname, m.to(params[name].device))
    return model
