"""``neuroprune explain RUN``: the class-relevant channels of a finished conv-net run.

The sparse selection of :mod:`neuroprune.relevance` (Oramas et al., ICLR 2019, arXiv
1712.06302) on one convolution's channels (default: the last convolution) of the run's best
network, fitted on training images; then, written to ``RUN/explain/``:

* ``classes.png``: per class (rows), its relevant channels (columns, most relevant first),
  each as its averaged visualisation: the channel's activation map (rectified) averaged over
  the class's ``top`` test images with the highest response of that channel, upsampled over
  the mean of those images;
* ``explanations.png``: for a few test images (the first of each class), the predicted class
  and the relevant channels of that class that supported it most (largest positive part of
  the class's linear score), each map over the image;
* ``explain.json``: the layer, per class the channels with their weights and penalty, per
  explained image the supporting channels with their contributions, and how well the sparse
  linear model on the selected channels alone classifies the test split (``selection_accuracy``)
  and agrees with the network (``selection_agreement``).

The folder is written whole or not at all (built beside it, then moved in).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .errors import UserError
from .rundir import FILES
from .relevance import Selection, conv_layers, layer_outputs, pooled, select_relevant


def _run_network(run: Path, trust: bool):
    """The run's config, data and best network (plain, standardised inputs)."""
    from .config import load_config
    from .export import masked_model
    from .workbench import Workbench

    if not run.is_dir() or not (run / FILES.config).is_file():
        raise UserError(f"{run} is not a run directory (no config.yaml); give a folder that "
                        f"`neuroprune run` wrote")
    cfg = load_config(run / FILES.config)
    if cfg.kind != "mask_search":
        raise UserError(f"{run} is a {cfg.kind} run; explain reads the best network of a "
                        f"mask_search run")
    if cfg.data.task != "classification":
        raise UserError(f"{run} is a {cfg.data.task} run; explain finds the channels of each "
                        f"class of a single-label classifier")
    best = run / FILES.best_mask
    if not best.is_file():
        raise UserError(f"{run} has no best_mask.safetensors (unfinished run); finish it with "
                        f"`neuroprune resume {run}`")
    data = Workbench.from_config(cfg).data
    return cfg, data, masked_model(best, trust=trust)


def choose_layer(model: torch.nn.Module, layer: str | None, what: str) -> str:
    """``layer`` checked to be a 2-d convolution of ``model`` (default: the last one)."""
    convs = conv_layers(model)
    if not convs:
        raise UserError(f"{what} has no 2-d convolution; explain finds the relevant channels "
                        f"of a conv net (e.g. model.name conv2 or lenet5)")
    if layer is None:
        return convs[-1]
    if layer not in convs:
        raise UserError(f"--layer {layer} is not a convolution of {what}; choose one of "
                        f"{', '.join(convs)}")
    return layer


def explain_run(run_dir: str | Path, *, layer: str | None = None, k: int = 5,
                mu: float = 0.02, pooling: str = "mean", top: int = 8, images: int = 6,
                samples: int = 2000, trust: bool = False,
                out: str | Path | None = None) -> dict[str, Any]:
    """Write ``RUN/explain/`` (or ``out``) as the module docstring says; returns what
    ``explain.json`` holds. ``samples`` training images fit the selection."""
    if k < 1 or top < 1 or images < 0 or samples < 2 or mu <= 0:
        raise UserError("explain needs k >= 1, top >= 1, images >= 0, samples >= 2 and mu > 0")
    if pooling not in ("mean", "max"):
        raise UserError(f"unknown pooling '{pooling}'; use mean or max")
    run = Path(run_dir)
    cfg, data, model = _run_network(run, trust)
    layer = choose_layer(model, layer, f"the network of {run} ({cfg.model.name or 'model'})")
    train, _ = layer_outputs(model, data.train_x[:samples].float(), layer,
                             reduce=lambda out: pooled(out, pooling))
    sel = select_relevant(train.double().numpy(),
                          data.train_y[:samples].numpy(), data.num_classes, k=k, mu=mu)
    maps, logits = layer_outputs(model, data.test_x.float(), layer)
    responses = pooled(maps, pooling).double().numpy()
    labels, predicted = data.test_y.numpy(), logits.argmax(1).numpy()
    chosen = _examples(labels, data.num_classes, images)
    explained = [_supporting(sel, responses[i], int(predicted[i])) for i in chosen]
    sparse = sel.scores(responses).argmax(1)
    info: dict[str, Any] = {
        "run": str(run), "layer": layer, "channels": int(maps.shape[1]), "pooling": pooling,
        "k": k, "mu": mu, "samples": int(min(samples, len(data.train_x))),
        "test_accuracy": float((predicted == labels).mean()),
        "selection_accuracy": float((sparse == labels).mean()),
        "selection_agreement": float((sparse == predicted).mean()),
        "classes": [{"class": c, "channels": sel.channels[c], "weights": sel.weights[c],
                     "mu": sel.mu[c]} for c in range(data.num_classes)],
        "explanations": [{"index": int(i), "label": int(labels[i]),
                          "predicted": int(predicted[i]), "supporting": s}
                         for i, s in zip(chosen, explained)],
        "figures": ["classes.png", "explanations.png"] if chosen else ["classes.png"]}
    target = Path(out) if out is not None else run / "explain"
    _write(target, info, lambda folder: _figures(folder, data.test_x, labels, maps, responses,
                                                 sel, chosen, info, top))
    return info


