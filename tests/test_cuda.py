"""The population engine on a CUDA device (skipped where there is none)."""

import pytest
import torch

from neuroprune.engine import PopulationTrainer, ReferenceTrainer, TrainSettings, init_state
from neuroprune.masks import bits_to_mask, make_layout, random_bits
from neuroprune.models import ModelSpec, build_model, prunable_names

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _masks(spec, n, sparsity=0.9):
    model = build_model(spec)
    shapes = {k: tuple(v.shape) for k, v in model.named_parameters()}
    layout = make_layout({k: shapes[k] for k in prunable_names(model)}, sparsity, "erk")
    g = torch.Generator().manual_seed(0)
    return [bits_to_mask(layout, random_bits(layout, g)) for _ in range(n)]


@pytest.mark.parametrize("arch,widths", [("mlp", (300, 100)), ("lenet5", (120, 84))])
def test_cuda_population_equals_cuda_reference_and_cpu(digits, arch, widths):
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    spec = ModelSpec.zoo(arch, digits.input_shape, digits.num_classes, widths=widths)
    masks = _masks(spec, 8)
    init = init_state(spec, 0)
    settings = TrainSettings(lr=0.05, batch_size=64)
    gpu = PopulationTrainer(spec, digits, settings, device="cuda").run(
        init, masks, 2, 0, keep_weights=True, rescale_init=True)
    ref = ReferenceTrainer(spec, digits, settings, device="cuda").run(
        init, masks, 2, 0, rescale_init=True)
    cpu = PopulationTrainer(spec, digits, settings).run(init, masks, 2, 0, rescale_init=True)
    for a, b, c in zip(gpu.metrics, ref.metrics, cpu.metrics):
        assert a["val_loss"] == pytest.approx(b["val_loss"], rel=1e-3)
        assert a["val_loss"] == pytest.approx(c["val_loss"], rel=1e-3)
    for mask, w in zip(masks, gpu.weights):
        for k, m in mask.items():
            assert torch.count_nonzero(w[k][~m]) == 0


def test_cuda_large_population_runs_in_one_chunk(digits):
    spec = ModelSpec.zoo("mlp", digits.input_shape, digits.num_classes, widths=(300, 100))
    trainer = PopulationTrainer(spec, digits, TrainSettings(), device="cuda")
    res = trainer.run(init_state(spec, 0), _masks(spec, 256), 1, 0)
    assert len(res.metrics) == 256 and trainer.chunk_size >= 256
