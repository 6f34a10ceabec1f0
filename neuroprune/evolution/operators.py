"""Variation operators on a whole population of masks at once: ``[R, n]`` bool rows.

Each keeps every mask exactly as sparse as its allocation says, unit by unit (a layer, or all
layers for global allocation): the number of kept weights in a unit never changes, so sparsity
is preserved by construction rather than repaired. The loops run over allocation units and
rejection rounds, never over individuals or weights.

Random numbers come from a :class:`Draws`: a ``torch.Generator`` on the population's device,
whose state a search saves in its checkpoints (breeding on a GPU draws other numbers than on a
CPU, as any GPU generator does).
"""

from __future__ import annotations

import math

import torch

from ..masks import Layout

_SPARSE = 1 / 32  # below this share of candidates, choose among them by sorted keys


class Draws:
    """Random numbers for breeding, from one generator on the population's device."""

    def __init__(self, seed: int, device: torch.device | str = "cpu"):
        self.device = torch.device(device)
        self.generator = torch.Generator(device=self.device).manual_seed(int(seed))

    def uniform(self, rows: int, shape: tuple[int, ...]) -> torch.Tensor:
        """``[rows, *shape]`` floats in [0, 1)."""
        return torch.rand(rows, *shape, generator=self.generator, device=self.device)

    def coins(self, rows: int, cols: int) -> torch.Tensor:
        """``[rows, cols]`` fair random bits (one 32-bit draw per 32 of them)."""
        words = torch.randint(-2**31, 2**31 - 1, (rows, (cols + 31) // 32), dtype=torch.int32,
                              generator=self.generator, device=self.device)
        bits = words.view(torch.uint8).unsqueeze(-1) & _BIT_VALUES.to(self.device)
        return bits.bool().reshape(rows, -1)[:, :cols]

    def state(self) -> torch.Tensor:
        return self.generator.get_state()

    def restore(self, state: torch.Tensor) -> None:
        self.generator.set_state(state)


_BIT_VALUES = torch.tensor([1, 2, 4, 8, 16, 32, 64, 128], dtype=torch.uint8)


def row_counts(bits: torch.Tensor) -> torch.Tensor:
    """``[R]`` number of True entries per row (int64), summing bytes in int32."""
    return bits.view(torch.uint8).sum(1, dtype=torch.int32).long()


def _positions_sparse(cand: torch.Tensor, want: torch.Tensor, draws: Draws,
                      have: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``want[r]`` of row ``r``'s candidates through random keys on the candidates only
    (few candidates): the chosen ``(rows, columns)``."""
    rows, cols = cand.nonzero(as_tuple=True)  # row-major: sorted by row
    keys = draws.uniform(1, (len(rows),))[0].double() + rows.double()
    order = torch.argsort(keys)  # by row, then random within the row
    rows_s, cols_s = rows[order], cols[order]
    start = torch.zeros(len(cand), dtype=torch.int64, device=cand.device)
    start[1:] = torch.cumsum(have, 0)[:-1]
    take = torch.arange(len(rows_s), device=cand.device) - start[rows_s] < want[rows_s]
    return rows_s[take], cols_s[take]


def _positions_dense(cand: torch.Tensor, want: torch.Tensor, draws: Draws,
                     have: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``want[r]`` of row ``r``'s candidates by rejection (many candidates): uniform positions,
    keeping candidates not drawn before; the chosen ``(rows, columns)``."""
    n_rows, m = cand.shape
    taken = torch.zeros_like(cand)
    empty = torch.zeros(0, dtype=torch.int64, device=cand.device)
    left, chosen = want.clone(), [(empty, empty)]
    while bool((left > 0).any()):
        live = left > 0
        density = (have - (want - left)).double().clamp_min(1) / m
        count = int(math.ceil(float((left.double() / density)[live].max()) * 1.2)) + 16
        pos = (draws.uniform(n_rows, (count,)) * m).to(torch.int32).clamp_max(m - 1)
        ok = (cand.gather(1, pos.long()) & ~taken.gather(1, pos.long())) & live[:, None]
        sorted_pos, order = pos.sort(dim=1, stable=True)  # the first draw of a position counts
        repeat = torch.zeros_like(ok)
        repeat.scatter_(1, order[:, 1:], sorted_pos[:, 1:] == sorted_pos[:, :-1])
        ok &= ~repeat
        take = ok & (ok.cumsum(1, dtype=torch.int32) <= left[:, None])
        r_idx = torch.arange(n_rows, device=cand.device)[:, None].expand_as(pos)[take]
        c_idx = pos[take].long()
        taken[r_idx, c_idx] = True
        chosen.append((r_idx, c_idx))
        left -= take.sum(1)
    return torch.cat([r for r, _ in chosen]), torch.cat([c for _, c in chosen])


def positions(cand: torch.Tensor, want: torch.Tensor, draws: Draws,
              have: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(rows, columns)`` of ``want[r]`` entries per row ``r``, chosen uniformly among the True
    entries of ``cand[r]`` (``want`` must not exceed them; ``have``: the candidates per row,
    when the caller knows them). Cost grows with ``want``, not with the row length, when the
    candidates are many."""
    have = row_counts(cand) if have is None else have
    if float(have.double().mean()) < _SPARSE * cand.shape[1]:
        return _positions_sparse(cand, want, draws, have)
    return _positions_dense(cand, want, draws, have)


def choose(cand: torch.Tensor, want: torch.Tensor, draws: Draws,
           have: torch.Tensor | None = None) -> torch.Tensor:
    """``[R, m]`` bool with exactly ``want[r]`` True entries in row ``r``, chosen uniformly
    among the True entries of ``cand[r]`` (``want`` is clipped to what is there)."""
    have = row_counts(cand) if have is None else have
    want = torch.minimum(want.to(have.dtype), have)
    out = torch.zeros_like(cand)
    if not bool((want > 0).any()):
        return out
    flip = want * 2 > have  # choose the smaller side, then take the complement
    rows, cols = positions(cand, torch.where(flip, have - want, want), draws, have)
    out[rows, cols] = True
    return torch.where(flip[:, None], cand & ~out, out) if bool(flip.any()) else out


def random_rows(layout: Layout, rows: int, draws: Draws) -> torch.Tensor:
    """``[rows, n]`` masks with exactly ``kept`` ones, uniformly placed, in every unit."""
    out = torch.zeros(rows, layout.numel, dtype=torch.bool, device=draws.device)
    for start, stop, kept in layout.units:
        everything = torch.ones(rows, stop - start, dtype=torch.bool, device=draws.device)
        size = torch.full((rows,), stop - start, device=draws.device)
        out[:, start:stop] = choose(everything, torch.full_like(size, kept), draws, have=size)
    return out


def cx_kept_sets(a: torch.Tensor, b: torch.Tensor, layout: Layout,
                 draws: Draws) -> tuple[torch.Tensor, torch.Tensor]:
    """Crossover of pairs of masks (rows of ``a`` with rows of ``b``): each child keeps what
    both parents keep, and the connections exactly one parent keeps are split between the two
    children at random, each getting as many as its unit's count needs."""
    c1 = a & b
    c2 = c1.clone()
    for start, stop, kept in layout.units:
        pa, pb = a[:, start:stop], b[:, start:stop]
        either = pa ^ pb
        need = kept - row_counts(c1[:, start:stop])
        first = either & draws.coins(len(a), stop - start)
        got = row_counts(first)
        extra = got - need  # move the surplus (or the deficit) at random
        first = first & ~choose(first, extra.clamp_min(0), draws, have=got)
        first = first | choose(either & ~first, (-extra).clamp_min(0), draws)
        c1[:, start:stop] |= first
        c2[:, start:stop] |= either & ~first
    return c1, c2


def _swap_count(kept: int, size: int, rate: float) -> int:
    n = min(round(rate * kept), kept, size - kept)
    return 1 if n == 0 and rate > 0 and 0 < kept < size else n


def mut_swap(bits: torch.Tensor, layout: Layout, rate: float, draws: Draws) -> torch.Tensor:
    """Move ``round(rate * kept)`` kept connections of every unit to pruned positions (at
    least one), in every row."""
    out = bits.clone()
    for start, stop, kept in layout.units:
        unit = bits[:, start:stop]
        n = _swap_count(kept, stop - start, rate)
        if n == 0:
            continue
        count = torch.full((len(bits),), n, device=bits.device)
        drop = positions(unit, count, draws, have=torch.full_like(count, kept))
        grow = positions(~unit, count, draws, have=torch.full_like(count, stop - start - kept))
        target = out[:, start:stop]
        target[drop] = False
        target[grow] = True
    return out


def mut_guided(bits: torch.Tensor, layout: Layout, rate: float, scores: torch.Tensor,
               draws: Draws) -> torch.Tensor:
    """Drop the ``round(rate * kept)`` kept connections with the lowest ``scores`` (``[R, n]``)
    in every unit and grow as many pruned ones at random (the drop step of SET/RigL, with the
    score from each individual's own fitness training)."""
    out = bits.clone()
    for start, stop, kept in layout.units:
        unit = bits[:, start:stop]
        n = _swap_count(kept, stop - start, rate)
        if n == 0:
            continue
        score = torch.where(unit, scores[:, start:stop].float(),
                            torch.tensor(float("inf"), device=bits.device))
        count = torch.full((len(bits),), n, device=bits.device)
        grow = positions(~unit, count, draws, have=torch.full_like(count, stop - start - kept))
        target = out[:, start:stop]
        target.scatter_(1, torch.topk(score, n, dim=1, largest=False).indices, False)
        target[grow] = True
    return out


def unit_counts(layout: Layout, bits: torch.Tensor) -> torch.Tensor:
    """``[R, units]`` kept counts (for checks)."""
    return torch.stack([bits[:, a:b].sum(1) for a, b, _ in layout.units], 1)
