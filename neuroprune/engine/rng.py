"""Counter-based random numbers: a pure function of (network seed, stream, element index).

A population's networks must draw exactly what each would draw alone (dropout masks, random
regrowth in SET), whatever the chunking and whichever device: a shared ``torch.Generator``
cannot do that, because its stream depends on how many numbers were drawn before. Here every
number is an integer hash of its network's seed, a stream counter (step, layer, purpose) and
its index, computed with 32-bit integer arithmetic that wraps identically on CPU and CUDA.

The mixing function is Chris Wellons' ``lowbias32`` (public domain), applied twice.
"""

from __future__ import annotations

import torch

_M1 = 0x7FEB352D
_M2 = 0x846CA68B - (1 << 32)  # as a signed 32-bit constant
_GOLDEN = 0x9E3779B9 - (1 << 32)


def _shr(x: torch.Tensor, bits: int) -> torch.Tensor:
    """Logical right shift of int32 values."""
    return (x >> bits) & ((1 << (32 - bits)) - 1)


def mix32(x: torch.Tensor) -> torch.Tensor:
    """``lowbias32`` on int32 tensors (wrapping multiplication, logical shifts)."""
    x = x ^ _shr(x, 16)
    x = x * _M1
    x = x ^ _shr(x, 15)
    x = x * _M2
    return x ^ _shr(x, 16)


def _signed(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >= 1 << 31 else value


def _key(seeds: torch.Tensor, stream: int) -> torch.Tensor:
    """One int32 key per network for ``stream``: ``[P]`` (seeds are taken modulo 2**32)."""
    s = seeds.to(torch.int64) & 0xFFFFFFFF
    s = torch.where(s >= 1 << 31, s - (1 << 32), s).to(torch.int32)
    return mix32(mix32(s + _GOLDEN) ^ _signed(stream * 0x27D4EB2F + 0x165667B1))


def uniform(seeds: torch.Tensor, stream: int, shape: tuple[int, ...],
            device: torch.device | str | None = None) -> torch.Tensor:
    """``[P, *shape]`` floats in [0, 1): network ``p``'s numbers depend only on ``seeds[p]``,
    ``stream`` and the element's index."""
    device = device if device is not None else seeds.device
    key = _key(seeds.to(device), stream)
    n = 1
    for d in shape:
        n *= int(d)
    idx = torch.arange(n, device=device, dtype=torch.int32)
    bits = mix32(key[:, None] ^ mix32(idx * _GOLDEN + 1))
    return (_shr(bits, 8).to(torch.float32) * (1.0 / (1 << 24))).reshape(len(seeds), *shape)


def stream_id(*parts: int) -> int:
    """Combine small integers (step, layer, purpose) into one stream counter."""
    out = 0
    for p in parts:
        out = (out * 1_000_003 + int(p)) & 0xFFFFFFFF
    return out
