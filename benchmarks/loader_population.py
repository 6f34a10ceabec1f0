"""A population trained from a DataLoader: each batch read once and fed to all P networks,
against one network at a time (each network reads the data again), on a generated folder of
PNG images read by :class:`neuroprune.data.streamed.ImageFolder`.

    python benchmarks/loader_population.py --images 2000 --population 16 --epochs 1

Both arms train the same P networks (same initial weights, SGD with momentum) on the same
batches; the population arm reads each batch once and trains all P networks on it as stacked
weights, the other reads the whole folder once per network.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from neuroprune.data.streamed import ImageFolder


def make_folder(root: Path, images: int, classes: int, size: int, seed: int = 0) -> None:
    from PIL import Image
    g = np.random.default_rng(seed)
    for i in range(images):
        c = i % classes
        folder = root / f"class{c:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        a = g.integers(0, 200, (size, size, 3)).astype(np.uint8)
        a[..., c % 3] //= 1 + c // 3
        Image.fromarray(a).save(folder / f"{i:05d}.png")


def networks(p: int, shape: tuple[int, ...], classes: int, hidden: int):
    torch.manual_seed(0)
    nets = [nn.Sequential(nn.Flatten(), nn.Linear(int(np.prod(shape)), hidden), nn.ReLU(),
                          nn.Linear(hidden, classes)) for _ in range(p)]
    opts = [torch.optim.SGD(n.parameters(), lr=0.05, momentum=0.9) for n in nets]
    return nets, opts


class Stacked(nn.Module):
    """The P networks of :func:`networks` as stacked weights: one batched product per layer
    for the whole population (what the engine's stacked trainer does)."""

    def __init__(self, nets):
        super().__init__()
        first = [n[1] for n in nets]
        last = [n[3] for n in nets]
        self.w1 = nn.Parameter(torch.stack([layer.weight.detach().t() for layer in first]))
        self.b1 = nn.Parameter(torch.stack([layer.bias.detach() for layer in first])[:, None])
        self.w2 = nn.Parameter(torch.stack([layer.weight.detach().t() for layer in last]))
        self.b2 = nn.Parameter(torch.stack([layer.bias.detach() for layer in last])[:, None])

    def forward(self, x):  # [B, ...] -> [P, B, classes]
        h = torch.relu(torch.matmul(x.flatten(1), self.w1) + self.b1)
        return torch.baddbmm(self.b2, h, self.w2)


def step(net, opt, x, y) -> None:
    opt.zero_grad(set_to_none=True)
    nn.functional.cross_entropy(net(x), y).backward()
    opt.step()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=2000)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--population", type=int, default=16)
    ap.add_argument("--hidden", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--workers", type=int, default=0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_folder(root, args.images, args.classes, args.size)
        ds = ImageFolder(root)
        loader = DataLoader(ds, batch_size=args.batch_size, shuffle=True,
                            num_workers=args.workers, generator=torch.Generator().manual_seed(0))
        shape = tuple(ds[0][0].shape)

        pop = Stacked(networks(args.population, shape, args.classes, args.hidden)[0])
        opt = torch.optim.SGD(pop.parameters(), lr=0.05, momentum=0.9)
        t = time.perf_counter()
        for _ in range(args.epochs):
            for x, y in loader:  # one read per batch, all P networks
                opt.zero_grad(set_to_none=True)
                out = pop(x)  # the sum of the P losses: each network gets its own gradient
                nn.functional.cross_entropy(out.flatten(0, 1), y.repeat(len(out)),
                                            reduction="sum").div(len(y)).backward()
                opt.step()
        population = time.perf_counter() - t

        nets, opts = networks(args.population, shape, args.classes, args.hidden)
        t = time.perf_counter()
        for net, opt in zip(nets, opts):  # every network reads the data again
            for _ in range(args.epochs):
                for x, y in loader:
                    step(net, opt, x, y)
        one_by_one = time.perf_counter() - t
    print(f"{args.images} PNGs {args.size}x{args.size}, {args.classes} classes, "
          f"P={args.population}, {args.epochs} epoch(s), batch {args.batch_size}, "
          f"{args.workers} workers, {torch.get_num_threads()} threads")
    print(f"population from loader (one read per batch): {population:8.2f} s")
    print(f"one by one from loader (P reads per batch):  {one_by_one:8.2f} s")
    print(f"ratio: {one_by_one / population:.1f}x")


if __name__ == "__main__":
    main()
