"""On-device augmentation of training batches, seeded so that results stay reproducible.

The random parameters of a whole epoch are drawn at once on the CPU from the run's data seed
(the same on every device) and moved to the device once per epoch; each step then augments its
batch with plain tensor indexing. Every network of a population sees the same augmented batch,
so a network trained alone with the same seed sees exactly what it saw in the population.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


class RandomCrop:
    """Zero-pad by ``pad`` pixels and crop back at a random offset (CIFAR's standard)."""

    columns = 2

    def __init__(self, pad: int = 4):
        self.pad = pad

    def draw(self, n: int, generator: torch.Generator) -> torch.Tensor:
        return torch.randint(0, 2 * self.pad + 1, (n, 2), generator=generator)

    def apply(self, x: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        xp = F.pad(x, (self.pad,) * 4)
        rows = (p[:, 0:1] + torch.arange(h, device=x.device))[:, :, None]  # [B, H, 1]
        cols = (p[:, 1:2] + torch.arange(w, device=x.device))[:, None, :]  # [B, 1, W]
        batch = torch.arange(b, device=x.device)[:, None, None]
        return xp.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)


class HorizontalFlip:
    """Mirror left-right with probability 1/2."""

    columns = 1

    def draw(self, n: int, generator: torch.Generator) -> torch.Tensor:
        return torch.randint(0, 2, (n, 1), generator=generator)

    def apply(self, x: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        return torch.where(p[:, 0].bool()[:, None, None, None], x.flip(3), x)


def random_crop() -> RandomCrop:
    return RandomCrop(4)


def horizontal_flip() -> HorizontalFlip:
    return HorizontalFlip()


class Augmenter:
    """The configured augmentations (``data.augment``), applied in order."""

    def __init__(self, names: list[str]):
        from .registry import AUGMENTATIONS
        self.names = list(names)
        self.steps = [AUGMENTATIONS.load(n)() for n in names]

    def __bool__(self) -> bool:
        return bool(self.steps)

    def check(self, input_shape: tuple[int, ...]) -> None:
        if self.steps and len(input_shape) != 3:
            from ..errors import ConfigError
            raise ConfigError(f"data.augment {self.names} needs image inputs (C, H, W); this "
                              f"dataset has shape {tuple(input_shape)}")

    def draw(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """Parameters for ``n`` samples: ``[n, columns]`` (int64, CPU)."""
        return torch.cat([s.draw(n, generator) for s in self.steps], 1)

    def apply(self, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        col = 0
        for s in self.steps:
            x = s.apply(x, params[:, col:col + s.columns])
            col += s.columns
        return x
