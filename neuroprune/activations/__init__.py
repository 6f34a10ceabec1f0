"""Evolved activation functions: modules, saving and loading.

    acts = neuroprune.activations.load("runs/act-.../best_activations.json")
    acts["first"](torch.linspace(-3, 3, 7))
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from ..errors import UserError
from .expr import compile_formula, readable


class EvolvedActivation(nn.Module):
    """An elementwise activation compiled from a formula in DEAP's prefix form."""

    elementwise = True

    def __init__(self, formula: str):
        super().__init__()
        self.formula = formula
        self.fn = compile_formula(formula)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)

    def extra_repr(self) -> str:
        return readable(self.formula)


def save(path: str | Path, functions: dict[str, str], extra: dict | None = None) -> None:
    from .._io import atomic_write_json
    atomic_write_json(path, {"format": "neuroprune-activations-1",
                             "functions": functions,
                             "readable": {k: readable(v) for k, v in functions.items()},
                             **(extra or {})})


def load(path: str | Path) -> dict[str, EvolvedActivation]:
    """Role -> ``nn.Module`` for every function saved in ``path``."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"{p} does not exist")
    try:
        data = json.loads(p.read_text())
        return {role: EvolvedActivation(f) for role, f in data["functions"].items()}
    except (json.JSONDecodeError, KeyError, ValueError) as exc:
        raise UserError(f"{p} is not a neuroprune activations file: {exc}") from None


__all__ = ["EvolvedActivation", "load", "save"]
