"""Typed, validated run configs, assembled from the sections each layer defines.

A config is YAML; ``--set a.b=value`` overrides any value (the value is parsed as YAML, so
``--set model.widths=[100,50]`` works). Validation happens on load: an unknown key, a wrong
type or an out-of-range value raises :class:`~neuroprune.errors.ConfigError` naming the key.
Names that select an implementation (datasets, models, methods, backends, kinds, ...) are
checked against their registries, with the close matches of a misspelt name.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import (BaseModel, ConfigDict, Field, ValidationError, field_validator,
                      model_validator)

from ._io import YAMLLimitError, load_yaml
from .backends import BACKENDS
from .backends.config import RayConfig
from .data.config import DataConfig
from .engine.settings import EngineConfig, TrainSettings
from .errors import ConfigError
from .masks.config import SparsityConfig
from .registry import Registry
from .methods.registry import METHODS
from .models.config import ModelConfig
from .searches.registry import KINDS
from .section import Section, registered, registered_list
from .tracking.registry import LOGGERS

MAX_SEED = 2**32 - 1

#: sections read by a command rather than a run, validated by the class the command owns
COMMAND_SECTIONS = Registry("section", "section", {
    "tune": ("neuroprune.tuning.space:TuneConfig",
             "`neuroprune tune`: the sampled values, objectives, sampler and pruner"),
})


class MethodConfig(BaseModel):
    """``name`` plus the method's own parameters, validated by the method's ``Params``."""

    model_config = ConfigDict(extra="allow")
    name: registered(METHODS, "kstarts", "pruning or search method (see `neuroprune methods`); "
                     "its parameters sit beside the name")


def method_entries(methods: list[str | dict[str, Any]], where: str) -> list[dict[str, Any]]:
    """``{name: ..., <params>}`` for every entry of a methods list (a name or a mapping);
    two entries of one label (its name, unless it has a ``label``) are refused."""
    out, labels = [], set()
    for m in methods:
        entry = {"name": m} if isinstance(m, str) else dict(m)
        if "name" not in entry:
            raise ConfigError(f"{where}: entry {m} has no 'name'")
        label = str(entry.get("label", entry["name"]))
        if label in labels:
            raise ConfigError(f"{where}: two entries are both called '{label}'; drop one, or "
                              f"give one a label (e.g. {{name: {entry['name']}, label: "
                              f"{entry['name']}-b}})")
        labels.add(label)
        out.append(entry)
    return out


def _distinct(v: list, what: str) -> list:
    """A swept list counted once per value: a repeated value would count twice."""
    twice = sorted({x for x in v if v.count(x) > 1}, key=str)
    if twice:
        raise ValueError(f"lists the {what} {', '.join(map(str, twice))} twice")
    return v


def _methods(v: list) -> list:
    try:
        method_entries(v, "")
    except ConfigError as exc:
        raise ValueError(str(exc).removeprefix(": ")) from None
    return v


def _sparsities(v: list[float]) -> list[float]:
    if any(not 0.0 <= s < 1.0 for s in v):
        raise ValueError(f"every sparsity must be in [0, 1), got {v}")
    return _distinct(v, "sparsity")


def _seeds(v: list[int]) -> list[int]:
    if any(not 0 <= s <= MAX_SEED for s in v):
        raise ValueError(f"every seed must be in 0..{MAX_SEED}, got {v}")
    return _distinct(v, "seed")


class RunConfig(Section):
    """A whole run: what kind of search, on which data and model, trained how, where."""

    name: str = Field("run", description="names the run directory (letters, digits, . _ -)")
    kind: registered(KINDS, "mask_search", "what to run (see `neuroprune kinds`)")
    seed: int = Field(0, ge=0, le=MAX_SEED, description="initial weights, masks, data order, "
                      "evolution")
    device: str = Field("auto", description="cpu, cuda (the current GPU), cuda:N (GPU N), mps "
                        "(Apple GPU) or auto (cuda when available)")
    backend: registered(BACKENDS, "local", "local (vectorised), sequential (one network at a "
                        "time) or ray")
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    sparsity: SparsityConfig = SparsityConfig()
    training: TrainSettings = TrainSettings()
    engine: EngineConfig = EngineConfig()
    ray: RayConfig = RayConfig()
    method: MethodConfig = MethodConfig()
    comparison: Any = Field(None, description="kind comparison: methods x sparsities x seeds")
    tune: Any = Field(None, description="`neuroprune tune`: sampled values and objectives")
    ensemble: Any = Field(None, description="kind ensemble_search: the pool and its evolution")
    activation: Any = Field(None, description="kind activation_search: strategies and budget")
    planted: Any = Field(None, description="kind planted: tasks, sweep and methods")
    rbm: Any = Field(None, description="kind rbm_connectivity: the RBMs and their training")
    neuroevolution: Any = Field(None, description="kind neuroevolution: NEAT and its "
                                "baselines")
    logging: registered_list(LOGGERS) = Field(
        [], description="experiment trackers fed as the run records: tensorboard (<run>/tb), "
        "mlflow (<run>/mlruns, or MLFLOW_TRACKING_URI); none by default")

    @field_validator("device")
    @classmethod
    def _device_name(cls, v: str) -> str:
        # whether torch sees it is asked where the device is taken (workbench.resolve_device)
        if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", v):
            raise ValueError(f"'{v}' is not a device; use cpu, cuda, cuda:N, mps or auto")
        return v

    @field_validator("name")
    @classmethod
    def _plain_name(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}", v):
            raise ValueError(f"must be a plain name of letters, digits, '.', '_' and '-' "
                             f"(it names a folder under runs/), got {v!r}")
        return v

    @field_validator("tune")
    @classmethod
    def _tune(cls, v: Any) -> Any:
        if v is None:
            return v
        return COMMAND_SECTIONS.load("tune").model_validate(v)

    @model_validator(mode="before")
    @classmethod
    def _empty_sections(cls, tree: Any) -> Any:
        # `data:` with nothing under it is YAML null: read it as "all defaults".
        if isinstance(tree, dict):
            tree = {k: ({} if v is None and k in SECTIONS else v) for k, v in tree.items()}
            return kind_sections(tree)
        return tree

    @field_validator("training")
    @classmethod
    def _untrained_only_when_pruning(cls, v: TrainSettings, info) -> TrainSettings:
        kind = info.data.get("kind", "mask_search")
        if v.epochs == 0 and kind not in ("mask_search", "comparison"):
            raise ValueError(f"epochs=0 prunes a trained model without fine-tuning (kind "
                             f"mask_search); kind {kind} needs epochs >= 1")
        if v.privacy is not None and kind != "private_training":
            raise ValueError(f"privacy is trained by kind private_training; kind {kind} would "
                             f"ignore it: set kind=private_training or drop training.privacy")
        return v

    @field_validator("training")
    @classmethod
    def _loss_of_the_task(cls, v: TrainSettings, info) -> TrainSettings:
        data = info.data.get("data")
        multilabel = data is not None and data.task == "multilabel"
        if multilabel and v.loss != "bce":
            if "loss" in v.model_fields_set:
                raise ValueError(f"loss={v.loss} does not fit data.task=multilabel, which "
                                 f"trains sigmoid outputs with loss=bce; drop training.loss")
            return v.model_copy(update={"loss": "bce"})
        if not multilabel and (v.loss == "bce" or v.output_structure is not None):
            raise ValueError("loss=bce and output_structure train multi-label targets; set "
                             "data.task=multilabel (with a multi-label dataset)")
        return v

    def method_params(self) -> BaseModel:
        """The method's parameters, validated against its ``Params`` model."""
        return method_params(self.method)


