"""Population engine throughput: P masked LeNet-300-100 networks trained one by one (plain
``nn.Module``) and then as one population, on MNIST-10k (or digits when no data root is given).

    python benchmarks/population_eval.py --device cpu --population 16 \
        --data-root ../shared/datasets/mnist

Prints both rates in individual-samples per second (networks x training samples / second),
the population's time per training step and the size of its stacked weights (a step reads and
writes them several times, so on a GPU the step time over that size shows how close it runs to
memory bandwidth), and, last, ``speedup: N.Nx``.
"""

from __future__ import annotations

import argparse
import math
import time

import torch

from neuroprune.data import load_dataset
from neuroprune.engine import PopulationTrainer, ReferenceTrainer, TrainSettings, init_state
from neuroprune.engine.settings import steps_per_run
from neuroprune.masks import bits_to_mask, make_layout, random_bits
from neuroprune.models import ModelSpec, build_model, prunable_names


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--population", type=_positive, default=16)
    ap.add_argument("--data-root", help="MNIST folder (MNIST-10k works); default: digits")
    ap.add_argument("--epochs", type=_positive, default=1)
    ap.add_argument("--batch-size", type=_positive, default=128)
    ap.add_argument("--sparsity", type=float, default=0.9)
    ap.add_argument("--optimizer", default="sgd", choices=("sgd", "adam"))
    ap.add_argument("--chunk-size", type=int, help="networks per batch (engine default)")
    ap.add_argument("--one-by-one", type=int, default=None,
                    help="networks timed one by one (default: min(P, 8)); the rate is per network")
    ap.add_argument("--repeats", type=_positive, default=3,
                    help="timed runs of each; the fastest counts")
    ap.add_argument("--tf32", action="store_true", help="allow TF32 matmuls on CUDA")
    args = ap.parse_args()
    if args.tf32:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True

    data = (load_dataset("mnist", root=args.data_root) if args.data_root
            else load_dataset("digits"))
    spec = ModelSpec.zoo("mlp", data.input_shape, data.num_classes, widths=(300, 100))
    model = build_model(spec)
    shapes = {k: tuple(v.shape) for k, v in model.named_parameters()}
    layout = make_layout({k: shapes[k] for k in prunable_names(model)}, args.sparsity, "erk")
    g = torch.Generator().manual_seed(0)
    p = args.population
    masks = [bits_to_mask(layout, random_bits(layout, g)) for _ in range(p)]
    init = init_state(spec, 0)
    settings = TrainSettings(optimizer=args.optimizer,
                             lr=0.05 if args.optimizer == "sgd" else 1e-3,
                             batch_size=args.batch_size)
    n = len(data.train_y)
    print(f"data {data.name}: {n} training samples; LeNet-300-100 at {args.sparsity:.0%} "
          f"sparsity; P={p}; {args.epochs} epoch(s); batch {args.batch_size}; {args.optimizer}; "
          f"device {args.device}; torch threads {torch.get_num_threads()}")

    def timed(trainer, count: int) -> float:
        _sync(args.device)
        t = time.perf_counter()
        trainer.run(init, masks[:count], args.epochs, 0)
        _sync(args.device)
        return time.perf_counter() - t

    # Each one's fastest of a few runs (on a shared machine noise only ever adds time). The
    # one-by-one runs go first: after the population's large allocations a plain network
    # trains measurably slower on a CPU, which would flatter the speedup.
    k = args.one_by_one or min(p, 8)
    ref = ReferenceTrainer(spec, data, settings, device=args.device)
    ref.run(init, masks[:1], 1, 0)  # warm-up
    t_single = min(timed(ref, k) for _ in range(args.repeats))
    pop = PopulationTrainer(spec, data, settings, device=args.device,
                            chunk_size=args.chunk_size)
    pop.run(init, masks, 1, 0)  # warm-up (and allocator)
    t_pop = min(timed(pop, p) for _ in range(args.repeats))
    single = k * n * args.epochs / t_single
    batched = p * n * args.epochs / t_pop
    print(f"one by one:  {single:,.0f} individual-samples/s ({k} networks timed; best of "
          f"{args.repeats})")
    steps = steps_per_run(n, args.batch_size, args.epochs) * math.ceil(p / pop.chunk_size)
    weights = p * sum(math.prod(s) for s in shapes.values()) * 4 / 1e6
    chunk = min(p, pop.chunk_size)
    print(f"population:  {batched:,.0f} individual-samples/s (chunk size {chunk}; "
          f"{t_pop / steps * 1e3:.2f} ms per step; stacked weights {weights:,.0f} MB; best of "
          f"{args.repeats})")
    print(f"speedup: {batched / single:.1f}x")


if __name__ == "__main__":
    main()
