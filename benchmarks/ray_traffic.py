"""Bytes the driver sends and receives per generation on the Ray backend.

    python benchmarks/ray_traffic.py
    python benchmarks/ray_traffic.py --models lenet_300_100 --populations 256 --shards 4

For LeNet-300-100 (MNIST-shaped inputs) and ResNet-20 (CIFAR-shaped) at 90% sparsity, for each
population size P and shard count: ``sent`` is the part every shard shares (initial state,
hooks: put into the object store once; a later generation with the same initial state sends
only the hooks again) plus every shard's payload, and
``received`` every shard's result, each measured with Ray's own serialiser on what
``RayEvaluator`` ships, without training. ``views`` is what the shards weighed when each was a
view of the ``[P, n]`` masks (a view serialises its whole storage). ``payload`` is the bound:
the bit-packed masks of each shard plus its metrics (8 bytes each); ``ratio`` is
(sent + received) / payload. A live run first trains a small population on real Ray actors
and prints what its evaluator counted beside the same measurement without training.
"""

from __future__ import annotations

import argparse

import torch

from neuroprune.backends.ray_actors import (RayEvaluator, serialized_bytes, shard_bounds,
                                           shard_payloads)
from neuroprune.data.base import DataSplits
from neuroprune.engine import EvalTask, PopulationResult, TrainSettings, init_state
from neuroprune.engine.wire import PackedResult, unpack_bits
from neuroprune.masks import make_layout
from neuroprune.models import ModelSpec, build_model, prunable_names

INPUTS = {"lenet_300_100": (1, 28, 28), "resnet20": (3, 32, 32)}
#: what a generation's results carry (the live run prints the names it got)
METRICS = ("train_loss", "val_accuracy", "val_loss", "magnitude", "diverged")


def population(name: str, size: int, seed: int = 0):
    """``(spec, layout, task)``: ``size`` random masks of zoo model ``name`` at 90% sparsity,
    one shared initial state."""
    spec = ModelSpec.zoo(name, INPUTS[name], 10)
    model = build_model(spec)
    shapes = {k: tuple(v.shape) for k, v in model.named_parameters()}
    layout = make_layout({k: shapes[k] for k in prunable_names(model)}, 0.9, "erk")
    g = torch.Generator().manual_seed(seed)
    n = layout.numel  # the byte count does not depend on which bits are set
    octets = torch.randint(0, 256, (size, -(-n // 8)), dtype=torch.uint8, generator=g)
    return spec, layout, EvalTask(masks=unpack_bits(octets, n), init=init_state(spec, seed))


def driver_traffic(task: EvalTask, shards: int, metrics=METRICS, views: bool = True):
    """Bytes the driver sends and receives for ``task`` over ``shards`` shards, the payload
    bound, and (``views``) what view-shards weighed."""
    shared, payloads = shard_payloads(task, shards)
    sent = serialized_bytes(shared) + sum(serialized_bytes(p) for p in payloads)
    received, payload = 0, 0
    n = task.masks.shape[1]
    for a, b in shard_bounds(len(task), shards):
        result = PopulationResult(metrics={k: torch.zeros(b - a, dtype=torch.float64)
                                           for k in metrics})
        received += serialized_bytes(PackedResult.of(result))
        payload += (b - a) * (-(-n // 8) + 8 * len(metrics))
    out = {"sent": sent, "received": received, "payload": payload,
           "ratio": (sent + received) / payload}
    if views:  # every view-shard carried the whole storage: one measured stands for all
        a, b = shard_bounds(len(task), shards)[0]
        out["views"] = len(payloads) * serialized_bytes(task.slice(a, b))
    return out


def live(args) -> tuple[str, ...]:
    """Train ``--live-population`` networks over ``--live-shards`` actors for two generations;
    print what the evaluator counted. Returns the metric names the results carried."""
    import ray

    spec, layout, task = population("lenet_300_100", args.live_population)
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(384, *INPUTS["lenet_300_100"], generator=g), torch.arange(384) % 10
    data = DataSplits("generated", x[:256], y[:256], x[256:320], y[256:320], x[320:],
                      y[320:], 10)
    ray.init(address="local", num_cpus=args.live_shards, log_to_driver=False,
             include_dashboard=False)
    try:
        with RayEvaluator(spec, data, TrainSettings(lr=0.05, batch_size=64), layout,
                          num_workers=args.live_shards, measure_traffic=True) as ev:
            for generation in range(2):
                res = ev.evaluate(EvalTask(masks=task.masks, init=task.init,
                                           data_seed=generation))
            names = tuple(res.metrics)
            offline = driver_traffic(task, args.live_shards, names, views=False)
            for generation, t in enumerate(ev.traffic):
                print(f"live lenet_300_100 P={args.live_population} over {t['shards']} actors, "
                      f"generation {generation}: sent {t['sent']:,} B (without training "
                      f"{offline['sent']:,}), received {t['received']:,} B (without training "
                      f"{offline['received']:,}), payload {offline['payload']:,} B, ratio "
                      f"{(t['sent'] + t['received']) / offline['payload']:.3f}")
    finally:
        ray.shutdown()
    return names


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=list(INPUTS), choices=list(INPUTS))
    ap.add_argument("--populations", nargs="+", type=int, default=[256, 1024, 4096])
    ap.add_argument("--shards", nargs="+", type=int, default=[4, 16, 64])
    ap.add_argument("--live-population", type=int, default=16,
                    help="networks of the live run (0: no live run)")
    ap.add_argument("--live-shards", type=int, default=2)
    ap.add_argument("--no-views", action="store_true",
                    help="skip measuring view-shards (serialises the whole [P, n] per case)")
    args = ap.parse_args()
    names = live(args) if args.live_population else METRICS
    print(f"{'model':<14} {'P':>5} {'shards':>6} {'views (before)':>15} {'sent':>11} "
          f"{'received':>10} {'payload':>11} {'ratio':>6}")
    for model in args.models:
        for size in args.populations:
            task = population(model, size)[2]
            for shards in args.shards:
                t = driver_traffic(task, shards, names, views=not args.no_views)
                before = f"{t['views'] / 1e9:.2f} GB" if "views" in t else "-"
                print(f"{model:<14} {size:>5} {shards:>6} {before:>15} "
                      f"{t['sent'] / 1e6:>8.2f} MB {t['received'] / 1e6:>7.3f} MB "
                      f"{t['payload'] / 1e6:>8.2f} MB {t['ratio']:>6.3f}")
            del task


if __name__ == "__main__":
    main()
