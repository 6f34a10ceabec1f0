"""``kind: rbm_connectivity``: binary RBMs fully connected, random sparse and with learned
connectivity (network connectivity gradients, de Oliveira & Figueiredo, arXiv:2209.06932; see
:mod:`neuroprune.rbm.machine`) at one connection budget, trained together by contrastive
divergence on binarised images.

Per epoch and variant, ``results.csv`` records the reconstruction error and the AIS
log-likelihood estimate (Salakhutdinov & Murray 2008) on the held-out test split, the same two
on the validation split (``val_*``), and the log-likelihood of the training split, all under
one AIS estimate of ``log Z``; ``rbm_connectivity.png`` draws the test figures against epochs;
the summary's ``val_log_likelihood`` and ``val_reconstruction_error`` are one variant's, at
the last epoch (``rbm.objective_variant``), and what ``neuroprune tune`` optimises: settings
are never chosen by the test split; ``learned_mask.safetensors`` holds the learned
pattern as a neuroprune mask of an ``nn.Linear(visible, hidden)`` (its ``weight`` is
``[hidden, visible]``), beside the trained weights and biases.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from .. import __version__
from .._io import atomic_write
from ..config import to_dict
from ..errors import UserError
from ..rbm import RBMStack, ais_log_partition, connection_budget, log_likelihood
from ..rundir import FILES, RunDir
from ..tracking import open_tracking
from ..rbm.config import RBMConfig
from ..workbench import Workbench
from .kinds import Kind

FIGURE = "rbm_connectivity.png"
MASK_FILE = FILES.learned_mask
#: each variant's last-epoch figures in the summary
FINAL = ("test_log_likelihood", "train_log_likelihood", "reconstruction_error",
         "val_log_likelihood", "val_reconstruction_error", "connections")


def binarised(bench: Workbench) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(train, val, test)`` as ``[N, visible]`` 0/1 float tensors, per ``rbm.binarise``."""
    cfg, data = bench.config, bench.data
    flat = lambda t: t.reshape(len(t), -1).float()  # noqa: E731
    splits = {"training": flat(data.train_x), "validation": flat(data.val_x),
              "test": flat(data.test_x)}
    how = cfg.rbm.binarise
    if how == "none":
        for name, x in splits.items():
            if not bool(((x == 0) | (x == 1)).all()):
                raise UserError(f"the {name} split of {data.name} is not binary (values other "
                                f"than 0 and 1); set rbm.binarise=threshold or sample")
        return tuple(splits.values())
    if cfg.data.standardise:
        raise UserError("kind rbm_connectivity binarises pixels by their range: set "
                        "data.standardise=false")
    train = splits["training"]
    lo, hi = train.min(), train.max()
    if not hi > lo:
        raise UserError(f"the training split of {data.name} is constant; nothing to binarise")
    scaled = [((x - lo) / (hi - lo)).clamp(0, 1) for x in splits.values()]
    if how == "threshold":
        return tuple((x > cfg.rbm.threshold).float() for x in scaled)
    # train and test are drawn first, as before the validation split was used, so that a
    # seed gives the training and test data it always gave
    g = torch.Generator().manual_seed(cfg.seed)
    train, test = (torch.bernoulli(x, generator=g) for x in (scaled[0], scaled[2]))
    return train, torch.bernoulli(scaled[1], generator=g), test


def check(bench: Workbench) -> None:
    """Bad input ends here, before anything is written."""
    r = bench.config.rbm
    visible = int(torch.tensor(bench.data.input_shape).prod())
    connection_budget(visible, r.hidden, r.full_hidden)
    binarised(bench)


