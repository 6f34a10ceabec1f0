"""A sparse-mask search from a validated config to a run directory.

config -> data, model spec, layout -> method.find (evolution on an evaluator) -> best mask ->
final training -> test accuracy -> ``summary.json`` and ``best_mask.safetensors``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from .. import __version__
from ..backends import make_evaluator
from ..config import RunConfig, to_dict
from ..data import DataSplits, load_dataset
from ..engine import EvalTask, TrainSettings, init_state
from ..errors import UserError
from ..masks import bits_to_mask, check_bits, make_layout, save_mask
from ..methods import MethodContext, get_method_class
from ..models import ModelSpec, build_model, prunable_names
from ..rundir import RunDir


class Interrupted(Exception):
    """Ctrl-C arrived; the generation in progress was finished and committed first."""


class _GracefulInterrupt:
    """First Ctrl-C: set a flag (the search stops after the generation in progress). Second
    Ctrl-C: the default behaviour (stop now)."""

    def __init__(self):
        self.requested = False
        self._old = None

    def __enter__(self):
        import signal
        import threading
        if threading.current_thread() is threading.main_thread():
            self._old = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, *_):
        import signal
        self.requested = True
        signal.signal(signal.SIGINT, self._old or signal.default_int_handler)

    def __exit__(self, *exc):
        import signal
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)


def resolve_device(name: str) -> str:
    """``auto`` -> cuda when available; asking for cuda without one is a clear error."""
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("device cuda requested but no CUDA device is visible to torch; "
                        "use --device cpu (or auto)")
    return name


def load_data(cfg: RunConfig) -> DataSplits:
    d = cfg.data
    return load_dataset(d.dataset, root=d.root, download=d.download, protocol=d.protocol,
                        seed=d.split_seed, val_fraction=d.val_fraction,
                        test_fraction=d.test_fraction, path=d.path,
                        label_column=d.label_column)


def model_spec(cfg: RunConfig, data: DataSplits) -> ModelSpec:
    return ModelSpec(arch=cfg.model.arch, input_shape=data.input_shape,
                     num_classes=data.num_classes, widths=tuple(cfg.model.widths),
                     activation=cfg.model.activation)


def train_settings(cfg: RunConfig) -> TrainSettings:
    t = cfg.training
    return TrainSettings(optimizer=t.optimizer, lr=t.lr, momentum=t.momentum,
                         weight_decay=t.weight_decay, batch_size=t.batch_size,
                         schedule=t.schedule, loss=t.loss)


class MaskSearch:
    """Everything one mask search needs, prepared (and validated) before anything is written."""

    def __init__(self, cfg: RunConfig, evaluator_options: dict[str, Any] | None = None,
                 data: DataSplits | None = None, init=None, spec: ModelSpec | None = None):
        """``data``, ``init`` and ``spec`` replace what the config would load or build (the
        planted-ticket benchmark brings its own)."""
        self.cfg = cfg
        self.method = get_method_class(cfg.method.name)(cfg.method_params())
        self.device = resolve_device(cfg.device)
        if self.device == "cuda" and cfg.engine.tf32:
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        self.data = data if data is not None else load_data(cfg)
        self.spec = spec or model_spec(cfg, self.data)
        self.init_override = init
        template = build_model(self.spec)
        shapes = dict(template.named_parameters())
        self.layout = make_layout({k: tuple(shapes[k].shape) for k in prunable_names(template)},
                                  cfg.sparsity.target, cfg.sparsity.allocation)
        self.settings = train_settings(cfg)
        self.evaluator_options = evaluator_options or {}

    def evaluator(self, **options: Any):
        """The configured backend for this search's model, data and settings."""
        if self.cfg.backend == "ray":
            options = {**self.cfg.ray.model_dump(), **options}
        return make_evaluator(self.cfg.backend, spec=self.spec, data=self.data,
                              settings=self.settings, device=self.device,
                              chunk_size=self.cfg.engine.chunk_size,
                              **{**self.evaluator_options, **options})

    def context(self, evaluator, commit=None, resume_state=None,
                progress: bool = False) -> MethodContext:
        """What the method sees: spec, data, layout, settings, evaluator, initial weights."""
        return MethodContext(spec=self.spec, data=self.data, layout=self.layout,
                             settings=self.settings, evaluator=evaluator,
                             init=self.init_override if self.init_override is not None
                             else init_state(self.spec, self.cfg.seed), seed=self.cfg.seed,
                             final_epochs=self.cfg.training.epochs, commit=commit,
                             resume_state=resume_state, progress=progress,
                             rescale_init=self.cfg.sparsity.rescale_init)

    def run(self, run_dir: str | Path, *, progress: bool = True, resume: bool = False,
            log=print, on_generation=None) -> dict[str, Any]:
        """Run the search into ``run_dir`` and return the summary.

        ``on_generation(generation, rows)`` is called after each committed generation (Optuna
        reports and pruning hook in there; an exception it raises stops the search).
        """
        cfg, t0 = self.cfg, time.time()
        rd = RunDir(run_dir)
        resume_state = None
        if resume:
            resume_state, path = rd.load_last_checkpoint()
            if resume_state is not None:
                log(f"resuming from {path.name} (generation {resume_state['generation']})")
            t0 -= float(resume_state.get("wall_seconds", 0.0)) if resume_state else 0.0
        evaluator = self.evaluator()  # backend problems (Ray missing, unreachable) end here
        rd.create()
        rd.write_config(to_dict(cfg))

        interrupt = _GracefulInterrupt()
        best_so_far: dict[str, Any] = {}

        def commit(generation: int, rows: list[dict[str, Any]], state: dict[str, Any]) -> None:
            state = {**state, "wall_seconds": time.time() - t0}
            rd.commit_generation(generation, rows)
            rd.save_checkpoint(generation, state)
            if state.get("logbook") is not None:
                rd.write_logbook(list(state["logbook"]))
            for r in rows:
                score = r.get("fitness", r.get("val_accuracy"))
                if score is not None and score >= best_so_far.get("fitness", -1e18):
                    best_so_far.update(fitness=score, val_accuracy=r["val_accuracy"],
                                       generation=generation)
            if on_generation is not None:
                on_generation(generation, rows)
            if interrupt.requested:
                rd.write_summary({"status": "interrupted", "method": self.method.name,
                                  "last_generation": generation, "seed": cfg.seed,
                                  "best_so_far": dict(best_so_far),
                                  "wall_seconds": round(time.time() - t0, 3),
                                  "resume": f"neuroprune resume {rd.path}"})
                raise Interrupted(f"stopped after generation {generation}")

        with evaluator, interrupt:
            ctx = self.context(evaluator, commit, resume_state, progress)
            found = self.method.find(ctx)
            check_bits(self.layout, found.bits)
            mask = bits_to_mask(self.layout, found.bits)
            trained = found.trained
            if trained is None:
                from_init = found.init is ctx.init  # not when retraining trained weights
                trained = evaluator.evaluate(EvalTask(
                    masks=[mask], init=found.init, epochs=cfg.training.epochs,
                    data_seed=cfg.seed, keep_weights=True, test=True,
                    rescale_init=cfg.sparsity.rescale_init and from_init))
        final = trained.metrics[0]
        rd.commit_generation("final", [{"generation": "final", "index": 0,
                                        "val_accuracy": final["val_accuracy"],
                                        "test_accuracy": final["test_accuracy"],
                                        "train_loss": final["train_loss"],
                                        "sparsity": mask.sparsity()}])
        summary = {
            "status": "complete",
            "method": self.method.name,
            "dataset": cfg.data.dataset,
            "arch": cfg.model.arch,
            "sparsity": mask.sparsity(),
            "target_sparsity": cfg.sparsity.target,
            "allocation": cfg.sparsity.allocation,
            "layer_sparsity": mask.layer_sparsity(),
            "kept_weights": mask.kept(),
            "prunable_weights": mask.numel(),
            "test_accuracy": final["test_accuracy"],
            "val_accuracy": final["val_accuracy"],
            "seed": cfg.seed,
            "device": self.device,
            "backend": cfg.backend,
            "wall_seconds": round(time.time() - t0, 3),
            "neuroprune_version": __version__,
            **{k: v for k, v in found.info.items() if k != "logbook"},
        }
        metadata = {"architecture": self.spec.to_dict(), "sparsity": summary["sparsity"],
                    "method": self.method.name, "seed": cfg.seed, "dataset": cfg.data.dataset,
                    "data": cfg.data.model_dump(mode="json"),
                    "test_accuracy": final["test_accuracy"],
                    "val_accuracy": final["val_accuracy"],
                    "layer_sparsity": summary["layer_sparsity"],
                    "neuroprune_version": __version__}
        weights = trained.weights[0] if trained.weights else None
        save_mask(rd.path / "best_mask.safetensors", mask, metadata, weights=weights)
        rd.write_summary(summary)
        return summary
