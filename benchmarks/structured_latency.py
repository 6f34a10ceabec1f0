"""CPU latency of a compacted network at a FLOPs reduction against the dense one.

    python benchmarks/structured_latency.py --arch vgg11 --reduction 0.75 --batch 256

Channels are ranked by their filters' L1 norm (layer-normalised, as ``l1_filter`` does) and
removed until the FLOPs of the prunable layers fall by ``--reduction``; the masked network is
compacted (pruned channels physically removed) and both are timed on the CPU. The speedup is
printed, not asserted: it is a measurement.
"""

from __future__ import annotations

import argparse

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
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
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


if __name__ == "__main__":
    main()
