"""Report of comparison runs: accuracy against weights remaining per method, and the table
of test accuracy (mean ± std over seeds) per method and sparsity."""

from __future__ import annotations

import pandas as pd

from ..searches.comparison import (baseline_labels, comparison_table, compute_figure,
                                   target_words)
from ..searches.comparison_efficiency import efficiency_table, flops_figure
from .document import Document
from .inputs import Run
from .sweep import accuracy_figure


def planned_cells(run: Run) -> int | None:
    comp = run.config.get("comparison") or {}
    try:
        return len(comp["methods"]) * len(comp["sparsities"]) * len(comp["seeds"])
    except (KeyError, TypeError):
        return None


def report(runs: list[Run], doc: Document) -> None:
    doc.heading(f"Comparison ({len(runs)} run{'s' if len(runs) > 1 else ''})")
    for run in runs:
        planned = planned_cells(run)
        done = len(run.results)
        state = ("complete" if run.finished else
                 f"**unfinished**: {done} of {planned or '?'} cells done, reported as far as "
                 f"it got")
        doc.para(f"`{run.name}`: {done} cells, {state}.")
    cells = pd.concat([r.results for r in runs], ignore_index=True)
    targets = {target_words(r.config) for r in runs}
    target = targets.pop() if len(targets) == 1 else "removed"  # runs of other budgets
    if target == "sparse":  # a FLOPs or parameter budget is drawn against FLOPs below
        accuracy_figure(doc, cells)
    rows = cells.to_dict("records")
    budgets = {(r.config.get("comparison") or {}).get("budget") for r in runs}
    budget = budgets.pop() if len(budgets) == 1 else None  # one rule for the whole table
    if "network_epochs" in cells and cells["network_epochs"].notna().any():
        fig = compute_figure([r for r in rows if pd.notna(r.get("network_epochs"))], target)
        if fig is not None:
            doc.figure("accuracy_vs_compute", fig,
                       "Test accuracy of each method's final network against the training it "
                       "spent in all (network-epochs: one network trained for one epoch is "
                       "one), one panel per sparsity, mean ± std over seeds.")
    bases = list(dict.fromkeys(b for r in runs for b in baseline_labels(
        (r.config.get("comparison") or {}).get("methods") or [])))
    doc.para(comparison_table(rows, budget, bases, target).rstrip("\n"))
    if "flops" in cells and cells["flops"].notna().any():
        measured = [r for r in rows if pd.notna(r.get("flops"))]
        doc.para(efficiency_table(measured).strip("\n"))
        doc.figure("accuracy_vs_flops", flops_figure(measured),
                   "Test accuracy against the FLOPs per sample of the deployed network (the "
                   "compact one, pruned units removed, where it was compacted: see the "
                   "table), one point per target, mean ± std over seeds.")
