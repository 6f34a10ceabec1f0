"""A small generated image folder and a network for it, shared by the data tests."""

from pathlib import Path

import numpy as np
from torch import nn

CLASSES, PER_CLASS, SIZE = 3, 12, 8


def images(seed=0):
    """3 classes x 12 RGB 8x8 images ``(class, index, array)``; each class brighter in its
    own channel."""
    g = np.random.default_rng(seed)
    out = []
    for c in range(CLASSES):
        for i in range(PER_CLASS):
            a = g.integers(0, 90, (SIZE, SIZE, 3)).astype(np.uint8)
            a[..., c] += 150
            out.append((c, i, a))
    return out


def write_folder(root: Path) -> Path:
    """:func:`images` as PNG files in ``root/classC/III.png``."""
    from PIL import Image
    for c, i, a in images():
        (root / f"class{c}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(a).save(root / f"class{c}" / f"{i:03d}.png")
    return root


class Net(nn.Module):
    def __init__(self, input_shape, num_classes):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(int(np.prod(input_shape)), 16),
                                  nn.ReLU(), nn.Linear(16, num_classes))

    def forward(self, x):
        return self.body(x)
