"""A population trained from an image folder cached on disk (``data.loader.cache: disk``: a
mapped float32 file, each batch read from it once per step for all P networks) against the
same folder in memory, on a generated folder of PNG images.

    python benchmarks/disk_cache.py --images 4000 --population 16 --epochs 2

Both arms read the folder once (timed as "load"), then train the same P networks (the
engine's stacked trainer, same masks, initial weights and batches) and must give the same
validation losses; the figures are individual-samples/s (networks x samples x epochs per
second of training). The page cache holds this small file: the disk arm measures the cost of
reading batches through the mapping, not the disk's speed.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from loader_population import make_folder

from neuroprune.data import DataConfig, load_dataset
from neuroprune.engine import EvalTask, StackedTrainer, TrainSettings, init_state
from neuroprune.evolution.operators import Draws, random_rows
from neuroprune.masks import make_layout
from neuroprune.models import ModelSpec, build_model, prunable_names


def train(data, args) -> tuple[float, torch.Tensor]:
    """Seconds to train ``args.population`` masked MLPs on ``data``, and their val losses."""
    spec = ModelSpec.zoo("mlp", data.input_shape, data.num_classes, widths=(args.hidden,))
    model = build_model(spec)
    shapes = {k: tuple(v.shape) for k, v in model.named_parameters()}
    layout = make_layout({k: shapes[k] for k in prunable_names(model)}, 0.8, "erk")
    task = EvalTask(masks=random_rows(layout, args.population, Draws(0)),
                    init=init_state(spec, 0), epochs=args.epochs, data_seed=1)
    trainer = StackedTrainer(spec, data, TrainSettings(batch_size=args.batch_size), layout)
    t = time.perf_counter()
    res = trainer.run(task)
    return time.perf_counter() - t, res.metrics["val_loss"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=4000)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--population", type=int, default=16)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=64)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        make_folder(Path(tmp) / "imgs", args.images, args.classes, args.size)
        rates, losses = {}, {}
        load_dataset(DataConfig(dataset="folder", root=str(Path(tmp) / "imgs")))  # warm-up
        for cache in ("memory", "disk"):
            cfg = DataConfig(dataset="folder", root=str(Path(tmp) / "imgs"), loader={
                "cache": cache, "cache_dir": str(Path(tmp) / "cache")})
            t = time.perf_counter()
            data = load_dataset(cfg)
            load = time.perf_counter() - t
            seconds, losses[cache] = train(data, args)
            rates[cache] = args.population * len(data.train_y) * args.epochs / seconds
            print(f"{cache:>6}: load {load:6.2f} s, training {rates[cache]:12,.0f} "
                  f"individual-samples/s ({seconds:.2f} s, on disk: {data.on_disk})")
    same = torch.equal(losses["memory"], losses["disk"])
    print(f"{args.images} PNGs {args.size}x{args.size}, P={args.population}, {args.epochs} "
          f"epoch(s), batch {args.batch_size}, {torch.get_num_threads()} threads; "
          f"same val losses: {same}; disk / memory: {rates['disk'] / rates['memory']:.2f}x")


if __name__ == "__main__":
    main()
