"""torchvision's Swin Transformer on the population graph.

torchvision wraps three functions of ``torchvision.models.swin_transformer`` as ``torch.fx``
leaves, so the traced graph calls them whole: the padding and strided slicing of patch
merging, the gather of the relative position bias table, and the shifted-window attention
(Liu et al., "Swin Transformer: Hierarchical Vision Transformer using Shifted Windows",
ICCV 2021, arXiv 2103.14030). Here they run for P networks at once: what every network does
alike (padding, the cyclic shift by ``torch.roll``, the window partition, the attention mask)
runs once on the networks folded into the batch, ``[P * B, ...]``; what each network owns
(the qkv and output projections, its bias table) runs as one batched matrix product or one
batched gather. Swin V2's cosine attention and its bias MLP are not handled (``Unsupported``:
the engine takes vmap).
"""

from __future__ import annotations

import inspect
from typing import Callable

import torch
import torch.nn.functional as F

from .graph import LEAF_CALLS, POP, Act, Pass, Unsupported, Weight, to_pop

MODULE = "torchvision.models.swin_transformer"


def _fold(a: Act, p: int) -> torch.Tensor:
    """``[P * B, ...]``: the networks folded into the batch."""
    t = to_pop(a, p)
    return t.reshape(p * t.shape[1], *t.shape[2:])


