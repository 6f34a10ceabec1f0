"""Gradient coders for private training: where the per-sample gradients are clipped and noised.

LSG: R. Ito, S. P. Liew, T. Takahashi, Y. Sasaki, M. Onizuka, "Scaling Private Deep Learning
with Low-Rank and Sparse Gradients", arXiv:2207.02699 (2022). DP-SGD adds noise to every
coordinate of the gradient, so its magnitude grows with the model's dimension; LSG first
approximates each weight matrix's gradient with a pair of low-rank matrices, then sparsifies
them, and clips and noises only what is left.

A coder maps a per-sample gradient ``[B, *shape]`` to reduced coordinates ``[B, d]``
(:meth:`reduce`), says which of them are noised (:attr:`keep`), and maps the noisy sum back
to a gradient of ``shape`` (:meth:`expand`). Clipping, noise and accounting see only the
reduced coordinates, so the noise is added in the reduced space.

The low-rank step follows the gradient-carrier reparametrisation (Yu et al., "Large Scale
Private Learning via Low-rank Reparametrization", ICML 2021) that LSG builds on: for carriers
``L [m, r]`` and ``R [r, n]`` with orthonormal columns / rows, the reduced coordinates of
``G`` are ``a = L^T G`` and ``b = G R^T``, and ``G ~ L a + b R - L L^T b R`` (the part of
``G`` in the carriers' row or column space). What the paper leaves open here, named options
of ``training.privacy``:

- ``basis``: carriers from one power iteration on the previous step's noisy update
  (``previous``; a post-processing of released values, so free of privacy cost) or random
  orthonormal ones at every step (``random``).
- ``support``: which ``density`` fraction of the ``r (m + n)`` coordinates is kept: the
  largest of the previous noisy update expressed in the new carriers (``previous``; again
  post-processing), or a uniform random subset at every step (``random``). The selection
  never looks at the current private gradients, so it costs no privacy.
- Parameters with fewer than two dimensions (biases, norms) stay dense: they are small.
- A conv kernel ``[out, in, kh, kw]`` is the matrix ``[out, in * kh * kw]``.

A weight mask (sparse training) applies before the reduction and after the expansion: masked
weights never receive a gradient, noise included.
"""

from __future__ import annotations

import torch


class DenseCoder:
    """Plain DP-SGD: the reduced coordinates are the kept weights' own gradients."""

    def __init__(self, shape: torch.Size, mask: torch.Tensor | None):
        self.shape = shape
        self.mask = None if mask is None else mask.to(torch.float32)
        n = int(torch.Size(shape).numel())
        self.keep = (torch.ones(n, dtype=torch.bool) if mask is None
                     else mask.reshape(-1).bool())

    def prepare(self, generator: torch.Generator) -> None:
        """Nothing changes between steps."""

    def reduce(self, grads: torch.Tensor) -> torch.Tensor:
        flat = grads.reshape(grads.shape[0], -1)
        return flat if self.mask is None else flat * self.mask.reshape(1, -1).to(flat)

    def expand(self, z: torch.Tensor) -> torch.Tensor:
        g = z.reshape(self.shape)
        return g if self.mask is None else g * self.mask.to(g)


def _orthonormal(x: torch.Tensor) -> torch.Tensor:
    return torch.linalg.qr(x)[0]


class LowRankSparseCoder(DenseCoder):
    """LSG's low-rank and sparse coordinates of one weight matrix (see the module docstring)."""

    def __init__(self, shape: torch.Size, mask: torch.Tensor | None, rank: int,
                 density: float, basis: str = "previous", support: str = "previous"):
        super().__init__(shape, mask)
        self.m = int(shape[0])
        self.n = int(torch.Size(shape[1:]).numel())
        self.rank = min(rank, self.m, self.n)
        self.density, self.basis, self.support = density, basis, support
        self.size = self.rank * (self.m + self.n)
        self.kept = max(1, round(density * self.size))
        self.previous: torch.Tensor | None = None  # the last noisy update, [m, n]

    def prepare(self, generator: torch.Generator) -> None:
        """Carriers and kept coordinates for the next step, from released values only."""
        m, n, r = self.m, self.n, self.rank
        noise = lambda *s: torch.randn(*s, generator=generator)  # noqa: E731
        h = self.previous
        if h is None or self.basis == "random" or not bool(h.abs().sum() > 0):
            self.L, self.R = _orthonormal(noise(m, r)), _orthonormal(noise(n, r)).T
        else:  # one power iteration; a little noise keeps QR defined on a rank-deficient h
            tiny = 1e-6 * float(h.norm())
            self.L = _orthonormal(h @ noise(n, r) + tiny * noise(m, r))
            self.R = _orthonormal(h.T @ self.L + tiny * noise(n, r)).T
        if h is None or self.support == "random":
            score = torch.rand(self.size, generator=generator)
        else:
            score = torch.cat([(self.L.T @ h).abs().reshape(-1), (h @ self.R.T).abs().reshape(-1)])
        keep = torch.zeros(self.size, dtype=torch.bool)
        keep[score.topk(self.kept).indices] = True
        self.keep = keep

    def reduce(self, grads: torch.Tensor) -> torch.Tensor:
        g = super().reduce(grads).reshape(-1, self.m, self.n)
        L, R = self.L.to(g), self.R.to(g)
        a = torch.einsum("mr,bmn->brn", L, g).reshape(len(g), -1)
        b = torch.einsum("bmn,rn->bmr", g, R).reshape(len(g), -1)
        return torch.cat([a, b], 1) * self.keep.to(g.device)

    def expand(self, z: torch.Tensor) -> torch.Tensor:
        L, R = self.L.to(z), self.R.to(z)
        split = self.rank * self.n
        a = z[:split].reshape(self.rank, self.n)
        b = z[split:].reshape(self.m, self.rank)
        g = L @ a + b @ R - L @ (L.T @ b) @ R
        self.previous = g.detach().cpu()
        return super().expand(g.reshape(-1))


def make_coder(shape: torch.Size, mask: torch.Tensor | None, privacy) -> DenseCoder:
    """The coder of one parameter under ``privacy`` (a :class:`PrivacyConfig`)."""
    if privacy.method == "lsg" and len(shape) >= 2:
        return LowRankSparseCoder(shape, mask, privacy.rank, privacy.density, privacy.basis,
                                  privacy.support)
    return DenseCoder(shape, mask)
