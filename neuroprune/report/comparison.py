"""Report of comparison runs: accuracy against weights remaining (or against FLOPs, at FLOPs
or parameter budgets) and against training compute per method; the table of test accuracy
(mean ± std over seeds) per method and sparsity with Welch's t-test against each baseline
(:mod:`.stats`), and the efficiency table (:mod:`.comparison_efficiency`). :func:`tables` is
a finished comparison's ``comparison.md``."""

from __future__ import annotations

import math
import statistics
from typing import Any

import pandas as pd

from .comparison_efficiency import efficiency_table, flops_figure
from .document import Document
from .inputs import Run
from .stats import welch
from .sweep import accuracy_figure

#: what the other methods are tested against, where they ran: the sanity baseline, the paper's
#: method, and the structured baseline every structured-pruning paper compares with
BASELINES = ("random", "dissipating_gradients", "l1_filter")


#: what a comparison's targets remove, by ``sparsity.budget``: table headings and titles
TARGET_WORDS = {"sparsity": "sparse", "params": "fewer parameters", "flops": "fewer FLOPs"}

#: the compute figure sets methods that spent alike apart, each within this fraction of its
#: compute (so that no point hides another, and none reaches the axis edge)
SPREAD = 0.02


def target_words(cfg: Any) -> str:
    """How a comparison's targets read: ``sparse`` (weights), ``fewer FLOPs`` or ``fewer
    parameters`` (structured budgets); ``cfg`` a run config or its dict."""
    sparsity = cfg.get("sparsity") or {} if isinstance(cfg, dict) else cfg.sparsity
    budget = sparsity.get("budget", "sparsity") if isinstance(sparsity, dict) else sparsity.budget
    return TARGET_WORDS.get(budget, "sparse")


def baseline_labels(methods: list[Any]) -> list[str]:
    """The labels of the entries of ``comparison.methods`` (names or ``{name, label, ...}``)
    that the others are tested against: those of :data:`BASELINES`, random first."""
    found = []
    for entry in methods:
        name = entry if isinstance(entry, str) else entry.get("name")
        label = entry if isinstance(entry, str) else entry.get("label", name)
        if name in BASELINES:
            found.append((BASELINES.index(name), str(label)))
    return [label for _, label in sorted(found, key=lambda t: t[0])]


def _mean_std(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}"


def _test_cell(rows, method: str, baseline: str, sparsity: float) -> str:
    mine = [r["test_accuracy"] for r in rows if r["method"] == method and r["sparsity"] == sparsity]
    base = [r["test_accuracy"] for r in rows if r["method"] == baseline and
            r["sparsity"] == sparsity]
    p = welch(mine, base)
    if p is None:
        return "-"
    diff = statistics.mean(mine) - statistics.mean(base)
    star = "*" if p < 0.05 else ""
    return f"{diff:+.4f} (p={p:.3f}){star}"