def _unfold(t: torch.Tensor, p: int) -> Act:
    return Act(t.reshape(p, t.shape[0] // p, *t.shape[1:]), POP)


def _linear(x: torch.Tensor, w: Weight, b: Weight | None) -> torch.Tensor:
    """Each network's Linear on its own rows: ``x [P, ..., in]`` -> ``[P, ..., out]``."""
    p = x.shape[0]
    rows = x.reshape(p, -1, x.shape[-1])
    wt = w.t.transpose(1, 2)
    out = torch.baddbmm(b.t[:, None], rows, wt) if b is not None else torch.bmm(rows, wt)
    return out.reshape(*x.shape[:-1], out.shape[-1])


def relative_position_bias(table: Weight, index: Weight, window_size) -> Weight:
    """Each network's ``[heads, N, N]`` bias gathered from its own table ``[P, L, heads]``."""
    n = window_size[0] * window_size[1]
    p = table.t.shape[0]
    idx = index.t.reshape(p, -1) if index.t.dim() > 1 else index.t.expand(p, -1)
    got = table.t[torch.arange(p, device=idx.device)[:, None], idx]  # [P, N*N, heads]
    return Weight(got.reshape(p, n, n, -1).permute(0, 3, 1, 2).contiguous())


def _window_mask(pad_h: int, pad_w: int, window, shift, like: torch.Tensor) -> torch.Tensor:
    """torchvision's mask of the shifted windows: ``[windows, N, N]``, -100 between tokens
    that the cyclic shift brought together from different regions."""
    mask = like.new_zeros((pad_h, pad_w))
    count = 0
    for h in ((0, -window[0]), (-window[0], -shift[0]), (-shift[0], None)):
        for w in ((0, -window[1]), (-window[1], -shift[1]), (-shift[1], None)):
            mask[h[0]:h[1], w[0]:w[1]] = count
            count += 1
    mask = mask.view(pad_h // window[0], window[0], pad_w // window[1], window[1])
    mask = mask.permute(0, 2, 1, 3).reshape(-1, window[0] * window[1])
    mask = mask.unsqueeze(1) - mask.unsqueeze(2)
    return mask.masked_fill(mask != 0, -100.0).masked_fill(mask == 0, 0.0)


def shifted_window_attention(x: Act, qkv_weight: Weight, proj_weight: Weight,
                             relative_position_bias: Weight, window_size, num_heads: int,
                             shift_size, attention_dropout: float = 0.0, dropout: float = 0.0,
                             qkv_bias: Weight | None = None, proj_bias: Weight | None = None,
                             logit_scale=None, training: bool = True, *, p: int) -> Act:
    """torchvision's ``shifted_window_attention`` for P networks (same steps, same order)."""
    if logit_scale is not None:
        raise Unsupported("Swin V2's cosine attention")
    if attention_dropout > 0 or dropout > 0:
        raise Unsupported("dropout inside the window attention")
    if not all(isinstance(w, Weight) for w in (qkv_weight, proj_weight, relative_position_bias)):
        raise Unsupported("window attention with constant weights")
    t = _fold(x, p)
    _, h, w, c = t.shape
    pad_r = (window_size[1] - w % window_size[1]) % window_size[1]
    pad_b = (window_size[0] - h % window_size[0]) % window_size[0]
    t = F.pad(t, (0, 0, 0, pad_r, 0, pad_b))
    _, pad_h, pad_w, _ = t.shape
    shift = list(shift_size)
    if window_size[0] >= pad_h:
        shift[0] = 0
    if window_size[1] >= pad_w:
        shift[1] = 0
    if sum(shift) > 0:
        t = torch.roll(t, shifts=(-shift[0], -shift[1]), dims=(1, 2))
    windows = (pad_h // window_size[0]) * (pad_w // window_size[1])
    n = window_size[0] * window_size[1]
    t = t.view(-1, pad_h // window_size[0], window_size[0], pad_w // window_size[1],
               window_size[1], c)
    t = t.permute(0, 1, 3, 2, 4, 5).reshape(p, -1, n, c)  # [P, B * windows, N, C]
    qkv = _linear(t, qkv_weight, qkv_bias)
    qkv = qkv.reshape(p, t.shape[1], n, 3, num_heads, c // num_heads).permute(3, 0, 1, 4, 2, 5)
    q, k, v = qkv[0], qkv[1], qkv[2]  # [P, B * windows, heads, N, C / heads]
    attn = (q * (c // num_heads) ** -0.5).matmul(k.transpose(-2, -1))
    attn = attn + relative_position_bias.t[:, None]
    if sum(shift) > 0:
        mask = _window_mask(pad_h, pad_w, window_size, shift, t)
        attn = attn.view(p, -1, windows, num_heads, n, n) + mask[:, None]
        attn = attn.view(p, -1, num_heads, n, n)
    out = F.softmax(attn, dim=-1).matmul(v).transpose(2, 3).reshape(p, -1, n, c)
    out = _linear(out, proj_weight, proj_bias)
    out = out.view(-1, pad_h // window_size[0], pad_w // window_size[1], window_size[0],
                   window_size[1], c)
    out = out.permute(0, 1, 3, 2, 4, 5).reshape(-1, pad_h, pad_w, c)
    if sum(shift) > 0:
        out = torch.roll(out, shifts=(shift[0], shift[1]), dims=(1, 2))
    return _unfold(out[:, :h, :w, :].contiguous(), p)


def call(target: Callable, args, kwargs, pass_: Pass):
    """One of torchvision's Swin leaf functions for the population, or None when ``target``
    is not one of them."""
    if getattr(target, "__module__", None) != MODULE:
        return None
    bound = inspect.signature(target).bind(*args, **kwargs)
    named = bound.arguments
    if target.__name__ == "shifted_window_attention":
        named = {("x" if k == "input" else k): v for k, v in named.items()}
        return shifted_window_attention(**named, p=pass_.p)
    if target.__name__ == "_get_relative_position_bias":
        table, index = named["relative_position_bias_table"], named["relative_position_index"]
        if not (isinstance(table, Weight) and isinstance(index, Weight)):
            raise Unsupported("a relative position bias computed in forward (Swin V2)")
        return relative_position_bias(table, index, named["window_size"])
    if target.__name__ == "_patch_merging_pad" and isinstance(args[0], Act) and len(args) == 1:
        return _unfold(target(_fold(args[0], pass_.p)), pass_.p)  # alike for every network
    raise Unsupported(f"function {target.__name__} of {MODULE}")


LEAF_CALLS.append(call)
