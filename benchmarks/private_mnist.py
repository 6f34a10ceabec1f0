"""Accuracy against epsilon for plain DP-SGD and LSG at equal privacy budget, with the
non-private network as reference (``configs/private_mnist.yaml``, MNIST-10k).

    python benchmarks/private_mnist.py --data-root DIR
    python benchmarks/private_mnist.py --data-root DIR --seeds 5 --lrs 0.5 1 2 --epsilons 1 8

Each method (and the non-private reference) gets its own learning rate from ``--lrs``: the
one with the highest median validation accuracy over the seeds at ``--select-epsilon``. The
test split is only read for the table, at every epsilon with the chosen learning rates:
mean ± sample std over the seeds. Seed s fixes the initial weights, the random mask and the
batch draws' generator for every method alike, so two methods are compared seed by seed:
their paired difference and its paired t-test p-value.
With five seeds the whole run took 19 minutes on one thread (docs/guide/private_training.md).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from scipy.stats import ttest_rel

from neuroprune.config import load_config
from neuroprune.engine.privacy import PrivacyConfig
from neuroprune.engine.private_trainer import train_private
from neuroprune.masks.allocation import bits_to_mask, random_bits
from neuroprune.workbench import Workbench

PLAIN = "not private"


def cell(bench: Workbench, seed: int, lr: float, privacy: PrivacyConfig | None) -> dict:
    model = bench.build_model()
    model.load_state_dict(bench.init_state(seed))
    mask = bits_to_mask(bench.layout, random_bits(bench.layout,
                                                  torch.Generator().manual_seed(seed)))
    settings = bench.config.training.model_copy(update={"privacy": privacy, "lr": lr})
    t0 = time.time()
    out = train_private(model, bench.data, settings, mask=mask, seed=seed)
    return {**out, "seconds": time.time() - t0}


def spread(values: list[float]) -> str:
    std = statistics.stdev(values) if len(values) > 1 else float("nan")
    return f"{statistics.mean(values):.4f} ± {std:.4f}"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-root", required=True)
    ap.add_argument("--epsilons", type=float, nargs="+", default=[1.0, 3.0, 8.0])
    ap.add_argument("--methods", nargs="+", default=["dpsgd", "lsg"])
    ap.add_argument("--seeds", type=int, default=3, help="seeds 0 .. N-1")
    ap.add_argument("--lrs", type=float, nargs="+", default=[0.1, 0.3, 1.0, 3.0, 10.0],
                    help="learning rates each method chooses from on the validation split")
    ap.add_argument("--select-epsilon", type=float, default=3.0,
                    help="the budget at which the learning rates are chosen")
    ap.add_argument("--set", action="append", default=[], help="config override KEY=VALUE")
    args = ap.parse_args(argv)
    cfg = load_config("private_mnist", [f"data.root={args.data_root}", *args.set])
    bench = Workbench.from_config(cfg)
    base, seeds = cfg.training.privacy, range(args.seeds)

    def privacy(method: str, eps: float) -> PrivacyConfig | None:
        return None if method == PLAIN else base.model_copy(update={"epsilon": eps,
                                                                    "method": method})

    def runs(method: str, eps: float, lr: float) -> list[dict]:
        return [cell(bench, s, lr, privacy(method, eps)) for s in seeds]

    # the learning rates, on the validation split alone
    grid = {m: {lr: runs(m, args.select_epsilon, lr) for lr in args.lrs}
            for m in [PLAIN, *args.methods]}
    chosen = {m: max(args.lrs, key=lambda lr: statistics.median(
        r["val_accuracy"] for r in grid[m][lr])) for m in grid}
    print(f"median validation accuracy over {args.seeds} seeds, private methods at epsilon "
          f"{args.select_epsilon:g}:")
    print("| lr | " + " | ".join(grid) + " |")
    print("| --- |" + " --- |" * len(grid))
    for lr in args.lrs:
        print(f"| {lr:g} | " + " | ".join(
            f"{statistics.median(r['val_accuracy'] for r in grid[m][lr]):.4f}" for m in grid)
            + " |")
    print("chosen: " + ", ".join(f"{m} lr {chosen[m]:g}" for m in grid))
    print(f"{PLAIN} (lr {chosen[PLAIN]:g}): test accuracy "
          f"{spread([r['test_accuracy'] for r in grid[PLAIN][chosen[PLAIN]]])}")

    paired = len(args.methods) == 2
    first, second = args.methods[0], args.methods[-1]
    print(f"test accuracy, mean ± std over {args.seeds} seeds:")
    print("| epsilon | " + " | ".join(args.methods)
          + (f" | {second} - {first} | paired t-test p |" if paired else " |"))
    print("| --- |" + " --- |" * (len(args.methods) + 2 * paired))
    notes = []
    for eps in args.epsilons:
        got = {m: grid[m][chosen[m]] if eps == args.select_epsilon
               else runs(m, eps, chosen[m]) for m in args.methods}
        acc = {m: [r["test_accuracy"] for r in got[m]] for m in args.methods}
        row = [spread(acc[m]) for m in args.methods]
        if paired:
            diff = [b - a for a, b in zip(acc[first], acc[second])]
            p = ttest_rel(acc[second], acc[first]).pvalue if args.seeds > 1 else float("nan")
            row += [spread(diff), "< 0.001" if p < 0.001 else f"{p:.3f}"]
        print(f"| {eps:g} | " + " | ".join(row) + " |", flush=True)
        notes.append(f"epsilon {eps:g}: " + "; ".join(
            f"{m} spent {max(r['epsilon'] for r in got[m]):.2f}, noised "
            f"{got[m][0]['noised_coordinates']:,} of {got[m][0]['parameters']:,}, "
            f"{statistics.mean(r['seconds'] for r in got[m]):.0f}s a run" for m in got))
    print("\n".join(notes))


if __name__ == "__main__":
    main()
