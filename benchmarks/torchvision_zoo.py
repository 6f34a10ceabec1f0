"""Which path the population engine takes for each torchvision classifier, and what a training
step costs on each path.

For each model: the path a run takes (``graph``: the compiled population graph; ``vmap``:
``vmap(functional_call)``), with the reason when it is not the graph, and the median time of
one training step (forward, cross-entropy, backward) of P networks on a batch, through the
graph (where it compiles), through vmap, and one network after another through its own module
(``loop``, what a user would write). Timings by ``torch.utils.benchmark``.

Needs torchvision (``pip install torch==2.14.1 torchvision==0.29.1`` beside the project).

    python benchmarks/torchvision_zoo.py                # one model per family
    python benchmarks/torchvision_zoo.py --models all --population 4 --batch 8
    python benchmarks/torchvision_zoo.py --models zoo:vit,zoo:resnet20   # the project's zoo
"""

from __future__ import annotations

import argparse
import copy
import sys

import torch
from torch.utils import benchmark

FAMILIES = ["resnet18", "mobilenet_v2", "mobilenet_v3_small", "efficientnet_b0", "mnasnet0_5",
            "densenet121", "squeezenet1_0", "googlenet", "shufflenet_v2_x0_5",
            "regnet_x_400mf", "convnext_tiny", "swin_t", "resnext50_32x4d"]
BUDGET_PARAMS = 30e6


def _step(forward, params, buffers, x, y, p):
    from neuroprune.engine.graph import Pass

    def run():
        for v in params.values():
            v.grad = None
        logits = forward(params, buffers, x, Pass(p=p, training=True,
                                                  seeds=torch.arange(p), step=1))
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                                 y.repeat(p))
        loss.backward()
    return run


def _loop(nets, x, y):
    from neuroprune.engine.dropout import dropout_seeds

    def run():
        for i, net in enumerate(nets):
            net.zero_grad(set_to_none=True)
            with dropout_seeds(torch.tensor(i), 1):
                torch.nn.functional.cross_entropy(net(x), y).backward()
    return run


def _median(fn, min_run_time: float) -> float:
    return benchmark.Timer("fn()", globals={"fn": fn}).blocked_autorange(
        min_run_time=min_run_time).median


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="families", help="'families', 'all' or a comma list")
    ap.add_argument("--population", type=int, default=4)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--side", type=int, default=32, help="input height and width")
    ap.add_argument("--min-run-time", type=float, default=1.0, help="seconds per timing")
    args = ap.parse_args(argv)
    only_zoo = args.models not in ("families", "all") and all(
        n.startswith("zoo:") for n in args.models.split(","))
    try:
        import torchvision.models as tvm
    except Exception as exc:  # noqa: BLE001
        if not only_zoo:
            print(f"torchvision cannot be imported ({type(exc).__name__}); install "
                  f"torch==2.14.1 torchvision==0.29.1", file=sys.stderr)
            return 2
    from neuroprune.engine.dropout import seed_dropout
    from neuroprune.engine.forward import VmapForward, population_forward
    from neuroprune.models import ModelSpec, build_model
    from neuroprune.models.torchvision_models import torchvision_model

    names = (FAMILIES if args.models == "families" else sorted(tvm.list_models(module=tvm))
             if args.models == "all" else args.models.split(","))
    p, shape = args.population, (3, args.side, args.side)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, P={p}, "
          f"batch {args.batch}, input {shape}; median seconds per training step")
    print("| model | params | path | graph | vmap | loop | best vs loop |")
    print("| --- | ---: | --- | ---: | ---: | ---: | ---: |")
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(args.batch, *shape, generator=gen)
    y = torch.randint(0, 10, (args.batch,), generator=gen)
    for name in names:
        torch.manual_seed(0)
        model = seed_dropout(build_model(ModelSpec.zoo(name[4:], shape, 10))
                             if name.startswith("zoo:") else torchvision_model(name, shape, 10, {}))
        n = sum(q.numel() for q in model.parameters())
        if n > BUDGET_PARAMS:
            print(f"| {name} | {n / 1e6:.1f}M | skipped (over {BUDGET_PARAMS / 1e6:.0f}M) "
                  f"| | | | |", flush=True)
            continue
        forward, reason = population_forward(model, shape)
        params = {k: v.detach().unsqueeze(0).repeat(p, *[1] * v.dim()).requires_grad_()
                  for k, v in model.named_parameters()}
        buffers = {k: v.unsqueeze(0).repeat(p, *[1] * v.dim()).clone()
                   for k, v in model.named_buffers()}
        times = {}
        if forward.kind == "graph":
            times["graph"] = _median(_step(forward, params, buffers, x, y, p),
                                     args.min_run_time)
        times["vmap"] = _median(_step(VmapForward(model), params, buffers, x, y, p),
                                args.min_run_time)
        nets = [copy.deepcopy(model).train() for _ in range(p)]
        times["loop"] = _median(_loop(nets, x, y), args.min_run_time)
        best = min(v for k, v in times.items() if k != "loop")
        path = forward.kind + (f" ({reason})" if reason else "")
        cell = {k: f"{times[k]:.3f}" if k in times else "-" for k in ("graph", "vmap", "loop")}
        print(f"| {name} | {n / 1e6:.1f}M | {path} | {cell['graph']} | {cell['vmap']} | "
              f"{cell['loop']} | {times['loop'] / best:.2f}x |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
