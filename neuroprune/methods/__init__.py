"""Layer 6: pruning and sparse-training methods, registered by name (one file, one line)."""

from __future__ import annotations

from .base import Method, MethodContext, MethodParams, MethodResult
from .registry import METHODS

def get_method_class(name: str) -> type[Method]:
    """The :class:`Method` registered as ``name`` (a did-you-mean error otherwise)."""
    return METHODS.load(name)


__all__ = ["METHODS", "Method", "MethodContext", "MethodParams", "MethodResult",
           "get_method_class"]
