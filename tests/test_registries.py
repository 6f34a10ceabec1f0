"""A contract over every registry of the package: each entry loads, says what it is, carries
the name it is registered under, and documents every option it takes.

The registries are found in the source (``NAME = Registry(...)``), so a new one is covered
without a line here."""

from __future__ import annotations

import importlib
import re
import typing
from pathlib import Path

import pytest
from pydantic import BaseModel

import neuroprune
from neuroprune.registry import Registry

PACKAGE = Path(neuroprune.__file__).parent


def _registries() -> dict[str, Registry]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        names = re.findall(r"^([A-Z_]+)\s*=\s*Registry\(", path.read_text(encoding="utf-8"),
                           re.M)
        if not names:
            continue
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        for name in names:
            found[f"{module}:{name}"] = getattr(importlib.import_module(module), name)
    return found


REGISTRIES = _registries()
ENTRIES = [(where, name) for where, reg in REGISTRIES.items() for name in reg]


def _models(annotation: typing.Any) -> list[type[BaseModel]]:
    """The pydantic models an annotation holds (``X``, ``X | None``, ``list[X]``, ...)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models(arg)]


def _undocumented(model: type[BaseModel], prefix: str = "", seen=None) -> list[str]:
    """Dotted keys of ``model`` (nested sections included) without help text."""
    seen = set() if seen is None else seen
    if model in seen:
        return []
    seen.add(model)
    missing = []
    for key, field in model.model_fields.items():
        inner = _models(field.annotation)
        if not field.description and not inner:
            missing.append(prefix + key)
        for sub in inner:
            missing += _undocumented(sub, f"{prefix}{key}.", seen)
    return missing


def test_the_registries_are_found():
    names = {where.rpartition(":")[2] for where in REGISTRIES}
    assert {"METHODS", "MODELS", "DATASETS", "KINDS", "ACTIVATIONS", "BACKENDS", "LOGGERS",
            "OPTIMIZERS", "ALLOCATIONS", "REPORTERS", "STRATEGIES"} <= names
    assert len(ENTRIES) > 100


@pytest.mark.parametrize("where,name", ENTRIES, ids=[f"{w.rpartition(':')[2]}-{n}"
                                                      for w, n in ENTRIES])
def test_every_entry_loads_with_help_and_its_own_name(where, name):
    registry = REGISTRIES[where]
    assert registry.help(name).strip(), f"{where} '{name}' has no help text"
    assert registry.check(name) == name
    obj = registry.load(name)
    assert callable(obj), f"{where} '{name}' is not callable: {obj!r}"
    own = getattr(obj, "name", None)
    if isinstance(own, str):  # classes that carry their registered name (methods, kinds, ...)
        assert own == name, f"{where} '{name}' loads {obj!r} named '{own}'"
    params = getattr(obj, "Params", None)
    if isinstance(params, type) and issubclass(params, BaseModel):
        assert not _undocumented(params), f"{where} '{name}': options without help text"


def test_every_config_key_has_help_text():
    from neuroprune.config import RunConfig

    assert _undocumented(RunConfig) == []


def test_unknown_names_are_refused_with_close_matches():
    from neuroprune.errors import ConfigError
    from neuroprune.methods import METHODS

    with pytest.raises(ConfigError, match=r"method.name: unknown method 'snpi' "
                                          r"\(did you mean 'snip'\?\)"):
        METHODS.load("snpi")
    with pytest.raises(ValueError, match="choose one of"):
        METHODS.check("nothing-like-it")
