"""When does the sparse trainer beat the stacked dense population? P masked MLPs (hidden
widths ``--widths``, one or two hidden layers) at several sparsities, trained for one epoch by
the stacked trainer (the P networks as one set of batched dense kernels, masks multiplied in)
and by the sparse trainer (each network alone on CSR matrices), and what
``engine.trainer: auto`` picks by its own measurement over a search's first ``--generations``
one-epoch tasks (a fresh trainer cache, so it measures; it measures once the training so far
pays for the measurement).

    OMP_NUM_THREADS=1 python benchmarks/sparse_population.py [--data-root DIR] \\
        [--widths 256,1024,4096] [--sparsities 0.9,0.99,0.999] [--population 16]

Data: MNIST-10k (``--data-root``, flattened) or digits. Prints, per cell, the median seconds
of the stacked and the sparse trainer over ``--repeats`` alternating runs, sparse's speed-up
over stacked, and auto's choice; last, per width, the lowest sparsity from which sparse is
ahead (the crossover).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import torch

from neuroprune.data import load_dataset
from neuroprune.engine import EngineConfig, EvalTask, TrainSettings, init_state, make_trainer
from neuroprune.engine.sparse import SparseTrainer
from neuroprune.engine.trainers import StackedTrainer
from neuroprune.evolution.operators import Draws, random_rows
from neuroprune.masks import make_layout
from neuroprune.models import ModelSpec, build_model, prunable_names


def cell(data, width: int, layers: int, sparsity: float, p: int, batch: int, repeats: int,
         generations: int):
    """(stacked seconds, sparse seconds, auto's choice) for one width and sparsity."""
    spec = ModelSpec.zoo("mlp", data.input_shape, data.num_classes, widths=(width,) * layers)
    shapes = {k: tuple(v.shape) for k, v in build_model(spec).named_parameters()}
    layout = make_layout({k: shapes[k] for k in prunable_names(build_model(spec))}, sparsity,
                         "erk")
    task = EvalTask(masks=random_rows(layout, p, Draws(0)), init=init_state(spec, 0),
                    epochs=1, data_seed=0)
    settings = TrainSettings(lr=0.05, batch_size=batch)
    stacked = StackedTrainer(spec, data, settings, layout)
    sparse = SparseTrainer(spec, data, settings, layout)
    stacked.run(task.slice(0, 1))  # warm-up
    sparse.run(task.slice(0, 1))
    times: dict[str, list[float]] = {"stacked": [], "sparse": []}
    for r in range(repeats):
        order = (("stacked", stacked), ("sparse", sparse))
        for name, trainer in order if r % 2 == 0 else order[::-1]:
            t = time.perf_counter()
            trainer.run(task)
            times[name].append(time.perf_counter() - t)
    auto = make_trainer(spec, data, settings, layout, "cpu", EngineConfig(trainer="auto"))
    choice = "stacked"
    for g in range(1, generations + 1):  # a search's generations: auto measures once they
        choice = auto.pick(task)           # pay for it, and keeps the choice
        if auto.chosen.get("seconds"):
            told = ", ".join(f"{n} {v:.2f}" for n, v in sorted(auto.chosen["seconds"].items(),
                                                                key=lambda kv: kv[1]))
            busy = "; busy machine" if auto.chosen.get("disturbed") else ""
            choice = f"{choice} (generation {g}; predicted s: {told}{busy})"
            break
    return statistics.median(times["stacked"]), statistics.median(times["sparse"]), choice


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-root", help="MNIST folder (MNIST-10k); default: digits")
    ap.add_argument("--widths", default="256,1024,4096")
    ap.add_argument("--layers", type=int, default=1, choices=(1, 2), help="hidden layers")
    ap.add_argument("--sparsities", default="0.9,0.99,0.999")
    ap.add_argument("--population", type=int, default=16)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--generations", type=int, default=5,
                    help="tasks of one epoch auto sees, as a search's generations")
    args = ap.parse_args()
    widths = [int(w) for w in args.widths.split(",")]
    sparsities = [float(s) for s in args.sparsities.split(",")]
    if min(widths) < 1 or not all(0 < s < 1 for s in sparsities) or args.population < 1:
        ap.error("widths must be positive, sparsities in (0, 1), the population at least 1")
    os.environ["NEUROPRUNE_CACHE_DIR"] = tempfile.mkdtemp(prefix="np-choices-")
    data = (load_dataset("mnist", root=args.data_root) if args.data_root
            else load_dataset("digits"))
    print(f"data {data.name}: {len(data.train_y)} training samples; P={args.population}; "
          f"batch {args.batch_size}; {args.layers} hidden layer(s); one epoch; torch threads "
          f"{torch.get_num_threads()}")
    print("| width | sparsity | stacked s | sparse s | sparse vs stacked | auto picks |")
    print("|---:|---:|---:|---:|---:|---|")
    crossover: dict[int, float | None] = {}
    for w in widths:
        crossover[w] = None
        for s in sparsities:
            t_stacked, t_sparse, choice = cell(data, w, args.layers, s, args.population,
                                               args.batch_size, args.repeats, args.generations)
            ratio = t_stacked / t_sparse
            if ratio > 1 and crossover[w] is None:
                crossover[w] = s
            print(f"| {w} | {s:g} | {t_stacked:.2f} | {t_sparse:.2f} | {ratio:.2f}x | "
                  f"{choice} |", flush=True)
    for w, s in crossover.items():
        print(f"width {w}: sparse ahead of stacked "
              + (f"from {s:g} sparsity" if s is not None else "at none of these sparsities"))


if __name__ == "__main__":
    main()
