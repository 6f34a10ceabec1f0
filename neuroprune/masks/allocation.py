"""How many weights each layer keeps at a target sparsity: uniform, global, ERK.

ERK is from Evci et al., "Rigging the Lottery: Making All Tickets Winners", ICML 2020
(arXiv 1911.11134), after Mocanu et al.'s Erdos-Renyi allocation for SET.

An *allocation unit* is a group of weights whose kept count is fixed: one per layer for
``uniform`` and ``erk``, one spanning all layers for ``global``. Every mask made or varied in
neuroprune keeps exactly ``round((1 - s) * n)`` weights per unit (ERK: per layer, at the
layer's density).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import torch

from ..errors import ConfigError
from ..registry import Registry

#: allocation name -> function(shapes, sparsity) -> kept count per layer, or one for all
ALLOCATIONS = Registry("allocation", "sparsity.allocation", {
    "uniform": ("neuroprune.masks.allocation:uniform_counts", "the same sparsity in every layer"),
    "global": ("neuroprune.masks.allocation:global_counts",
               "one budget over all layers (the kept weights go anywhere)"),
    "erk": ("neuroprune.masks.allocation:erk_counts",
            "Erdős–Rényi-kernel: denser layers where fan-in + fan-out is large for its size"),
})


@dataclass(frozen=True)
class Layout:
    """Where each prunable tensor lies in a flat genome, and the allocation units over it.

    ``units`` are ``(start, stop, kept)`` ranges of the flat vector; a mask has exactly
    ``kept`` ones inside each.
    """

    names: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]
    units: tuple[tuple[int, int, int], ...]
    allocation: str = "erk"

    def at(self, sparsity: float) -> "Layout":
        """The same tensors and allocation rule at another sparsity."""
        return make_layout(dict(zip(self.names, self.shapes)), sparsity, self.allocation)

    @property
    def offsets(self) -> list[int]:
        out, o = [], 0
        for s in self.shapes:
            out.append(o)
            o += math.prod(s)
        return out + [o]

    @property
    def numel(self) -> int:
        return sum(math.prod(s) for s in self.shapes)

    @property
    def kept(self) -> int:
        return sum(k for _, _, k in self.units)

    @property
    def sparsity(self) -> float:
        return 1.0 - self.kept / self.numel


def kept_count(n: int, sparsity: float) -> int:
    """Exact number of weights kept out of ``n`` at ``sparsity`` (at least one)."""
    return max(1, min(n, round((1.0 - sparsity) * n)))


def erk_densities(shapes: Sequence[tuple[int, ...]], density: float,
                  power: float = 1.0) -> list[float]:
    """Per-layer densities whose weighted mean is ``density``, proportional to the ERK score.

    Layers the score would make denser than 1 are made dense and the rest re-solved.
    """
    numel = [math.prod(s) for s in shapes]
    raw = [(sum(s) / math.prod(s)) ** power for s in shapes]
    dense: set[int] = set()
    while True:
        budget = density * sum(numel) - sum(numel[i] for i in dense)
        denom = sum(raw[i] * numel[i] for i in range(len(shapes)) if i not in dense)
        eps = budget / denom if denom > 0 else 0.0
        over = [i for i in range(len(shapes)) if i not in dense and eps * raw[i] > 1.0]
        if not over:
            break
        dense.update(over)
    return [1.0 if i in dense else eps * raw[i] for i in range(len(shapes))]


def uniform_counts(shapes: Sequence[tuple[int, ...]], sparsity: float) -> list[int]:
    return [kept_count(math.prod(s), sparsity) for s in shapes]


def global_counts(shapes: Sequence[tuple[int, ...]], sparsity: float) -> int:
    return kept_count(sum(math.prod(s) for s in shapes), sparsity)


def erk_counts(shapes: Sequence[tuple[int, ...]], sparsity: float) -> list[int]:
    dens = erk_densities(shapes, 1.0 - sparsity)
    return [kept_count(math.prod(s), 1.0 - d) for s, d in zip(shapes, dens)]


def make_layout(shapes: Mapping[str, tuple[int, ...]], sparsity: float,
                allocation: str = "erk") -> Layout:
    """Layout for masks over ``shapes`` (name -> shape, in model order) at ``sparsity``."""
    if not 0.0 <= sparsity < 1.0:
        raise ConfigError(f"sparsity must be in [0, 1), got {sparsity}")
    names = tuple(shapes)
    shp = tuple(tuple(int(d) for d in shapes[n]) for n in names)
    offs = [0]
    for s in shp:
        offs.append(offs[-1] + math.prod(s))
    counts = ALLOCATIONS.load(allocation)(shp, sparsity)
    if isinstance(counts, int):  # one unit over every layer
        units = ((0, offs[-1], counts),)
    else:
        units = tuple((offs[i], offs[i + 1], k) for i, k in enumerate(counts))
    return Layout(names=names, shapes=shp, units=units, allocation=allocation)


def random_bits(layout: Layout, generator: torch.Generator) -> torch.Tensor:
    """A flat bool vector with exactly ``kept`` ones, uniformly placed, in every unit."""
    bits = torch.zeros(layout.numel, dtype=torch.bool)
    for start, stop, kept in layout.units:
        idx = torch.randperm(stop - start, generator=generator)[:kept]
        bits[start + idx] = True
    return bits


def top_bits(layout: Layout, scores: torch.Tensor,
             within: torch.Tensor | None = None) -> torch.Tensor:
    """Keep the ``kept`` highest-scoring entries of every unit.

    With ``within`` (a bool vector), only those entries can be kept: iterative pruning never
    brings back what an earlier round removed.
    """
    bits = torch.zeros(layout.numel, dtype=torch.bool)
    scores = scores.double()
    if within is not None:
        scores = torch.where(within, scores, torch.tensor(float("-inf"), dtype=scores.dtype))
    for start, stop, kept in layout.units:
        idx = torch.topk(scores[start:stop], kept, sorted=False).indices
        bits[start + idx] = True
    return bits


def top_rows(layout: Layout, scores: torch.Tensor,
             within: torch.Tensor | None = None) -> torch.Tensor:
    """:func:`top_bits` for every row of ``scores`` (``[P, n]``) at once."""
    scores = scores.double()
    if within is not None:
        scores = torch.where(within, scores, torch.tensor(float("-inf"), dtype=scores.dtype,
                                                          device=scores.device))
    bits = torch.zeros(scores.shape, dtype=torch.bool, device=scores.device)
    for start, stop, kept in layout.units:
        idx = torch.topk(scores[:, start:stop], kept, dim=1, sorted=False).indices
        bits[:, start:stop].scatter_(1, idx, True)
    return bits


def bits_to_mask(layout: Layout, bits: torch.Tensor):
    """Split a flat vector into a :class:`Mask` of named tensors."""
    from .mask import Mask

    offs = layout.offsets
    return Mask({n: bits[offs[i]:offs[i + 1]].reshape(layout.shapes[i])
                 for i, n in enumerate(layout.names)})


def unflatten(layout: Layout, rows: torch.Tensor) -> dict[str, torch.Tensor]:
    """``[P, n]`` rows (masks, scores) as ``{name: [P, *shape]}`` views, in layout order."""
    offs = layout.offsets
    return {n: rows[:, offs[i]:offs[i + 1]].reshape(len(rows), *layout.shapes[i])
            for i, n in enumerate(layout.names)}


def flatten_rows(layout: Layout, tensors: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """``{name: [P, *shape]}`` as ``[P, n]`` rows in layout order."""
    return torch.cat([tensors[n].reshape(len(tensors[n]), -1) for n in layout.names], 1)


def flatten(layout: Layout, tensors: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """Concatenate named tensors (masks, scores) in layout order into one flat vector."""
    return torch.cat([tensors[n].reshape(-1) for n in layout.names])


def check_bits(layout: Layout, bits: torch.Tensor) -> None:
    """Raise ``ValueError`` unless every unit keeps exactly its count."""
    for start, stop, kept in layout.units:
        got = int(bits[start:stop].sum())
        if got != kept:
            raise ValueError(f"mask keeps {got} weights in [{start}, {stop}), expected {kept}")
