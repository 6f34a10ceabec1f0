"""Tuning throughput: trials per hour with trials one by one, and with a batch of trials
trained as one population (``neuroprune tune --batch N``), on the same proposals, against
plain Optuna calling the same search (in-memory study, no trial folders kept, no heartbeat,
artifacts, notes or plots): what a user would write around the search, and so the overhead
of ``neuroprune tune`` itself.

    python benchmarks/tune_batch.py --trials 16
    python benchmarks/tune_batch.py --trials 16 --data-root DIR            # MNIST-10k
    python benchmarks/tune_batch.py --trials 256 --batch 256 --device cuda --data-root DIR

The tuning config is ``configs/tune_quickstart.yaml`` (K-starts; learning rate, fitness weights
and mutation rate sampled). The proposals are drawn once (random sampler, fixed seed) and
replayed in every run, so all train the same trials; the figures are wall-clock trials per
hour, and the largest difference between a trial's objective in the runs.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import optuna

from neuroprune.config import load_config
from neuroprune.tuning.storage import open_storage
from neuroprune.tuning.tune import Tuner

ROOT = Path(__file__).resolve().parents[1]


def proposals(cfg, n: int, seed: int) -> list[dict]:
    """``n`` parameter sets drawn from the config's search space."""
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    out = []
    for _ in range(n):
        trial = study.ask()
        out.append({k: spec.sample(trial, k) for k, spec in cfg.tune.params.items()})
        study.tell(trial, 0.0)
    return out


def timed(cfg, params: list[dict], batch: int, folder: Path) -> tuple[float, list[float]]:
    tuner = Tuner(cfg, folder, n_trials=len(params), batch=batch)
    study = tuner._study(open_storage(str(folder / "optuna.journal")))
    for p in params:
        study.enqueue_trial(p)
    start = time.perf_counter()
    tuner.run(progress=False)
    wall = time.perf_counter() - start
    values = [t.value for t in sorted(study.trials, key=lambda t: t.number)]
    return wall, values


def plain(cfg, params: list[dict], folder: Path) -> tuple[float, list[float]]:
    """Plain Optuna: an in-memory study whose objective runs the trial's search."""
    from neuroprune.searches.kinds import prepare
    from neuroprune.tuning.tune import trial_config
    from neuroprune.workbench import Workbench

    base = {k: v for k, v in cfg.model_dump(mode="json").items() if k != "tune"}
    base["sparsity"]["latency_repeats"] = 0
    bench = Workbench.from_config(cfg)

    def objective(trial) -> float:
        values = {k: spec.sample(trial, k) for k, spec in cfg.tune.params.items()}
        kind = prepare(bench.derive(trial_config(base, values)))
        summary = kind.run(folder / str(trial.number), progress=False, log=lambda _: None)
        return float(summary["val_accuracy"])

    study = optuna.create_study(direction="maximize")
    for p in params:
        study.enqueue_trial(p)
    start = time.perf_counter()
    study.optimize(objective, n_trials=len(params))
    wall = time.perf_counter() - start
    return wall, [t.value for t in sorted(study.trials, key=lambda t: t.number)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=16)
    ap.add_argument("--batch", type=int, help="trials per batch (default: all of them)")
    ap.add_argument("--data-root", help="MNIST folder (default: digits)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--set", dest="overrides", action="append", default=[],
                    help="config override for both runs, e.g. method.population=8")
    args = ap.parse_args()
    if args.trials < 2:
        ap.error("--trials must be at least 2")
    over = [f"device={args.device}", "tune.pruner=none", *args.overrides]
    if args.data_root:
        over += ["data.dataset=mnist", f"data.root={args.data_root}"]
    cfg = load_config(ROOT / "configs" / "tune_quickstart.yaml", over)
    params = proposals(cfg, args.trials, seed=0)
    batch = args.batch or args.trials
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        plain_wall, bare = plain(cfg, params, Path(tmp) / "plain")
        one_wall, one = timed(cfg, params, 1, Path(tmp) / "one")
        batch_wall, together = timed(cfg, params, batch, Path(tmp) / "batch")
    diff = max(abs(a - b) for run in (one, together) for a, b in zip(bare, run)
               if a is not None and b is not None)
    rate = lambda wall: args.trials / wall * 3600  # noqa: E731
    print(f"{cfg.data.dataset}, {args.trials} trials of tune_quickstart (K-starts, population "
          f"{cfg.method_params().population}, {cfg.method_params().generations} generations); "
          f"device {args.device}")
    print(f"plain Optuna: {rate(plain_wall):,.0f} trials/hour ({plain_wall:.1f}s)")
    print(f"one by one:  {rate(one_wall):,.0f} trials/hour ({one_wall:.1f}s), "
          f"{plain_wall / one_wall:.2f}x plain Optuna")
    print(f"batch of {batch}: {rate(batch_wall):,.0f} trials/hour ({batch_wall:.1f}s)")
    print(f"largest objective difference between the runs: {diff:.2e}")
    print(f"batch against one by one: {one_wall / batch_wall:.2f}x; against plain Optuna: "
          f"{plain_wall / batch_wall:.2f}x")


if __name__ == "__main__":
    main()
