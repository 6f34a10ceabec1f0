"""Layer 2: models. An open registry of factories: a built-in zoo named as in the papers, any
``package.module:function``, torchvision models, or a Python callable. See :mod:`.spec`."""

from __future__ import annotations

from .base import ACTIVATIONS, RoleActivation, hidden_roles
from .registry import MODELS
from .spec import (TORCH_RNG, ModelSpec, build_model, check_model, output_names,
                   prunable_names, torch_seeded, validate_options)

__all__ = ["ACTIVATIONS", "MODELS", "TORCH_RNG", "ModelSpec", "RoleActivation", "build_model",
           "check_model", "hidden_roles", "output_names", "prunable_names", "torch_seeded",
           "validate_options"]
