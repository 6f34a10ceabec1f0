"""Accuracy against the share of weights remaining, per method: the figure a pruning paper
shows. Shared by comparisons and sets of mask-search runs."""

from __future__ import annotations

import pandas as pd

from .document import Document
from .style import REFERENCE, percent, pyplot, styles, weights_remaining_axis


def seeds_phrase(counts: pd.Series) -> str:
    """'mean ± std over n = 3 seeds', or the range when points have different counts."""
    lo, hi = int(counts.min()), int(counts.max())
    if hi == 1:
        return "one seed per point (no error bars)"
    if lo == hi:
        return f"mean ± std over n = {hi} seeds"
    return f"mean ± std over n = {lo}–{hi} seeds per point"


def accuracy_figure(doc: Document, cells: pd.DataFrame, name: str = "accuracy_vs_sparsity",
                    metric: str = "test_accuracy") -> None:
    """``cells``: one row per (method, sparsity, seed) with ``metric``. Sparsity 0 rows are
    the dense baseline (a dashed line), not a point on the log axis."""
    plt = pyplot()
    dense = cells[cells.sparsity <= 0]
    sparse = cells[cells.sparsity > 0]
    agg = (sparse.groupby(["method", "sparsity"], sort=False)[metric]
           .agg(["mean", "std", "count"]).reset_index())
    methods = list(dict.fromkeys(agg.method))
    look = styles(methods)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for i, method in enumerate(methods):
        g = agg[agg.method == method].sort_values("sparsity")
        dodge = 10 ** (0.012 * (i - (len(methods) - 1) / 2))  # keep error bars apart
        ax.errorbar((1 - g.sparsity) * dodge, g["mean"], yerr=g["std"].fillna(0),
                    label=method, capsize=3, linewidth=1.5, markersize=5, **look[method])
    label = metric.replace("_", " ")
    if len(dense):
        mean, std = dense[metric].mean(), dense[metric].std()
        ax.axhline(mean, color=REFERENCE, linestyle="--", linewidth=1.2,
                   label=f"dense ({mean:.3f})")
        if len(dense) > 1 and std == std:
            ax.axhspan(mean - std, mean + std, color=REFERENCE, alpha=0.08, linewidth=0)
        # every method's cell at sparsity 0 is the same dense network: count seeds, not cells
        seeds = dense.seed.nunique() if "seed" in dense else len(dense)
        baseline = (f"Dashed: the dense network (sparsity 0), mean of {seeds} seed"
                    f"{'s' * (seeds > 1)}{' ± std (grey)' if len(dense) > 1 else ''}.")
    else:
        baseline = ("No dense result among these runs, so no baseline line (add sparsity 0 "
                    "to comparison.sparsities for one).")
    weights_remaining_axis(ax, list(1 - agg.sparsity))
    ax.set_ylabel(label)
    phrase = seeds_phrase(agg["count"]) if len(agg) else "no sparse cells"
    ax.set_title(f"{label.capitalize()} against weights remaining ({phrase.split(' (')[0]})")
    outside = len(methods) > 6
    ax.legend(title="method", loc="center left" if outside else "best",
              bbox_to_anchor=(1.01, 0.5) if outside else None)
    sparsities = ", ".join(percent(s) for s in sorted(agg.sparsity.unique()))
    doc.figure(name, fig, f"{label.capitalize()} of each method's final network against the "
               f"share of weights remaining (log scale; sparsities {sparsities}), "
               f"{phrase}. {baseline}")
