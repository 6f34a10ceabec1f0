"""The population engine on a CUDA device (skipped where there is none)."""

import pytest
import torch

from neuroprune.engine import (EngineConfig, EvalTask, PerNetworkTrainer, StackedTrainer,
                               TrainSettings, init_state)
from neuroprune.masks import unflatten

from helpers import population

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.mark.parametrize("name,options", [("mlp", {"widths": (300, 100)}), ("lenet5", {}),
                                          ("resnet20", {"width": 8})])
def test_cuda_population_equals_cuda_alone_and_cpu(digits, name, options):
    spec, layout, bits = population(digits, name, n=8, sparsity=0.9, **options)
    settings = TrainSettings(lr=0.05, batch_size=64)
    task = EvalTask(masks=bits, init=init_state(spec, 0), epochs=2, keep_weights=True,
                    rescale_init=name != "resnet20")
    gpu = StackedTrainer(spec, digits, settings, layout, device="cuda").run(task)
    alone = PerNetworkTrainer(spec, digits, settings, layout, device="cuda").run(task)
    cpu = StackedTrainer(spec, digits, settings, layout).run(task)
    for other in (alone, cpu):
        torch.testing.assert_close(gpu.metrics["val_loss"], other.metrics["val_loss"],
                                   rtol=1e-3, atol=1e-4)
    for k, m in unflatten(layout, bits).items():
        assert torch.count_nonzero(gpu.weights[k][~m]) == 0


def test_cuda_fp64_population_equals_alone_to_the_last_digits(digits):
    spec, layout, bits = population(digits, "resnet20", n=4, width=8)
    settings = TrainSettings(lr=0.01, batch_size=64)
    task = EvalTask(masks=bits, init=init_state(spec, 0), epochs=1)
    engine = EngineConfig(precision="fp64")
    a = StackedTrainer(spec, digits, settings, layout, "cuda", engine).run(task)
    b = PerNetworkTrainer(spec, digits, settings, layout, "cuda", engine).run(task)
    torch.testing.assert_close(a.metrics["val_loss"], b.metrics["val_loss"], rtol=1e-9,
                               atol=1e-10)


@pytest.mark.parametrize("precision", ["tf32", "bf16"])
def test_reduced_precision_stays_close_and_restores_the_flags(digits, precision):
    spec, layout, bits = population(digits, widths=(300, 100), n=4)
    settings = TrainSettings(lr=0.05)
    task = EvalTask(masks=bits, init=init_state(spec, 0), epochs=2, test=True)
    before = torch.backends.cuda.matmul.allow_tf32
    fp32 = StackedTrainer(spec, digits, settings, layout, "cuda").run(task)
    low = StackedTrainer(spec, digits, settings, layout, "cuda",
                         EngineConfig(precision=precision)).run(task)
    assert torch.backends.cuda.matmul.allow_tf32 == before
    assert (low.metrics["test_accuracy"] - fp32.metrics["test_accuracy"]).abs().max() < 0.05


def test_cuda_large_population_runs_in_one_chunk(digits):
    spec, layout, bits = population(digits, widths=(300, 100), n=256)
    trainer = StackedTrainer(spec, digits, TrainSettings(), layout, device="cuda")
    res = trainer.run(EvalTask(masks=bits, init=init_state(spec, 0), epochs=1))
    assert len(res) == 256 and trainer.chunk_size >= 256
