"""Trained weights to prune: a state dict file of a model's architecture (``model.weights``)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..errors import ConfigError


def read_state(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a state dict file: safetensors, or ``torch.save`` of a state dict (or of
    ``{"state_dict": ...}``), read without running code (``weights_only``)."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise ConfigError(f"model.weights: {p} is not a file; give a state dict saved with "
                          f"torch.save(model.state_dict(), PATH) or a safetensors file")
    try:
        if p.suffix == ".safetensors":
            from safetensors.torch import load_file
            state = load_file(str(p))
        else:
            state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt, a pickled module, not a tensor file
        raise ConfigError(f"model.weights: cannot read {p} ({type(exc).__name__}: "
                          f"{str(exc).splitlines()[0] if str(exc) else ''}); save the "
                          f"model's state_dict(), not the model") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor)
                                              for v in state.values()):
        raise ConfigError(f"model.weights: {p} does not hold a state dict (names to tensors)")
    return state


def load_trained(path: str | Path, template: nn.Module) -> dict[str, torch.Tensor]:
    """The trained weights in ``path`` as the full state of ``template``'s architecture; one
    line naming the first mismatch otherwise."""
    state = read_state(path)
    want = template.state_dict()
    missing = [k for k in want if k not in state]
    extra = [k for k in state if k not in want]
    if missing or extra:
        raise ConfigError(f"model.weights: {path} does not fit the model: missing "
                          f"{missing[:3]}{'...' if len(missing) > 3 else ''}, unexpected "
                          f"{extra[:3]}{'...' if len(extra) > 3 else ''}")
    for k, v in want.items():
        if tuple(state[k].shape) != tuple(v.shape):
            raise ConfigError(f"model.weights: '{k}' has shape {tuple(state[k].shape)} in "
                              f"{path}, the model's has {tuple(v.shape)}")
    return {k: state[k].detach().to(v.dtype).clone() for k, v in want.items()}
