"""Truly sparse against masked dense training: time per epoch and peak memory of an MLP
(one hidden layer of each width, 99% and 99.9% sparsity) trained with the sparse trainer's
CSR layers (``neuroprune.engine.sparse.SparseLinear``) and with masked dense weights (the
product ``x @ (W * M)^T`` the dense trainers compute).

Data: MNIST-10k (``--data-root`` holding ``t10k-images-idx3-ubyte.gz`` and
``t10k-labels-idx1-ubyte.gz``; the first 8,000 images train), or without it generated
MNIST-shaped data (8,000 x 784, 10 classes); and a generated tabular set (``--features``).

Every (data, trainer, sparsity, width) runs in a fresh process; memory is the peak resident
set size (``resource.getrusage(...).ru_maxrss``) of that process after training minus its RSS
once the data is loaded (torch allocations are invisible to tracemalloc), and, apart from
what the process holds anyway (allocator pools, activations, libraries), the training state:
the bytes of the tensors training keeps (weights or values, their gradients and momentum,
masks or sparse indices), summed from the tensors themselves after training. Time per epoch is
the median over ``--epochs`` epochs. A width whose masked dense tensors would not fit (the
estimate of ``neuroprune.engine.memory``) is reported as refused and trains sparsely only.

On a machine whose cores are busy, run it with ``OMP_NUM_THREADS=1``: with more threads than
free cores, the sparse kernels' threads wait on each other and an epoch took up to 30 times
longer here (the dense ones suffered far less), which measures the machine, not the method.

    OMP_NUM_THREADS=1 python benchmarks/truly_sparse.py [--data-root DIR] \\
        [--widths 1024,4096] [--tabular-widths 1024,4096] [--features 10000]
"""

from __future__ import annotations

import argparse
import gzip
import multiprocessing as mp
import os
import resource
import statistics
import time

import torch
import torch.nn.functional as F


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def load(kind: str, data_root: str | None, features: int, samples: int):
    g = torch.Generator().manual_seed(0)
    if kind == "mnist" and data_root:
        with gzip.open(os.path.join(data_root, "t10k-images-idx3-ubyte.gz")) as f:
            x = torch.frombuffer(bytearray(f.read()[16:]), dtype=torch.uint8)
        with gzip.open(os.path.join(data_root, "t10k-labels-idx1-ubyte.gz")) as f:
            y = torch.frombuffer(bytearray(f.read()[8:]), dtype=torch.uint8)
        return x.view(-1, 784)[:8000].float() / 255, y[:8000].long()
    if kind == "mnist":
        return torch.rand(8000, 784, generator=g), torch.randint(0, 10, (8000,), generator=g)
    x = torch.randn(samples, features, generator=g)
    w = torch.randn(features, generator=g)
    return x, (x @ w > 0).long()


def random_structure(out: int, inp: int, density: float, g: torch.Generator):
    nnz = max(1, int(round(density * out * inp)))
    flat = torch.unique(torch.randint(0, out * inp, (int(nnz * 1.02) + 8,), generator=g))
    flat = flat[torch.randperm(len(flat), generator=g)[:nnz]].sort().values
    return flat // inp, flat % inp


def dense_bytes(inp: int, width: int, classes: int, batch: int) -> int:
    params = inp * width + width * classes
    return params * 4 * 4 + batch * (width + classes) * 4 * 2  # w, grad, momentum, mask


