"""Planted tickets: tasks whose best sparse network is known.

Fischer and Burkholz, "Plant 'n' Seek: Can You Find the Winning Ticket?", ICLR 2022
(arXiv 2111.11153). A small target network that solves a task exactly is written into a wide,
He-initialised ReLU network of the same depth (its weights overwrite the first units of every
layer); the labels are the target network's outputs, so pruning the wide network to the
*planted mask* solves the task perfectly. A pruning method is then judged by the quality of
its network and by how much of the planted mask it recovers.

Our constructions (depth ``L`` linear layers, width ``W``):

* ``relu``: y = ReLU(x_1), x in [-1, 1]^4, regression. One path of L weights (plus the output).
* ``circle``: 2-D points, class 1 inside a circle of radius^2 0.4, via a piecewise-linear square
  (4 knots per coordinate and sign: 16 units), a threshold unit and identity layers.
* ``helix``: x in [-1, 1] -> (cos 2 pi x, sin 2 pi x, x) as a 12-piece linear interpolation
  (12 units carried through identity layers), regression.

Paper tickets keep about 0.08% / 2.0% / 2.3% of the weights (ReLU / Circle / Helix, depth 5,
width 50); ours keep the share printed by :func:`make_task` (``planted_sparsity``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .data import DataSplits
from .engine import State
from .masks import Mask
from .models import ModelSpec, build_model, prunable_names

TASKS = ("relu", "circle", "helix")


@dataclass
class PlantedTask:
    name: str
    spec: ModelSpec
    data: DataSplits
    init: State            # the wide network with the target planted in it
    mask: Mask             # the planted mask (the target's weights)
    loss: str              # "mse" or "cross_entropy"

    @property
    def planted_sparsity(self) -> float:
        return self.mask.sparsity()


def _target(name: str, depth: int):
    """(input dim, output dim, weights {(layer, out, in): v}, biases {(layer, unit): v})."""
    w: dict[tuple[int, int, int], float] = {}
    b: dict[tuple[int, int], float] = {}
    if name == "relu":
        for layer in range(depth):
            w[(layer, 0, 0)] = 1.0
        return 4, 1, w, b, 1
    if name == "circle":
        if depth < 3:
            raise ValueError("the circle task needs depth >= 3")
        knots, k = (0.0, 0.25, 0.5, 0.75), 0
        slopes = (0.25, 0.5, 0.5, 0.5)  # increments of the slope of t^2 at the knots
        for c in range(2):
            for sign in (1.0, -1.0):
                for t, s in zip(knots, slopes):
                    w[(0, k, c)] = sign
                    b[(0, k)] = -t
                    w[(1, 0, k)] = -s
                    k += 1
        b[(1, 0)] = 0.4  # radius^2: unit 0 of layer 1 = ReLU(0.4 - |x|^2), > 0 inside
        for layer in range(2, depth - 1):
            w[(layer, 0, 0)] = 1.0
        w[(depth - 1, 1, 0)] = 20.0
        b[(depth - 1, 0)] = 0.1
        return 2, 2, w, b, 16
    if name == "helix":
        pieces = 12
        knots = [-1.0 + 2.0 * i / pieces for i in range(pieces)]

        def g(x):
            return (math.cos(2 * math.pi * x), math.sin(2 * math.pi * x), x)

        pts = [g(-1.0 + 2.0 * i / pieces) for i in range(pieces + 1)]
        slopes = [[(pts[i + 1][j] - pts[i][j]) / (2.0 / pieces) for j in range(3)]
                  for i in range(pieces)]
        for i, t in enumerate(knots):
            w[(0, i, 0)] = 1.0
            b[(0, i)] = -t
            for layer in range(1, depth - 1):
                w[(layer, i, i)] = 1.0
            for j in range(3):
                change = slopes[i][j] - (slopes[i - 1][j] if i else 0.0)
                w[(depth - 1, j, i)] = change
        for j in range(3):
            b[(depth - 1, j)] = pts[0][j]
        return 1, 3, w, b, pieces
    raise ValueError(f"unknown planted task '{name}'; choose one of {', '.join(TASKS)}")


def make_task(name: str, depth: int = 5, width: int = 50, n_samples: int = 3000,
              seed: int = 0) -> PlantedTask:
    """Generate the data from the target function and plant the target in a wide network."""
    d_in, d_out, tw, tb, needed = _target(name, depth)
    if width < needed:
        raise ValueError(f"the {name} task needs width >= {needed}, got {width}")
    spec = ModelSpec.zoo("mlp", (d_in,), d_out, widths=(width,) * (depth - 1))
    g = torch.Generator().manual_seed(seed)
    model = build_model(spec)
    names = prunable_names(model)
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    target = {k: torch.zeros_like(v) for k, v in state.items()}
    mask = Mask({k: torch.zeros_like(state[k], dtype=torch.bool) for k in names})
    for k in names:  # He initialisation, zero biases
        fan_in = state[k].shape[1]
        state[k] = torch.randn(state[k].shape, generator=g) * math.sqrt(2.0 / fan_in)
        state[k.replace("weight", "bias")] = torch.zeros_like(state[k.replace("weight", "bias")])
    for (layer, o, i), v in tw.items():
        k = names[layer]
        state[k][o, i] = target[k][o, i] = v
        mask[k][o, i] = True
    for (layer, u), v in tb.items():
        k = names[layer].replace("weight", "bias")
        state[k][u] = target[k][u] = v
    for k in names:  # the target alone: weights outside the planted mask are zero
        target[k] = target[k] * mask[k]
    x = torch.rand(n_samples, d_in, generator=g) * 2 - 1
    net = build_model(spec)
    net.load_state_dict(target)
    with torch.no_grad():
        out = net(x)
    y = out.argmax(1) if name == "circle" else out
    a, c = int(0.6 * n_samples), int(0.8 * n_samples)
    data = DataSplits(name=f"planted_{name}", train_x=x[:a], train_y=y[:a], val_x=x[a:c],
                      val_y=y[a:c], test_x=x[c:], test_y=y[c:], num_classes=d_out)
    return PlantedTask(name, spec, data, state, mask,
                       "cross_entropy" if name == "circle" else "mse")


def recovery(found: Mask, planted: Mask) -> dict[str, float]:
    """Precision, recall and IoU of the kept connections against the planted mask."""
    tp = sum(int((found[k] & planted[k]).sum()) for k in planted)
    kept = found.kept()
    target = planted.kept()
    union = sum(int((found[k] | planted[k]).sum()) for k in planted)
    return {"precision": tp / kept if kept else 0.0, "recall": tp / target if target else 0.0,
            "iou": tp / union if union else 0.0}