def _examples(labels: np.ndarray, num_classes: int, n: int) -> list[int]:
    """The first test image of each class in turn, then the next of each, up to ``n``."""
    per = [np.flatnonzero(labels == c).tolist() for c in range(num_classes)]
    out: list[int] = []
    for rank in range(max((len(p) for p in per), default=0)):
        for p in per:
            if len(out) < n and rank < len(p):
                out.append(int(p[rank]))
    return out


def _supporting(sel: Selection, response: np.ndarray, cls: int, most: int = 3
                ) -> list[dict[str, float]]:
    """The relevant channels of ``cls`` with a positive part in its score, largest first."""
    part = sel.contributions(response[None], cls)[0]
    got = sorted(((float(part[j]), j) for j in sel.channels[cls] if part[j] > 0), reverse=True)
    return [{"channel": int(j), "contribution": v} for v, j in got[:most]]


def _write(target: Path, info: dict[str, Any], draw) -> None:
    import tempfile

    if target.exists() and not target.is_dir():
        raise UserError(f"{target} is a file; give a folder")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        draw(tmp)
        (tmp / "explain.json").write_text(json.dumps(info, indent=2), encoding="utf-8")
        target.mkdir(exist_ok=True)
        for f in sorted(tmp.iterdir()):
            f.replace(target / f.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _picture(x: torch.Tensor) -> np.ndarray:
    """An input ``[C, H, W]`` as an image for imshow (RGB or grey), scaled to [0, 1]."""
    img = x.permute(1, 2, 0) if x.shape[0] == 3 else x.mean(0)
    img = img.double()
    lo, hi = float(img.min()), float(img.max())
    return ((img - lo) / (hi - lo if hi > lo else 1.0)).numpy()


def _overlay(ax, background: torch.Tensor, heat: torch.Tensor, title: str) -> None:
    """``heat`` (``[h, w]``) upsampled to ``background``'s size, drawn over it."""
    size = background.shape[-2:]
    up = F.interpolate(heat[None, None].float(), size=size, mode="bilinear",
                       align_corners=False)[0, 0]
    ax.imshow(_picture(background), cmap="gray")
    ax.imshow(up.numpy(), cmap="jet", alpha=0.45, vmin=0.0, vmax=max(float(up.max()), 1e-12))
    ax.set_title(title, fontsize=7)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)


def _figures(folder: Path, x: torch.Tensor, labels: np.ndarray, maps: torch.Tensor,
             responses: np.ndarray, sel: Selection, chosen: list[int],
             info: dict[str, Any], top: int) -> None:
    from .report.style import pyplot, save

    plt = pyplot()
    rect = maps.clamp_min(0)
    classes = len(sel.channels)
    cols = max(1, max(len(c) for c in sel.channels))
    fig, axes = plt.subplots(classes, cols, figsize=(1.5 * cols + 0.6, 1.5 * classes + 0.4),
                             squeeze=False, layout="constrained")
    for c in range(classes):
        members = np.flatnonzero(labels == c)
        for col in range(cols):
            ax = axes[c][col]
            if col >= len(sel.channels[c]) or not len(members):
                ax.axis("off")
                continue
            j = sel.channels[c][col]
            best = members[np.argsort(-responses[members, j], kind="stable")[:top]]
            _overlay(ax, x[best].float().mean(0), rect[best, j].mean(0),
                     f"ch {j} (w {sel.weights[c][col]:.2f})")
        axes[c][0].set_ylabel(f"class {c}", fontsize=8)
    fig.suptitle(f"Relevant channels of layer {info['layer']} per class (averaged over the top "
                 f"{top} test images of each)", fontsize=9)
    save(fig, folder / "classes.png")
    if not chosen:
        return
    rows = info["explanations"]
    width = 1 + max(1, max(len(r["supporting"]) for r in rows))
    fig, axes = plt.subplots(len(rows), width, figsize=(1.6 * width, 1.6 * len(rows) + 0.4),
                             squeeze=False, layout="constrained")
    for r, (row, i) in enumerate(zip(rows, chosen)):
        ax = axes[r][0]
        ax.imshow(_picture(x[i].float()), cmap="gray")
        ax.set_title(f"#{i}: label {row['label']}, predicted {row['predicted']}", fontsize=7)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.grid(False)
        for col in range(1, width):
            if col > len(row["supporting"]):
                axes[r][col].axis("off")
                continue
            s = row["supporting"][col - 1]
            _overlay(axes[r][col], x[i].float(), rect[i, s["channel"]],
                     f"ch {s['channel']} (+{s['contribution']:.2f})")
    fig.suptitle("Channels that supported each prediction", fontsize=9)
    save(fig, folder / "explanations.png")


def summary_line(info: dict[str, Any]) -> str:
    """One line for the command line: the layer, channels per class, the fidelity."""
    sizes = [len(c["channels"]) for c in info["classes"]]
    return (f"{info['layer']}: {sum(sizes) / max(len(sizes), 1):.1f} of {info['channels']} "
            f"channels per class; the selected channels alone classify "
            f"{info['selection_accuracy']:.1%} of the test split (network "
            f"{info['test_accuracy']:.1%}, agreement {info['selection_agreement']:.1%})")


