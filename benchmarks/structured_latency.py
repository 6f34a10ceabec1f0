"""CPU latency of a compacted network at a FLOPs reduction against the dense one.

    python benchmarks/structured_latency.py --arch vgg11 --reduction 0.75 --batch 256
    python benchmarks/structured_latency.py --runs RUN_DIR --threads 1

Channels are ranked by their filters' L1 norm (layer-normalised, as ``l1_filter`` does) and
removed until the FLOPs of the prunable layers fall by ``--reduction``; the masked network is
compacted (pruned channels physically removed) and both are timed on the CPU. With ``--runs``
the networks are those a run or a comparison found (every ``best_mask.safetensors`` under the
folder): each compact network is timed against its dense architecture, the two alternating so
that a change of the machine's load hits both, and the speedups are printed per method and
budget (mean and range over seeds). The speedup is printed, not asserted: it is a
measurement.
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from pathlib import Path

import torch

from neuroprune.efficiency import count_flops, count_params, latency
from neuroprune.masks import compact, structure_space, unflatten
from neuroprune.models import ModelSpec, build_model


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="vgg11")
    ap.add_argument("--width", type=float, default=None, help="the zoo model's width option")
    ap.add_argument("--size", type=int, default=32, help="input height and width")
    ap.add_argument("--reduction", type=float, default=0.75, help="fraction of FLOPs removed")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ap.add_argument("--runs", type=Path, default=None, help="time the networks found under "
                    "this run or comparison folder instead")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.runs is not None:
        return time_runs(args.runs, args.batch, args.repeats)
    torch.manual_seed(0)
    options = {} if args.width is None else {"width": args.width}
    shape = (3, args.size, args.size)
    model = build_model(ModelSpec.zoo(args.arch, shape, 10, **options)).eval()
    space = structure_space(model, torch.zeros(1, *shape), "channel")
    rows = space.rows_of({k: v.detach()[None] for k, v in model.named_parameters()})
    scores = space.channel_sums(rows.abs(), "filter")
    for a, b in zip(space.offsets, space.offsets[1:]):
        scores[:, a:b] /= scores[:, a:b].mean(1, keepdim=True)
    keep = space.meet(scores, "flops", args.reduction)
    params = dict(model.named_parameters())
    with torch.no_grad():
        for k, m in unflatten(space.layout, space.expand(keep)).items():
            params[k].mul_(m[0])
    small, _ = compact(model, torch.zeros(1, *shape))
    x = torch.randn(8, *shape)
    with torch.no_grad():
        err = float((small(x) - model(x)).abs().max())
    f0, f1 = count_flops(model, shape), count_flops(small, shape)
    t0 = latency(model, shape, args.batch, args.repeats)
    t1 = latency(small, shape, args.batch, args.repeats)
    print(f"{args.arch} {args.size}x{args.size}, {torch.get_num_threads()} CPU thread(s), "
          f"batch {args.batch}")
    print(f"dense:   {count_params(model):>10,} params {f0:>14,} FLOPs/sample {t0 * 1e3:9.1f} ms")
    print(f"compact: {count_params(small):>10,} params {f1:>14,} FLOPs/sample {t1 * 1e3:9.1f} ms"
          f"  (max |output difference| {err:.1e})")
    print(f"FLOPs removed: {1 - f1 / f0:.1%}")
    print(f"speedup: {t0 / t1:.1f}x")


def time_runs(root: Path, batch: int, repeats: int) -> None:
    """Speedup of every compact network found under ``root`` over its dense architecture."""
    from neuroprune.export import compact_model
    from neuroprune.masks import load_mask

    files = sorted(root.rglob("best_mask.safetensors"))
    if not files:
        raise SystemExit(f"no best_mask.safetensors under {root}")
    found: dict[tuple[str, float], list[tuple[float, float]]] = defaultdict(list)
    for path in files:
        small, _, spec = compact_model(path)
        _, meta = load_mask(path)
        summary = path.parent / "summary.json"
        target = json.loads(summary.read_text())["target_sparsity"] if summary.is_file() \
            else meta["sparsity"]
        shape = tuple(spec.input_shape)
        dense = build_model(spec).eval()
        t_dense, t_small = [], []
        for _ in range(repeats):  # alternating, so that the machine's load hits both alike
            t_dense.append(latency(dense, shape, batch, 1))
            t_small.append(latency(small, shape, batch, 1))
        gain = statistics.median(t_dense) / statistics.median(t_small)
        removed = 1 - count_flops(small, shape) / count_flops(dense, shape)
        found[(str(meta["method"]), float(target))].append((gain, removed))
    targets = sorted({t for _, t in found})
    print(f"{len(files)} networks under {root}, {torch.get_num_threads()} CPU thread(s), "
          f"batch {batch}: compact over dense latency, mean (min-max) over seeds")
    print("| method | " + " | ".join(f"{t:.0%} fewer FLOPs" for t in targets) + " |")
    print("| --- |" + " --- |" * len(targets))
    for method in dict.fromkeys(m for m, _ in found):
        cells = []
        for t in targets:
            got = found.get((method, t))
            if not got:
                cells.append("-")
                continue
            gains = [g for g, _ in got]
            cells.append(f"{statistics.mean(gains):.1f}x ({min(gains):.1f}-{max(gains):.1f})")
        print(f"| {method} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
