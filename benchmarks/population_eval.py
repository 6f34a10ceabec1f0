"""Population engine throughput: P masked LeNet-300-100 networks trained one by one (plain
``nn.Module``) and then as one population, on MNIST-10k (or digits when no data root is given).

    python benchmarks/population_eval.py --device cpu --population 16 \
        --data-root ../shared/datasets/mnist

Prints both rates in individual-samples per second (networks x training samples / second)
and, last, ``speedup: N.Nx``.
"""

from __future__ import annotations

import argparse
import time

import torch

from neuroprune.data import load_dataset
from neuroprune.engine import PopulationTrainer, ReferenceTrainer, TrainSettings, init_state
from neuroprune.masks import bits_to_mask, make_layout, random_bits
from neuroprune.models import ModelSpec, build_model, prunable_names


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--population", type=int, default=16)
    ap.add_argument("--data-root", help="MNIST folder (MNIST-10k works); default: digits")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--sparsity", type=float, default=0.9)
    ap.add_argument("--chunk-size", type=int, help="networks per batch (engine default)")
    ap.add_argument("--one-by-one", type=int, default=None,
                    help="networks timed one by one (default: min(P, 8)); the rate is per network")
    ap.add_argument("--tf32", action="store_true", help="allow TF32 matmuls on CUDA")
    args = ap.parse_args()
    if args.tf32:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True

    data = (load_dataset("mnist", root=args.data_root) if args.data_root
            else load_dataset("digits"))
    spec = ModelSpec("mlp", data.input_shape, data.num_classes, (300, 100))
    model = build_model(spec)
    shapes = {k: tuple(v.shape) for k, v in model.named_parameters()}
    layout = make_layout({k: shapes[k] for k in prunable_names(model)}, args.sparsity, "erk")
    g = torch.Generator().manual_seed(0)
    p = args.population
    masks = [bits_to_mask(layout, random_bits(layout, g)) for _ in range(p)]
    init = init_state(spec, 0)
    settings = TrainSettings(lr=0.05, batch_size=args.batch_size)
    n = len(data.train_y)
    print(f"data {data.name}: {n} training samples; LeNet-300-100 at {args.sparsity:.0%} "
          f"sparsity; P={p}; {args.epochs} epoch(s); batch {args.batch_size}; "
          f"device {args.device}; torch threads {torch.get_num_threads()}")

    ref = ReferenceTrainer(spec, data, settings, device=args.device)
    ref.run(init, masks[:1], 1, 0)  # warm-up
    k = args.one_by_one or min(p, 8)
    _sync(args.device)
    t = time.perf_counter()
    ref.run(init, masks[:k], args.epochs, 0)
    _sync(args.device)
    single = k * n * args.epochs / (time.perf_counter() - t)
    print(f"one by one:  {single:,.0f} individual-samples/s ({k} networks timed)")

    pop = PopulationTrainer(spec, data, settings, device=args.device,
                            chunk_size=args.chunk_size)
    pop.run(init, masks, 1, 0)  # warm-up (and allocator)
    _sync(args.device)
    t = time.perf_counter()
    pop.run(init, masks, args.epochs, 0)
    _sync(args.device)
    batched = p * n * args.epochs / (time.perf_counter() - t)
    print(f"population:  {batched:,.0f} individual-samples/s (chunk size {pop.chunk_size})")
    print(f"speedup: {batched / single:.1f}x")


if __name__ == "__main__":
    main()
