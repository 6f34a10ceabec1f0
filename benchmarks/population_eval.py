"""Population engine throughput against the loop a user would write: P masked networks
trained by a plain PyTorch loop one after another (``nn.Module``, ``torch.optim``, the mask
applied to the gradients), by the engine one by one (each through its own ``nn.Module``), as
one stacked population, and with ``engine.trainer: auto`` (the fastest trainer, measured), for
any zoo model.

    python benchmarks/population_eval.py --arch lenet_300_100 --population 16 --data-root DIR
    python benchmarks/population_eval.py --arch resnet20 --dataset images --population 16 \\
        --device cuda --precision bf16

Data: MNIST-10k (``--data-root``, a folder with the MNIST files), CIFAR-10 (``--dataset cifar10
--data-root DIR``), generated CIFAR-shaped images (``--dataset images``) or digits (default).
Prints each rate in individual-samples per second (networks x training samples / second, the
fastest of ``--repeats`` runs), the population's time per training step, the trainer's memory
estimate, what auto chose, and, last, ``speedup: N.Nx`` (the stacked population over one by
one) with the stacked population's and auto's speedups over the plain loop.
"""

from __future__ import annotations

import argparse
import math
import time

import torch
import torch.nn.functional as F

from neuroprune.data import load_dataset
from neuroprune.engine import (EngineConfig, EvalTask, PerNetworkTrainer, StackedTrainer,
                               TrainSettings, init_state, make_trainer)
from neuroprune.engine.settings import steps_per_run
from neuroprune.evolution.operators import Draws, random_rows
from neuroprune.masks import make_layout, unflatten
from neuroprune.models import MODELS, ModelSpec, build_model, prunable_names


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def setup(args):
    """Data, spec, layout and a population task from the command line."""
    if args.dataset == "mnist" and not args.data_root:
        data = load_dataset("digits")
    elif args.dataset in ("mnist", "cifar10"):
        data = load_dataset(args.dataset, root=args.data_root)
    else:
        data = load_dataset(args.dataset)
    options = {"width": args.width} if args.width else {}
    spec = ModelSpec.zoo(args.arch, data.input_shape, data.num_classes, **options)
    model = build_model(spec)
    shapes = {k: tuple(v.shape) for k, v in model.named_parameters()}
    layout = make_layout({k: shapes[k] for k in prunable_names(model)}, args.sparsity, "erk")
    bits = random_rows(layout, args.population, Draws(0))
    task = EvalTask(masks=bits, init=init_state(spec, 0), epochs=args.epochs, data_seed=0)
    return data, spec, layout, task, sum(math.prod(s) for s in shapes.values())


