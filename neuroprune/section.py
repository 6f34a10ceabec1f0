"""The base of every config section: a pydantic model that refuses unknown keys, with help
text next to each field. Each layer defines its own section (``DataConfig`` in
:mod:`neuroprune.data`, ``TrainSettings`` in :mod:`neuroprune.engine`, ...), so a knob exists
in one place; :mod:`neuroprune.config` only assembles them.

:func:`registered` makes a field whose value must be a name of a :class:`~neuroprune.registry.
Registry`: validation and the JSON schema read the registry instead of repeating its names.

Zoo models and datasets take their options from a function's keyword-only parameters
(:func:`keyword_options`): their annotations check a value (:func:`check_option`), their
defaults are what a config file writes (:func:`option_defaults`).
"""

from __future__ import annotations

import inspect
import typing
from typing import Annotated, Any, Callable

from pydantic import (AfterValidator, BaseModel, ConfigDict, Field, TypeAdapter,
                      ValidationError, WithJsonSchema)

from .registry import Registry


class Section(BaseModel):
    """A config section: unknown keys are refused, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def registered(registry: Registry, default: Any = ..., description: str = "") -> Any:
    """``Annotated[str, ...]`` for a field holding one name of ``registry``."""
    return Annotated[str, AfterValidator(registry.check),
                     WithJsonSchema({"type": "string", "enum": registry.names(),
                                     "description": description}),
                     Field(default, description=description)]


def registered_list(registry: Registry) -> Any:
    """``Annotated[list[str], ...]``: every element a name of ``registry``."""
    def check(values: list[str]) -> list[str]:
        for v in values:
            registry.check(v)
        return values
    return Annotated[list[str], AfterValidator(check),
                     WithJsonSchema({"type": "array",
                                     "items": {"type": "string", "enum": registry.names()}})]


def keyword_options(fn: Callable) -> dict[str, inspect.Parameter]:
    """The keyword-only parameters of ``fn`` (a function or a ``functools.partial``): the
    options it takes from a config."""
    return {n: p for n, p in inspect.signature(fn).parameters.items()
            if p.kind is inspect.Parameter.KEYWORD_ONLY}


def option_hints(fn: Callable) -> dict[str, Any]:
    """The annotations of ``fn``'s parameters, ``Annotated`` metadata (bounds, help) kept."""
    target = fn.func if hasattr(fn, "func") else fn
    return typing.get_type_hints(target, include_extras=True)


def check_option(fn: Callable, key: str, value: Any) -> Any:
    """``value`` of ``fn``'s option ``key`` checked against its annotation (lists read as
    tuples where it says tuple); ``ValueError`` with pydantic's first message otherwise."""
    try:
        return TypeAdapter(option_hints(fn).get(key, Any)).validate_python(value)
    except ValidationError as exc:
        raise ValueError(exc.errors()[0]["msg"]) from None


def option_defaults(fn: Callable) -> dict[str, Any]:
    """The default of every keyword-only option of ``fn``, as a config file writes it
    (tuples as lists)."""
    def plain(v: Any) -> Any:
        return [plain(x) for x in v] if isinstance(v, (tuple, list)) else v
    return {n: plain(p.default) for n, p in keyword_options(fn).items()
            if p.default is not p.empty}
