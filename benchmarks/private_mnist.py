"""Accuracy against epsilon for plain DP-SGD and LSG at equal privacy budget, with the
non-private network as reference (``configs/private_mnist.yaml``, MNIST-10k).

    python benchmarks/private_mnist.py --data-root DIR
    python benchmarks/private_mnist.py --data-root DIR --epsilons 1 3 8 --set training.epochs=5

The data loads once; every cell trains the same masked network from the same initial weights
(same seed, same random mask), so the cells differ only in the privacy method and budget.
"""

from __future__ import annotations

import argparse
import time

import torch

from neuroprune.config import load_config
from neuroprune.engine.privacy import PrivacyConfig
from neuroprune.engine.private_trainer import train_private
from neuroprune.masks.allocation import bits_to_mask, random_bits
from neuroprune.workbench import Workbench


def cell(bench: Workbench, privacy: PrivacyConfig | None) -> dict:
    cfg = bench.config
    model = bench.build_model()
    model.load_state_dict(bench.init_state())
    mask = bits_to_mask(bench.layout, random_bits(bench.layout,
                                                  torch.Generator().manual_seed(cfg.seed)))
    settings = cfg.training.model_copy(update={"privacy": privacy})
    t0 = time.time()
    out = train_private(model, bench.data, settings, mask=mask, seed=cfg.seed)
    return {**out, "seconds": time.time() - t0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-root", required=True)
    ap.add_argument("--epsilons", type=float, nargs="+", default=[1.0, 3.0, 8.0])
    ap.add_argument("--methods", nargs="+", default=["dpsgd", "lsg"])
    ap.add_argument("--set", action="append", default=[], help="config override KEY=VALUE")
    args = ap.parse_args()
    cfg = load_config("private_mnist", [f"data.root={args.data_root}", *args.set])
    bench = Workbench.from_config(cfg)
    base = cfg.training.privacy
    plain = cell(bench, None)
    print(f"not private: test accuracy {plain['test_accuracy']:.4f} ({plain['seconds']:.0f}s)")
    print("| epsilon | " + " | ".join(args.methods) + " |")
    print("| --- |" + " --- |" * len(args.methods))
    for eps in args.epsilons:
        row = []
        for method in args.methods:
            r = cell(bench, base.model_copy(update={"epsilon": eps, "method": method}))
            row.append(f"{r['test_accuracy']:.4f} (spent {r['epsilon']:.2f}, noised "
                       f"{r['noised_coordinates']:,} of {r['parameters']:,}, {r['seconds']:.0f}s)")
        print(f"| {eps:g} | " + " | ".join(row) + " |", flush=True)


if __name__ == "__main__":
    main()
