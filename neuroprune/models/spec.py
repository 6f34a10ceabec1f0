"""One factory builds every model everywhere: :class:`ModelSpec` and :func:`build_model`.

A spec names where the model comes from, with the data's input shape and class count:

* a registered zoo name (``mlp``, ``resnet20``, ...) with its options;
* ``factory: "package.module:function"`` with ``kwargs`` (the function may take
  ``input_shape``, ``in_channels`` and ``num_classes``; they are passed when it does);
* ``torchvision:NAME`` (input channels and class count adapted);
* a Python callable (the in-memory API), which Ray ships to its workers by value.

The spec is what checkpoints and mask files store (:meth:`ModelSpec.to_dict`), so the same
network is rebuilt wherever it is needed: engine, methods, export, Ray workers.

What is prunable: a model may declare ``prunable_layer_names`` (parameter names) and
``output_layer_names`` (as OpenLTH's model base does); otherwise every Linear and Conv weight
is prunable and the last of them is the output layer.
"""

from __future__ import annotations

import copy
import inspect
import threading
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError
from ..registry import import_target
from .registry import MODELS

TORCHVISION = "torchvision:"
PRUNABLE_TYPES = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)

#: torch's global RNG is one per process. Building a model draws from it, so every build, and
#: every section that seeds it and then draws (:func:`torch_seeded`), holds this lock: the
#: threads of a ``tune --batch`` cannot interleave their draws or restore each other's state.
TORCH_RNG = threading.RLock()


@contextmanager
def torch_seeded(seed: int | None = None) -> Iterator[None]:
    """torch's global (CPU) RNG seeded with ``seed`` (left as it is when ``None``) for the
    block and restored after it, with :data:`TORCH_RNG` held: what the block draws depends on
    ``seed`` alone, whatever other threads do meanwhile."""
    with TORCH_RNG, torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(int(seed))
        yield


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to rebuild an architecture (see the module docstring)."""

    input_shape: tuple[int, ...]
    num_classes: int
    name: str | None = "mlp"
    options: Mapping[str, Any] = field(default_factory=dict)
    factory: str | None = None
    builder: Callable[..., nn.Module] | None = field(default=None, compare=False, repr=False)

    @classmethod
    def zoo(cls, name: str, input_shape: tuple[int, ...], num_classes: int,
            **options: Any) -> "ModelSpec":
        """A zoo model with validated options: ``ModelSpec.zoo("mlp", (1, 8, 8), 10,
        widths=(32,))``."""
        fn = MODELS.load(name)
        return cls(tuple(input_shape), int(num_classes), name,
                   validate_options(fn, options, f"model '{name}'"))

    @property
    def source(self) -> str:
        """``zoo``, ``torchvision``, ``factory`` or ``python``."""
        if self.builder is not None:
            return "python"
        if self.factory:
            return "factory"
        if self.name and self.name.startswith(TORCHVISION):
            return "torchvision"
        return "zoo"

    def describe(self) -> str:
        """Short name for summaries: ``resnet20``, ``mypkg.nets:build``, ``MyNet``."""
        if self.builder is not None:
            return getattr(self.builder, "__qualname__", type(self.builder).__name__)
        return self.factory or str(self.name)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "factory": self.factory,
                               "options": _plain(dict(self.options)),
                               "input_shape": list(self.input_shape),
                               "num_classes": self.num_classes}
        if self.builder is not None:
            out["name"], out["factory"] = None, _import_path(self.builder)
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ModelSpec":
        d = dict(d)
        if "arch" in d:  # files written before models were open: {arch, widths, ...}
            options = {k: d[k] for k in ("widths", "activation") if k in d}
            if d["arch"] == "lenet5" and "channels" in d:
                options["channels"] = d["channels"]
            if d["arch"] == "lenet5" and tuple(options.get("widths", ())) == (300, 100):
                options["widths"] = (120, 84)  # the old default stood for LeNet-5's own
            return cls.zoo(d["arch"], tuple(d["input_shape"]), d["num_classes"], **options)
        if d.get("factory") is None and d.get("name") is None:
            raise ConfigError("this model was defined in Python and cannot be rebuilt from "
                              "its file; build it yourself and use neuroprune.apply_mask")
        return cls(tuple(d["input_shape"]), int(d["num_classes"]), d.get("name"),
                   dict(d.get("options") or {}), d.get("factory"))


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _import_path(obj: Any) -> str | None:
    module = getattr(obj, "__module__", None)
    qual = getattr(obj, "__qualname__", None)
    if not module or not qual or module == "__main__" or "<locals>" in qual:
        return None
    return f"{module}:{qual}"


def validate_options(fn: Callable, options: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Check ``options`` against the keyword-only parameters of a zoo function (names and
    types, lists read as tuples); one-line :class:`ConfigError` otherwise."""
    from ..section import check_option, keyword_options
    from .base import ACTIVATIONS, INITS

    params = keyword_options(fn)
    out = {}
    for key, value in options.items():
        if key not in params:
            takes = ", ".join(params) or "no options"
            raise ConfigError(f"{where} has no option '{key}' (it takes: {takes})")
        try:
            value = check_option(fn, key, value)
        except ValueError as exc:
            raise ConfigError(f"model.{key}: {exc} for {where} (got {value!r})") from None
        if key == "activation" and value not in ACTIVATIONS:
            raise ConfigError(f"model.activation: {ACTIVATIONS.unknown(value)}")
        if key == "init" and value not in INITS:
            raise ConfigError(f"model.init: unknown scheme '{value}'; choose one of "
                              f"{', '.join(INITS)}")
        out[key] = value
    return out


