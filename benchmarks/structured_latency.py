"""CPU latency of a compacted network at a FLOPs reduction against the dense one.

    python benchmarks/structured_latency.py --arch vgg11 --reduction 0.75 --batch 256
    python benchmarks/structured_latency.py --runs RUN_DIR --threads 1

Channels are ranked by their filters' L1 norm (layer-normalised, as ``l1_filter`` does) and
removed until the FLOPs of the prunable layers fall by ``--reduction``; the masked network is
compacted (pruned channels physically removed) and both are timed on the CPU. With ``--runs``
the networks are those a run or a comparison found (every ``best_mask.safetensors`` under the
folder): each compact network is timed against its dense architecture, and the speedups are
printed per method and budget (median and the union of the seeds' intervals).

Timing is :func:`neuroprune.efficiency.time_interleaved`: ``torch.utils.benchmark`` timers,
warm-up, then rounds alternating dense and compact (a change of the machine's load hits both)
until each median's 95% interval is within ``--rel-error`` of it (at least ``--repeats``
rounds). Latencies are printed with their quartiles and the speedup with its 95% interval;
where the interval holds 1, "no speedup measurable". The speedup is printed, not asserted:
it is a measurement.
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from pathlib import Path

import torch

from neuroprune.efficiency import (count_flops, count_params, speedup, speedup_words,
                                   time_interleaved)
from neuroprune.masks import compact, structure_space, unflatten
from neuroprune.models import ModelSpec, build_model


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="vgg11")
    ap.add_argument("--width", type=float, default=None, help="the zoo model's width option")
    ap.add_argument("--size", type=int, default=32, help="input height and width")
    ap.add_argument("--reduction", type=float, default=0.75, help="fraction of FLOPs removed")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=6, help="least timing rounds")
    ap.add_argument("--rel-error", type=float, default=0.05, help="rounds are added until "
                    "each median's 95%% interval is within this fraction of it")
    ap.add_argument("--max-seconds", type=float, default=30.0,
                    help="after this much timing per network pair, stop at the next round")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ap.add_argument("--runs", type=Path, default=None, help="time the networks found under "
                    "this run or comparison folder instead")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.runs is not None:
        return time_runs(args.runs, args.batch, args)
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
    times = _time(model, small, shape, args.batch, args)
    print(f"{args.arch} {args.size}x{args.size}, {torch.get_num_threads()} CPU thread(s), "
          f"batch {args.batch}, {len(times['dense'].seconds)} interleaved rounds")
    for name, net, f in (("dense", model, f0), ("compact", small, f1)):
        t = times[name]
        print(f"{name + ':':<8} {count_params(net):>10,} params {f:>14,} FLOPs/sample "
              f"{t.median * 1e3:9.2f} ms (quartiles {t.iqr[0] * 1e3:.2f}-{t.iqr[1] * 1e3:.2f}, "
              f"median within ±{t.rel_error:.1%})"
              + (f"  (max |output difference| {err:.1e})" if name == "compact" else ""))
    print(f"FLOPs removed: {1 - f1 / f0:.1%}")
    print(f"speedup: {speedup_words(*speedup(times['dense'], times['compact']))}")


def _time(dense, small, shape, batch, args):
    return time_interleaved({"dense": dense, "compact": small}, shape, batch, args.repeats,
                            target=args.rel_error, max_rounds=1000,
                            max_seconds=args.max_seconds)


def time_runs(root: Path, batch: int, args) -> None:
    """Speedup of every compact network found under ``root`` over its dense architecture."""
    from neuroprune.export import compact_model
    from neuroprune.masks import load_mask

    files = sorted(root.rglob("best_mask.safetensors"))
    if not files:
        raise SystemExit(f"no best_mask.safetensors under {root}")
    found: dict[tuple[str, float], list[tuple[float, tuple | None]]] = defaultdict(list)
    for path in files:
        small, _, shape = compact_model(path)
        _, meta = load_mask(path)
        spec = ModelSpec.from_dict(meta["architecture"])
        summary = path.parent / "summary.json"
        target = json.loads(summary.read_text())["target_sparsity"] if summary.is_file() \
            else meta["sparsity"]
        times = _time(build_model(spec).eval(), small, shape, batch, args)
        found[(str(meta["method"]), float(target))].append(
            speedup(times["dense"], times["compact"]))
    targets = sorted({t for _, t in found})
    print(f"{len(files)} networks under {root}, {torch.get_num_threads()} CPU thread(s), "
          f"batch {batch}: dense over compact latency, median and 95% interval of "
          f"interleaved rounds (union over seeds)")
    print("| method | " + " | ".join(f"{t:.0%} fewer FLOPs" for t in targets) + " |")
    print("| --- |" + " --- |" * len(targets))
    for method in dict.fromkeys(m for m, _ in found):
        cells = []
        for t in targets:
            got = found.get((method, t))
            if not got:
                cells.append("-")
                continue
            ratio = statistics.median(g for g, _ in got)
            known = [ci for _, ci in got if ci]
            cells.append(speedup_words(ratio, (min(a for a, _ in known), max(
                b for _, b in known)) if len(known) == len(got) else None))
        print(f"| {method} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
