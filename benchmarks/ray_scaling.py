"""Population evaluation throughput: local backend against Ray with 1 and 2 workers.

    python benchmarks/ray_scaling.py --population 64 --epochs 3

Digits, MLP [300, 100] at 90% sparsity. Prints individual-samples per second for each, and the
overhead of the Ray path over the local one at equal resources (one Ray worker with all the
local CPUs). Actors are started and warmed before timing (start-up is a one-off per run).
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from neuroprune.backends.local import LocalEvaluator
from neuroprune.data import load_dataset
from neuroprune.engine import EvalTask, TrainSettings, init_state
from neuroprune.masks import make_layout, random_bits
from neuroprune.models import ModelSpec, build_model, prunable_names


def timed(ev, task, repeats):
    ev.evaluate(task.slice(0, min(len(task), 4)))  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        ev.evaluate(task)
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--population", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--cpus", type=int, default=os.cpu_count() or 2)
    args = ap.parse_args()
    import ray

    data = load_dataset("digits")
    spec = ModelSpec.zoo("mlp", data.input_shape, data.num_classes, widths=(300, 100))
    model = build_model(spec)
    shapes = {k: tuple(v.shape) for k, v in model.named_parameters()}
    layout = make_layout({k: shapes[k] for k in prunable_names(model)}, 0.9, "erk")
    g = torch.Generator().manual_seed(0)
    task = EvalTask(masks=torch.stack([random_bits(layout, g) for _ in range(args.population)]),
                    init=init_state(spec, 0), epochs=args.epochs, data_seed=0)
    settings = TrainSettings(lr=0.05, batch_size=64)
    work = args.population * len(data.train_y) * args.epochs
    torch.set_num_threads(args.cpus)
    print(f"digits, MLP [300, 100] at 90% sparsity, P={args.population}, {args.epochs} epochs, "
          f"{args.cpus} CPUs")
    local = timed(LocalEvaluator(spec, data, settings, layout), task, args.repeats)
    print(f"local backend ({args.cpus} threads):    {work / local:>12,.0f} individual-samples/s")
    from neuroprune.backends.ray_actors import RayEvaluator
    ray.init(address="local", num_cpus=args.cpus, log_to_driver=False, include_dashboard=False)
    try:
        rates = {}
        for workers, cpus in ((1, args.cpus), (2, max(1, args.cpus // 2))):
            with RayEvaluator(spec, data, settings, layout, num_workers=workers,
                              cpus_per_worker=cpus) as ev:
                ev.placement()
                rates[workers] = work / timed(ev, task, args.repeats)
            print(f"ray, {workers} worker(s) x {cpus} CPU(s):   {rates[workers]:>12,.0f} "
                  f"individual-samples/s")
    finally:
        ray.shutdown()
    print(f"ray overhead at equal resources (1 worker x {args.cpus} CPUs): "
          f"{(work / rates[1] / local - 1) * 100:.1f}%")


if __name__ == "__main__":
    main()
