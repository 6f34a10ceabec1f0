"""Replicated activation searches: runs of one config (same name, data and model) that
differ only in their seed, compared strategy by strategy on the held-out score, with a
permutation test on the difference of medians against ReLU, and every replicate's evolved
functions drawn as curves.

The held-out score is the test accuracy at the final training's epoch with the best
validation accuracy; the paper's score (best test accuracy over epochs, which selects on the
test split) is shown beside it, never used for a claim.
"""

from __future__ import annotations

from statistics import median

import numpy as np
import torch

from ..activations.expr import FIXED, compile_formula
from .document import Document
from .inputs import Run
from .stats import permutation_test
from .style import REFERENCE, X_RANGE, Y_CLIP, pyplot, styles


def group_key(run: Run) -> tuple[str, str, str]:
    cfg = run.config
    return (cfg.get("name", run.name), cfg.get("data", {}).get("dataset", "?"),
            cfg.get("model", {}).get("name", "?"))


def groups(runs: list[Run]) -> dict[tuple[str, str, str], list[Run]]:
    """Finished runs by (config name, dataset, model), in the order given."""
    out: dict[tuple[str, str, str], list[Run]] = {}
    for run in runs:
        if run.finished:
            out.setdefault(group_key(run), []).append(run)
    return out


def scores(runs: list[Run], key: str = "test_accuracy") -> dict[str, list[float]]:
    """strategy -> one score per replicate (runs lacking the strategy are skipped)."""
    out: dict[str, list[float]] = {}
    for run in runs:
        for s, st in run.summary["strategies"].items():
            v = st.get(key)
            if v is not None and v == v:
                out.setdefault(s, []).append(float(v))
    return out


def palette(runs: list[Run]) -> dict:
    """One colour per strategy, the same in every figure of a group."""
    return styles(["relu", *runs[0].summary["strategies"]])


def table(doc: Document, runs: list[Run], baseline: str = "relu") -> None:
    held, paper = scores(runs), scores(runs, "paper_test_accuracy")
    rows = []
    for s, values in sorted(held.items(), key=lambda kv: kv[0] != baseline):
        base = held.get(baseline)
        diff = p = None
        if base and s != baseline:
            diff = median(values) - median(base)
            p = permutation_test(values, base)
        rows.append([s, len(values), median(values), min(values), max(values),
                     median(paper[s]) if paper.get(s) else None,
                     None if diff is None else f"{diff:+.4f}",
                     None if p is None else f"{p:.3f}"])
    doc.table(["strategy", "replicates", "median held-out test", "min", "max",
               "median paper score", f"median − {baseline}", "permutation p"], rows)


def replicate_figure(doc: Document, runs: list[Run], name: str, title: str) -> None:
    held = scores(runs)
    plt = pyplot()
    order = sorted(held, key=lambda s: median(held[s]))
    look = palette(runs)
    fig, ax = plt.subplots(figsize=(6.5, 0.45 * len(order) + 1.6))
    for i, s in enumerate(order):
        jitter = np.linspace(-0.15, 0.15, len(held[s])) if len(held[s]) > 1 else [0.0]
        ax.plot(held[s], np.full(len(held[s]), i) + jitter, "o", color=look[s]["color"],
                alpha=0.75)
        ax.plot([median(held[s])] * 2, [i - 0.3, i + 0.3], color=look[s]["color"],
                linewidth=2.5)
    ax.set_yticks(range(len(order)), order)
    ax.set(xlabel="held-out test accuracy", title=title)
    doc.figure(name, fig, "Held-out test accuracy (epoch picked on validation) of every "
               "replicate's winner per strategy (dots), and the median (bar).")


def curves_figure(doc: Document, runs: list[Run], name: str, title: str) -> None:
    """Rows: searched strategies; columns: slots; one curve per replicate."""
    strategies = [s for s in runs[0].summary["strategies"] if s not in FIXED]
    if not strategies:
        return
    roles = list(runs[0].summary["strategies"][strategies[0]]["prefix"])
    roles.sort(key=lambda r: ("first", "middle", "last").index(r)
               if r in ("first", "middle", "last") else 3)
    plt = pyplot()
    fig, axes = plt.subplots(len(strategies), len(roles), squeeze=False, sharex=True,
                             sharey=True, figsize=(3.3 * len(roles), 2.4 * len(strategies) + 0.6))
    x = torch.linspace(*X_RANGE, 401)
    look = palette(runs)
    for i, s in enumerate(strategies):
        for j, role in enumerate(roles):
            ax = axes[i][j]
            ax.plot(x, torch.relu(x), color=REFERENCE, linestyle="--", linewidth=1.0)
            for run in runs:
                st = run.summary["strategies"].get(s)
                if st is None:
                    continue
                with torch.no_grad():
                    y = compile_formula(st["prefix"][role])(x).broadcast_to(x.shape)
                ax.plot(x, y.clamp(-Y_CLIP, Y_CLIP), color=look[s]["color"], linewidth=1.2,
                        alpha=0.8)
            ax.axhline(0, color="grey", linewidth=0.5)
            ax.set(xlim=X_RANGE, ylim=(-Y_CLIP, Y_CLIP))
            if i == 0:
                ax.set_title(f"{role} slot")
            if j == 0:
                ax.set_ylabel(s, fontsize=9)
            if i == len(strategies) - 1:
                ax.set_xlabel("x")
    fig.suptitle(title)
    fig.tight_layout()
    doc.figure(name, fig, f"Every replicate's evolved functions (one curve each), per "
               f"strategy (rows) and slot (columns), beside ReLU (dashed); x in "
               f"[{X_RANGE[0]:g}, {X_RANGE[1]:g}], y cut at ±{Y_CLIP:g}.")


def report(runs: list[Run], doc: Document) -> list[Run]:
    """Sections for every group of two or more replicates; returns the runs left over."""
    left = [r for r in runs if not r.finished]
    for k, (key, group) in enumerate(groups(runs).items()):
        if len(group) < 2:
            left += group
            continue
        name, dataset, model = key
        title = f"{name}: {dataset}, {model}"
        doc.heading(f"Replicates of `{name}` on {dataset}, model {model} "
                    f"({len(group)} seeds)")
        doc.para("Held-out score: test accuracy at the final training's epoch with the best "
                 "validation accuracy. The paper's score (best test accuracy over the epochs) "
                 "selects on the test split; it is shown for comparison only. p: two-sided "
                 "permutation test of the difference of medians against ReLU.")
        table(doc, group)
        replicate_figure(doc, group, f"replicates-{k + 1}", title)
        curves_figure(doc, group, f"replicate-functions-{k + 1}", title)
    return left
