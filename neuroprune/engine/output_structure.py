"""Multi-label training: the output-structure regulariser and the multi-label metrics.

Belharbi, Hérault, Chatelain and Adam, "Deep Neural Networks Regularization for Structured
Output Prediction", Neurocomputing 281, 2018 (arXiv 1504.07550). A feedforward network maps
``x -> y`` without modelling how the output dimensions depend on each other. The paper trains,
beside the supervised loss, an autoencoder of the targets ``y -> code -> y`` whose decoder
*is* the network's last layer: the reconstruction loss teaches that layer the structure of
the outputs (which labels go together), unsupervised, while the supervised loss trains the
whole network. The reconstruction's weight starts at ``strength`` and is annealed linearly
to 0 (in the paper's experiments from 1 between epochs 100 and 700 of 1000, so the
defaults ``anneal_start: 0.1``, ``anneal_end: 0.7``); the paper also has an input
autoencoder, left out here. Our reading where the paper leaves it open, each an option of
``training.output_structure``: the reconstruction loss is binary cross-entropy on the
decoder's logits (the paper regresses landmark coordinates with a squared error); the
encoder is one layer with the ``activation`` the model uses before its output layer
(the paper's tanh), initialised uniformly in ``±1/sqrt(labels)`` from each network's seed
and trained by SGD with the run's learning rate, momentum and schedule; ``corruption``
zeroes a share of the encoder's input labels (a denoising autoencoder, as the paper's;
0 by default).

:class:`MultilabelMetrics` adds the Hamming loss and the micro-averaged F1 of the validation
and test splits to every multi-label training's metrics (the engine's accuracy is then the
subset accuracy: every label of a sample right).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from .hooks import TrainingHook, TrainState

ENCODER_PURPOSE = 0x05_57  # the stream of uniforms the encoder's initial weights come from
CORRUPTION_PURPOSE = 0x05_58
ACTIVATIONS = {"relu": torch.relu, "tanh": torch.tanh, "sigmoid": torch.sigmoid}


class OutputStructure(TrainingHook):
    """``weight(step) * BCE(decoder(encoder(y)), y)`` per network, the decoder being the
    output layer ``weight``/``bias`` (``[P, labels, width]`` and ``[P, labels]``)."""

    def __init__(self, weight: str, bias: str, labels: int, width: int, config):
        self.weight, self.bias = weight, bias
        self.labels, self.width, self.config = labels, width, config
        self.encoder: list[torch.Tensor] = []
        self.optimizer: torch.optim.Optimizer | None = None

    def memo_key(self) -> Any:
        return ["output_structure", self.weight, self.config.model_dump(mode="json")]

    def start(self, state: TrainState) -> None:
        bound = 1.0 / math.sqrt(self.labels)
        w = (2 * state.uniform(ENCODER_PURPOSE, (self.labels, self.width)) - 1) * bound
        dtype = state.params[self.weight].dtype
        self.encoder = [w.to(dtype).requires_grad_(True),
                        torch.zeros(state.p, self.width, device=state.device,
                                    dtype=dtype).requires_grad_(True)]
        cfg = state.settings
        # SGD is elementwise: the stacked encoders train as each would alone
        self.optimizer = torch.optim.SGD(self.encoder, lr=cfg.lr, momentum=cfg.momentum)

    def strength_at(self, state: TrainState) -> float:
        """The reconstruction's weight at this step: ``strength`` until ``anneal_start`` of
        the training, then linearly down to 0 at ``anneal_end``."""
        c = self.config
        t = state.step / max(state.total_steps, 1)
        if t <= c.anneal_start:
            return c.strength
        if t >= c.anneal_end:
            return 0.0
        return c.strength * (c.anneal_end - t) / (c.anneal_end - c.anneal_start)

    def loss(self, state: TrainState) -> torch.Tensor | None:
        weight = self.strength_at(state)
        if weight == 0.0:
            return None
        w_enc, b_enc = self.encoder
        y = state.y.to(w_enc.dtype)
        target = y.unsqueeze(0).expand(state.p, -1, -1)
        given = target
        if self.config.corruption > 0:
            keep = state.uniform(CORRUPTION_PURPOSE, tuple(y.shape)) >= self.config.corruption
            given = target * keep.to(y.dtype)
        code = ACTIVATIONS[self.config.activation](torch.bmm(given, w_enc) + b_enc[:, None])
        out = state.params[self.weight]
        logits = torch.bmm(code, out.transpose(1, 2)) + state.params[self.bias][:, None]
        recon = nn.functional.binary_cross_entropy_with_logits(logits, target,
                                                               reduction="none")
        return weight * recon.reshape(state.p, -1).mean(1)

    def after_step(self, state: TrainState) -> None:
        if self.optimizer is None or self.encoder[0].grad is None:
            return
        for g in self.optimizer.param_groups:
            g["lr"] = state.settings.lr_at(state.step, state.total_steps)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)


def multilabel_counts(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``[P, 3]``: true positives, false positives and false negatives of ``logits``
    (``[P, B, L]``, positive above 0) against shared targets ``y`` (``[B, L]``)."""
    pred, true = logits > 0, (y > 0.5).unsqueeze(0)
    return torch.stack([(pred & true).sum((1, 2)), (pred & ~true).sum((1, 2)),
                        (~pred & true).sum((1, 2))], 1).double()


def hamming_and_f1(counts: torch.Tensor, entries: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Hamming loss (wrong labels over all labels) and micro-F1 from summed counts."""
    tp, fp, fn = counts.unbind(1)
    return (fp + fn) / max(entries, 1), 2 * tp / (2 * tp + fp + fn).clamp_min(1)


class MultilabelMetrics(TrainingHook):
    """Adds ``{val,test}_hamming_loss`` and ``{val,test}_micro_f1`` at the end of training."""

    def memo_key(self) -> Any:
        return ["multilabel_metrics"]

    def finish(self, state: TrainState) -> dict[str, Any]:
        with torch.no_grad():
            for split in ("val", "test"):
                y = getattr(state.data, f"{split}_y")
                counts = torch.zeros(state.p, 3, device=state.device, dtype=torch.float64)
                for s in range(0, len(y), 512):
                    counts += multilabel_counts(
                        state.forward(state.inputs(split, slice(s, s + 512)), False),
                        y[s:s + 512])
                hamming, f1 = hamming_and_f1(counts, y.numel())
                state.metrics[f"{split}_hamming_loss"] = hamming
                state.metrics[f"{split}_micro_f1"] = f1
        return {}


def settings_hooks(template: nn.Module, settings, labels: int) -> list[TrainingHook]:
    """The hooks a run's training settings ask for: multi-label metrics with ``bce``, the
    output-structure regulariser with ``output_structure``."""
    if settings.loss != "bce":
        return []
    hooks: list[TrainingHook] = [MultilabelMetrics()]
    if settings.output_structure is not None:
        from ..errors import ConfigError
        from ..models import output_names

        names = output_names(template)
        modules = dict(template.named_modules())
        layer = modules.get(names[0].rpartition(".")[0]) if len(names) == 1 else None
        if not isinstance(layer, nn.Linear) or layer.bias is None:
            raise ConfigError("training.output_structure decodes with the output layer: the "
                              "model needs a fully connected output layer with a bias")
        prefix = names[0].rpartition(".")[0]
        hooks.append(OutputStructure(f"{prefix}.weight", f"{prefix}.bias", labels,
                                     layer.in_features, settings.output_structure))
    return hooks
