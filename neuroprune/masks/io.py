"""Mask files: safetensors in the names of a model's state dict.

The trained weights (and biases, BatchNorm entries) sit under their state-dict names and each
mask beside its weight in ``torch.nn.utils.prune``'s naming (``<layer>.weight_mask``), so that
plain ``model.load_state_dict(safetensors.torch.load_file(path), strict=False)`` loads the
trained network (its pruned weights are zero) and reports only the masks as unexpected keys.
Metadata (strings only, as safetensors requires) holds ``format: pt``, the architecture spec as
JSON, the sparsity, the method and the seed. Files of the earlier layout (masks under the
parameter names, weights under ``weights/<name>``) still load.
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

MASK_SUFFIX = "_mask"
LAYOUT_KEY, LAYOUT = "neuroprune_layout", "state_dict"
OLD_WEIGHT_PREFIX = "weights/"  # the earlier layout, read only


def save_mask(path: str | Path, mask: Mapping[str, torch.Tensor], metadata: Mapping[str, object],
              weights: Mapping[str, torch.Tensor] | None = None) -> None:
    """Write ``mask`` (and optionally trained ``weights``, a state dict) atomically to ``path``."""
    from safetensors.torch import save_file

    tensors = {k + MASK_SUFFIX: v.detach().to("cpu", torch.bool).contiguous()
               for k, v in mask.items()}
    for k, v in (weights or {}).items():
        tensors[k] = v.detach().to("cpu").contiguous()
    meta = {k: v if isinstance(v, str) else json.dumps(v) for k, v in metadata.items()}
    meta.update({"format": "pt", LAYOUT_KEY: LAYOUT})
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=meta))


def _read(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor],
                                     dict[str, object]]:
    """``(masks, weights, metadata)`` of a mask file, either layout; one-line errors."""
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
        if k in (LAYOUT_KEY, "format"):
            continue
        try:
            meta[k] = json.loads(v)
        except (json.JSONDecodeError, TypeError):
            meta[k] = v
    if raw_meta.get(LAYOUT_KEY) == LAYOUT:
        masks = {k[:-len(MASK_SUFFIX)]: v for k, v in tensors.items() if k.endswith(MASK_SUFFIX)}
        weights = {k: v for k, v in tensors.items() if not k.endswith(MASK_SUFFIX)}
    else:
        masks = {k: v for k, v in tensors.items() if not k.startswith(OLD_WEIGHT_PREFIX)}
        weights = {k[len(OLD_WEIGHT_PREFIX):]: v for k, v in tensors.items()
                   if k.startswith(OLD_WEIGHT_PREFIX)}
    floats = [k for k, v in masks.items() if v.dtype != torch.bool]
    if floats:  # a mask is kept or pruned; anything else was not written by neuroprune
        raise UserError(f"{path}: mask '{floats[0]}' holds {masks[floats[0]].dtype} values, "
                        f"not bool; the file was altered or not written by neuroprune")
    return masks, weights, meta


def read_mask_file(path: str | Path) -> tuple[Mask, dict[str, torch.Tensor], dict[str, object]]:
    """``(mask, weights, metadata)`` of a mask file in one read (see :func:`load_mask`)."""
    masks, weights, meta = _read(path)
    return Mask(masks), weights, meta


def load_mask(path: str | Path) -> tuple[Mask, dict[str, object]]:
    """Read a mask file: ``(mask, metadata)``. Clear errors for missing or corrupt files."""
    masks, _, meta = _read(path)
    return Mask(masks), meta


def load_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """The trained weights stored beside the mask, as a state dict (empty if none were kept)."""
    return _read(path)[1]


def apply_mask(model: nn.Module, mask: Mapping[str, torch.Tensor]) -> nn.Module:
    """Attach ``mask`` to ``model`` with ``torch.nn.utils.prune.custom_from_mask``.

    Raises ``ValueError`` naming the tensor when a name or shape does not match.
    """
    params = dict(model.named_parameters())
    masked = [k for k in mask if k not in params and k + "_orig" in params]
    if masked:
        raise ValueError(f"the model already carries a mask on {masked[0]}; apply masks to a "
                         f"fresh model, or call torch.nn.utils.prune.remove(module, "
                         f"'{masked[0].rpartition('.')[2]}') first")
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
