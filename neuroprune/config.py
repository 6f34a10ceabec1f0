"""Typed, validated run configs. Every knob lives here once, with its default and help text.

A config is YAML; ``--set a.b=value`` overrides any value (the value is parsed as YAML, so
``--set model.widths=[100,50]`` works). Validation happens on load: an unknown key, a wrong
type or an out-of-range value raises :class:`~neuroprune.errors.ConfigError` naming the key.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (BaseModel, ConfigDict, Field, ValidationError, field_validator,
                      model_validator)

from .errors import ConfigError


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataConfig(Section):
    dataset: str = Field("digits", description="dataset name (see `neuroprune datasets`)")
    root: str | None = Field(None, description="folder with the dataset files (MNIST family)")
    download: bool = Field(False, description="download missing files through torchvision")
    protocol: Literal["auto", "full", "10k"] = Field(
        "auto", description="MNIST family: full 60k/10k, or the MNIST-10k protocol")
    val_fraction: float = Field(0.15, gt=0, lt=0.5, description="bundled sets: validation share")
    test_fraction: float = Field(0.2, gt=0, lt=0.5, description="bundled sets: test share")
    split_seed: int = Field(0, ge=0, description="fixes the train/val/test split of bundled sets")
    path: str | None = Field(None, description="dataset csv: the CSV file")
    label_column: str = Field("label", description="dataset csv: the column holding the class")

    @field_validator("dataset")
    @classmethod
    def _known(cls, v: str) -> str:
        from .data import DATASETS
        if v not in DATASETS:
            raise ValueError(f"unknown dataset '{v}'; choose one of {', '.join(sorted(DATASETS))}")
        return v


class ModelConfig(Section):
    arch: Literal["mlp", "lenet5"] = Field("mlp", description="architecture")
    widths: list[int] = Field([300, 100], description="hidden layer widths")
    activation: Literal["relu", "tanh", "gelu", "silu", "sigmoid", "evolved"] = "relu"

    @field_validator("widths")
    @classmethod
    def _positive(cls, v: list[int]) -> list[int]:
        if not v or any(w < 1 for w in v):
            raise ValueError("widths must be a non-empty list of positive integers")
        return v


class SparsityConfig(Section):
    target: float = Field(0.9, description="fraction of prunable weights removed, in [0, 1)")
    allocation: Literal["uniform", "global", "erk"] = Field(
        "erk", description="how the kept weights are shared between layers")
    rescale_init: bool = Field(True, description="when a mask is trained from the initial "
                               "weights, multiply its kept weights by 1/sqrt(layer density)")

    @field_validator("target")
    @classmethod
    def _range(cls, v: float) -> float:
        if not 0.0 <= v < 1.0:
            raise ValueError(f"must be in [0, 1) (0.9 keeps 10% of the weights), got {v}")
        return v


class TrainingConfig(Section):
    optimizer: Literal["sgd", "adam"] = "sgd"
    lr: float = Field(0.1, gt=0, description="learning rate")
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(0.0, ge=0)
    batch_size: int = Field(64, ge=1)
    epochs: int = Field(20, ge=1, description="epochs of the final training of the best network")
    schedule: Literal["constant", "cosine"] = Field("cosine", description="learning-rate schedule")
    loss: Literal["cross_entropy", "mse"] = Field("cross_entropy", description="mse for "
                                                  "regression ('accuracy' is then R^2)")


class EngineConfig(Section):
    chunk_size: int | None = Field(
        None, ge=1, description="networks per batch (default: 16 on CPU, all on GPU)")
    tf32: bool = Field(False, description="CUDA: allow TF32 matrix products (faster on "
                       "Ampere/Hopper, about 1e-3 relative precision)")


class RayConfig(Section):
    address: str | None = Field(None, description="Ray address (auto, ray://HOST:10001); "
                                "none starts a local Ray")
    num_workers: int | None = Field(None, ge=1, description="shard actors (default: one per "
                                    "GPU, else one per cpus_per_worker CPUs)")
    cpus_per_worker: int = Field(1, ge=1)
    gpus_per_worker: float | None = Field(None, ge=0, description="default 1 when the cluster "
                                          "has GPUs")
    trial_cpus: float = Field(1, gt=0, description="tune: CPUs per trial")
    trial_gpus: float = Field(0, ge=0, description="tune: GPUs per trial (fractions allowed)")
    max_concurrent_trials: int | None = Field(None, ge=1)
    max_failures: int = Field(1, ge=0, description="tune: retries of a failed trial")


class MethodConfig(BaseModel):
    """``name`` plus the method's own parameters, validated by the method's ``Params``."""

    model_config = ConfigDict(extra="allow")
    name: str = "kstarts"


class ComparisonConfig(Section):
    methods: list[str | dict[str, Any]] = Field(
        ["random", "snip", "kstarts"],
        description="method names, or {name: ..., <params>} entries")
    sparsities: list[float] = Field([0.9], description="target sparsities")
    seeds: list[int] = Field([0], description="seeds (initial weights, masks, data order)")

    @field_validator("sparsities")
    @classmethod
    def _range(cls, v: list[float]) -> list[float]:
        if not v or any(not 0.0 <= s < 1.0 for s in v):
            raise ValueError(f"every sparsity must be in [0, 1), got {v}")
        return v

    @field_validator("methods", "seeds")
    @classmethod
    def _nonempty(cls, v: list) -> list:
        if not v:
            raise ValueError("must not be empty")
        return v

    def method_entries(self) -> list[dict[str, Any]]:
        return method_entries(self.methods, "comparison.methods")


def method_entries(methods: list[str | dict[str, Any]], where: str) -> list[dict[str, Any]]:
    """``{name: ..., <params>}`` for every entry of a methods list (a name or a mapping)."""
    out = []
    for m in methods:
        entry = {"name": m} if isinstance(m, str) else dict(m)
        if "name" not in entry:
            raise ConfigError(f"{where}: entry {m} has no 'name'")
        out.append(entry)
    return out


class EnsembleConfig(Section):
    pool: list[str] = Field(["knn1", "knn3", "knn7", "knn15", "tree_d3", "tree", "logreg",
                             "linear_svm", "rbf_svm", "gnb", "lda", "mlp", "rf", "extra_trees"],
                            description="scikit-learn classifiers to select from")
    algorithm: Literal["ga", "umda", "pbil"] = "ga"
    fusion: Literal["majority", "weighted", "average"] = "majority"
    init: Literal["random", "all_ones", "best_k"] = "random"
    population: int = Field(30, ge=2)
    generations: int = Field(20, ge=1)
    diversity_weight: float = Field(0.0, ge=0)
    diversity: Literal["disagreement", "double_fault"] = "disagreement"
    size_penalty: float = Field(0.0, ge=0)
    val_fraction: float = Field(0.3, gt=0, lt=1)

    @field_validator("pool")
    @classmethod
    def _pool(cls, v: list[str]) -> list[str]:
        from .ensembles.pool import POOL
        bad = [p for p in v if p not in POOL]
        if bad or not v:
            raise ValueError(f"unknown classifiers {bad}; choose from {', '.join(POOL)}")
        return v


class ActivationConfig(Section):
    strategies: list[Literal["relu", "gelu", "silu", "random", "ga", "coevolution"]] = Field(
        ["relu", "gelu", "silu", "random", "ga", "coevolution"],
        description="what is compared, on the same number of network trainings")
    population: int = Field(8, ge=2, description="individuals per coevolving population")
    generations: int = Field(5, ge=1)
    search_epochs: int = Field(2, ge=1, description="training epochs per fitness evaluation")
    collaborators: Literal[1, 2] = Field(1, description="1: best of the other populations; "
                                         "2: and a random member")
    max_height: int = Field(5, ge=1, le=12, description="tree height limit")


class PlantedConfig(Section):
    tasks: list[Literal["relu", "circle", "helix"]] = ["relu", "circle", "helix"]
    depth: int = Field(5, ge=3, description="linear layers of target and wide network")
    width: int = Field(50, ge=16, description="width of the wide network")
    samples: int = Field(3000, ge=100)
    sparsities: list[float] = Field([0.9, 0.99], description="swept sparsities; the planted "
                                    "one (and one below it) are added")
    methods: list[str | dict[str, Any]] = ["random", "magnitude", "snip", "kstarts"]
    seeds: list[int] = [0]

    def method_entries(self) -> list[dict[str, Any]]:
        return method_entries(self.methods, "planted.methods")


class RunConfig(Section):
    name: str = Field("run", description="names the run directory")
    kind: Literal["mask_search", "comparison", "ensemble_search",
                  "activation_search", "planted"] = "mask_search"
    seed: int = Field(0, ge=0)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    backend: str = Field("local", description="local, sequential or ray")
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    sparsity: SparsityConfig = SparsityConfig()
    training: TrainingConfig = TrainingConfig()
    engine: EngineConfig = EngineConfig()
    ray: RayConfig = RayConfig()
    method: MethodConfig = MethodConfig()
    comparison: ComparisonConfig | None = Field(
        None, description="kind: comparison: methods x sparsities x seeds")
    tune: Any = Field(None, description="`neuroprune tune`: sampled values and objectives")
    ensemble: EnsembleConfig = EnsembleConfig()
    activation: ActivationConfig = ActivationConfig()
    planted: PlantedConfig = PlantedConfig()

    @field_validator("tune")
    @classmethod
    def _tune(cls, v: Any) -> Any:
        if v is None:
            return v
        from .tuning.space import TuneConfig
        return TuneConfig.model_validate(v)

    @model_validator(mode="before")
    @classmethod
    def _empty_sections(cls, tree: Any) -> Any:
        # `data:` with nothing under it is YAML null: read it as "all defaults".
        if isinstance(tree, dict):
            return {k: ({} if v is None and k in SECTIONS else v) for k, v in tree.items()}
        return tree

    @field_validator("backend")
    @classmethod
    def _backend(cls, v: str) -> str:
        from .backends import BACKENDS
        if v not in BACKENDS:
            raise ValueError(f"unknown backend '{v}'; choose one of {', '.join(BACKENDS)}")
        return v

    def method_params(self) -> BaseModel:
        """The method's parameters, validated against its ``Params`` model."""
        from .methods import get_method_class
        cls = get_method_class(self.method.name)
        extra = dict(self.method.model_extra or {})
        try:
            return cls.Params(**extra)
        except ValidationError as exc:
            err = exc.errors()[0]
            if err["type"] == "extra_forbidden" and len(err["loc"]) == 1:
                takes = ", ".join(cls.Params.model_fields) or "no parameters"
                raise ConfigError(f"method '{self.method.name}' has no parameter "
                                  f"'{err['loc'][0]}' (it takes: {takes})") from None
            raise ConfigError(_format(exc, prefix="method")) from None


