"""The base of every config section: a pydantic model that refuses unknown keys, with help
text next to each field. Each layer defines its own section (``DataConfig`` in
:mod:`neuroprune.data`, ``TrainSettings`` in :mod:`neuroprune.engine`, ...), so a knob exists
in one place; :mod:`neuroprune.config` only assembles them.

:func:`registered` makes a field whose value must be a name of a :class:`~neuroprune.registry.
Registry`: validation and the JSON schema read the registry instead of repeating its names.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema

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
