"""Binary RBMs with learned connectivity: Network Connectivity Gradients (NCG).

A. C. N. de Oliveira and D. R. Figueiredo, "Optimizing Connectivity through Network Gradients
for Restricted Boltzmann Machines", arXiv:2209.06932 (2022, rev. 2025). Given the current
connection pattern, the contrastive-divergence gradient of *every possible* connection is
computed; it drives a continuous connection strength per possible connection, and the
strengths decide the pattern. RBM parameters and strengths learn jointly at their own
learning rates, with the RBM's objective unchanged.

Contrastive divergence: G. E. Hinton, "Training products of experts by minimizing contrastive
divergence", Neural Computation 14 (2002); persistent chains: T. Tieleman, "Training
restricted Boltzmann machines using approximations to the likelihood gradient", ICML 2008.

Details the paper leaves open here, each a named option (``rbm:`` config section):

* ``connection_gradient``: what a connection's gradient is. ``weight`` (default): the
  gradient of the log-likelihood with respect to the connection's indicator ``a_ij`` in the
  effective weight ``w_ij * a_ij``, i.e. ``G_ij * w_ij`` with ``G`` the CD weight gradient;
  ``magnitude``: ``|G_ij|``. On binarised digits (seeds 0-2) ``weight`` gave the learned
  pattern 0.8-1.4 nats over a random one, ``magnitude`` less and not on every setting.
* ``pattern_every``: CD updates between two choices of the pattern (default 1: every update).
* ``inactive_weights``: ``learn`` (default) lets the weights of absent connections follow
  their CD gradient, so a connection that is added arrives with a useful weight; ``frozen``
  keeps them where they were.
* the pattern is the top-``k`` of the strengths, ``k`` the connection budget, so that the
  learned RBM always has exactly as many connections as the random sparse one (the paper
  thresholds the strengths and lets the count drift; equal counts are what the comparison
  here needs).
* the fully connected reference spends the same budget on fewer hidden units
  (``full_hidden``); its missing hidden units are disconnected columns of one stacked tensor,
  which changes neither the marginal of the visible units nor reconstructions.

The variants (full, random, learned) are one stacked ``[P, visible, hidden]`` tensor, trained
together with batched matmuls.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

VARIANTS = ("full", "random", "learned")


def connection_budget(visible: int, hidden: int, full_hidden: int) -> int:
    """Connections every variant has: a fully connected RBM of ``full_hidden`` units."""
    from ..errors import ConfigError
    if full_hidden < 1:
        raise ConfigError(f"rbm.full_hidden={full_hidden} gives a budget of 0 connections; "
                          f"use at least 1")
    if full_hidden > hidden:
        raise ConfigError(f"the connection budget rbm.full_hidden x {visible} visible = "
                          f"{full_hidden * visible:,} is more than the {hidden * visible:,} "
                          f"possible with rbm.hidden={hidden}; lower rbm.full_hidden or raise "
                          f"rbm.hidden")
    return full_hidden * visible


def topk_mask(score: torch.Tensor, k: int) -> torch.Tensor:
    """``[P, V, H]`` bool: the ``k`` highest scores of each member."""
    flat = score.reshape(len(score), -1)
    idx = flat.topk(k, dim=1).indices
    return torch.zeros_like(flat, dtype=torch.bool).scatter_(1, idx, True).view_as(score)


@dataclass
class RBMStack:
    """``P`` binary RBMs of one shape, stacked: weights ``W [P, V, H]``, visible biases
    ``b [P, V]``, hidden biases ``c [P, H]``, connectivity ``mask [P, V, H]`` (bool) and, for
    learned members, connection ``strength [P, V, H]`` (``learned [P]`` says which)."""

    W: torch.Tensor
    b: torch.Tensor
    c: torch.Tensor
    mask: torch.Tensor
    strength: torch.Tensor
    learned: torch.Tensor
    budget: int
    chains: torch.Tensor | None = None  # persistent CD: visible states [P, B, V]

    @classmethod
    def create(cls, variants: list[str], visible: int, hidden: int, full_hidden: int,
               base_rate: torch.Tensor, generator: torch.Generator, init_std: float = 0.1,
               dtype: torch.dtype = torch.float32) -> "RBMStack":
        """Members named by ``variants`` (``full``, ``random``, ``learned``); visible biases
        start at the log-odds of ``base_rate`` (the training pixels' means), as Hinton's
        practical guide advises. A learned member starts from a random pattern of the budget."""
        P, k = len(variants), connection_budget(visible, hidden, full_hidden)
        W = torch.randn(P, visible, hidden, generator=generator, dtype=dtype) * init_std
        p = base_rate.to(dtype).clamp(1e-3, 1 - 1e-3)
        b = (p.log() - (-p).log1p()).expand(P, visible).clone()
        c = torch.zeros(P, hidden, dtype=dtype)
        strength = torch.rand(P, visible, hidden, generator=generator, dtype=dtype) * init_std
        mask = topk_mask(strength, k)
        for i, v in enumerate(variants):
            if v == "full":
                mask[i] = False
                mask[i, :, :full_hidden] = True
        learned = torch.tensor([v == "learned" for v in variants])
        return cls(W, b, c, mask, strength, learned, k)

    @property
    def weights(self) -> torch.Tensor:
        """The effective weights ``W * mask``."""
        return self.W * self.mask

    def hidden_probs(self, v: torch.Tensor, W: torch.Tensor | None = None) -> torch.Tensor:
        """``p(h=1 | v)`` for ``v [P, B, V]``."""
        W = self.weights if W is None else W
        return torch.sigmoid(torch.baddbmm(self.c.unsqueeze(1), v, W))

    def visible_probs(self, h: torch.Tensor, W: torch.Tensor | None = None) -> torch.Tensor:
        """``p(v=1 | h)`` for ``h [P, B, H]``."""
        W = self.weights if W is None else W
        return torch.sigmoid(torch.baddbmm(self.b.unsqueeze(1), h, W.transpose(1, 2)))

    def free_energy(self, v: torch.Tensor) -> torch.Tensor:
        """``-log p*(v)`` (unnormalised), ``[P, B]``."""
        pre = torch.baddbmm(self.c.unsqueeze(1), v, self.weights)
        return -(v * self.b.unsqueeze(1)).sum(-1) - torch.nn.functional.softplus(pre).sum(-1)

    def reconstruction_error(self, v: torch.Tensor) -> torch.Tensor:
        """Mean squared error ``[P]`` between ``v`` and its mean-field reconstruction
        ``p(v | p(h | v))`` (deterministic, so that epochs and variants compare exactly)."""
        W = self.weights
        return (self.visible_probs(self.hidden_probs(v, W), W) - v).pow(2).mean((1, 2))

    def cd_gradients(self, v0: torch.Tensor, k: int, generator: torch.Generator,
                     persistent: bool = False):
        """CD-``k`` (or PCD-``k``) log-likelihood ascent directions ``(G_W, G_b, G_c)``,
        ``G_W [P, V, H]`` for every possible connection given the current pattern."""
        W = self.weights
        ph0 = self.hidden_probs(v0, W)
        if persistent:
            if self.chains is None or self.chains.shape != v0.shape:
                self.chains = v0.clone()  # the chains start at the first batch
            v = self.chains
            h = torch.bernoulli(self.hidden_probs(v, W), generator=generator)
        else:
            h = torch.bernoulli(ph0, generator=generator)
        for _ in range(k):
            v = torch.bernoulli(self.visible_probs(h, W), generator=generator)
            phk = self.hidden_probs(v, W)
            h = torch.bernoulli(phk, generator=generator)
        if persistent:
            self.chains = v
        n = v0.shape[1]
        gW = (v0.transpose(1, 2) @ ph0 - v.transpose(1, 2) @ phk) / n
        return gW, (v0 - v).mean(1), (ph0 - phk).mean(1)

    def step(self, v0: torch.Tensor, *, lr: float, strength_lr: float, k: int,
             generator: torch.Generator, persistent: bool = False,
             connection_gradient: str = "weight", inactive_weights: str = "learn",
             weight_decay: float = 0.0, repattern: bool = True) -> None:
        """One joint update of parameters and (for learned members) strengths; the pattern
        is taken again from the strengths when ``repattern``."""
        gW, gb, gc = self.cd_gradients(v0, k, generator, persistent)
        if connection_gradient == "weight":
            conn = gW * self.W
        else:
            conn = gW.abs()
        # a fully connected or random member keeps its pattern: only learned ones move
        learned = self.learned.view(-1, 1, 1)
        self.strength += strength_lr * conn * learned
        upd = gW - weight_decay * self.W
        if inactive_weights == "frozen":
            upd = upd * self.mask
        else:  # the absent connections of fixed patterns never matter: leave them be
            upd = upd * (self.mask | learned)
        self.W += lr * upd
        self.b += lr * gb
        self.c += lr * gc
        if repattern and bool(self.learned.any()):
            new = topk_mask(self.strength, self.budget)
            self.mask = torch.where(learned, new, self.mask)