def method_params(method: MethodConfig) -> BaseModel:
    """``method``'s parameters validated by its ``Params``; one-line :class:`ConfigError`."""
    cls = METHODS.load(method.name)
    extra = dict(method.model_extra or {})
    try:
        return cls.Params(**extra)
    except ValidationError as exc:
        err = exc.errors()[0]
        if err["type"] == "extra_forbidden" and len(err["loc"]) == 1:
            takes = ", ".join(cls.Params.model_fields) or "no parameters"
            raise ConfigError(f"method '{method.name}' has no parameter "
                              f"'{err['loc'][0]}' (it takes: {takes})") from None
        raise ConfigError(format_error(exc, prefix="method")) from None


SECTIONS = ("data", "model", "sparsity", "training", "engine", "ray", "method")
# `tune` stays None when empty: an empty tune section is an error, not "tune nothing".
#: the sections owned by one kind each (``Kind.section``): the run's kind's is validated by its
#: ``Kind.Config``, another kind's is refused unless it holds only defaults (a config.yaml
#: written by an earlier version holds every kind's), which is dropped
KIND_SECTIONS = ("comparison", "activation", "ensemble", "planted", "rbm", "neuroevolution")


def kind_sections(tree: dict[str, Any]) -> dict[str, Any]:
    """``tree`` with its kind's section validated (defaults where absent or empty) and the
    sections of other kinds dropped; one :class:`ConfigError` line for a section of another
    kind that sets anything."""
    kind = tree.get("kind", "mask_search")
    if not isinstance(kind, str) or kind not in KINDS:
        return tree  # the field's own validation names the unknown kind
    cls = KINDS.load(kind)
    out = dict(tree)
    for key in KIND_SECTIONS:
        value = out.pop(key, None)
        if key == cls.section:
            continue
        if value is None:
            continue
        owner = _owner(key)
        defaults = owner.Config().model_dump(mode="json") if owner is not None else None
        if value != defaults and not (isinstance(value, dict) and not value):
            who = f"kind {owner.name}" if owner is not None else "no kind"
            raise ConfigError(f"{key}: is the section of {who}; this config is kind {kind}: "
                              f"drop the section or set kind={getattr(owner, 'name', kind)}")
    if cls.section is not None:
        value = tree.get(cls.section)
        if isinstance(value, BaseModel):
            value = value.model_dump()
        try:
            out[cls.section] = cls.Config.model_validate(value or {})
        except ValidationError as exc:
            raise ConfigError(format_error(exc, prefix=cls.section)) from None
    return out


