"""What a K-starts generation costs outside training: breeding (DEAP selection, crossover and
mutation on the [P, n] genome), stacking (masks and initial weights onto the trainer's
device) and collecting (fitness from the [P] metrics, DEAP fitness values, ledger rows).

    python benchmarks/generation.py --population 64 256 1024 [--device cuda]
    python benchmarks/generation.py --population 1024 --train --data-root DIR --device cuda

LeNet-300-100 at 90% sparsity (ERK). Each figure is the fastest of ``--repeats``. With
``--train`` it also runs whole K-starts generations (one fitness epoch each, breeding
included) and prints individual-samples per second over them, and the share of the
generation spent outside training.
"""

from __future__ import annotations

import argparse
import operator
import time

import torch
from deap import tools

from neuroprune.data import load_dataset
from neuroprune.engine import (EngineConfig, PopulationResult, StackedTrainer, TrainSettings,
                               init_state)
from neuroprune.evolution.genome import MaskPopulation
from neuroprune.evolution.operators import Draws, random_rows
from neuroprune.evolution.random_state import DeapRandom
from neuroprune.masks import make_layout
from neuroprune.methods.base import MethodContext
from neuroprune.methods.kstarts import KStarts, KStartsParams
from neuroprune.models import ModelSpec, build_model, prunable_names


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def best_of(fn, repeats: int, device: str) -> float:
    times = []
    for _ in range(repeats):
        _sync(device)
        t = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--population", type=int, nargs="+", default=[64, 256, 1024])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--train", action="store_true", help="also run whole generations")
    ap.add_argument("--data-root", help="MNIST folder for --train (default: digits)")
    ap.add_argument("--generations", type=int, default=3)
    args = ap.parse_args()
    if any(p < 4 for p in args.population):
        ap.error("--population values must be at least 4")

    data = load_dataset("mnist", root=args.data_root) if args.data_root else \
        load_dataset("digits")
    spec = ModelSpec.zoo("lenet_300_100", data.input_shape, data.num_classes)
    model = build_model(spec)
    shapes = {k: tuple(v.shape) for k, v in model.named_parameters()}
    layout = make_layout({k: shapes[k] for k in prunable_names(model)}, 0.9, "erk")
    init = init_state(spec, 0)
    settings = TrainSettings(batch_size=128)
    trainer = StackedTrainer(spec, data, settings, layout, args.device,
                             EngineConfig(chunk_size=max(args.population)
                                          if args.device.startswith("cuda") else None))
    device = torch.device(args.device)
    print(f"LeNet-300-100, {layout.numel:,} prunable weights, 90% sparse; device {args.device}; "
          f"torch threads {torch.get_num_threads()}")
    for p in args.population:
        method = KStarts(KStartsParams(population=p, elite=2, mutation_rate=0.05))
        ctx = MethodContext(spec=spec, data=data, layout=layout, settings=settings,
                            evaluator=None, init=init, seed=0, final_epochs=1,
                            device=device)
        draws, rng = Draws(1, device), DeapRandom(0)
        pop = MaskPopulation(random_rows(layout, p, draws))
        pop.set_fitness(range(p), torch.rand(p).tolist())
        hof = tools.HallOfFame(2, similar=operator.eq)
        hof.update(pop.individuals)
        breed = best_of(lambda: method._breed(pop, hof, ctx, draws, rng), args.repeats,
                        args.device)
        child = method._breed(pop, hof, ctx, draws, rng)
        todo = child.invalid()
        task = method.fitness_task(ctx, child, todo)

        def stack():
            for start in range(0, len(task), trainer.chunk_size):
                trainer._stack(task.slice(start, start + trainer.chunk_size))
        stacked = best_of(stack, args.repeats, args.device)
        metrics = {k: torch.rand(len(todo), dtype=torch.float64)
                   for k in ("train_loss", "val_accuracy", "val_loss", "magnitude")}
        metrics["diverged"] = torch.zeros(len(todo), dtype=torch.float64)
        res = PopulationResult(metrics=metrics)
        collect = best_of(lambda: method.collect(child, todo, res, 1, {}), args.repeats,
                          args.device)
        total = breed + stacked + collect
        print(f"P={p:>5}: breed {breed:.3f}s, stack {stacked:.3f}s ({len(todo)} new masks), "
              f"collect {collect:.3f}s: {total:.3f}s outside training")
        if args.train:
            run_generations(method, ctx, trainer, p, args, data)


def run_generations(method: KStarts, ctx: MethodContext, trainer, p: int, args, data) -> None:
    """Whole K-starts generations, one fitness epoch each: rate and the share outside
    training."""
    from neuroprune.backends.local import LocalEvaluator

    ev = LocalEvaluator.__new__(LocalEvaluator)
    ev.trainer, ev.device = trainer, str(trainer.device)
    ctx.evaluator = ev
    method.params = method.params.model_copy(update={"generations": args.generations,
                                                     "search_epochs": 1})
    trained = [0]
    real_run = trainer.run

    def counting(task):
        trained[0] += len(task)
        _sync(args.device)
        t = time.perf_counter()
        out = real_run(task)
        _sync(args.device)
        counting.seconds += time.perf_counter() - t
        return out
    counting.seconds = 0.0
    trainer.run = counting
    ctx.progress = False
    _sync(args.device)
    t = time.perf_counter()
    method.find(ctx)
    _sync(args.device)
    wall = time.perf_counter() - t
    trainer.run = real_run
    rate = trained[0] * len(data.train_y) / wall
    print(f"   {args.generations} generations, {trained[0]} networks trained: "
          f"{rate:,.0f} individual-samples/s over whole generations; "
          f"{(wall - counting.seconds) / wall:.1%} of the time outside training")


if __name__ == "__main__":
    main()