def run_rbm_connectivity(bench: Workbench, out: str | Path, progress: bool = True,
                         log=print, on_generation=None) -> dict[str, Any]:
    t0 = time.time()
    cfg, r = bench.config, bench.config.rbm
    device = bench.device
    train, val, test = (x.to(device) for x in binarised(bench))
    n, visible = train.shape
    rate = train.mean(0)
    gen = torch.Generator(device=device).manual_seed(cfg.seed)
    stack = RBMStack.create(r.variants, visible, r.hidden, r.full_hidden, rate.cpu(),
                            torch.Generator().manual_seed(cfg.seed), init_std=r.init_std)
    for f in ("W", "b", "c", "mask", "strength", "learned"):
        setattr(stack, f, getattr(stack, f).to(device))
    rd = RunDir(out, open_tracking(cfg.logging, out, cfg.name)).create()
    rd.write_config(to_dict(cfg))
    rd.write_data_record(bench.data.record())
    P = len(r.variants)
    train_eval = train[:len(test)]  # the training LL on as many examples as the test LL
    rows_all: list[dict[str, Any]] = []

    def evaluate(epoch: int, changed: torch.Tensor) -> list[dict[str, Any]]:
        recon = stack.reconstruction_error(test.expand(P, -1, -1))
        val_recon = stack.reconstruction_error(val.expand(P, -1, -1))
        lls: dict[str, torch.Tensor | None] = dict.fromkeys(("test", "val", "train"))
        log_z = None
        if epoch % r.eval_every == 0 or epoch == r.epochs:
            # one log Z (the costly part) serves every split: it depends on the RBM alone
            log_z = ais_log_partition(stack, rate, runs=r.ais_runs, steps=r.ais_betas,
                                      generator=gen)
            lls = {k: log_likelihood(stack, x, log_z)
                   for k, x in (("test", test), ("val", val), ("train", train_eval))}
        rows = []
        for i, v in enumerate(r.variants):
            ll = {f"{k}_log_likelihood": None if x is None else float(x[i])
                  for k, x in lls.items()}
            rows.append({"generation": epoch, "index": i, "epoch": epoch, "variant": v,
                         "connections": int(stack.mask[i].sum()),
                         "reconstruction_error": float(recon[i]),
                         "val_reconstruction_error": float(val_recon[i]), **ll,
                         "log_z": None if log_z is None else float(log_z[i]),
                         "pattern_changed": float(changed[i]),
                         "seconds": round(time.time() - t0, 3)})
        rd.commit_generation(epoch, rows)
        rows_all.extend(rows)
        if progress:
            log(f"epoch {epoch}: " + "; ".join(
                f"{row['variant']} recon {row['reconstruction_error']:.4f}"
                + ("" if log_z is None else f" LL {row['test_log_likelihood']:.2f}")
                for row in rows))
        if on_generation is not None:
            on_generation(epoch, rows)
        return rows

    evaluate(0, torch.zeros(P))
    updates = 0
    for epoch in range(1, r.epochs + 1):
        start = stack.mask.clone()
        order = torch.randperm(n, generator=gen, device=device)
        for i in range(0, n, r.batch_size):
            v = train[order[i:i + r.batch_size]].expand(P, -1, -1)
            updates += 1
            stack.step(v, lr=r.lr, strength_lr=r.strength_lr, k=r.cd_steps, generator=gen,
                       persistent=r.persistent, connection_gradient=r.connection_gradient,
                       inactive_weights=r.inactive_weights, weight_decay=r.weight_decay,
                       repattern=updates % r.pattern_every == 0)
        changed = (stack.mask != start).float().sum((1, 2)) / (2 * stack.budget)
        last = evaluate(epoch, changed.cpu())

    plot(rows_all, rd.path / FIGURE, title=f"{cfg.data.dataset}: {stack.budget:,} connections")
    if "learned" in r.variants:
        save_learned_mask(stack, r.variants.index("learned"), rd.path / MASK_FILE, cfg.seed)
    final = {row["variant"]: {k: row[k] for k in FINAL} for row in last}
    scored = final[r.scored_variant]
    summary = {"status": "complete", "kind": "rbm_connectivity", "dataset": cfg.data.dataset,
               "data": bench.data.record(), "visible": visible, "hidden": r.hidden,
               "full_hidden": r.full_hidden, "connections": stack.budget,
               "density": stack.budget / (visible * r.hidden), "epochs": r.epochs,
               "variants": final, "objective_variant": r.scored_variant,
               **{k: scored[k] for k in ("val_log_likelihood", "val_reconstruction_error")},
               "best_by_log_likelihood": max(final, key=lambda v: final[v]["test_log_likelihood"]),
               "best_by_reconstruction": min(final,
                                             key=lambda v: final[v]["reconstruction_error"]),
               "seed": cfg.seed, "wall_seconds": round(time.time() - t0, 3), "device": device,
               "neuroprune_version": __version__}
    rd.write_summary(summary)
    return summary


