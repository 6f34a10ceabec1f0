"""``kind: private_training``: one (optionally sparse) network trained with differential
privacy (``training.privacy``, see :mod:`neuroprune.engine.private_trainer`).

The mask is drawn at random at ``sparsity.target`` with the configured allocation: a mask a
search picks on the training data would itself leak it, outside the accountant's budget, so
only data-independent masks keep the guarantee. Without ``training.privacy`` the same
network trains plainly (the non-private reference).

The trained network and its mask go to ``best_mask.safetensors`` as a mask search writes it
(a dense run: a mask that keeps every weight), so ``neuroprune export`` and
:func:`neuroprune.load_model` read it.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from .. import __version__
from ..config import to_dict
from ..errors import UserError
from ..engine.private_trainer import check_private_model, train_private
from ..masks import Mask
from ..masks.allocation import bits_to_mask, random_bits
from ..rundir import RunDir
from ..tracking import open_tracking
from ..workbench import Workbench
from .kinds import Kind


def private_model(bench: Workbench):
    """The run's model at its initial weights, checked for private training."""
    model = bench.build_model()
    model.load_state_dict(bench.init_state())
    if bench.config.training.privacy is not None:
        check_private_model(model)
    return model.to(bench.device)


def run_private_training(bench: Workbench, out: str | Path) -> dict[str, Any]:
    t0 = time.time()
    cfg = bench.config
    model = private_model(bench)
    mask = None
    if cfg.sparsity.target > 0:
        bits = random_bits(bench.layout, torch.Generator().manual_seed(cfg.seed))
        mask = bits_to_mask(bench.layout, bits)
    rd = RunDir(out, open_tracking(cfg.logging, out, cfg.name)).create()
    rd.write_config(to_dict(cfg))
    rd.write_data_record(bench.data.record())
    result = train_private(model, bench.data.place(bench.device), cfg.training,
                           mask=mask, seed=cfg.seed)
    summary = {"status": "complete", "kind": "private_training", "dataset": cfg.data.dataset,
               "model": bench.spec.describe(), "private": cfg.training.privacy is not None,
               **result,
               "sparsity": 0.0 if mask is None else mask.sparsity(),
               "kept_weights": None if mask is None else mask.kept(),
               "prunable_weights": None if mask is None else mask.numel(), "seed": cfg.seed,
               "device": bench.device, "data": bench.data.record(),
               "wall_seconds": round(time.time() - t0, 3), "neuroprune_version": __version__}
    full = mask if mask is not None else bits_to_mask(
        bench.layout, torch.ones(bench.layout.numel, dtype=torch.bool))
    rd.write_best_mask(full, _metadata(bench, summary, full), trained_weights(model, full))
    rd.write_summary(summary)
    return summary


def trained_weights(model: torch.nn.Module, mask: Mask) -> dict[str, torch.Tensor]:
    """The trained state dict, on the host, its pruned weights exactly zero."""
    state = {k: v.detach().to("cpu").clone() for k, v in model.state_dict().items()}
    for k, m in mask.items():
        state[k] = state[k] * m.to(state[k].dtype)
    return state


def _metadata(bench: Workbench, summary: dict[str, Any], mask: Mask) -> dict[str, Any]:
    """What ``best_mask.safetensors`` says of itself (the keys a mask search writes)."""
    privacy = bench.config.training.privacy
    method = f"private_{privacy.method}" if privacy is not None else "plain"
    return bench.mask_file_metadata(
        method, summary, test_accuracy=summary["test_accuracy"],
        val_accuracy=summary["val_accuracy"], epsilon=summary.get("epsilon"),
        layer_sparsity=mask.layer_sparsity())


class PrivateTrainingKind(Kind):
    name = "private_training"
    table = None
    columns = ("epsilon", "val_accuracy", "test_accuracy")
    reporter = "neuroprune.report.private:report"
    resumable = False
    objectives = ("val_accuracy", "epsilon")

    def __init__(self, bench: Workbench):
        super().__init__(bench)
        if bench.structure is not None:
            raise UserError("kind private_training draws an element mask; use "
                            "sparsity.structure=element")
        from .private_training import private_model
        private_model(bench)  # a model Opacus cannot handle is refused before any writing

    def run(self, out, *, progress=True, resume=False, log=print, on_generation=None):
        from .private_training import run_private_training
        return run_private_training(self.bench, out)

    def lines(self, summary, out):
        s = summary
        spent = (f" at epsilon {s['epsilon']:.3f} (target {s['target_epsilon']}, delta "
                 f"{s['delta']:g}, {s['privacy_method']})" if s["private"] else " (not private)")
        return [f"test accuracy {s['test_accuracy']:.4f}{spent}, sparsity {s['sparsity']:.3f}",
                f"run directory: {out}"]
