"""Training settings shared by the population engine and the one-network reference."""

from __future__ import annotations

import math
from typing import Iterable, Literal

import torch
from pydantic import ConfigDict, Field, model_validator

from ..registry import Registry
from ..section import Section, registered
from .privacy import PrivacyConfig


OPTIMIZERS = Registry("optimizer", "training.optimizer", {
    "sgd": ("torch.optim:SGD", "SGD with momentum (training.momentum)"),
    "adam": ("torch.optim:Adam", "Adam (Kingma & Ba 2015)"),
})


class OutputStructureConfig(Section):
    """``training.output_structure``: the output autoencoder regulariser (see
    :mod:`neuroprune.engine.output_structure`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    strength: float = Field(1.0, ge=0, allow_inf_nan=False, description="weight of the "
                            "output reconstruction loss at the start")
    anneal_start: float = Field(0.1, ge=0, le=1, description="fraction of each training "
                                "after which the weight starts falling linearly")
    anneal_end: float = Field(0.7, ge=0, le=1, description="fraction of each training at "
                              "which the weight reaches 0")
    corruption: float = Field(0.0, ge=0, lt=1, description="share of the target labels "
                              "zeroed at the encoder's input (a denoising autoencoder)")
    activation: Literal["relu", "tanh", "sigmoid"] = Field(
        "relu", description="the encoder's non-linearity (its code stands in for the last "
        "hidden layer's output: match the model's activation)")

    @model_validator(mode="after")
    def _ordered(self):
        if self.anneal_end < self.anneal_start:
            raise ValueError("anneal_end must not come before anneal_start")
        return self


class TrainSettings(Section):
    """How every network is trained: optimizer, learning rate and its schedule, batch size.
    The ``training:`` config section; ``epochs`` is the final training's length."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    optimizer: registered(OPTIMIZERS, "sgd", "sgd or adam (elementwise, so that a stacked "
                          "population equals its networks trained one by one)")
    lr: float = Field(0.1, gt=0, allow_inf_nan=False, description="learning rate")
    momentum: float = Field(0.9, ge=0, lt=1, description="SGD momentum")
    weight_decay: float = Field(0.0, ge=0, allow_inf_nan=False, description="L2 weight decay")
    batch_size: int = Field(64, ge=1, description="mini-batch size")
    epochs: int = Field(20, ge=0, description="epochs of the final training of the best "
                        "network (0: none, for a one-shot method on trained weights)")
    schedule: Literal["constant", "cosine"] = Field("cosine", description="learning-rate "
                                                   "schedule over each training run")
    loss: Literal["cross_entropy", "mse", "bce"] = Field(
        "cross_entropy", description="mse for regression ('accuracy' is then R^2); bce: "
        "binary cross-entropy on sigmoid outputs for multi-label targets (data.task: "
        "multilabel sets it; 'accuracy' is then subset accuracy)")
    output_structure: OutputStructureConfig | None = Field(
        None, description="multi-label: learn the dependencies between the outputs with an "
        "output autoencoder whose decoder is the output layer (Belharbi et al. 2018); null: "
        "off")
    privacy: PrivacyConfig | None = Field(None, description="differentially private training "
                                          "(kind: private_training); none: not private")

    def per_network_loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Mean loss of each network: ``out [P, B, C]``, shared targets ``y [B]`` / ``[B, C]``."""
        p = out.shape[0]
        if self.loss == "mse":
            return ((out - y.unsqueeze(0)) ** 2).reshape(p, -1).mean(1)
        if self.loss == "bce":
            return _bce(out, y).reshape(p, -1).mean(1)
        if p == 1:  # one network: the plain loss, without the population's bookkeeping
            return torch.nn.functional.cross_entropy(out[0], y).unsqueeze(0)
        return torch.nn.functional.cross_entropy(out.reshape(-1, out.shape[-1]), y.repeat(p),
                                                 reduction="none").view(p, -1).mean(1)

    def scores(self, out: torch.Tensor, y: torch.Tensor):
        """Per network: (summed loss, summed "hits") over a batch; hits are correct
        predictions, or for MSE the summed squared error (turned into R^2 by the caller)."""
        p = out.shape[0]
        if self.loss == "mse":
            sq = ((out - y.unsqueeze(0)) ** 2).reshape(p, out.shape[1], -1).mean(2)
            return sq.sum(1), sq.sum(1)
        if self.loss == "bce":  # hits: every label of the sample right (subset accuracy)
            loss = _bce(out, y).mean(2).sum(1)
            return loss, ((out > 0) == (y.unsqueeze(0) > 0.5)).all(2).sum(1).float()
        loss = torch.nn.functional.cross_entropy(out.reshape(-1, out.shape[-1]), y.repeat(p),
                                                 reduction="none").view(p, -1).sum(1)
        return loss, (out.argmax(-1) == y).sum(1).float()

    def accuracy(self, hits: torch.Tensor, n: int, y: torch.Tensor) -> torch.Tensor:
        if self.loss == "mse":  # R^2: 1 - MSE / variance of the targets
            var = ((y.float() - y.float().mean(0)) ** 2).mean().clamp_min(1e-12)
            return 1.0 - hits / n / var
        return hits / n

    def make_optimizer(self, params: Iterable[torch.Tensor]) -> torch.optim.Optimizer:
        """Elementwise optimizers only: on stacked tensors they equal per-network ones.

        The fused implementations update parameter and state in one pass over memory (one
        kernel for all tensors); with a population's stacked parameters the optimizer step is
        memory-bound, so this is what it costs.
        """
        params = list(params)
        cls = OPTIMIZERS.load(self.optimizer)
        kwargs = {"momentum": self.momentum} if self.optimizer == "sgd" else {}
        kwargs.update(lr=self.lr, weight_decay=self.weight_decay)
        try:
            return cls(params, fused=True, **kwargs)
        except RuntimeError:  # a device (or an older torch) without the fused kernels
            return cls(params, foreach=True, **kwargs)

    def lr_at(self, step: int, total_steps: int) -> float:
        if self.schedule == "cosine" and total_steps > 0:
            return self.lr * 0.5 * (1.0 + math.cos(math.pi * step / total_steps))
        return self.lr


def _bce(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``[P, B, L]`` binary cross-entropy of logits ``out`` against shared targets ``y``."""
    return torch.nn.functional.binary_cross_entropy_with_logits(
        out, y.to(out.dtype).unsqueeze(0).expand_as(out), reduction="none")