SECTIONS = ("data", "model", "sparsity", "training", "engine", "ray", "method", "comparison",
            "ensemble", "activation", "planted")
# `tune` stays None when empty: an empty tune section is an error, not "tune nothing".


def _format(exc: ValidationError, prefix: str = "") -> str:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in (prefix, *err["loc"]) if p != "")
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        return f"unknown config key '{loc}' (check its spelling; `neuroprune config` lists keys)"
    if err["type"] == "missing":
        return f"config key '{loc}' is required"
    got = err.get("input")
    shown = "" if isinstance(got, (dict, list)) else f" (got {got!r})"
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
        node[keys[-1]] = yaml.safe_load(raw) if raw != "" else None
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


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"config file {path} does not exist")
    if path.is_dir():
        raise ConfigError(f"config path {path} is a folder; give a .yaml file")
    try:
        tree = yaml.safe_load(path.read_text(encoding="utf-8"))
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
    """Read, override and validate a config; the method's parameters are validated too."""
    tree = copy.deepcopy(tree) if tree is not None else (read_yaml(path) if path else {})
    if path is not None and "name" not in tree:
        tree["name"] = Path(path).stem
    for key, value in parse_overrides(overrides):
        _set_path(tree, key, value)
    try:
        cfg = RunConfig(**tree)
    except ValidationError as exc:
        raise ConfigError(_format(exc)) from None
    except TypeError as exc:
        raise ConfigError(f"config: {exc}") from None
    cfg.method_params()
    if cfg.kind == "comparison" and cfg.comparison is None:
        cfg.comparison = ComparisonConfig()
    sweep = {"comparison": cfg.comparison, "planted": cfg.planted}.get(cfg.kind)
    if sweep is not None:  # every method of a sweep, with its parameters, before any run
        for entry in sweep.method_entries():
            cell = cfg.model_copy(update={"method": MethodConfig(**entry)})
            try:
                cell.method_params()
            except ConfigError as exc:
                raise ConfigError(f"{cfg.kind}.methods: {exc}") from None
    return cfg


def to_dict(cfg: RunConfig) -> dict[str, Any]:
    """The resolved config (defaults filled in), as written to ``config.yaml``."""
    return cfg.model_dump(mode="json")
