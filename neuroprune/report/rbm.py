"""Report of RBM connectivity runs: the test log-likelihood (AIS estimate) and the test
reconstruction error per epoch for each connectivity (full, random sparse, learned), and the
validation log-likelihood a study tunes on (runs made before it was recorded leave it blank)."""

from __future__ import annotations

from .document import Document
from .inputs import Run
from .style import integer_ticks, pyplot, styles


def _label(variant: str, run: Run, runs: list[Run]) -> str:
    return f"{variant} ({run.name})" if len(runs) > 1 else variant


def report(runs: list[Run], doc: Document) -> None:
    doc.heading(f"RBM connectivity ({len(runs)} run{'s' if len(runs) > 1 else ''})")
    rows = []
    for r in runs:
        last = r.results.sort_values("epoch").groupby("variant", sort=False).tail(1)
        ll = r.results.dropna(subset=["test_log_likelihood"]).sort_values("epoch")
        ll = ll.groupby("variant", sort=False).tail(1).set_index("variant")
        def final(column: str, v: str) -> float | None:
            return float(ll[column][v]) if v in ll.index and column in ll else None
        for _, row in last.iterrows():
            v = row.variant
            rows.append([f"`{r.name}`", r.status, v, int(row.connections) if "connections" in row
                         else None, int(row.epoch), final("test_log_likelihood", v),
                         final("val_log_likelihood", v), final("train_log_likelihood", v),
                         float(row.reconstruction_error)])
    doc.table(["folder", "status", "connectivity", "connections", "epochs",
               "test log-likelihood (nats)", "validation log-likelihood (nats)",
               "train log-likelihood (nats)", "test reconstruction error"], rows)
    pairs = [(r, v) for r in runs for v in dict.fromkeys(r.results.variant)]
    look = styles(_label(v, r, runs) for r, v in pairs)
    plt = pyplot()
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.8))
    for r, v in pairs:
        name = _label(v, r, runs)
        mine = r.results[r.results.variant == v].sort_values("epoch")
        ll = mine.dropna(subset=["test_log_likelihood"])
        kw = dict(color=look[name]["color"], marker=look[name]["marker"], markersize=4)
        a.plot(ll.epoch, ll.test_log_likelihood, label=name, **kw)
        b.plot(mine.epoch, mine.reconstruction_error, **kw)
    a.set(xlabel="epoch", ylabel="test log-likelihood (AIS, nats)", title="Log-likelihood")
    b.set(xlabel="epoch", ylabel="test reconstruction error (MSE)", title="Reconstruction")
    for ax in (a, b):
        integer_ticks(ax)
    fig.legend(loc="lower center", ncol=min(len(pairs), 4), bbox_to_anchor=(0.5, -0.02),
               frameon=False)
    fig.tight_layout(rect=(0, 0.08 + 0.04 * ((len(pairs) - 1) // 4), 1, 1))
    budget = ", ".join(f"{(r.summary or {}).get('connections', '?'):,}" if isinstance(
        (r.summary or {}).get("connections"), int) else "?" for r in runs)
    doc.figure("rbm_connectivity", fig, "Per epoch: the average test log-likelihood estimated "
               "by annealed importance sampling (every eval_every epochs; higher is better) and "
               "the one-step reconstruction error on the test set (lower is better); every "
               f"connectivity keeps the same number of connections ({budget}).")