def _owner(section: str):
    """The kind whose section ``section`` is (None: no registered kind's)."""
    for name in KINDS:
        cls = KINDS.load(name)
        if cls.section == section:
            return cls
    return None


def format_error(exc: ValidationError, prefix: str = "") -> str:
    """One line for the first error of a pydantic validation: the dotted key and what is
    wrong (the offending value once)."""
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in (prefix, *err["loc"]) if p != "")
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        return f"unknown config key '{loc}' (check its spelling; `neuroprune config` lists keys)"
    if err["type"] == "missing":
        return f"config key '{loc}' is required"
    got = err.get("input")
    shown = "" if isinstance(got, (dict, list)) or "got " in msg else f" (got {got!r})"
    return f"config key '{loc}': {msg}{shown}"


def _set_path(tree: dict, dotted: str, raw: str) -> None:
    keys = dotted.split(".")
    if not all(keys):
        raise ConfigError(f"--set {dotted}={raw}: empty key")
    node = tree
    for k in keys[:-1]:
        if node.get(k) is None:
            node[k] = {}
        if not isinstance(node[k], dict):
            raise ConfigError(f"--set {dotted}: '{k}' is a value, not a section")
        node = node[k]
    try:
        node[keys[-1]] = load_yaml(raw) if raw != "" else None
    except YAMLLimitError as exc:
        raise ConfigError(f"--set {dotted}: the value {exc}") from None
    except yaml.YAMLError:
        node[keys[-1]] = raw


def parse_overrides(items: list[str] | None) -> list[tuple[str, str]]:
    out = []
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set expects key=value (e.g. --set sparsity.target=0.95), "
                              f"got '{item}'")
        out.append((key.strip(), value))
    return out


def shipped_configs() -> Path:
    """The folder of the configs shipped with neuroprune (``neuroprune run quickstart``):
    package data in an installed wheel, the repository's ``configs/`` in a source checkout."""
    here = Path(__file__).resolve().parent
    installed = here / "configs"
    return installed if installed.is_dir() else here.parent / "configs"


def resolve_config_path(path: str | Path) -> Path:
    """``path`` itself, or a shipped config named ``path`` (``quickstart``)."""
    p = Path(path)
    if p.exists() or p.suffix or "/" in str(path):
        return p
    shipped = shipped_configs() / f"{p.name}.yaml"
    return shipped if shipped.is_file() else p


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = resolve_config_path(path)
    if not path.exists():
        names = ", ".join(sorted(p.stem for p in shipped_configs().glob("*.yaml")))
        raise ConfigError(f"config file {path} does not exist (shipped configs, usable by "
                          f"name: {names})")
    if path.is_dir():
        raise ConfigError(f"config path {path} is a folder; give a .yaml file")
    try:
        tree = load_yaml(path.read_text(encoding="utf-8"))
    except YAMLLimitError as exc:
        raise ConfigError(f"{path} is refused as a config: it {exc}") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" at line {where.line + 1}" if where is not None else ""
        raise ConfigError(f"{path} is not valid YAML{line}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror}") from None
    if tree is None:
        tree = {}
    if not isinstance(tree, dict):
        raise ConfigError(f"{path} must hold a mapping of config keys, not a "
                          f"{type(tree).__name__}")
    return tree


