"""What the Ray backend ships: each shard carries only itself (bytes measured with Ray's own
serialiser, no Ray started), against the payload bound of benchmarks/ray_traffic.py."""

import importlib.util
import re
import subprocess
import sys

import pytest
import torch

pytest.importorskip("ray")

from neuroprune.engine import EvalTask, PopulationResult  # noqa: E402
from neuroprune.engine.wire import (PackedResult, PackedTask, pack_bits, shared_part,  # noqa: E402
                                    unpack_bits)

from helpers import REPO  # noqa: E402

BENCH = REPO / "benchmarks" / "ray_traffic.py"


def _benchmark():
    spec = importlib.util.spec_from_file_location("ray_traffic", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("n", [1, 7, 8, 9, 1001])
def test_bits_pack_eight_to_a_byte_and_unpack_to_the_same_masks(n):
    bits = torch.rand(5, n, generator=torch.Generator().manual_seed(n)) < 0.5
    packed = pack_bits(bits)
    assert packed.dtype == torch.uint8 and packed.shape == (5, -(-n // 8))
    assert torch.equal(unpack_bits(packed, n), bits)
    assert torch.equal(unpack_bits(pack_bits(bits[:, 1:]), n - 1), bits[:, 1:])  # a view
    assert unpack_bits(pack_bits(bits[:0]), n).shape == (0, n)
    with pytest.raises(ValueError, match="uint8"):
        unpack_bits(packed, n + 8)


def test_a_packed_shard_is_the_same_task_with_its_own_small_storage():
    from neuroprune.backends.ray_actors import serialized_bytes

    g = torch.Generator().manual_seed(0)
    bits = torch.rand(40, 5000, generator=g) < 0.3
    task = EvalTask(masks=bits, init={"w": torch.randn(50, 100, generator=g)}, epochs=2,
                    data_seed=4, network_settings={"lr": torch.rand(40, generator=g)},
                    activations=[{"hidden": f"relu(x) * {i}"} for i in range(40)])
    shard = PackedTask.of(task, 10, 20)
    again = shard.unpack(shared_part(task))
    view = task.slice(10, 20)
    assert torch.equal(again.masks, view.masks) and again.offset == 10
    assert torch.equal(again.seeds, view.seeds) and again.activations == view.activations
    assert torch.equal(again.network_settings["lr"], view.network_settings["lr"])
    assert again.init is task.init and (again.epochs, again.data_seed) == (2, 4)
    # the view carries all 40 x 5000 mask bytes; the shard its 10 x 625 packed ones
    assert serialized_bytes(view) > 40 * 5000
    assert 10 * 625 < serialized_bytes(shard) < 10 * 625 + 2000


def test_results_travel_with_packed_masks_and_own_metric_tensors():
    from neuroprune.backends.ray_actors import serialized_bytes

    whole = torch.rand(100, 3000) < 0.5
    result = PopulationResult(metrics={"val_loss": torch.rand(100, dtype=torch.float64)[:4]},
                              masks=whole[:4], extras={"curve": [[{"epoch": 1}]] * 4})
    packed = PackedResult.of(result)
    back = packed.unpack()
    assert torch.equal(back.masks, whole[:4]) and back.extras == result.extras
    assert torch.equal(back.metrics["val_loss"], result.metrics["val_loss"])
    assert serialized_bytes(packed) < 4 * 3000 // 8 + 4 * 8 + 2000 < serialized_bytes(result)


@pytest.mark.parametrize("shards", [4, 64])
def test_lenet_300_100_generation_costs_within_1_2x_of_its_payload(shards):
    bench = _benchmark()
    task = bench.population("lenet_300_100", 256)[2]
    n = task.masks.shape[1]
    assert n == 784 * 300 + 300 * 100 + 100 * 10
    t = bench.driver_traffic(task, shards)
    assert t["payload"] == 256 * (-(-n // 8) + 8 * len(bench.METRICS))
    assert t["payload"] < t["sent"] + t["received"] <= 1.2 * t["payload"]
    assert t["received"] < 256 * 8 * len(bench.METRICS) + shards * 2500
    assert t["views"] > shards * 256 * n  # as it was: every shard carried the whole population


def test_traffic_benchmark_prints_its_table():
    out = subprocess.run([sys.executable, str(BENCH), "--models", "lenet_300_100",
                          "--populations", "64", "--shards", "4", "--live-population", "0"],
                         capture_output=True, text=True, timeout=300, check=True,
                         cwd=REPO).stdout.strip().splitlines()
    assert out[0].split()[:3] == ["model", "P", "shards"]
    assert re.match(r"lenet_300_100 +64 +4 +0\.07 GB +\d+\.\d\d MB +0\.0\d\d MB +2\.13 MB "
                    r"+\d\.\d{3}$", out[1])
