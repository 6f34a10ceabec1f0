"""Variation operators that keep every mask exactly as sparse as its allocation says.

Each works unit by unit (a layer, or all layers for global allocation): the number of kept
weights in a unit never changes, so sparsity is preserved by construction rather than repaired
afterwards.
"""

from __future__ import annotations

import torch

from ..masks import Layout


def _fill(keep: torch.Tensor, candidates: torch.Tensor, need: int,
          generator: torch.Generator) -> torch.Tensor:
    """Indices ``keep`` plus ``need`` drawn uniformly from ``candidates``."""
    pick = candidates[torch.randperm(len(candidates), generator=generator)[:need]]
    return torch.cat([keep, pick])


def cx_kept_sets(a: torch.Tensor, b: torch.Tensor, layout: Layout,
                 generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Crossover of two masks: each child keeps what both parents keep, and fills the rest of
    its unit's count from what exactly one parent keeps (the two children split that set).
    """
    c1 = torch.zeros_like(a)
    c2 = torch.zeros_like(b)
    for start, stop, kept in layout.units:
        pa, pb = a[start:stop], b[start:stop]
        both = torch.nonzero(pa & pb).flatten()
        either = torch.nonzero(pa ^ pb).flatten()
        need = kept - len(both)
        order = either[torch.randperm(len(either), generator=generator)]
        first, second = order[:need], order[need:2 * need]
        if len(second) < need:  # only when the parents' counts differ; fill from the rest
            rest = torch.nonzero(~(pa | pb)).flatten()
            second = _fill(second, rest, need - len(second), generator)
        c1[start + torch.cat([both, first])] = True
        c2[start + torch.cat([both, second])] = True
    return c1, c2


def mut_swap(bits: torch.Tensor, layout: Layout, rate: float,
             generator: torch.Generator) -> torch.Tensor:
    """Move ``round(rate * kept)`` kept connections of every unit to pruned positions."""
    out = bits.clone()
    for start, stop, kept in layout.units:
        unit = out[start:stop]
        on = torch.nonzero(unit).flatten()
        off = torch.nonzero(~unit).flatten()
        n = min(round(rate * kept), len(on), len(off))
        if n == 0 and rate > 0 and len(off) > 0 and len(on) > 0:
            n = 1
        drop = on[torch.randperm(len(on), generator=generator)[:n]]
        grow = off[torch.randperm(len(off), generator=generator)[:n]]
        unit[drop] = False
        unit[grow] = True
    return out


def mut_guided(bits: torch.Tensor, layout: Layout, rate: float, scores: torch.Tensor,
               generator: torch.Generator) -> torch.Tensor:
    """Drop the ``round(rate * kept)`` kept connections with the lowest ``scores`` in every
    unit and grow as many pruned ones at random (the drop step of SET/RigL, with the score
    coming from the individual's own fitness training)."""
    out = bits.clone()
    for start, stop, kept in layout.units:
        unit = out[start:stop]
        on = torch.nonzero(unit).flatten()
        off = torch.nonzero(~unit).flatten()
        n = min(max(1, round(rate * kept)), len(on), len(off))
        if n == 0:
            continue
        drop = on[torch.topk(scores[start:stop][on].float(), n, largest=False).indices]
        grow = off[torch.randperm(len(off), generator=generator)[:n]]
        unit[drop] = False
        unit[grow] = True
    return out
