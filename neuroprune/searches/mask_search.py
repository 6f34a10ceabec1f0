"""A sparse-mask search from a validated config to a run directory.

workbench (data, model, layout) -> method.find (evolution on an evaluator) -> best mask ->
final training -> test accuracy -> ``summary.json`` and ``best_mask.safetensors``.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import torch

from .. import __version__
from ..config import to_dict
from ..efficiency import efficiency_of_weights
from ..engine import EvalTask, LearningCurve
from ..engine.autotune import run_choices
from ..engine.evaluator import Metered
from ..errors import ConfigError, UserError
from ..evolution.loop import Generation
from ..masks import Mask, bits_to_mask, check_bits
from ..methods import METHODS, MethodContext
from ..mirror import shown
from ..rundir import FILES, RunDir
from ..tracking import Tracking, open_tracking
from ..workbench import Workbench
from .kinds import Kind


class Interrupted(Exception):
    """The search was stopped at a generation boundary, everything before it committed:
    after finishing the generation in progress (Ctrl-C), or dropping it (SIGTERM)."""

    def __init__(self, message: str = "", signum: int = signal.SIGINT):
        super().__init__(message)
        self.signum = signum


class Terminated(KeyboardInterrupt):
    """SIGTERM (``ray job stop``, a preempted node, Kubernetes): a stop like Ctrl-C that does
    not wait for the generation in progress, since the sender kills soon after (Ray's job stop
    after 3 s)."""


def raise_terminated(*_) -> None:
    """A SIGTERM handler: stop as Ctrl-C stops (the command line installs it)."""
    raise Terminated


def stop_signal(exc: BaseException) -> int:
    """The signal that stopped a run: SIGTERM or SIGINT."""
    if isinstance(exc, Terminated) or getattr(exc, "signum", None) == signal.SIGTERM:
        return signal.SIGTERM
    return signal.SIGINT


class _GracefulInterrupt:
    """First Ctrl-C: set a flag (the search stops after the generation in progress). Second
    Ctrl-C: the default behaviour (stop now). SIGTERM: stop now, dropping the generation in
    progress, or, arriving while a generation is being committed, right after that commit."""

    def __init__(self):
        self.requested = False
        self.terminated = False
        self.committing = False
        self._old = self._old_term = None

    def __enter__(self):
        import threading
        if threading.current_thread() is threading.main_thread():
            self._old = signal.signal(signal.SIGINT, self._handle)
            self._old_term = signal.signal(signal.SIGTERM, self._terminate)
        return self

    def _handle(self, *_):
        self.requested = True
        signal.signal(signal.SIGINT, self._old or signal.default_int_handler)

    def _terminate(self, *_):
        self.requested = self.terminated = True
        if not self.committing:
            raise Terminated

    def at_once(self) -> None:
        """From here on (the final training: no generation to finish) Ctrl-C and SIGTERM stop
        at once; one that came since the last generation stops now."""
        if self._old is not None:
            signal.signal(signal.SIGINT, signal.default_int_handler)
            signal.signal(signal.SIGTERM, raise_terminated)
        if self.terminated:
            raise Terminated
        if self.requested:
            raise KeyboardInterrupt

    def __exit__(self, *exc):
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)
            signal.signal(signal.SIGTERM, self._old_term)


class _Recording:
    """A mask search's ``ctx.commit``: each generation's state gains the time and training
    spent so far and goes to the run directory (the :class:`~neuroprune.evolution.loop.
    Recorder`); then ``on_generation`` hears of it, and a stop asked for meanwhile ends the
    search there, with an interrupted run's summary."""

    def __init__(self, rd: RunDir, evaluator: Metered, interrupt: _GracefulInterrupt,
                 t0: float, resume_state: dict | None, on_generation, method: str, seed: int):
        self.rd, self.evaluator, self.interrupt, self.t0 = rd, evaluator, interrupt, t0
        self.resume_state, self.on_generation = resume_state, on_generation
        self.method, self.seed = method, seed

    def spent(self, key: str) -> int:
        """What the interrupted run had spent (``network_epochs``, ...), if this resumes it."""
        return (self.resume_state or {}).get(key, 0)

    def reused(self) -> int | None:
        """Network-epochs read from a sweep's memo (None: no memo)."""
        return getattr(self.evaluator.inner, "reused_network_epochs", None)

    def __call__(self, generation: int, rows: list[dict[str, Any]],
                 state: dict[str, Any]) -> None:
        state = {**state, "wall_seconds": time.time() - self.t0,
                 "network_epochs": self.evaluator.network_epochs + self.spent("network_epochs")}
        if self.reused() is not None:
            state["reused_network_epochs"] = self.reused() + self.spent("reused_network_epochs")
        self.interrupt.committing = True  # a SIGTERM now stops after this commit
        self.rd.record(Generation(generation, rows, state=state))
        self.interrupt.committing = False
        if self.on_generation is not None:
            self.on_generation(generation, rows)
        if self.interrupt.requested:
            self.stopped(signal.SIGTERM if self.interrupt.terminated else signal.SIGINT)

    def stopped(self, signum: int) -> None:
        self.rd.write_interrupted(self.method, self.seed,
                                  wall_seconds=round(time.time() - self.t0, 3),
                                  resume=f"neuroprune resume {shown(self.rd.path)}")
        raise Interrupted(f"stopped after generation {self.rd.last_generation}", signum)


