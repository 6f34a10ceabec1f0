"""The benchmark scripts still run end to end (their figures are not asserted: they are
measurements, recorded in docs/benchmarks.md)."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(script, *args):
    return subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), *args],
                          capture_output=True, text=True, timeout=300, check=True,
                          cwd=ROOT).stdout.strip().splitlines()


def test_population_eval_prints_both_rates_and_the_speedup():
    lines = _run("population_eval.py", "--population", "3", "--one-by-one", "1", "--repeats",
                 "1", "--optimizer", "adam")
    assert re.match(r"plain loop: +[\d,]+ individual-samples/s \(1 networks one after",
                    lines[-6])
    assert re.match(r"one by one: +[\d,]+ individual-samples/s", lines[-5])
    assert lines[-4].startswith("engine: stacked trainer (population graph)")
    assert re.match(r"population: +[\d,]+ individual-samples/s \(chunk size 3; [\d.]+ ms per step",
                    lines[-3])
    assert re.match(r"auto: +[\d,]+ individual-samples/s \(.*auto: measured, predicted for",
                    lines[-2])
    assert re.fullmatch(r"speedup: \d+\.\dx; over the plain loop: stacked \d+\.\d\dx, "
                        r"auto \d+\.\d\dx", lines[-1])


def test_population_eval_takes_any_zoo_model_on_generated_images():
    lines = _run("population_eval.py", "--arch", "resnet20", "--width", "4", "--dataset",
                 "images", "--population", "2", "--one-by-one", "1", "--repeats", "1",
                 "--batch-size", "64")
    assert "resnet20" in lines[0] and re.match(r"speedup: \d+\.\dx", lines[-1])


def test_generation_overhead_reports_breed_stack_collect():
    lines = _run("generation.py", "--population", "8", "--repeats", "1", "--train",
                 "--generations", "2")
    assert re.match(r"P= +8: breed [\d.]+s, stack [\d.]+s \(\d+ new masks\), collect [\d.]+s",
                    lines[1])
    assert "individual-samples/s over whole generations" in lines[2]


def test_tune_batch_compares_the_same_trials_one_by_one_and_batched():
    lines = _run("tune_batch.py", "--trials", "2", "--set", "method.population=4",
                 "--set", "method.generations=1", "--set", "training.epochs=1")
    assert re.match(r"plain Optuna: +[\d,]+ trials/hour", lines[-5])
    assert re.match(r"one by one: +[\d,]+ trials/hour .*, \d+\.\d\dx plain Optuna", lines[-4])
    assert re.match(r"batch of 2: +[\d,]+ trials/hour", lines[-3])
    assert re.fullmatch(r"largest objective difference between the runs: 0\.00e\+00", lines[-2])
    assert re.fullmatch(r"batch against one by one: \d+\.\d\dx; against plain Optuna: "
                        r"\d+\.\d\dx", lines[-1])


#: a speedup with its 95% interval, or none measurable where the interval holds 1
SPEEDUP = r"(\d+\.\d\dx \(\d+\.\d\d-\d+\.\d\d\)|no speedup measurable \(\d+\.\d\d-\d+\.\d\dx\))"


def test_structured_latency_prints_the_speedup_of_the_compact_network():
    lines = _run("structured_latency.py", "--arch", "vgg11", "--width", "0.125", "--size",
                 "16", "--batch", "8", "--repeats", "1", "--max-seconds", "0.5")
    assert re.fullmatch(r"FLOPs removed: 7\d\.\d%", lines[-2])
    assert re.fullmatch(r"speedup: " + SPEEDUP, lines[-1])
    # at least 6 rounds: fewer give no interval for a median
    assert int(re.search(r"batch 8, (\d+) interleaved rounds", lines[0])[1]) >= 6
    assert re.search(r"ms \(quartiles [\d.]+-[\d.]+, median within ±[\d.]+%\)", lines[1])


def test_structured_latency_times_the_networks_a_comparison_found(tmp_path):
    import pytest
    pytest.importorskip("torch_pruning")
    from neuroprune.config import load_config
    from neuroprune.searches.comparison import Comparison
    from neuroprune.workbench import Workbench
    tree = {"kind": "comparison", "data": {"dataset": "digits"}, "device": "cpu",
            "model": {"name": "conv2", "width": 0.125, "widths": [16]},
            "sparsity": {"structure": "channel", "budget": "flops", "latency_repeats": 0},
            "training": {"epochs": 1, "batch_size": 128},
            "comparison": {"methods": [{"name": "l1_filter", "dense_epochs": 1}],
                           "sparsities": [0.5, 0.75], "seeds": [0, 1]}}
    Comparison(Workbench.from_config(load_config(tree=tree))).run(
        tmp_path / "c", progress=False, log=lambda _: None)
    lines = _run("structured_latency.py", "--runs", str(tmp_path / "c"), "--batch", "8",
                 "--repeats", "1", "--max-seconds", "0.5")
    assert lines[0].startswith("4 networks under")
    assert lines[1] == "| method | 50% fewer FLOPs | 75% fewer FLOPs |"
    assert re.fullmatch(rf"\| l1_filter \| {SPEEDUP} \| {SPEEDUP} \|", lines[3])


def test_ray_scaling_prints_local_and_ray_rates():
    lines = _run("ray_scaling.py", "--population", "4", "--epochs", "1", "--repeats", "1",
                 "--cpus", "2")
    rates = [line for line in lines if "individual-samples/s" in line]
    assert len(rates) == 3 and rates[0].startswith("local backend")
    assert lines[-1].startswith("ray overhead at equal resources")


def test_neat_eval_scores_the_same_genomes_alike_with_every_evaluator():
    lines = _run("neat_eval.py", "--population", "8", "--generations", "2", "--episodes", "1",
                 "--max-steps", "40", "--workers", "1")
    rows = [line for line in lines if line.startswith("| neuroprune/Track-v0") or
            line.startswith("| CartPole-v1")]
    assert len(rows) == 6 and all(row.endswith("| yes |") for row in rows), rows


def test_disk_cache_trains_the_same_networks_as_memory():
    lines = _run("disk_cache.py", "--images", "200", "--population", "2", "--epochs", "1")
    assert re.match(r" *memory: load +[\d.]+ s, training +[\d,]+ individual-samples/s",
                    lines[-3])
    assert lines[-2].endswith("on disk: True)")
    assert re.search(r"same val losses: True; disk / memory: \d+\.\d\dx$", lines[-1])


def test_private_mnist_chooses_learning_rates_on_validation_and_pairs_the_seeds(tmp_path):
    import numpy as np
    import pytest
    pytest.importorskip("opacus")
    images, labels = np.random.default_rng(0).integers(0, 256, (200, 28, 28)), np.arange(200) % 10
    for name, array in (("t10k-images-idx3-ubyte", images), ("t10k-labels-idx1-ubyte", labels)):
        header = bytes([0, 0, 8, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
        (tmp_path / name).write_bytes(header + array.astype(np.uint8).tobytes())
    lines = _run("private_mnist.py", "--data-root", str(tmp_path), "--seeds", "2", "--lrs",
                 "0.1", "1", "--epsilons", "3", "8", "--set", "training.epochs=1")
    assert lines[0] == "median validation accuracy over 2 seeds, private methods at epsilon 3:"
    assert re.fullmatch(r"chosen: not private lr [\d.]+, dpsgd lr [\d.]+, lsg lr [\d.]+",
                        lines[5])
    assert lines[8] == "| epsilon | dpsgd | lsg | lsg - dpsgd | paired t-test p |"
    acc, p = r"-?\d\.\d{4} ± \d\.\d{4}", r"(\d\.\d{3}|< 0\.001|nan)"
    assert all(re.fullmatch(rf"\| {e} \| {acc} \| {acc} \| {acc} \| {p} \|", row)
               for e, row in zip((3, 8), lines[10:12])), lines
    assert lines[-1].startswith("epsilon 8: dpsgd spent 8.00")