def comparison_table(rows: list[dict[str, Any]], budget: int | None = None,
                     baselines: list[str] | tuple[str, ...] = BASELINES,
                     target: str = "sparse") -> str:
    """Markdown: test accuracy mean ± std (over seeds) per method and sparsity, the compute
    each spent, and each method against each of ``baselines`` (labels) that ran."""
    methods = list(dict.fromkeys(r["method"] for r in rows))
    sparsities = sorted({r["sparsity"] for r in rows})
    n_seeds = len({r["seed"] for r in rows})
    head = "| method | " + " | ".join(f"{s:.1%} {target}" for s in sparsities) + \
        " | network-epochs | mean wall s |\n"
    head += "| --- |" + " --- |" * (len(sparsities) + 2) + "\n"
    lines = []
    for m in methods:
        cells = [r for r in rows if r["method"] == m]
        accs = [_mean_std([r["test_accuracy"] for r in cells if r["sparsity"] == s])
                if any(r["sparsity"] == s for r in cells) else "-" for s in sparsities]
        epochs = [r["network_epochs"] for r in cells if r.get("network_epochs") is not None]
        spent = f"{statistics.mean(epochs):.0f}" if epochs else "-"
        wall = statistics.mean(r["wall_seconds"] for r in cells)
        lines.append(f"| {m} | " + " | ".join(accs) + f" | {spent} | {wall:.1f} |")
    rule = (f"every cell trains for {budget} network-epochs in all (search and final "
            f"training)" if budget else "the final network of every method gets the same "
            "epochs; the searches spend what the network-epochs column says")
    if any(r.get("reused_network_epochs") for r in rows):
        rule += ("; a cell that read a training an earlier cell had done (the same dense "
                 "training at another sparsity) counts it in its network-epochs but took "
                 "less wall time")
    text = (f"Test accuracy, mean ± std over {n_seeds} seed(s); {rule}. Network-epochs: one "
            f"network trained for one epoch is one.\n\n" + head + "\n".join(lines) + "\n")
    for base in baselines:
        others = [m for m in methods if m != base]
        if base not in methods or n_seeds < 2 or not others:
            continue
        text += (f"\nAgainst `{base}`: difference of mean test accuracy, Welch's t-test "
                 f"p-value (* below 0.05), {n_seeds} seeds each.\n\n"
                 "| method | " + " | ".join(f"{s:.1%}" for s in sparsities) + " |\n"
                 "| --- |" + " --- |" * len(sparsities) + "\n")
        text += "\n".join(f"| {m} | " + " | ".join(_test_cell(rows, m, base, s)
                                                 for s in sparsities) + " |" for m in others)
        text += "\n"
    return text


def compute_figure(rows: list[dict[str, Any]], target: str = "sparse"):
    """Test accuracy against training compute, one panel per sparsity, one colour per
    method (mean and standard deviation over seeds); None when no row records compute."""
    import matplotlib.pyplot as plt

    methods = list(dict.fromkeys(r["method"] for r in rows))
    sparsities = sorted({r["sparsity"] for r in rows})
    if not any(r.get("network_epochs") for r in rows):
        return None
    n_seeds = len({r["seed"] for r in rows})
    spent = [r["network_epochs"] for r in rows if r.get("network_epochs")]
    log = max(spent) > 10 * min(spent)  # a linear axis when the methods spent alike
    cols = min(3, len(sparsities))
    fig, axes = plt.subplots(math.ceil(len(sparsities) / cols), cols,
                             figsize=(4.2 * cols, 3.4 * math.ceil(len(sparsities) / cols)),
                             squeeze=False)
    for ax, s in zip(axes.flat, sparsities):
        _compute_panel(ax, [r for r in rows if r["sparsity"] == s], methods, log, max(spent))
        ax.set_title(f"{s:.1%} sparse ({1 - s:.1%} of weights kept)" if target == "sparse"
                     else f"{s:.0%} {target}", fontsize=9)
    for ax in list(axes.flat)[len(sparsities):]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(4, len(methods)), fontsize=8,
               bbox_to_anchor=(0.5, -0.02 - 0.035 * math.ceil(len(methods) / 4)))
    fig.suptitle(f"Test accuracy against training compute (mean ± std over {n_seeds} seeds)",
                 fontsize=10)
    fig.tight_layout()
    return fig