def load_config(path: str | Path | None = None, overrides: list[str] | None = None,
                tree: dict[str, Any] | None = None) -> RunConfig:
    """Read, override and validate a config; method and model options are validated too."""
    tree = copy.deepcopy(tree) if tree is not None else (read_yaml(path) if path else {})
    if path is not None and "name" not in tree:
        tree["name"] = resolve_config_path(path).stem
    for key, value in parse_overrides(overrides):
        _set_path(tree, key, value)
    try:
        cfg = RunConfig(**tree)
    except ValidationError as exc:
        raise ConfigError(format_error(exc)) from None
    except TypeError as exc:
        raise ConfigError(f"config: {exc}") from None
    cfg.method_params()
    cfg.model.check_options()
    if path is not None and cfg.model.factory:
        factory_folder_on_path(resolve_config_path(path))
    own = KINDS.load(cfg.kind).section
    sweep = getattr(cfg, own) if own is not None else None
    if hasattr(sweep, "method_entries"):  # every method of a sweep, with its parameters
        for entry in sweep.method_entries():
            entry = {k: v for k, v in entry.items() if k != "label"}
            try:
                method_params(MethodConfig(**entry))
            except ValidationError as exc:
                raise ConfigError(f"{cfg.kind}.methods: {format_error(exc)}") from None
            except ConfigError as exc:
                raise ConfigError(f"{cfg.kind}.methods: {exc}") from None
    return cfg


def factory_folder_on_path(config_path: Path) -> None:
    """Let ``model.factory: mymodels:build`` import ``mymodels.py`` from beside its config,
    without PYTHONPATH: the config's folder goes on the import path, last (a file there never
    shadows the standard library or an installed package), and on ``PYTHONPATH`` for the
    processes a run starts (local Ray workers). A config names code to run already (its
    factory); this only lets that code sit where the config is."""
    import os
    import sys

    folder = str(config_path.resolve().parent)
    if folder not in sys.path:
        sys.path.append(folder)
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if folder not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join([*paths, folder])


def changed_keys(old: Any, new: Any, prefix: str = "") -> list[str]:
    """The dotted keys whose values differ between two config trees."""
    if isinstance(old, dict) and isinstance(new, dict):
        return [k for key in dict.fromkeys([*old, *new])
                for k in changed_keys(old.get(key), new.get(key), f"{prefix}{key}.")]
    return [] if old == new else [prefix.rstrip(".")]


def to_dict(cfg: RunConfig) -> dict[str, Any]:
    """The resolved config (defaults filled in), as written to ``config.yaml``: the common
    sections, the kind's own and nothing of other kinds; the method with its parameters'
    defaults, a zoo model's and the dataset's options with their defaults."""
    tree = cfg.model_dump(mode="json", exclude={k for k in KIND_SECTIONS
                                                if getattr(cfg, k) is None})
    try:
        params = method_params(cfg.method).model_dump(mode="json")
    except ConfigError:
        params = {}
    tree["method"] = {"name": cfg.method.name, **params, **tree["method"]}
    tree["model"] = cfg.model.resolved()
    tree["data"] = cfg.data.resolved()
    return tree


def saved_tree(tree: dict[str, Any]) -> dict[str, Any]:
    """A config.yaml tree as this version writes it (one written by an earlier version holds
    every kind's section and the method without its defaults); ``tree`` itself where it does
    not load."""
    try:
        return to_dict(load_config(tree=tree))
    except ConfigError:
        return tree


def __getattr__(name: str) -> Any:
    """The kinds' sections where they used to be (``neuroprune.config.ComparisonConfig``)."""
    import importlib

    where = {"ComparisonConfig": "comparison", "ActivationConfig": "activation_search",
             "PlantedConfig": "planted_search", "NeuroevolutionConfig": "neuroevolution"}
    if name in where:
        return getattr(importlib.import_module(f"neuroprune.searches.{where[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
