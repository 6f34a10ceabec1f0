"""Log-likelihood of binary RBMs by annealed importance sampling (AIS).

R. Salakhutdinov and I. Murray, "On the quantitative analysis of deep belief networks",
ICML 2008: anneal from a base-rate model (visible biases only, fitted to the training
pixels' means) to the RBM through ``beta`` in [0, 1], Gibbs transitions at every
intermediate distribution; ``log Z`` is the base model's plus the log mean importance weight.
Their schedule is 500 betas in [0, 0.5), 4,000 in [0.5, 0.9) and 10,000 in [0.9, 1]; here
``betas`` total steps are split in the same proportions, and everything runs in float64.
All RBMs of a stack are annealed together, their runs as one batch.
"""

from __future__ import annotations

import itertools
import math

import torch
from torch.nn.functional import softplus

from .machine import RBMStack


def beta_schedule(steps: int, dtype=torch.float64) -> torch.Tensor:
    """``steps + 1`` betas from 0 to 1, dense near 1 as in Salakhutdinov & Murray."""
    n1, n2 = max(1, round(steps * 500 / 14500)), max(1, round(steps * 4000 / 14500))
    n3 = max(1, steps - n1 - n2)
    return torch.cat([torch.linspace(0, 0.5, n1 + 1, dtype=dtype)[:-1],
                      torch.linspace(0.5, 0.9, n2 + 1, dtype=dtype)[:-1],
                      torch.linspace(0.9, 1.0, n3 + 1, dtype=dtype)])


def _base_bias(base_rate: torch.Tensor) -> torch.Tensor:
    p = base_rate.double().clamp(1e-3, 1 - 1e-3)
    return p.log() - (-p).log1p()


def ais_log_partition(rbm: RBMStack, base_rate: torch.Tensor, runs: int = 100,
                      steps: int = 14500, generator: torch.Generator | None = None
                      ) -> torch.Tensor:
    """AIS estimate of ``log Z`` of every member, ``[P]`` (float64)."""
    W, b, c = rbm.weights.double(), rbm.b.double(), rbm.c.double()
    P, V, H = W.shape
    bA = _base_bias(base_rate).expand(P, V).unsqueeze(1)  # [P, 1, V]
    log_zA = softplus(bA.squeeze(1)).sum(-1) + H * math.log(2)
    betas = beta_schedule(steps)

    def log_p(v, beta):  # unnormalised log-probability of v at beta, [P, R]
        pre = torch.baddbmm(c.unsqueeze(1), v, W)
        return ((1 - beta) * (v * bA).sum(-1) + beta * (v * b.unsqueeze(1)).sum(-1)
                + softplus(beta * pre).sum(-1))

    v = torch.bernoulli(torch.sigmoid(bA).expand(P, runs, V).contiguous(), generator=generator)
    logw = torch.zeros(P, runs, dtype=torch.float64)
    for prev, beta in zip(betas[:-1], betas[1:]):
        logw += log_p(v, beta) - log_p(v, prev)
        ph = torch.sigmoid(beta * torch.baddbmm(c.unsqueeze(1), v, W))
        h = torch.bernoulli(ph, generator=generator)
        pv = torch.sigmoid((1 - beta) * bA + beta * torch.baddbmm(b.unsqueeze(1), h,
                                                                    W.transpose(1, 2)))
        v = torch.bernoulli(pv, generator=generator)
    return log_zA + torch.logsumexp(logw, 1) - math.log(runs)


def exact_log_partition(rbm: RBMStack) -> torch.Tensor:
    """``log Z`` by summing over every visible state, ``[P]``; only for small ``V`` (tests)."""
    V = rbm.W.shape[1]
    if V > 20:
        raise ValueError(f"{V} visible units: 2^{V} states are too many to enumerate")
    states = torch.tensor(list(itertools.product((0.0, 1.0), repeat=V)), dtype=torch.float64)
    W, b, c = rbm.weights.double(), rbm.b.double(), rbm.c.double()
    v = states.expand(len(W), *states.shape)
    lp = (v * b.unsqueeze(1)).sum(-1) + softplus(torch.baddbmm(c.unsqueeze(1), v, W)).sum(-1)
    return torch.logsumexp(lp, 1)


def log_likelihood(rbm: RBMStack, v: torch.Tensor, log_z: torch.Tensor) -> torch.Tensor:
    """Mean log-likelihood ``[P]`` (nats per example) of binary data ``v [N, V]``."""
    W, b, c = rbm.weights.double(), rbm.b.double(), rbm.c.double()
    x = v.double().expand(len(W), *v.shape)
    lp = (x * b.unsqueeze(1)).sum(-1) + softplus(torch.baddbmm(c.unsqueeze(1), x, W)).sum(-1)
    return lp.mean(1) - log_z