def _compute_panel(ax, rows: list[dict[str, Any]], methods: list[str], log: bool,
                   most: float) -> None:
    """One sparsity's panel of :func:`compute_figure`: a point per method."""
    import matplotlib
    import matplotlib.pyplot as plt

    colours = plt.get_cmap("tab10").colors
    # methods that spent the same are set apart (1% a place, within ±2% in all however many
    # methods), so no point hides another; the linear axis starts at 0 below, so that reads
    # as nothing, not as a difference
    step = min(0.01, 2 * SPREAD / max(1, len(methods) - 1))
    xs = []
    for i, m in enumerate(methods):
        cell = [r for r in rows if r["method"] == m and r.get("network_epochs")]
        if not cell:
            continue
        acc = [r["test_accuracy"] for r in cell]
        x = statistics.mean(r["network_epochs"] for r in cell)
        xs.append(x * (1 + step * (i - (len(methods) - 1) / 2)))
        ax.errorbar(xs[-1], statistics.mean(acc), yerr=statistics.stdev(acc) if len(acc) > 1
                    else 0, fmt="o", color=colours[i % len(colours)], capsize=3, label=m)
    if log:
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    else:
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True, nbins=5))
        ax.set_xlim(0, 1.08 * max([most, *xs]))  # every point inside, whatever its offset
    ax.set_xlabel("training compute (network-epochs" + (", log)" if log else ")"))
    ax.set_ylabel("test accuracy")
    ax.grid(alpha=0.3)


def planned_cells(run: Run) -> int | None:
    comp = run.config.get("comparison") or {}
    try:
        return len(comp["methods"]) * len(comp["sparsities"]) * len(comp["seeds"])
    except (KeyError, TypeError):
        return None


def _cells(runs: list[Run]) -> pd.DataFrame:
    return pd.concat([r.results for r in runs], ignore_index=True)


def records(cells: pd.DataFrame) -> list[dict[str, Any]]:
    """The rows of a results table, a blank cell as None (as the sweep wrote it)."""
    return cells.astype(object).where(cells.notna(), None).to_dict("records")


def _rules(runs: list[Run]) -> tuple[int | None, list[str], str]:
    """The budget, the baselines and the target words of ``runs``' tables."""
    budgets = {(r.config.get("comparison") or {}).get("budget") for r in runs}
    budget = budgets.pop() if len(budgets) == 1 else None  # one rule for the whole table
    bases = list(dict.fromkeys(b for r in runs for b in baseline_labels(
        (r.config.get("comparison") or {}).get("methods") or [])))
    targets = {target_words(r.config) for r in runs}
    return budget, bases, targets.pop() if len(targets) == 1 else "removed"  # other budgets


def tables(runs: list[Run]) -> str:
    """``comparison.md``: :func:`comparison_table` of ``runs``, and the efficiency table
    where the cells measured their networks."""
    rows = records(_cells(runs))
    return comparison_table(rows, *_rules(runs)) + efficiency_table(rows)


def report(runs: list[Run], doc: Document) -> None:
    doc.heading(f"Comparison ({len(runs)} run{'s' if len(runs) > 1 else ''})")
    for run in runs:
        planned = planned_cells(run)
        done = len(run.results)
        state = ("complete" if run.finished else
                 f"**unfinished**: {done} of {planned or '?'} cells done, reported as far as "
                 f"it got")
        doc.para(f"`{run.name}`: {done} cells, {state}.")
    budget, bases, target = _rules(runs)
    cells = _cells(runs)
    rows = records(cells)
    if target == "sparse":  # a FLOPs or parameter budget is drawn against FLOPs below
        accuracy_figure(doc, cells)
    fig = compute_figure([r for r in rows if r.get("network_epochs") is not None], target)
    if fig is not None:
        doc.figure("accuracy_vs_compute", fig,
                   "Test accuracy of each method's final network against the training it "
                   "spent in all (network-epochs: one network trained for one epoch is "
                   "one), one panel per sparsity, mean ± std over seeds. Points that "
                   f"spent alike are spread apart for visibility (by at most ±{SPREAD:.0%} "
                   "of their compute).")
    doc.para(comparison_table(rows, budget, bases, target).rstrip("\n"))
    measured = [r for r in rows if r.get("flops") is not None]
    if measured:
        doc.para(efficiency_table(measured).strip("\n"))
        doc.figure("accuracy_vs_flops", flops_figure(measured),
                   "Test accuracy against the FLOPs per sample of the deployed network (the "
                   "compact one, pruned units removed, where it was compacted: see the "
                   "table), one point per target, mean ± std over seeds.")
