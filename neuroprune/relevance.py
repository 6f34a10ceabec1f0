"""Class-relevant internal features by sparse selection.

Oramas, Wang and Tuytelaars, "Visual Explanation by Interpretation: Improving Visual Feedback
Capabilities of Deep Neural Networks", ICLR 2019 (arXiv 1712.06302). The responses of a
trained network's internal features (here: the channels of one layer, each pooled over its
feature map) on the training images are regressed on the one-hot class labels with an l1
penalty, ``min_W ||L - X W||^2 + mu ||W||_1``; the features with non-zero weight in class
``c``'s column are the few relevant to ``c``, found from the class labels alone (no part or
concept annotations). A prediction of class ``c`` is explained by the relevant features of
``c`` that respond most to the image, weighted by their selection weight.

Our reading, where the paper leaves details open (each an option of :func:`select_relevant`):
the responses are standardised per channel before the regression (channels of different
scale compete fairly); each class is solved one-vs-rest (the columns of ``W`` are independent
under the l1 penalty); only positive weights count as relevant (``positive``: a feature whose
presence supports the class; a negative weight speaks against it); at most ``k`` features
per class are kept (the largest weights); a class that ``mu`` leaves empty takes the first
features to enter its lasso path. The paper selects over all layers at once; here over one
chosen layer (``neuroprune explain --layer``), or per layer for pruning
(:mod:`neuroprune.methods.class_relevance`).
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch
from torch import nn

from .errors import UserError


@dataclass
class Selection:
    """Per class, the relevant channels (most relevant first) and their weights; ``mu`` is
    the penalty each class was solved with (smaller than asked where the asked one left the
    class empty). ``mean``/``std`` standardise responses as in the fit, ``intercept`` per
    class."""

    channels: list[list[int]]
    weights: list[list[float]]
    mu: list[float]
    coef: np.ndarray  # [classes, channels], zeros outside the kept channels
    intercept: np.ndarray  # [classes]
    mean: np.ndarray
    std: np.ndarray

    def standardise(self, responses: np.ndarray) -> np.ndarray:
        return (responses - self.mean) / self.std

    def contributions(self, responses: np.ndarray, cls: int) -> np.ndarray:
        """``[N, channels]``: each channel's part of class ``cls``'s linear score."""
        return self.standardise(responses) * self.coef[cls]

    def scores(self, responses: np.ndarray) -> np.ndarray:
        """``[N, classes]`` scores of the sparse linear model on the kept channels only."""
        return self.standardise(responses) @ self.coef.T + self.intercept


def select_relevant(responses: np.ndarray, labels: np.ndarray, num_classes: int, *,
                    k: int = 5, mu: float = 0.02, positive: bool = True) -> Selection:
    """The sparse selection of the module docstring on ``responses`` ``[N, channels]`` with
    integer ``labels`` ``[N]``."""
    from sklearn.linear_model import Lasso, lasso_path

    x = np.asarray(responses, dtype=np.float64)
    mean, std = x.mean(0), x.std(0)
    std = np.where(std > 1e-12, std, np.inf)  # a constant (pruned) channel selects nothing
    z = (x - mean) / std
    coef = np.zeros((num_classes, x.shape[1]))
    intercept = np.zeros(num_classes)
    channels, weights, used = [], [], []
    for c in range(num_classes):
        y = (np.asarray(labels) == c).astype(np.float64)
        with _quiet():
            fit = Lasso(alpha=mu, positive=positive, max_iter=2000).fit(z, y)
        w, m = fit.coef_.copy(), mu
        if not (np.abs(w) > 0).any() and y.std() > 0:
            # the first channels to enter the path: z is centred, so no intercept is needed
            with _quiet():
                alphas, path, _ = lasso_path(z, y - y.mean(), positive=positive,
                                             alphas=_grid(z, y - y.mean(), positive, 50))
            first = next((i for i in range(len(alphas)) if (path[:, i] != 0).any()), None)
            if first is not None:
                w, m = path[:, first].copy(), float(alphas[first])
        order = [int(i) for i in np.argsort(-np.abs(w), kind="stable")[:k] if w[i] != 0]
        kept = np.zeros_like(w)
        kept[order] = w[order]
        coef[c] = kept
        intercept[c] = y.mean()
        channels.append(order)
        weights.append([float(w[i]) for i in order])
        used.append(float(m))
    return Selection(channels, weights, used, coef, intercept, mean,
                     np.where(np.isfinite(std), std, 1.0))


def entry_scores(responses: np.ndarray, labels: np.ndarray, num_classes: int, *,
                 positive: bool = True, n_alphas: int = 30) -> np.ndarray:
    """``[channels]`` relevance of every channel to some class: the largest penalty (over
    classes, as a fraction of that class's first penalty) at which it enters the class's lasso
    path, so the channels a sparse selection picks first score highest; a channel that never
    enters scores its largest absolute correlation with a class, times 1e-3 (an order among
    the rest)."""
    from sklearn.linear_model import lasso_path

    x = np.asarray(responses, dtype=np.float64)
    std = x.std(0)
    z = (x - x.mean(0)) / np.where(std > 1e-12, std, np.inf)
    score = np.zeros(x.shape[1])
    corr = np.zeros(x.shape[1])
    for c in range(num_classes):
        y = (np.asarray(labels) == c).astype(np.float64)
        if y.std() == 0:
            continue
        y = y - y.mean()
        corr = np.maximum(corr, np.abs(z.T @ y) / len(y) / y.std())
        with _quiet():
            alphas, path, _ = lasso_path(z, y, positive=positive,
                                         alphas=_grid(z, y, positive, n_alphas))
        entered = path != 0  # [channels, alphas], alphas decreasing
        first = np.where(entered.any(1), entered.argmax(1), -1)
        alpha = np.where(first >= 0, alphas[np.clip(first, 0, None)] / alphas[0], 0.0)
        score = np.maximum(score, alpha)
    return score + 1e-3 * corr


@contextmanager
def _quiet() -> Iterator[None]:
    """Without the solver's convergence warnings: the support settles long before the weights
    meet its tolerance, and only the support and the order of the weights are used."""
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


def _grid(z: np.ndarray, y: np.ndarray, positive: bool, n: int) -> np.ndarray:
    """Decreasing penalties from the first at which a channel enters (``y`` centred) down
    to a thousandth of it."""
    corr = z.T @ y / len(y)
    top = float(corr.max() if positive else np.abs(corr).max())
    return max(top, 1e-12) * np.geomspace(1.0, 1e-3, n)


def pooled(output: torch.Tensor, pooling: str = "mean") -> torch.Tensor:
    """``[N, C]``: a layer's output ``[N, C, ...]`` pooled over everything after the channel
    dimension (``mean`` or ``max``)."""
    if output.dim() <= 2:
        return output
    flat = output.flatten(2)
    if pooling == "mean":
        return flat.mean(2)
    if pooling == "max":
        return flat.amax(2)
    raise UserError(f"unknown pooling '{pooling}'; use mean or max")


def conv_layers(model: nn.Module) -> list[str]:
    """Names of the 2-d convolutions of ``model``, in model order."""
    return [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]


@torch.no_grad()
def layer_outputs(model: nn.Module, x: torch.Tensor, layer: str, batch: int = 512,
                  reduce=None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(outputs of module layer, logits)`` of ``model`` on ``x``, in batches; ``reduce``
    (e.g. :func:`pooled`) applied to each batch's outputs keeps only what it returns."""
    module = dict(model.named_modules())[layer]
    got: list[torch.Tensor] = []
    keep = reduce or (lambda out: out)
    handle = module.register_forward_hook(lambda _m, _i, out: got.append(keep(out.detach())))
    try:
        logits = torch.cat([model(x[i:i + batch]) for i in range(0, len(x), batch)])
    finally:
        handle.remove()
    return torch.cat(got), logits