def plain_loop(spec, data, settings, layout, task, count: int, device: str) -> None:
    """The loop a user writes: each masked network alone, ``torch.optim``, shuffled batches,
    the mask multiplied into the gradients, validation accuracy at the end."""
    x, y = data.train_x.to(device), data.train_y.to(device)
    n, bs = len(y), settings.batch_size
    for i in range(count):
        model = build_model(spec).to(device)
        model.load_state_dict(task.init)
        params = dict(model.named_parameters())
        masks = {k: m[0].to(device) for k, m in unflatten(layout, task.masks[i:i + 1]).items()}
        with torch.no_grad():
            for k, m in masks.items():
                params[k].mul_(m)
        if settings.optimizer == "adam":
            opt = torch.optim.Adam(model.parameters(), lr=settings.lr)
        else:
            opt = torch.optim.SGD(model.parameters(), lr=settings.lr,
                                  momentum=settings.momentum)
        gen = torch.Generator().manual_seed(i)
        model.train()
        for _ in range(task.epochs):
            order = torch.randperm(n, generator=gen).to(device)
            for s in range(0, n, bs):
                idx = order[s:s + bs]
                loss = F.cross_entropy(model(x[idx]), y[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                for k, m in masks.items():
                    params[k].grad.mul_(m)
                opt.step()
        model.eval()
        with torch.no_grad():
            (model(data.val_x.to(device)).argmax(1) == data.val_y.to(device)).float().mean()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="lenet_300_100", choices=list(MODELS))
    ap.add_argument("--width", type=float, help="width option of the model (VGG, ResNet, Conv)")
    ap.add_argument("--dataset", default="mnist", choices=["mnist", "cifar10", "images", "digits"])
    ap.add_argument("--data-root", help="MNIST (or CIFAR-10) folder; MNIST default: digits")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--population", type=positive, default=16)
    ap.add_argument("--epochs", type=positive, default=1)
    ap.add_argument("--batch-size", type=positive, default=128)
    ap.add_argument("--sparsity", type=float, default=0.9)
    ap.add_argument("--optimizer", default="sgd", choices=("sgd", "adam"))
    ap.add_argument("--precision", default="fp32", choices=("fp32", "tf32", "bf16"))
    ap.add_argument("--chunk-size", type=positive, help="networks per batch (engine default)")
    ap.add_argument("--one-by-one", type=positive, default=None,
                    help="networks timed one by one (default: min(P, 8)); the rate is per network")
    ap.add_argument("--repeats", type=positive, default=3,
                    help="timed runs of each; the fastest counts")
    args = ap.parse_args()
    if args.width is not None and args.width <= 0:
        ap.error("--width must be positive")
    if args.width is not None and args.width.is_integer() and args.arch.startswith("resnet"):
        args.width = int(args.width)

    data, spec, layout, task, numel = setup(args)
    settings = TrainSettings(optimizer=args.optimizer,
                             lr=0.05 if args.optimizer == "sgd" else 1e-3,
                             batch_size=args.batch_size)
    engine = EngineConfig(precision=args.precision, chunk_size=args.chunk_size)
    n = len(data.train_y)
    p = args.population
    print(f"data {data.name}: {n} training samples; {args.arch} at {args.sparsity:.0%} "
          f"sparsity; P={p}; {args.epochs} epoch(s); batch {args.batch_size}; {args.optimizer}; "
          f"{args.precision}; device {args.device}; torch threads {torch.get_num_threads()}")

    def timed(trainer, count: int) -> float:
        _sync(args.device)
        t = time.perf_counter()
        trainer.run(task.slice(0, count))
        _sync(args.device)
        return time.perf_counter() - t

    # Each one's fastest of a few runs (on a shared machine noise only ever adds time). The
    # one-by-one runs go first: after the population's large allocations a plain network
    # trains measurably slower on a CPU, which would flatter the speedup.
    k = args.one_by_one or min(p, 8)

    def timed_loop() -> float:
        _sync(args.device)
        t = time.perf_counter()
        plain_loop(spec, data, settings, layout, task, k, args.device)
        _sync(args.device)
        return time.perf_counter() - t
    plain_loop(spec, data, settings, layout, task, 1, args.device)  # warm-up
    t_plain = min(timed_loop() for _ in range(args.repeats))
    alone = PerNetworkTrainer(spec, data, settings, layout, args.device, engine)
    alone.run(task.slice(0, 1))  # warm-up
    t_single = min(timed(alone, k) for _ in range(args.repeats))
    pop = StackedTrainer(spec, data, settings, layout, args.device, engine)
    pop.run(task)  # warm-up (and allocator)
    t_pop = min(timed(pop, p) for _ in range(args.repeats))
    auto = make_trainer(spec, data, settings, layout, args.device,
                        EngineConfig(precision=args.precision, chunk_size=args.chunk_size))
    auto.run(task)  # measures (or reads its remembered choice), and warms up
    t_auto = min(timed(auto, p) for _ in range(args.repeats))
    plain = k * n * args.epochs / t_plain
    single = k * n * args.epochs / t_single
    batched = p * n * args.epochs / t_pop
    automatic = p * n * args.epochs / t_auto
    print(f"plain loop:  {plain:,.0f} individual-samples/s ({k} networks one after another: "
          f"nn.Module, torch.optim, masked gradients; best of {args.repeats})")
    print(f"one by one:  {single:,.0f} individual-samples/s ({k} networks timed; best of "
          f"{args.repeats})")
    steps = steps_per_run(n, args.batch_size, args.epochs) * math.ceil(p / pop.chunk_size)
    chunk = min(p, pop.chunk_size)
    print(f"engine: {pop.describe()}")
    print(f"population:  {batched:,.0f} individual-samples/s (chunk size {chunk}; "
          f"{t_pop / steps * 1e3:.2f} ms per step; stacked weights {p * numel * 4 / 1e6:,.0f} "
          f"MB; best of {args.repeats})")
    print(f"auto:        {automatic:,.0f} individual-samples/s ({auto.describe()})")
    print(f"speedup: {batched / single:.1f}x; over the plain loop: stacked "
          f"{batched / plain:.2f}x, auto {automatic / plain:.2f}x")


if __name__ == "__main__":
    main()
