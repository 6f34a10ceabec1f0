"""Small transformers: a ViT-style image classifier (Dosovitskiy et al. 2021, "An Image is
Worth 16x16 Words") and a text classifier over token ids.

Both are pre-norm encoders: ``x + attention(LayerNorm(x))``, then ``x + MLP(LayerNorm(x))``
with GELU, as in ViT. Attention keeps its query, key and value projections as three Linear
layers (not PyTorch's packed ``in_proj_weight``), so that masks address them one by one, and
writes attention out (``softmax(q k^T / sqrt(d)) v``: the population graph computes it for
all networks at once, and vmap batches it, where the fused
``F.scaled_dot_product_attention`` has no batching rule on the CPU). Structured masks
remove MLP neurons and whole attention heads (a head: its query, key and value rows and
its output projection columns; compaction rebuilds the layer with fewer heads); the residual
stream keeps its units.

Options the papers leave to the implementation, named here: ``pool`` (``cls``: a class token,
as ViT; ``mean``: the mean over tokens), the patch embedding as a strided convolution (ViT's
"hybrid" reading of a linear projection of flattened patches: the same map), learned position
embeddings initialised at N(0, 0.02).
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError
from .base import image_shape


class Attention(nn.Module):
    """Multi-head self-attention with separate query, key and value projections."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        if dim % heads:
            raise ConfigError(f"model.dim {dim} is not divisible by model.heads {heads}")
        self.heads = heads
        self.query, self.key, self.value = (nn.Linear(dim, dim) for _ in range(3))
        self.proj = nn.Linear(dim, dim)

    def unit_groups(self, prefix: str) -> list:
        """Its heads as one structured group: a head is its rows of the query, key and value
        projections (weights and biases) and its columns of the output projection."""
        from ..masks.groups import Group, Member

        dim = self.query.out_features
        positions = torch.arange(dim)
        heads = positions // (dim // self.heads)
        members = [Member(f"{prefix}{p}.{t}", 0, positions, heads, "out")
                   for p in ("query", "key", "value") for t in ("weight", "bias")]
        members.append(Member(f"{prefix}proj.weight", 1, positions, heads, "in"))
        # rooted at the value projection: its rows are what a head produces (a "filter")
        return [Group(f"{prefix}value", "head", self.heads, tuple(members))]

    def silent_heads(self) -> list[int]:
        """Heads that contribute nothing: their value rows and bias are zero (the head's
        output is a mix of zeros), or the output projection reads none of them."""
        d = self.query.out_features // self.heads
        v = torch.cat([self.value.weight, self.value.bias[:, None]], 1).reshape(self.heads, -1)
        read = self.proj.weight.reshape(self.proj.out_features, self.heads, d)
        return [h for h in range(self.heads)
                if not bool(v[h].any()) or not bool(read[:, h].any())]

    def keep_heads(self, keep: list[int]) -> None:
        """Rebuild with only the heads ``keep`` (in order): smaller projections, the same
        outputs when the others were silent."""
        d = self.query.out_features // self.heads
        rows = torch.cat([torch.arange(h * d, (h + 1) * d) for h in keep])
        for name in ("query", "key", "value"):
            old = getattr(self, name)
            new = nn.Linear(old.in_features, len(rows), old.bias is not None)
            with torch.no_grad():
                new.weight.copy_(old.weight[rows])
                if old.bias is not None:
                    new.bias.copy_(old.bias[rows])
            setattr(self, name, new)
        old = self.proj
        new = nn.Linear(len(rows), old.out_features, old.bias is not None)
        with torch.no_grad():
            new.weight.copy_(old.weight[:, rows])
            if old.bias is not None:
                new.bias.copy_(old.bias)
        self.proj, self.heads = new, len(keep)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.reshape(b, n, self.heads, -1).transpose(1, 2)
        q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
        # softmax(q k^T / sqrt(d)) v written out: what F.scaled_dot_product_attention computes,
        # in operations the population graph and vmap both take
        weights = (q @ k.transpose(-2, -1)) * q.shape[-1] ** -0.5
        out = weights.softmax(-1) @ v
        return self.proj(out.transpose(1, 2).reshape(b, n, -1))


