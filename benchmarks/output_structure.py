"""Multi-label classification with and without the output-structure regulariser.

    python benchmarks/output_structure.py --seeds 5 --epochs 30

For each multi-label dataset (``multilabel``: scikit-learn's make_multilabel_classification;
``digits_attributes``: the digits images with six properties of the digit as labels;
``yeast``: the real Yeast table, 14 functional categories of a gene, which needs
``neuroprune[multilabel]``; ``--datasets`` picks some) and each
seed, one mask search (``configs/multilabel_digits_attributes.yaml``'s network and training:
an MLP, magnitude pruning at ``--sparsity``) trains without and with
``training.output_structure`` (Belharbi et al. 2018); printed: test subset accuracy, Hamming
loss and micro-F1, mean ± std over seeds, and the paired difference (with minus without)
with its paired t-test p-value over the seeds.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from scipy.stats import ttest_rel

from neuroprune.config import load_config
from neuroprune.searches.mask_search import MaskSearch
from neuroprune.workbench import Workbench

METRICS = ("test_accuracy", "test_hamming_loss", "test_micro_f1")


def run(dataset: str, seed: int, regularised: bool, args, folder: Path) -> dict:
    over = [f"data.dataset={dataset}", f"seed={seed}", f"training.epochs={args.epochs}",
            f"sparsity.target={args.sparsity}", "device=cpu"]
    over.append(f"training.output_structure.strength={args.strength}" if regularised else
                "training.output_structure=null")
    cfg = load_config("configs/multilabel_digits_attributes.yaml", over)
    out = folder / f"{dataset}-{seed}-{int(regularised)}"
    return MaskSearch(Workbench.from_config(cfg)).run(out, progress=False, log=lambda _: None)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--sparsity", type=float, default=0.5)
    ap.add_argument("--strength", type=float, default=1.0)
    ap.add_argument("--datasets", nargs="+", default=["multilabel", "digits_attributes", "yeast"])
    args = ap.parse_args(argv)
    print("| dataset | output_structure | subset accuracy | Hamming loss | micro-F1 |")
    print("| --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as tmp:
        for dataset in args.datasets:
            got = {r: [run(dataset, s, r, args, Path(tmp)) for s in range(args.seeds)]
                   for r in (False, True)}
            for r in (False, True):
                cells = [f"{statistics.mean(x[m] for x in got[r]):.4f} ± "
                         f"{statistics.pstdev(x[m] for x in got[r]):.4f}" for m in METRICS]
                print(f"| {dataset} | {'on' if r else 'off'} | {' | '.join(cells)} |")
            cells = []
            for m in METRICS:
                off, on = [x[m] for x in got[False]], [x[m] for x in got[True]]
                p = ttest_rel(on, off).pvalue if args.seeds > 1 else float("nan")
                cells.append(f"{statistics.mean(b - a for a, b in zip(off, on)):+.4f} "
                             f"(p={p:.2g})")
            print(f"| {dataset} | on - off (paired t-test) | {' | '.join(cells)} |")


if __name__ == "__main__":
    main()
