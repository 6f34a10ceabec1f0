"""One registry shape for every "name -> implementation" table.

Entries are lazy ``"module:attribute"`` strings with one line of help, so listing names (for
``--help``, config validation, the JSON schema) imports nothing heavy, and an optional
dependency is imported only when its entry is used (Ray Tune's registries do the same). An
unknown name is refused with the close matches::

    unknown optimizer 'adma' (did you mean 'adam'?); choose one of sgd, adam
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Callable

from .errors import ConfigError


@dataclass(frozen=True)
class Entry:
    target: str  # "package.module:attribute"
    help: str = ""


class Registry(Mapping[str, Entry]):
    """Names of one kind of thing (``what``: "method", "dataset", ...) and where each lives.

    ``key`` is the config key that selects from it (``method.name``), used in error messages.
    """

    def __init__(self, what: str, key: str, entries: Mapping[str, tuple[str, str] | str],
                 first: Callable[[], Mapping[str, tuple[str, str]]] | None = None):
        """``first``: entries read from elsewhere when the registry is first used (the
        reporters that the kinds name), placed before ``entries``."""
        self.what, self.key = what, key
        self._entries: dict[str, Entry] = {}
        self._loaded: dict[str, Any] = {}
        self._first = first
        for name, value in entries.items():
            target, text = (value, "") if isinstance(value, str) else value
            self.add(name, target, text)

    @property
    def _all(self) -> dict[str, Entry]:
        if self._first is not None:
            first, self._first = self._first, None
            given, self._entries = self._entries, {}
            for name, (target, text) in first().items():
                self.add(name, target, text)
            self._entries.update(given)
        return self._entries

    def add(self, name: str, target: str, help: str = "") -> None:
        """Register ``name``; ``target`` is ``"module:attribute"``."""
        if ":" not in target:
            raise ValueError(f"{self.what} '{name}': target must be 'module:attribute', "
                             f"got '{target}'")
        self._entries[name] = Entry(target, help)
        self._loaded.pop(name, None)

    # Mapping interface: name -> Entry
    def __getitem__(self, name: str) -> Entry:
        return self._all[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._all)

    def __len__(self) -> int:
        return len(self._all)

    def names(self) -> list[str]:
        return list(self._all)

    def unknown(self, name: object) -> str:
        """The one-line message for a name that is not registered."""
        close = difflib.get_close_matches(str(name), self.names(), n=2, cutoff=0.6)
        hint = f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""
        return (f"unknown {self.what} '{name}'{hint}; choose one of "
                f"{', '.join(self.names())}")

    def check(self, name: str) -> str:
        """``name`` if registered; a ``ValueError`` with close matches otherwise (pydantic
        validators turn it into a config error naming the key)."""
        if name not in self._all:
            raise ValueError(self.unknown(name))
        return name

    def load(self, name: str) -> Any:
        """Import and return the implementation of ``name`` (a :class:`ConfigError` naming
        ``key`` when it is not registered)."""
        if name not in self._all:
            raise ConfigError(f"{self.key}: {self.unknown(name)}")
        if name not in self._loaded:
            module, _, attr = self._entries[name].target.partition(":")
            obj: Any = importlib.import_module(module)
            for part in attr.split("."):
                obj = getattr(obj, part)
            self._loaded[name] = obj
        return self._loaded[name]

    def help(self, name: str) -> str:
        return self._all[name].help

    def __repr__(self) -> str:
        return f"Registry({self.what!r}, {self.names()})"


def import_target(spec: str, key: str) -> Any:
    """Import ``"package.module:attribute"`` given by a user (``model.factory``); one-line
    :class:`ConfigError` naming ``key`` when it cannot be imported."""
    module, sep, attr = spec.partition(":")
    if not sep or not module or not attr:
        raise ConfigError(f"{key}: expected 'package.module:function', got '{spec}'")
    try:
        obj: Any = importlib.import_module(module)
    except ImportError as exc:
        raise ConfigError(f"{key}: cannot import module '{module}' ({exc}); is the package "
                          f"installed, or its folder on PYTHONPATH?") from None
    except Exception as exc:  # an error inside the user's module
        raise ConfigError(f"{key}: importing '{module}' failed: {type(exc).__name__}: "
                          f"{str(exc).splitlines()[0] if str(exc) else ''}") from None
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ConfigError(f"{key}: module '{module}' has no attribute '{attr}'") from None
    return obj