def job(args, q):
    from neuroprune.engine.sparse import SparseLinear
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    x, y = load(args["data"], args["data_root"], args["features"], args["samples"])
    classes = int(y.max()) + 1
    inp, width, density = x.shape[1], args["width"], 1 - args["sparsity"]
    g = torch.Generator().manual_seed(1)
    base = rss()
    shapes = [(width, inp), (classes, width)]
    if args["trainer"] == "sparse":
        layers = []
        for out, i in shapes:
            r, c = random_structure(out, i, density, g)
            v = (torch.rand(len(r), generator=g) * 2 - 1) / i ** 0.5
            layers.append(SparseLinear(r, c, v, torch.zeros(out), (out, i)))
        params = [p for layer in layers for p in layer.parameters()]

        def forward(b):
            return layers[1](F.relu(layers[0](b)))
    else:
        ws, ms, bs = [], [], []
        for out, i in shapes:
            r, c = random_structure(out, i, density, g)
            m = torch.zeros(out, i)
            m[r, c] = 1
            ws.append(((torch.rand(out, i, generator=g) * 2 - 1) / i ** 0.5).requires_grad_())
            ms.append(m)
            bs.append(torch.zeros(out, requires_grad=True))
        params = ws + bs

        def forward(b):
            h = F.relu(F.linear(b, ws[0] * ms[0], bs[0]))
            return F.linear(h, ws[1] * ms[1], bs[1])
    opt = torch.optim.SGD(params, lr=0.01, momentum=0.9)
    times = []
    for _ in range(args["epochs"]):
        t = time.perf_counter()
        for s in range(0, len(y), 128):
            loss = F.cross_entropy(forward(x[s:s + 128]), y[s:s + 128])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        times.append(time.perf_counter() - t)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    held = [*params, *(p.grad for p in params if p.grad is not None),
            *(v for st in opt.state.values() for v in st.values() if torch.is_tensor(v))]
    if args["trainer"] == "sparse":
        held += [getattr(layer, k) for layer in layers
                 for k in ("rows", "cols", "crow", "t_perm", "t_crow", "t_col")]
    else:
        held += ms
    state = sum(t.numel() * t.element_size() for t in held)
    q.put((statistics.median(times), max(0, peak - base), state))


def run(**kw):
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=job, args=(kw, q))
    p.start()
    out = q.get()
    p.join()
    return out


def main(argv=None):
    from neuroprune.engine.memory import free_memory, human
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-root", default=None, help="folder with MNIST's t10k IDX files "
                    "(MNIST-10k); default: generated MNIST-shaped data")
    ap.add_argument("--widths", default="1024,4096", help="hidden widths on MNIST")
    ap.add_argument("--tabular-widths", default="1024,4096", help="hidden widths, tabular")
    ap.add_argument("--features", type=int, default=10000, help="tabular features")
    ap.add_argument("--samples", type=int, default=1000, help="tabular samples")
    ap.add_argument("--sparsities", default="0.99,0.999")
    ap.add_argument("--epochs", type=int, default=3, help="epochs; the median is reported")
    a = ap.parse_args(argv)
    free = free_memory(torch.device("cpu"))
    print(f"torch threads: {os.environ.get('OMP_NUM_THREADS', '2')}")
    print("| data | sparsity | width | sparse s/epoch | dense s/epoch | speed-up | "
          "sparse peak RSS | dense peak RSS | RSS ratio | sparse state | dense state | "
          "state ratio |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for data, widths in (("mnist", a.widths), ("tabular", a.tabular_widths)):
        inp = 784 if data == "mnist" else a.features
        for sp in map(float, a.sparsities.split(",")):
            for w in map(int, widths.split(",")):
                kw = dict(data=data, data_root=a.data_root, features=a.features,
                          samples=a.samples, sparsity=sp, width=w, epochs=a.epochs)
                st, sm, ss = run(trainer="sparse", **kw)
                if dense_bytes(inp, w, 10, 128) > 0.8 * free:
                    print(f"| {data} | {sp} | {w} | {st:.3f} | refused | | {human(sm)} | "
                          f"refused | | {human(ss)} | refused | |", flush=True)
                    continue
                dt, dm, ds = run(trainer="dense", **kw)
                print(f"| {data} | {sp} | {w} | {st:.3f} | {dt:.3f} | {dt / st:.1f}x | "
                      f"{human(sm)} | {human(dm)} | {dm / max(sm, 1):.1f}x | {human(ss)} | "
                      f"{human(ds)} | {ds / max(ss, 1):.1f}x |", flush=True)


if __name__ == "__main__":
    main()