class Block(nn.Module):
    """A pre-norm encoder block: attention, then an MLP of ``hidden`` GELU units."""

    def __init__(self, dim: int, heads: int, hidden: int):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attention = Attention(dim, heads)
        self.fc1, self.act, self.fc2 = nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(self.norm1(x))
        return x + self.fc2(self.act(self.fc1(self.norm2(x))))


class _Encoder(nn.Module):
    def __init__(self, tokens: int, dim: int, depth: int, heads: int, mlp_ratio: float,
                 num_classes: int, pool: str):
        super().__init__()
        if pool not in ("cls", "mean"):
            raise ConfigError(f"model.pool must be 'cls' or 'mean', got {pool!r}")
        self.pool = pool
        self.cls = nn.Parameter(torch.zeros(1, 1, dim)) if pool == "cls" else None
        self.position = nn.Parameter(torch.randn(1, tokens + (pool == "cls"), dim) * 0.02)
        self.blocks = nn.Sequential(*(Block(dim, heads, int(dim * mlp_ratio))
                                      for _ in range(depth)))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)
        self.output_layer_names = ["head.weight"]
        # structured masks remove MLP neurons and whole heads (Attention.unit_groups); the
        # residual stream (read by every LayerNorm) and single units of the attention
        # projections (split into heads) stay
        self.fixed_unit_layers = [f"blocks.{i}.{n}" for i in range(depth) for n in (
            "attention.query", "attention.key", "attention.value", "attention.proj", "fc2")]

    def encode(self, x: torch.Tensor) -> torch.Tensor:  # [B, N, dim] -> [B, classes]
        if self.cls is not None:
            x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], 1)
        x = self.norm(self.blocks(x + self.position))
        return self.head(x[:, 0] if self.cls is not None else x.mean(1))


class ViT(_Encoder):
    def __init__(self, input_shape, num_classes, patch, dim, depth, heads, mlp_ratio, pool):
        c, h, w = image_shape(input_shape, "vit")
        if h % patch or w % patch:
            raise ConfigError(f"model.patch {patch} does not divide the {h}x{w} input; choose "
                              f"a divisor of both")
        super().__init__((h // patch) * (w // patch), dim, depth, heads, mlp_ratio,
                         num_classes, pool)
        self.patches = nn.Conv2d(c, dim, patch, stride=patch)
        self.fixed_unit_layers.append("patches")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encode(self.patches(x).flatten(2).transpose(1, 2))


class TextTransformer(_Encoder):
    def __init__(self, input_shape, num_classes, vocab, dim, depth, heads, mlp_ratio, pool):
        if len(input_shape) != 1:
            raise ConfigError(f"model text_transformer reads token sequences [length], not "
                              f"inputs of shape {tuple(input_shape)}")
        super().__init__(int(input_shape[0]), dim, depth, heads, mlp_ratio, num_classes, pool)
        self.vocab = vocab
        self.embedding = nn.Embedding(vocab, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # token ids arrive as floats where the data is a float tensor: round them back
        return self.encode(self.embedding(x.round().long().clamp_(0, self.vocab - 1)))


def vit(input_shape: tuple[int, ...], num_classes: int, *, patch: int = 4, dim: int = 64,
        depth: int = 2, heads: int = 4, mlp_ratio: float = 2.0, pool: str = "cls") -> nn.Module:
    """A small ViT: ``patch`` x ``patch`` patches embedded to ``dim``, ``depth`` pre-norm blocks
    of ``heads`` heads and an MLP of ``mlp_ratio * dim`` GELU units, a class token."""
    return ViT(input_shape, num_classes, patch, dim, depth, heads, mlp_ratio, pool)


def text_transformer(input_shape: tuple[int, ...], num_classes: int, *, vocab: int = 1000,
                     dim: int = 64, depth: int = 2, heads: int = 4, mlp_ratio: float = 2.0,
                     pool: str = "mean") -> nn.Module:
    """A text classifier: token ids (inputs of shape [length]) embedded to ``dim`` (``vocab``
    tokens), ``depth`` pre-norm blocks, the mean over tokens."""
    return TextTransformer(input_shape, num_classes, vocab, dim, depth, heads, mlp_ratio, pool)
