"""Report of differentially private trainings: accuracy against the privacy spent (epsilon),
one point per run, DP-SGD and LSG apart; non-private runs as a reference line."""

from __future__ import annotations

import pandas as pd

from .document import Document
from .inputs import Run
from .style import REFERENCE, pyplot, styles

METHODS = {"dpsgd": "DP-SGD", "lsg": "LSG"}


def table(runs: list[Run]) -> pd.DataFrame:
    rows = []
    for r in runs:
        s = r.summary or {}
        method = s.get("privacy_method") if s.get("private") else None
        rows.append({"folder": r.name, "method": METHODS.get(method, method) if method
                     else "non-private", "epsilon": s.get("epsilon") if method else None,
                     "target_epsilon": s.get("target_epsilon"), "delta": s.get("delta"),
                     "sparsity": s.get("sparsity"), "seed": s.get("seed"),
                     "val_accuracy": s.get("val_accuracy"),
                     "test_accuracy": s.get("test_accuracy"),
                     "dataset": s.get("dataset")})
    return pd.DataFrame(rows)


def report(runs: list[Run], doc: Document) -> None:
    df = table(runs)
    doc.heading(f"Private training ({len(runs)} run{'s' if len(runs) > 1 else ''})")
    doc.table(["folder", "method", "epsilon spent", "target epsilon", "delta", "sparsity",
               "seed", "val accuracy", "test accuracy"],
              [[f"`{r.folder}`", r.method, r.epsilon, r.target_epsilon, r.delta, r.sparsity,
                r.seed, r.val_accuracy, r.test_accuracy] for r in df.itertuples()])
    private = df[df.method != "non-private"]
    look = styles(list(dict.fromkeys(private.method)))
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for method, g in private.groupby("method", sort=False):
        # runs at one target epsilon (several seeds): mean ± std
        agg = g.groupby("target_epsilon").agg(eps=("epsilon", "mean"),
                                              acc=("test_accuracy", "mean"),
                                              std=("test_accuracy", "std"),
                                              n=("test_accuracy", "size")).sort_values("eps")
        seeds = int(agg.n.max())
        ax.errorbar(agg.eps, agg.acc, yerr=agg["std"].fillna(0) if seeds > 1 else None,
                    color=look[method]["color"], marker=look[method]["marker"], capsize=3,
                    label=method + (f" (mean ± std of up to {seeds} seeds)" if seeds > 1
                                    else ""))
    plain = df[df.method == "non-private"]
    if not plain.empty:
        ax.axhline(plain.test_accuracy.mean(), color=REFERENCE, linestyle="--", linewidth=1,
                   label="non-private")
    if not private.empty and private.epsilon.max() / max(private.epsilon.min(), 1e-9) > 20:
        ax.set_xscale("log")
    ax.margins(x=0.1, y=0.15)
    ax.set(xlabel="privacy spent ε (δ as in the table)", ylabel="test accuracy",
           title=f"Accuracy against privacy ({', '.join(dict.fromkeys(df.dataset.dropna()))})")
    ax.legend(loc="lower right")
    doc.figure("accuracy_vs_epsilon", fig, "Test accuracy of each private training against "
               "the ε its accountant spent (lower ε: stronger privacy); one point per target ε, "
               "several seeds averaged; dashed: the same network trained without privacy.")