class MaskSearch:
    """One method's search for a mask on a workbench, then the final training and test."""

    def __init__(self, bench: Workbench):
        self.bench = bench
        self.cfg = bench.config
        self.method = METHODS.load(self.cfg.method.name)(self.cfg.method_params())
        structured = self.cfg.sparsity.structure != "element"
        if self.method.structured != structured:
            raise ConfigError(
                f"method {self.method.name} removes "
                f"{'neurons and channels' if self.method.structured else 'single weights'}; "
                f"set sparsity.structure to "
                f"{'neuron, channel or all' if self.method.structured else 'element'}")
        if self.cfg.training.epochs == 0 and not self.method.one_shot:
            raise ConfigError(f"training.epochs=0 (no training after pruning) suits one-shot "
                              f"methods on trained weights (magnitude, random, snip, synflow, "
                              f"grasp); {self.method.name} trains while it prunes: give "
                              f"training.epochs >= 1")
        self._check_memory()

    def stages(self, evaluator, found) -> dict[str, float]:
        """A trained model's test (and validation) accuracy before pruning and right after
        it, before any fine-tuning: what pruning itself cost."""
        cfg = self.cfg
        dense = evaluator.evaluate(EvalTask(masks=None, size=1, init=self.bench.init_state(),
                                            epochs=0, data_seed=cfg.seed, test=True)).row(0)
        pruned = evaluator.evaluate(EvalTask(masks=found.bits.unsqueeze(0), init=found.init,
                                             epochs=0, data_seed=cfg.seed, test=True)).row(0)
        return {"test_accuracy_before_pruning": dense["test_accuracy"],
                "val_accuracy_before_pruning": dense["val_accuracy"],
                "test_accuracy_after_pruning": pruned["test_accuracy"],
                "val_accuracy_after_pruning": pruned["val_accuracy"]}

    def compute(self, network_epochs: int, search_epochs: int,
                resume_state: dict | None, reused: int | None = None) -> dict[str, Any]:
        """The training this run spent: network-epochs (of the search and in all) and
        training FLOPs (three forward passes' worth per sample: forward, backward through
        activations and weights), counted for the dense network in dense kernels. A resumed
        run adds what the interrupted one had spent. Trainings read from a sweep's memo count
        as spent (they are the method's cost); ``reused`` says how many network-epochs of
        them this run did not train itself."""
        from ..engine.memory import forward_flops
        before = (resume_state or {}).get("network_epochs", 0)
        total = network_epochs + before
        per_epoch = 3 * forward_flops(self.bench.build_model(), self.bench.data.input_shape) * \
            len(self.bench.data.train_y)
        out = {"network_epochs": total, "search_network_epochs": search_epochs + before,
               "training_flops": total * per_epoch}
        if reused is not None:  # a sweep's cell: what an earlier cell had trained already
            out["reused_network_epochs"] = reused + (resume_state or {}).get(
                "reused_network_epochs", 0)
        return out

    def _check_memory(self) -> None:
        """Refuse a search whose own state (a population of masks) cannot fit where it lives."""
        from .._system import free_memory, human
        need = self.method.state_bytes(self.bench.layout)
        device = torch.device(self.bench.device if self.cfg.backend != "ray" else "cpu")
        free = free_memory(device)
        if need > 0.8 * free:
            raise UserError(f"method {self.method.name} needs {human(need)} for its masks "
                            f"({self.bench.layout.numel:,} connections each) but {device} has "
                            f"{human(free)} free; lower method.population or use a smaller "
                            f"model")

    @property
    def layout(self):
        return self.bench.layout

    def context(self, evaluator, commit=None, resume_state=None,
                progress: bool = False) -> MethodContext:
        """What the method sees: spec, data, layout, settings, evaluator, initial weights."""
        b = self.bench
        device = evaluator.device if evaluator.device.split(":")[0] in ("cpu", "cuda", "mps") \
            else "cpu"
        return MethodContext(spec=b.spec, data=b.data, layout=b.layout, settings=b.settings,
                             evaluator=evaluator, init=b.init_state(), seed=b.seed,
                             final_epochs=self.cfg.training.epochs, commit=commit,
                             resume_state=resume_state, progress=progress,
                             rescale_init=self.cfg.sparsity.rescale_init,
                             device=torch.device(device), structure=b.structure,
                             budget=self.cfg.sparsity.budget,
                             target=self.cfg.sparsity.target)

    def _resumed(self, rd: RunDir, log) -> tuple[dict | None, float]:
        """The checkpoint to continue from (None: start again) and the run's start time, moved
        back by the time the interrupted run had spent."""
        t0 = time.time()
        state, path = rd.load_last_checkpoint()
        if state is None:
            return None, t0
        log(f"resuming from {path.name} (generation {state['generation']})")
        t0 -= float(state.get("wall_seconds", 0.0))
        if not self.method.resumes(state):
            # its search runs again from the start (to the same result): what the
            # interrupted run trained is trained again, and counted once
            log(f"{self.method.name} does not continue a search from a checkpoint: it "
                f"starts again (the generations it commits again are kept once)")
            return None, t0
        return state, t0

    def _find(self, recording: _Recording, progress: bool):
        """The method's search, each generation recorded; a SIGTERM mid-generation drops that
        generation whole and ends in an interrupted run's summary."""
        ctx = self.context(recording.evaluator, recording, recording.resume_state, progress)
        try:
            return self.method.find(ctx)
        except KeyboardInterrupt:
            if not recording.interrupt.terminated:  # (Ray's waits re-raise it as Ctrl-C)
                raise
            recording.stopped(signal.SIGTERM)

    def _train_final(self, evaluator, found):
        """The final training of the mask found (trained weights are never rescaled)."""
        cfg = self.cfg
        return evaluator.evaluate(EvalTask(
            masks=found.bits.unsqueeze(0), init=found.init, epochs=cfg.training.epochs,
            data_seed=cfg.seed, keep_weights=True, test=True, hooks=(LearningCurve(),),
            rescale_init=cfg.sparsity.rescale_init and found.from_init))

    def _sparsity_figures(self, mask: Mask, weight_mask: Mask) -> dict[str, Any]:
        cfg = self.cfg
        return {"sparsity": weight_mask.sparsity(), "target_sparsity": cfg.sparsity.target,
                "allocation": cfg.sparsity.allocation, "layer_sparsity": mask.layer_sparsity(),
                "kept_weights": weight_mask.kept(), "prunable_weights": weight_mask.numel()}

    def _provenance(self, t0: float) -> dict[str, Any]:
        cfg, b = self.cfg, self.bench
        return {"seed": cfg.seed, "device": b.device, "backend": cfg.backend,
                "wall_seconds": round(time.time() - t0, 3), "neuroprune_version": __version__,
                "data": b.data.record(), "preprocessing": b.data.preprocessing}

    def _summary(self, found, final: dict[str, Any], mask: Mask, weight_mask: Mask,
                 stages: dict[str, float], compute: dict[str, Any], figures: dict[str, Any],
                 t0: float) -> dict[str, Any]:
        """``summary.json`` of a complete run."""
        cfg = self.cfg
        return {
            "status": "complete", "kind": "mask_search", "method": self.method.name,
            "dataset": cfg.data.dataset, "model": self.bench.spec.describe(),
            **self._sparsity_figures(mask, weight_mask),
            "test_accuracy": final["test_accuracy"], "val_accuracy": final["val_accuracy"],
            # multi-label runs: test_accuracy is the subset accuracy; these beside it
            **{k: final[k] for k in ("test_hamming_loss", "test_micro_f1",
                                     "val_hamming_loss", "val_micro_f1") if k in final},
            **stages,
            **({"test_accuracy_after_finetuning": final["test_accuracy"],
                "finetuning_epochs": cfg.training.epochs} if stages else {}),
            **self._provenance(t0), "compute": compute, **figures,
            **{k: v for k, v in found.info.items() if k not in ("logbook", "exact")},
        }

    def _metadata(self, summary: dict[str, Any], final: dict[str, Any]) -> dict[str, Any]:
        """What ``best_mask.safetensors`` says of itself."""
        return self.bench.mask_file_metadata(
            self.method.name, summary, test_accuracy=final["test_accuracy"],
            val_accuracy=final["val_accuracy"], layer_sparsity=summary["layer_sparsity"])

    def _finish(self, rd: RunDir, recording: _Recording, found, trained, stages,
                search_epochs: int) -> dict[str, Any]:
        """After the final training: its row, the learning curve, the best mask file and the
        summary."""
        cfg, final = self.cfg, trained.row(0)
        if final.get("diverged"):  # a NaN network is no result: nothing is written as one
            raise UserError(f"the final training diverged (its loss or weights became NaN or "
                            f"infinite) at training.lr={cfg.training.lr}; lower the learning "
                            f"rate or check the model and data, then continue with: "
                            f"neuroprune resume {shown(rd.path)}")
        mask = bits_to_mask(self.layout, found.bits)
        # the weights alone (a structured mask also covers biases and BatchNorm)
        weight_mask = mask if self.bench.structure is None else Mask(
            {k: mask[k] for k in self.bench.structure.weights})
        weights = trained.weights_of(0) if trained.weights is not None else None
        figures = ({} if weights is None else efficiency_of_weights(
            self.bench.spec, weights, mask, cfg.sparsity.latency_repeats))
        compute = self.compute(recording.evaluator.network_epochs, search_epochs,
                               recording.resume_state, recording.reused())
        if trained.extras.get("curve"):
            rd.write_curve(trained.extras["curve"][0])
        rd.commit_generation("final", [{
            "generation": "final", "index": 0, "val_accuracy": final["val_accuracy"],
            "test_accuracy": final["test_accuracy"], "train_loss": final["train_loss"],
            "sparsity": weight_mask.sparsity(), "network_epochs": compute["network_epochs"],
            **figures}])
        summary = self._summary(found, final, mask, weight_mask, stages, compute, figures,
                                recording.t0)
        # the final training's trainer, with what engine.trainer: auto measured to choose it
        summary["engine"] = recording.evaluator.describe()
        rd.write_best_mask(mask, self._metadata(summary, final), weights)
        rd.write_summary(summary)
        return summary

    def run(self, run_dir: str | Path, *, progress: bool = True, resume: bool = False,
            log=print, on_generation=None, tracking: Tracking | None = None) -> dict[str, Any]:
        """Run the search into ``run_dir`` and return the summary.

        ``on_generation(generation, rows)`` is called after each committed generation (Optuna
        reports and pruning hook in there; an exception it raises stops the search).
        ``tracking``: the trackers of a sweep's cell; by default the config's ``logging``.
        """
        cfg = self.cfg
        rd = RunDir(run_dir, tracking or open_tracking(cfg.logging, run_dir, cfg.name))
        resume_state, t0 = self._resumed(rd, log) if resume else (None, time.time())
        evaluator = Metered(self.bench.evaluator())  # a missing or unreachable Ray ends here
        log(f"engine: {evaluator.describe()}")
        rd.create()
        rd.write_config(to_dict(cfg))
        rd.write_data_record(self.bench.data.record())
        interrupt = _GracefulInterrupt()
        recording = _Recording(rd, evaluator, interrupt, t0, resume_state, on_generation,
                               self.method.name, cfg.seed)
        with evaluator, interrupt, run_choices(rd.path / FILES.trainer_choices):
            found = self._find(recording, progress)
            interrupt.at_once()
            search_epochs = evaluator.network_epochs
            if found.exact:  # every unit keeps exactly its count
                check_bits(self.layout, found.bits)
            stages = self.stages(evaluator, found) if self.bench.trained_init else {}
            trained = found.trained if found.trained is not None else \
                self._train_final(evaluator, found)
        return self._finish(rd, recording, found, trained, stages, search_epochs)


class MaskSearchKind(Kind):
    name = "mask_search"
    columns = ("generation",)
    reporter = "neuroprune.report.mask:report"
    objectives = ("val_accuracy", "sparsity", "wall_seconds", "params", "flops", "latency")

    def __init__(self, bench: Workbench):
        super().__init__(bench)
        from .mask_search import MaskSearch
        self.search = MaskSearch(bench)

    def run(self, out, *, progress=True, resume=False, log=print, on_generation=None):
        return self.search.run(out, progress=progress, resume=resume, log=log,
                               on_generation=on_generation)

    def lines(self, summary, out):
        s = summary
        return [f"{s['method']}: test accuracy {s['test_accuracy']:.4f} at sparsity "
                f"{s['sparsity']:.4f} ({s['wall_seconds']:.1f}s on {s['device']})",
                f"run directory: {out}"]

    @classmethod
    def run_name(cls, cfg):
        """``<config name>-<method>`` unless the name already says it (``quickstart-rigl``)."""
        method = cfg.method.name
        if method not in cfg.name.split("-")[-1].split("_"):
            return f"{cfg.name}-{method}"
        return cfg.name