def _accepted(fn: Callable, available: Mapping[str, Any]) -> dict[str, Any]:
    """The entries of ``available`` that ``fn`` takes by name."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return {}
    return {k: v for k, v in available.items() if k in params}


def build_model(spec: ModelSpec) -> nn.Module:
    """A fresh, untrained module for ``spec`` (initialised from torch's global RNG, with
    :data:`TORCH_RNG` held; seed it with :func:`torch_seeded`)."""
    with TORCH_RNG:
        return _build(spec)


def _build(spec: ModelSpec) -> nn.Module:
    source = spec.source
    if source == "zoo":
        return MODELS.load(spec.name)(spec.input_shape, spec.num_classes, **spec.options)
    if source == "torchvision":
        from .torchvision_models import torchvision_model
        return torchvision_model(spec.name[len(TORCHVISION):], spec.input_shape,
                                 spec.num_classes, dict(spec.options))
    fn = spec.builder if source == "python" else import_target(spec.factory, "model.factory")
    shape = {"input_shape": tuple(spec.input_shape), "num_classes": spec.num_classes,
             "in_channels": spec.input_shape[0] if len(spec.input_shape) == 3 else 1}
    kwargs = {**_accepted(fn, shape), **spec.options}
    where = "model.factory" if source == "factory" else "model"
    with _user_code(f"{where}: calling {spec.describe()}"):
        model = fn(**kwargs)
    if not isinstance(model, nn.Module):
        raise ConfigError(f"{where}: {spec.describe()} returned a {type(model).__name__}, "
                          f"not a torch.nn.Module")
    return model


@contextmanager
def _user_code(what: str) -> Iterator[None]:
    """Run a factory's or a model's own code: whatever it raises (``sys.exit`` included)
    becomes one :class:`ConfigError` starting with ``what``."""
    try:
        yield
    except ConfigError:
        raise
    except SystemExit as exc:
        raise ConfigError(f"{what} ended in sys.exit({exc.code!r}); a factory and a forward must "
                          f"return, not exit") from None
    except Exception as exc:
        msg = str(exc).strip().splitlines()
        raise ConfigError(f"{what} failed: {type(exc).__name__}: "
                          f"{msg[0][:300] if msg else ''}") from None


def parameter_bytes(spec: ModelSpec) -> int | None:
    """Bytes of the parameters and buffers of ``spec``'s model, counted on the meta device
    (nothing allocated); None for a model that cannot be built there."""
    try:
        with torch.device("meta"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = build_model(spec)
    except (Exception, SystemExit):  # the real build says what is wrong
        return None
    return sum(t.numel() * t.element_size() for t in (*model.parameters(), *model.buffers()))


def _check_size(spec: ModelSpec, where: str) -> None:
    """Refuse a model whose weights alone would fill the memory, before building it."""
    from .._system import free_memory, human

    need = parameter_bytes(spec)
    free = free_memory(torch.device("cpu"))
    # training holds weights, gradients, optimiser state and masks: about four copies
    if need is not None and 4 * need > 0.8 * free:
        raise ConfigError(f"{where}: {spec.describe()} has {human(need)} of weights and needs "
                          f"about {human(4 * need)} to train, but this machine has "
                          f"{human(free)} free; use a smaller model (e.g. lower model.widths)")


def check_model(spec: ModelSpec) -> nn.Module:
    """Build ``spec`` once and check it against the data: an ``nn.Module`` that fits in
    memory, whose output for a batch of the input shape is ``[batch, num_classes]`` and
    finite, in evaluation and in training mode and at two batch sizes, and that has
    something to prune. Returns the built module (a template)."""
    where = {"factory": "model.factory", "python": "model"}.get(spec.source, "model.name")
    _check_size(spec, where)
    with torch_seeded(0):
        model = build_model(spec)
        trial = copy.deepcopy(model)  # training mode updates BatchNorm statistics
        for batch, training in ((2, False), (3, True)):
            _check_outputs(trial.train(training), spec, where, batch, training)
    if not prunable_names(model):
        raise ConfigError(f"{where}: {spec.describe()} has no Linear or Conv layer to prune "
                          f"(declare prunable_layer_names on the model)")
    return model.train()


def _check_outputs(model: nn.Module, spec: ModelSpec, where: str, batch: int,
                   training: bool) -> None:
    mode = "training" if training else "evaluation"
    inputs = torch.randn(batch, *spec.input_shape)
    shape = tuple(spec.input_shape)
    try:
        with torch.no_grad(), _user_code(f"{where}: {spec.describe()} in {mode} mode, on a "
                                         f"batch of {batch} inputs of shape {shape},"):
            out = model(inputs)
    except ConfigError as exc:
        raise ConfigError(f"{exc}; it cannot take this dataset's inputs") from None
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (batch, spec.num_classes):
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ConfigError(f"{where}: {spec.describe()} gives outputs of shape {got} for a batch "
                          f"of {batch} in {mode} mode; this dataset needs ({batch}, "
                          f"{spec.num_classes}) ({spec.num_classes} classes)")
    if not torch.isfinite(out).all():
        raise ConfigError(f"{where}: {spec.describe()} gives NaN or infinite outputs for "
                          f"random inputs in {mode} mode, before any training; check its "
                          f"forward and initialisation")


def prunable_names(model: nn.Module) -> list[str]:
    """Names of the prunable parameters: the model's ``prunable_layer_names`` when it declares
    them, otherwise the weights of its Linear and Conv layers, in module order."""
    declared = getattr(model, "prunable_layer_names", None)
    if declared is not None:
        params = dict(model.named_parameters())
        bad = [n for n in declared if n not in params]
        if bad:
            raise ConfigError(f"model: prunable_layer_names names {bad}, which are not "
                              f"parameters of the model")
        return list(declared)
    return [f"{name}.weight" if name else "weight" for name, mod in model.named_modules()
            if isinstance(mod, PRUNABLE_TYPES)]


def output_names(model: nn.Module) -> list[str]:
    """The output layer's parameter names: declared ``output_layer_names``, or the last
    prunable weight."""
    declared = getattr(model, "output_layer_names", None)
    if declared is not None:
        return list(declared)
    names = prunable_names(model)
    return names[-1:]