def batch_order(n: int, batch_size: int, epochs: int, data_seed: int,
                device: torch.device | str = "cpu"):
    """Yield ``(epoch, index tensor)`` for every mini-batch: one shuffle per epoch, fixed by seed.

    Every trainer (population or single network) walks the data in this order, so a network
    trained alone and inside a population sees the same batches. The permutation is drawn on
    the CPU (the same on every device) and moved to ``device`` once per epoch: a host-to-device
    copy per step would synchronise the GPU at every step.
    """
    g = torch.Generator().manual_seed(int(data_seed))
    for epoch in range(epochs):
        perm = torch.randperm(n, generator=g).to(device)
        for start in range(0, n, batch_size):
            yield epoch, perm[start:start + batch_size]


def steps_per_run(n: int, batch_size: int, epochs: int) -> int:
    return epochs * math.ceil(n / batch_size)


class EngineConfig(Section):
    """Where and how populations are trained (the ``engine:`` config section)."""

    trainer: Literal["auto", "stacked", "per_network", "sparse"] = Field(
        "auto", description="stacked: a population as one set of batched kernels; per_network: "
        "one network at a time (networks too large to stack); sparse: fully connected networks "
        "on sparse (CSR) weight matrices, one at a time; auto: per_network when two networks do "
        "not fit in memory, else the fastest of the three for the population, measured on its "
        "first chunk and remembered per architecture, batch and device")
    sparse_regrow: float = Field(0.0, ge=0, lt=1, description="sparse trainer: SET's zeta, the "
                                 "fraction of smallest-magnitude weights of each layer dropped "
                                 "and regrown at random after every epoch (0: fixed structure)")
    sparse_neuron_prune: float = Field(0.0, ge=0, lt=1, description="sparse trainer: after "
                                       "every epoch remove this fraction of each hidden layer's "
                                       "remaining neurons, the least important first; the "
                                       "sparse matrices shrink (0: off)")
    sparse_neuron_importance: Literal["incoming", "in_out"] = Field(
        "incoming", description="sparse trainer, neuron removal: a hidden neuron's importance "
        "is the sum of the absolute values of its incoming weights, or of its incoming and "
        "outgoing weights")
    chunk_size: int | None = Field(None, ge=1, description="networks trained in one batch "
                                   "(default: 16 on CPU, as many as fit on a GPU)")
    precision: Literal["fp32", "tf32", "bf16", "fp64"] = Field(
        "fp32", description="CUDA: tf32 matrix products, or bf16 autocast (weights stay fp32); "
        "fp64: double precision everywhere (slow; for checking results to the last digit); "
        "the CPU computes tf32 and bf16 in fp32")

    @model_validator(mode="before")
    @classmethod
    def _renamed(cls, tree):
        if isinstance(tree, dict) and "tf32" in tree:
            raise ValueError("'engine.tf32' is now 'engine.precision: tf32'")
        return tree
