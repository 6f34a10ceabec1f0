"""The workbench: the one composition root of a run.

Built from a validated config (or from Python arguments, :func:`neuroprune.prune`), it owns the
data, the model factory, the mask layout, the training and engine settings, the device and the
evaluator. Every search kind, the tuner, the sweeps and the Python API receive one; nothing else
loads data, builds models or picks a backend. A sweep derives one workbench per cell from its
own (:meth:`Workbench.derive`): the data is loaded once and shared.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .config import RunConfig
from .data import DataSplits, load_dataset
from .data.augment import Augmenter
from .engine import Evaluator, State, TrainSettings
from .errors import ConfigError, UserError
from .masks import Layout, StructureSpace, make_layout, structure_space
from .models import ModelSpec, build_model, check_model, output_names, prunable_names


#: fewer kept weights per pruned layer than this is worth a warning
FEW_WEIGHTS = 10


def resolve_device(name: str) -> str:
    """``auto`` -> cuda when available; a device torch cannot see (cuda without a GPU,
    ``cuda:N`` past the last one, mps off Apple silicon) is one clear error."""
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        index = int(name.partition(":")[2] or 0)
        if index >= count:
            seen = f"{count} CUDA device{'s' * (count != 1)} (cuda:0 to cuda:{count - 1})" \
                if count else "no CUDA device"
            raise UserError(f"device {name} requested but torch sees {seen}; use --device "
                            f"cpu (or auto)")
    if name == "mps" and not (torch.backends.mps.is_available()):
        raise UserError("device mps requested but torch sees no Apple GPU (MPS); use "
                        "--device cpu (or auto)")
    return name


def mask_names(model: nn.Module, exclude: list[str]) -> list[str]:
    """Prunable parameter names minus ``sparsity.exclude`` (``first``, ``output`` or names)."""
    names = prunable_names(model)
    drop: set[str] = set()
    for item in exclude:
        if item == "first":
            drop.add(names[0])
        elif item == "output":
            drop.update(output_names(model))
        elif item in names:
            drop.add(item)
        else:
            raise ConfigError(f"sparsity.exclude: '{item}' is not a prunable layer of this "
                              f"model; use first, output or one of {', '.join(names)}")
    kept = [n for n in names if n not in drop]
    if not kept:
        raise ConfigError("sparsity.exclude leaves no layer to prune")
    return kept


@dataclass
class Workbench:
    """Data, model, mask layout, settings and device of one run (see the module docstring)."""

    config: RunConfig
    data: DataSplits
    spec: ModelSpec
    layout: Layout
    device: str
    init_override: State | None = None
    shared_evaluator: Evaluator | None = None  # a batch of tuning trials trains through one
    structure: StructureSpace | None = None  # sparsity.structure other than element
    memo: Path | None = None  # a sweep's shared trainings (neuroprune.engine.memo)
    trained_init: bool = False  # the initial weights are a trained model's (model.weights)

    @classmethod
    def from_config(cls, cfg: RunConfig, *, data: DataSplits | None = None,
                    spec: ModelSpec | None = None, init: State | None = None) -> "Workbench":
        """Load the data, build and check the model, lay out the masks: every problem with
        the config ends here, before anything is written. ``data``, ``spec`` and ``init``
        replace what the config would give (the planted-ticket benchmark brings its own)."""
        device = resolve_device(cfg.device)
        if cfg.model.weights is not None and "standardise" not in cfg.data.model_fields_set:
            # a trained model takes the inputs it was trained on: as they are, by default
            cfg = cfg.model_copy(update={"data": cfg.data.model_copy(
                update={"standardise": False})})
        data = data if data is not None else load_dataset(cfg.data)
        Augmenter(cfg.data.augment).check(data.input_shape)
        multilabel = data.provenance.get("task") == "multilabel"
        if multilabel != (cfg.data.task == "multilabel"):
            from .data.registry import multilabel_datasets
            raise ConfigError(f"dataset {data.name} is multi-label: set data.task=multilabel"
                              if multilabel else f"data.task=multilabel needs a multi-label "
                              f"dataset ({', '.join(multilabel_datasets())}); {data.name} has "
                              f"one class per sample")
        if cfg.training.loss == "mse" and not data.train_y.dtype.is_floating_point:
            raise ConfigError(f"training.loss=mse fits numeric targets (the planted tasks); "
                              f"dataset {data.name} has class labels: use "
                              f"training.loss=cross_entropy")
        spec = spec or cfg.model.spec(data.input_shape, data.num_classes)
        template = check_model(spec)
        trained = cfg.model.weights is not None
        if trained:  # trained weights are pruned as they are, never rescaled
            from .models.trained import load_trained
            init = load_trained(cfg.model.weights, template)
            cfg = cfg.model_copy(update={"sparsity": cfg.sparsity.model_copy(
                update={"rescale_init": False})})
        if cfg.sparsity.structure != "element":
            space = cls._structure(cfg, template, data.input_shape)
            return cls(cfg, data, spec, space.layout, device, init, structure=space,
                       trained_init=trained)
        return cls(cfg, data, spec, cls._layout(cfg, template), device, init,
                   trained_init=trained)

    @staticmethod
    def _structure(cfg: RunConfig, template: nn.Module, input_shape) -> StructureSpace:
        """The structured mask space, its budget checked (a budget no structure meets is
        refused here, before anything is written)."""
        sp = cfg.sparsity
        drop = [n for n in mask_names(template, []) if n not in mask_names(template, sp.exclude)]
        space = structure_space(template, torch.zeros(1, *input_shape), sp.structure,
                                sp.layers, drop)
        space.meet(torch.zeros(1, space.size), sp.budget, sp.target)
        return space

    @staticmethod
    def _layout(cfg: RunConfig, template: nn.Module) -> Layout:
        params = dict(template.named_parameters())
        names = mask_names(template, cfg.sparsity.exclude)
        return make_layout({k: tuple(params[k].shape) for k in names}, cfg.sparsity.target,
                           cfg.sparsity.allocation)

    def check_sparsity(self) -> "Workbench":
        """Refuse a sparsity that leaves some layer without a weight (the network could
        carry no signal); warn where it leaves very few. For a run's own config: the cells
        of a sweep or a study (:meth:`derive`) may explore such extremes on purpose."""
        if self.structure is not None or self.config.kind in ("comparison", "planted"):
            # a structured budget is checked where its space is built (a budget no structure
            # meets is refused there); a sweep's cells set their own sparsities
            return self
        layout, target = self.layout, self.config.sparsity.target
        layers = len(layout.names)
        if layout.kept < layers:
            raise ConfigError(f"sparsity.target={target} keeps {layout.kept} weight(s) for "
                              f"{layers} pruned layers: some layer would keep none and the "
                              f"network could carry no signal; lower sparsity.target or use "
                              f"sparsity.allocation=erk")
        if layout.kept < FEW_WEIGHTS * layers:
            import warnings
            warnings.warn(f"sparsity.target={target} keeps only {layout.kept} weights in "
                          f"{layers} pruned layers; expect an accuracy near chance",
                          stacklevel=2)
        return self

    def derive(self, cfg: RunConfig, *, data: DataSplits | None = None,
               spec: ModelSpec | None = None, init: State | None = None,
               evaluator: Evaluator | None = None) -> "Workbench":
        """A workbench for ``cfg`` (a sweep's cell, a tuning trial) that reuses this one's data
        when ``cfg`` reads the same data, and its model when the model is the same too.
        ``evaluator`` is used instead of building one (a batch of tuning trials)."""
        same_data = data is None and cfg.data == self.config.data
        data = self.data if same_data else data
        if spec is None and same_data and cfg.model == self.config.model:
            spec = self.spec
        bench = Workbench.from_config(cfg, data=data, spec=spec, init=init)
        bench.shared_evaluator = evaluator
        return bench

    # ------------------------------------------------------------------ what runs use
    @property
    def settings(self) -> TrainSettings:
        return self.config.training

    @property
    def seed(self) -> int:
        return self.config.seed

    def build_model(self) -> nn.Module:
        """A fresh module of this run's architecture (initialised from torch's global RNG)."""
        return build_model(self.spec)

    def init_state(self, seed: int | None = None) -> State:
        """The initial weights for ``seed`` (default: the run's), or the given ``init``."""
        if self.init_override is not None:
            return self.init_override
        from .engine import init_state
        return init_state(self.spec, self.seed if seed is None else seed)

    def mask_file_metadata(self, method: str, summary: dict[str, Any],
                           **figures: Any) -> dict[str, Any]:
        """What a run's ``best_mask.safetensors`` says of itself: the architecture, the
        data it ran on and its preprocessing, ``method``, the summary's sparsity and data
        record, and ``figures`` (its accuracies, layer sparsities, ...)."""
        from . import __version__
        cfg = self.config
        return {"architecture": self.spec.to_dict(), "sparsity": summary["sparsity"],
                "method": method, "seed": cfg.seed, "dataset": cfg.data.dataset,
                "data": cfg.data.model_dump(mode="json"), "data_record": summary["data"],
                "preprocessing": self.data.preprocessing, **figures,
                "neuroprune_version": __version__}

    def memo_context(self) -> dict[str, Any]:
        """Everything besides the task that a training's result depends on: the key of the
        world it trains in, for :class:`~neuroprune.engine.memo.Memoised`. The final
        training's length (``training.epochs``) is left out: a task carries its own."""
        cfg = self.config
        return {"model": self.spec.to_dict(), "data": cfg.data.model_dump(mode="json"),
                "training": cfg.training.model_dump(mode="json", exclude={"epochs"}),
                "engine": cfg.engine.model_dump(mode="json"), "device": self.device,
                "backend": cfg.backend,
                "structure": cfg.sparsity.model_dump(mode="json", include={
                    "structure", "layers", "exclude"}) if self.structure is not None else None,
                "layout": [[n, list(s)] for n, s in zip(self.layout.names, self.layout.shapes)]}

    def evaluator(self, **options: Any) -> Evaluator:
        """The configured backend for this run's model, data and settings (or the shared
        evaluator of a batch of trials)."""
        if self.shared_evaluator is not None:
            return self.shared_evaluator
        if self.memo is not None:
            from .engine.memo import Memoised
            return Memoised(self._backend(**options), self.memo, self.memo_context())
        return self._backend(**options)

    def _backend(self, **options: Any) -> Evaluator:
        from .backends import BACKENDS
        cfg = self.config
        if cfg.backend == "ray":
            options = {**cfg.ray.model_dump(exclude={"trial_cpus", "trial_gpus",
                                                     "max_concurrent_trials",
                                                     "max_failures"}), **options}
        return BACKENDS.load(cfg.backend)(spec=self.spec, data=self.data,
                                          settings=self.settings, layout=self.layout,
                                          device=self.device, engine=cfg.engine,
                                          augment=tuple(cfg.data.augment), **options)
