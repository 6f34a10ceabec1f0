import warnings

import pytest
import torch

from neuroprune.engine import (EvalTask, PopulationTrainer, ReferenceTrainer, TrainSettings,
                               init_state)
from neuroprune.masks import bits_to_mask, make_layout, random_bits
from neuroprune.models import ModelSpec, build_model, prunable_names


def _setup(data, arch="mlp", widths=(32, 16), sparsity=0.8, n=3, seed=0):
    spec = ModelSpec.zoo(arch, data.input_shape, data.num_classes, widths=widths)
    model = build_model(spec)
    shapes = {k: tuple(v.shape) for k, v in model.named_parameters()}
    layout = make_layout({k: shapes[k] for k in prunable_names(model)}, sparsity, "erk")
    g = torch.Generator().manual_seed(seed)
    masks = [bits_to_mask(layout, random_bits(layout, g)) for _ in range(n)]
    return spec, layout, masks


@pytest.mark.parametrize("arch,widths,optimizer", [("mlp", (32, 16), "sgd"),
                                                    ("mlp", (20,), "adam"),
                                                    ("lenet5", (24, 12), "sgd")])
def test_population_equals_training_each_network_alone(digits, arch, widths, optimizer):
    spec, _, masks = _setup(digits, arch, widths, n=3)
    settings = TrainSettings(optimizer=optimizer, lr=0.05 if optimizer == "sgd" else 3e-3,
                             batch_size=128, schedule="cosine")
    inits = [init_state(spec, s) for s in (1, 2, 3)]
    pop = PopulationTrainer(spec, digits, settings).run(inits, masks, 2, data_seed=5,
                                                        keep_weights=True, collect_grads=True,
                                                        test=True)
    ref = ReferenceTrainer(spec, digits, settings).run(inits, masks, 2, data_seed=5,
                                                       keep_weights=True, collect_grads=True,
                                                       test=True)
    for a, b in zip(pop.metrics, ref.metrics):
        for k in ("train_loss", "val_loss", "test_loss", "magnitude", "gradient"):
            assert a[k] == pytest.approx(b[k], rel=1e-4, abs=1e-6), k
        assert a["val_accuracy"] == pytest.approx(b["val_accuracy"], abs=1 / 270 + 1e-6)
    for wa, wb in zip(pop.weights, ref.weights):
        for k in wa:
            torch.testing.assert_close(wa[k], wb[k], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_optimizer_step_is_fused(optimizer):
    # With stacked parameters the step is memory-bound: one fused pass, not one per operation.
    opt = TrainSettings(optimizer=optimizer).make_optimizer([torch.zeros(3, requires_grad=True)])
    assert opt.defaults["fused"] is True


def test_masked_weights_stay_exactly_zero_and_kept_ones_move(digits):
    spec, _, masks = _setup(digits, n=4)
    settings = TrainSettings(optimizer="adam", lr=1e-2, weight_decay=1e-3)
    init = init_state(spec, 0)
    res = PopulationTrainer(spec, digits, settings).run(init, masks, 2, 0, keep_weights=True)
    for mask, w in zip(masks, res.weights):
        for k, m in mask.items():
            assert torch.count_nonzero(w[k][~m]) == 0
            assert not torch.equal(w[k][m], init[k][m])


def test_results_do_not_depend_on_chunking(digits):
    spec, _, masks = _setup(digits, n=5)
    settings = TrainSettings(lr=0.05)
    init = init_state(spec, 0)
    a = PopulationTrainer(spec, digits, settings, chunk_size=5).run(init, masks, 1, 3)
    b = PopulationTrainer(spec, digits, settings, chunk_size=2).run(init, masks, 1, 3)
    for x, y in zip(a.metrics, b.metrics):
        assert x["val_loss"] == pytest.approx(y["val_loss"], rel=1e-5)


def test_different_masks_give_different_results_and_same_mask_same(digits):
    spec, _, masks = _setup(digits, n=2)
    init = init_state(spec, 0)
    res = PopulationTrainer(spec, digits, TrainSettings()).run(
        init, [masks[0], masks[1], masks[0]], 1, 0)
    assert res.metrics[0]["val_loss"] == res.metrics[2]["val_loss"]
    assert res.metrics[0]["val_loss"] != res.metrics[1]["val_loss"]


def test_diverging_network_is_flagged_and_others_unharmed(digits):
    spec, _, masks = _setup(digits, n=2)
    init = init_state(spec, 0)
    bad = {k: v.clone() for k, v in init.items()}
    bad["1.weight"][0, 0] = float("nan")
    masks[1]["1.weight"][0, 0] = True
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = PopulationTrainer(spec, digits, TrainSettings()).run(
            [init, bad], [masks[0], masks[1]], 1, 0)
    alone = PopulationTrainer(spec, digits, TrainSettings()).run(init, [masks[0]], 1, 0)
    assert res.metrics[1]["diverged"] == 1.0 and res.metrics[1]["val_accuracy"] == 0.0
    assert res.metrics[0]["diverged"] == 0.0
    assert res.metrics[0]["val_loss"] == pytest.approx(alone.metrics[0]["val_loss"], rel=1e-5)
    assert any("diverged" in str(w.message) for w in caught)


def test_evaluators_agree(digits):
    from neuroprune.backends import BACKENDS
    spec, _, masks = _setup(digits, n=3)
    settings = TrainSettings(lr=0.05)
    task = EvalTask(masks=masks, init=init_state(spec, 0), epochs=1, data_seed=1)
    out = {}
    for name in ("local", "sequential"):
        with BACKENDS.load(name)(spec=spec, data=digits, settings=settings) as ev:
            out[name] = ev.evaluate(task).metrics
    for a, b in zip(out["local"], out["sequential"]):
        assert a["val_loss"] == pytest.approx(b["val_loss"], rel=1e-4)


def test_empty_population_and_wrong_init_count(digits):
    spec, _, masks = _setup(digits, n=2)
    trainer = PopulationTrainer(spec, digits, TrainSettings())
    assert trainer.run(init_state(spec, 0), [], 1, 0).metrics == []
    with pytest.raises(ValueError):
        trainer.run([init_state(spec, 0)], masks, 1, 0)


def test_out_of_memory_halves_the_chunk_and_gives_the_same_results(digits, monkeypatch):
    spec, _, masks = _setup(digits, n=6)
    init = init_state(spec, 0)
    trainer = PopulationTrainer(spec, digits, TrainSettings(), chunk_size=6)
    expected = trainer.run(init, masks, 1, 0).metrics
    real = trainer._run_chunk
    seen = []

    def small_memory(inits, *args):
        seen.append(len(inits))
        if len(inits) > 2:  # pretend the device holds at most 2 networks
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")
        return real(inits, *args)

    monkeypatch.setattr(trainer, "_run_chunk", small_memory)
    with pytest.warns(RuntimeWarning, match="out of device memory"):
        got = trainer.run(init, masks, 1, 0).metrics
    assert trainer.chunk_size == 1 or trainer.chunk_size == 2
    assert seen[0] == 6 and max(seen[1:]) <= 3
    for a, b in zip(got, expected):
        assert a["val_loss"] == pytest.approx(b["val_loss"], rel=1e-5)


def test_rescaled_init_scales_kept_weights_by_inverse_sqrt_density(digits):
    spec, layout, masks = _setup(digits, n=2, sparsity=0.75)
    init = init_state(spec, 0)
    settings = TrainSettings()
    pop = PopulationTrainer(spec, digits, settings).run(init, masks, 0, 0, keep_weights=True,
                                                        rescale_init=True)
    for mask, w in zip(masks, pop.weights):
        for k, m in mask.items():
            scale = float(m.float().mean()) ** -0.5
            torch.testing.assert_close(w[k], init[k] * m * scale)
    ref = ReferenceTrainer(spec, digits, settings).run(init, masks, 1, 0, rescale_init=True)
    got = PopulationTrainer(spec, digits, settings).run(init, masks, 1, 0, rescale_init=True)
    for a, b in zip(got.metrics, ref.metrics):
        assert a["val_loss"] == pytest.approx(b["val_loss"], rel=1e-4)