def save_learned_mask(stack: RBMStack, i: int, path: Path, seed: int) -> None:
    """The learned pattern and trained parameters of member ``i`` as a mask file."""
    from ..masks import save_mask
    mask = stack.mask[i].T.contiguous()
    V, H = stack.W.shape[1:]
    save_mask(path, {"weight": mask},
              {"method": "network_connectivity_gradients", "kind": "rbm_connectivity",
               "architecture": {"name": "rbm", "visible": V, "hidden": H},
               "sparsity": 1 - stack.budget / (V * H), "seed": seed},
              weights={"weight": stack.weights[i].T, "bias": stack.c[i],
                       "visible_bias": stack.b[i]})


def plot(rows: list[dict[str, Any]], path: Path, title: str = "") -> None:
    """Test log-likelihood and reconstruction error against epochs, one line per variant
    (nothing without matplotlib)."""
    try:
        import matplotlib
    except ImportError:
        return
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.4))
    for v in dict.fromkeys(row["variant"] for row in rows):
        mine = [row for row in rows if row["variant"] == v]
        ll = [row for row in mine if row["test_log_likelihood"] is not None]
        a.plot([row["epoch"] for row in ll], [row["test_log_likelihood"] for row in ll],
               marker="o", ms=3, label=v)
        b.plot([row["epoch"] for row in mine], [row["reconstruction_error"] for row in mine],
               marker="o", ms=3, label=v)
    a.set_ylabel("test log-likelihood (AIS, nats)")
    b.set_ylabel("test reconstruction error (MSE)")
    for ax in (a, b):
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    a.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=120, bbox_inches="tight", format="png"))
    plt.close(fig)


class RBMConnectivityKind(Kind):
    name = "rbm_connectivity"
    section = "rbm"
    Config = RBMConfig
    columns = ("epoch", "variant", "reconstruction_error", "test_log_likelihood")
    reporter = "neuroprune.report.rbm:report"
    resumable = False
    network_files = ("learned_mask.safetensors: the RBM with learned connectivity, an energy "
                     "model rather than a classifier (weight [hidden, visible] with "
                     "weight_mask its learned connections, bias of the hidden units, "
                     "visible_bias); read it with neuroprune.masks.read_mask_file(path) -> "
                     "(mask, weights, metadata)")
    # rbm.objective_variant's last-epoch figures on the validation split, never the test's
    objectives = ("val_log_likelihood", "val_reconstruction_error", "wall_seconds")

    def __init__(self, bench: Workbench):
        super().__init__(bench)
        from .rbm_connectivity import check
        check(bench)

    def run(self, out, *, progress=True, resume=False, log=print, on_generation=None):
        from .rbm_connectivity import run_rbm_connectivity
        return run_rbm_connectivity(self.bench, out, progress, log, on_generation)

    def lines(self, summary, out):
        return [f"{v:<8} test log-likelihood {s['test_log_likelihood']:.2f} nats, "
                f"reconstruction error {s['reconstruction_error']:.4f} "
                f"({s['connections']:,} connections)" for v, s in summary["variants"].items()
                ] + [f"run directory: {out}"]
