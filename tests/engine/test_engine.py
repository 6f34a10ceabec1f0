"""The population engine: every network of a population equals that network trained alone."""

import copy
import json
import os
import subprocess
import sys
import time
import warnings
from dataclasses import replace

import pytest
import torch
from torch import nn

from neuroprune.data import load_dataset
from neuroprune.engine import (EngineConfig, EvalTask, GradientStatistics, LearningCurve,
                               PerNetworkTrainer, StackedTrainer, TrainingHook, TrainSettings,
                               init_state, make_trainer)
from neuroprune.masks import make_layout, unflatten
from neuroprune.models import ModelSpec, build_model, prunable_names

from helpers import population


@pytest.fixture(scope="module")
def images():
    return load_dataset("images", samples=120, image_size=16, classes=4)


def _compare(stacked, alone, weights=True, rel=1e-4):
    atol = rel / 5
    for k in ("train_loss", "val_loss", "val_accuracy", "magnitude"):
        torch.testing.assert_close(stacked.metrics[k], alone.metrics[k], rtol=rel, atol=atol,
                                   msg=k)
    if weights:
        for k in stacked.weights:
            torch.testing.assert_close(stacked.weights[k].double(), alone.weights[k].double(),
                                       rtol=rel, atol=atol, msg=k)


def _pair(spec, data, settings, layout, **engine):
    cfg = EngineConfig(**engine)
    return (StackedTrainer(spec, data, settings, layout, engine=cfg),
            PerNetworkTrainer(spec, data, settings, layout, engine=cfg))


ZOO = [("mlp", {"widths": (32, 16), "dropout": 0.3}), ("lenet_300_100", {}),
       ("lenet5", {}), ("lenet5_caffe", {}), ("conv2", {"widths": (16,), "width": 0.125}),
       ("conv4", {"widths": (16,), "width": 0.125, "batch_norm": True}),
       ("conv6", {"widths": (16,), "width": 0.125, "dropout": 0.2}),
       ("vgg11", {"width": 0.125}), ("vgg16", {"width": 0.0625}),
       ("resnet20", {"width": 4}), ("resnet32", {"width": 4, "shortcut": "pad"}),
       ("resnet56", {"width": 4})]


@pytest.mark.parametrize("name,options", ZOO, ids=[z[0] for z in ZOO])
def test_every_zoo_network_trains_in_a_population_as_it_trains_alone(images, name, options):
    """In double precision, to the last digits: in float32 a deep BatchNorm network amplifies
    the rounding differences of grouped and plain convolutions within a few steps."""
    spec, layout, bits = population(images, name, n=3, sparsity=0.5, **options)
    settings = TrainSettings(lr=0.01, batch_size=32)
    stacked, alone = _pair(spec, images, settings, layout, precision="fp64")
    assert stacked.forward.kind == "graph", stacked.fallback_reason
    inits = [init_state(spec, s) for s in (1, 2, 3)]
    task = EvalTask(masks=bits, inits={k: torch.stack([i[k] for i in inits]) for k in inits[0]},
                    epochs=1, data_seed=4, keep_weights=True, test=True, rescale_init=True,
                    seeds=torch.tensor([7, 8, 9]))
    _compare(stacked.run(task), alone.run(task), rel=1e-9)


@pytest.mark.parametrize("name,options", [("lenet5", {}), ("resnet20", {"width": 4})])
def test_float32_populations_match_alone_to_float_tolerance(images, name, options):
    spec, layout, bits = population(images, name, n=3, sparsity=0.5, **options)
    settings = TrainSettings(lr=0.01, batch_size=32)
    stacked, alone = _pair(spec, images, settings, layout)
    task = EvalTask(masks=bits, init=init_state(spec, 1), epochs=1, data_seed=4,
                    keep_weights=True, seeds=torch.tensor([7, 8, 9]))
    _compare(stacked.run(task), alone.run(task), rel=1e-4)


class UserNet(nn.Module):
    """A model written by a user: bias-free convs, BatchNorm, a residual block, dropout,
    global average pooling, a functional ReLU and a view before the classifier."""

    def __init__(self, in_channels=3, num_classes=4):
        super().__init__()
        self.stem = nn.Conv2d(in_channels, 8, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(8)
        self.a = nn.Conv2d(8, 8, 3, padding=1, bias=False)
        self.bn_a = nn.BatchNorm2d(8)
        self.drop = nn.Dropout(0.2)
        self.head = nn.Linear(8, num_classes)

    def forward(self, x):
        x = torch.relu(self.bn(self.stem(x)))
        x = x + torch.nn.functional.relu(self.bn_a(self.a(x)))
        x = torch.nn.functional.adaptive_avg_pool2d(x, 1)
        return self.head(self.drop(x.view(x.size(0), -1)))


class OddNet(UserNet):
    """Something the population graph does not know (a roll): trained through vmap."""

    def forward(self, x):
        x = torch.roll(torch.relu(self.bn(self.stem(x))), 1, 3)
        return self.head(self.drop(x.mean((2, 3))))


@pytest.mark.parametrize("cls,kind", [(UserNet, "graph"), (OddNet, "vmap")])
def test_user_models_train_in_a_population_as_alone(images, cls, kind):
    spec = ModelSpec(images.input_shape, images.num_classes, builder=cls)
    model = build_model(spec)
    shapes = {k: tuple(v.shape) for k, v in model.named_parameters()}
    layout = make_layout({k: shapes[k] for k in prunable_names(model)}, 0.5, "erk")
    _, _, bits = population(images, "mlp", n=0)
    from neuroprune.evolution.operators import Draws, random_rows
    bits = random_rows(layout, 3, Draws(1))
    settings = TrainSettings(optimizer="adam", lr=3e-3, batch_size=32)
    stacked, alone = _pair(spec, images, settings, layout)
    assert stacked.forward.kind == kind
    task = EvalTask(masks=bits, init=init_state(spec, 0), epochs=2, data_seed=1,
                    keep_weights=True, seeds=torch.tensor([3, 4, 5]))
    _compare(stacked.run(task), alone.run(task))


def test_augmentation_and_chunking_do_not_change_a_network(images):
    # in double precision: in float32, a different reduction order (another thread count)
    # moves this small BatchNorm network's loss by 1e-3 within its three steps
    spec, layout, bits = population(images, "resnet20", n=4, width=4)
    settings = TrainSettings(lr=0.05, batch_size=32)
    task = EvalTask(masks=bits, init=init_state(spec, 0), epochs=1, data_seed=2,
                    keep_weights=True)

    def engine(**kw):
        return EngineConfig(precision="fp64", **kw)
    a = StackedTrainer(spec, images, settings, layout, engine=engine(chunk_size=4),
                       augment=("crop", "flip")).run(task)
    b = StackedTrainer(spec, images, settings, layout, engine=engine(chunk_size=3),
                       augment=("crop", "flip")).run(task)
    alone = PerNetworkTrainer(spec, images, settings, layout, engine=engine(),
                              augment=("crop", "flip")).run(task.slice(2, 3))
    plain = StackedTrainer(spec, images, settings, layout, engine=engine()).run(task)
    _compare(a, b)
    torch.testing.assert_close(a.metrics["val_loss"][2:3], alone.metrics["val_loss"],
                               rtol=1e-4, atol=1e-6)
    assert not torch.allclose(a.metrics["val_loss"], plain.metrics["val_loss"])


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_optimizer_step_is_fused(optimizer):
    # With stacked parameters the step is memory-bound: one fused pass, not one per operation.
    opt = TrainSettings(optimizer=optimizer).make_optimizer([torch.zeros(3, requires_grad=True)])
    assert opt.defaults["fused"] is True


def test_masked_weights_stay_exactly_zero_and_kept_ones_move(digits):
    spec, layout, bits = population(digits, widths=(32, 16), n=4)
    settings = TrainSettings(optimizer="adam", lr=1e-2, weight_decay=1e-3)
    init = init_state(spec, 0)
    res = StackedTrainer(spec, digits, settings, layout).run(
        EvalTask(masks=bits, init=init, epochs=2, data_seed=0, keep_weights=True))
    for name, m in unflatten(layout, bits).items():
        w = res.weights[name]
        assert torch.count_nonzero(w[~m]) == 0
        assert not torch.equal(w[m], init[name].expand_as(w)[m])


def test_bool_masks_train_as_float_masks(digits):
    spec, layout, bits = population(digits, widths=(32,), n=3)
    settings = TrainSettings(lr=0.05)
    task = EvalTask(masks=bits, init=init_state(spec, 0), epochs=1, data_seed=0,
                    keep_weights=True, hooks=(GradientStatistics(),))
    floats = StackedTrainer(spec, digits, settings, layout)
    bools = StackedTrainer(spec, digits, settings, layout)
    bools.mask_dtype = torch.bool  # what CUDA uses
    _compare(floats.run(task), bools.run(task), rel=1e-6)


def test_different_masks_give_different_results_and_same_mask_same(digits):
    spec, layout, bits = population(digits, widths=(32,), n=2)
    res = StackedTrainer(spec, digits, TrainSettings(), layout).run(EvalTask(
        masks=torch.stack([bits[0], bits[1], bits[0]]), init=init_state(spec, 0), epochs=1))
    assert res.metrics["val_loss"][0] == res.metrics["val_loss"][2]
    assert res.metrics["val_loss"][0] != res.metrics["val_loss"][1]


def test_diverging_network_is_flagged_and_others_unharmed(digits):
    spec, layout, bits = population(digits, widths=(32,), n=2)
    init = init_state(spec, 0)
    bad = {k: v.clone() for k, v in init.items()}
    bad["1.weight"][0, 0] = float("nan")
    bits[1, 0] = True  # keep the poisoned weight
    inits = {k: torch.stack([init[k], bad[k]]) for k in init}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = StackedTrainer(spec, digits, TrainSettings(), layout).run(
            EvalTask(masks=bits, inits=inits, epochs=1))
    alone = StackedTrainer(spec, digits, TrainSettings(), layout).run(
        EvalTask(masks=bits[:1], init=init, epochs=1))
    assert res.metrics["diverged"].tolist() == [0.0, 1.0]
    assert res.metrics["val_accuracy"][1] == 0.0
    assert res.metrics["val_loss"][0] == pytest.approx(float(alone.metrics["val_loss"][0]),
                                                       rel=1e-5)
    assert any("diverged" in str(w.message) for w in caught)


def test_evaluators_agree(digits):
    from neuroprune.backends import BACKENDS
    spec, layout, bits = population(digits, widths=(32,), n=3)
    settings = TrainSettings(lr=0.05)
    task = EvalTask(masks=bits, init=init_state(spec, 0), epochs=1, data_seed=1)
    out = {}
    for name in ("local", "sequential"):
        with BACKENDS.load(name)(spec=spec, data=digits, settings=settings, layout=layout) as ev:
            out[name] = ev.evaluate(task).metrics["val_loss"]
    torch.testing.assert_close(out["local"], out["sequential"], rtol=1e-4, atol=1e-6)


def test_empty_population_and_bad_tasks(digits):
    spec, layout, bits = population(digits, widths=(32,), n=2)
    trainer = StackedTrainer(spec, digits, TrainSettings(), layout)
    assert len(trainer.run(EvalTask(masks=bits[:0], init=init_state(spec, 0)))) == 0
    with pytest.raises(ValueError):
        EvalTask(masks=bits, init=init_state(spec, 0), inits={})
    with pytest.raises(ValueError):
        EvalTask(masks=bits.float(), init=init_state(spec, 0))
    with pytest.raises(ValueError):
        EvalTask(masks=bits, init=init_state(spec, 0), seeds=torch.tensor([1]))


def test_out_of_memory_halves_the_chunk_and_gives_the_same_results(digits, monkeypatch):
    spec, layout, bits = population(digits, widths=(32,), n=6)
    task = EvalTask(masks=bits, init=init_state(spec, 0), epochs=1)
    trainer = StackedTrainer(spec, digits, TrainSettings(), layout,
                             engine=EngineConfig(chunk_size=6))
    expected = trainer.run(task).metrics["val_loss"]
    real = trainer.train_chunk
    seen = []

    def small_memory(chunk, *args):
        seen.append(len(chunk))
        if len(chunk) > 2:  # pretend the device holds at most 2 networks
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")
        return real(chunk, *args)

    monkeypatch.setattr(trainer, "train_chunk", small_memory)
    with pytest.warns(RuntimeWarning, match="out of device memory"):
        got = trainer.run(task).metrics["val_loss"]
    assert trainer.chunk_size in (1, 2) and seen[0] == 6 and max(seen[1:]) <= 3
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-7)


def test_rescaled_init_scales_kept_weights_by_inverse_sqrt_density(digits):
    spec, layout, bits = population(digits, widths=(32,), n=2, sparsity=0.75)
    init = init_state(spec, 0)
    res = StackedTrainer(spec, digits, TrainSettings(), layout).run(EvalTask(
        masks=bits, init=init, epochs=0, keep_weights=True, rescale_init=True))
    for name, m in unflatten(layout, bits).items():
        for i in range(2):
            scale = float(m[i].float().mean()) ** -0.5
            torch.testing.assert_close(res.weights[name][i], init[name] * m[i] * scale)


def test_learning_curve_and_gradient_statistics_hooks(digits):
    spec, layout, bits = population(digits, widths=(32,), n=2)
    res = StackedTrainer(spec, digits, TrainSettings(), layout).run(EvalTask(
        masks=bits, init=init_state(spec, 0), epochs=3,
        hooks=(LearningCurve(), GradientStatistics(keep=True))))
    curves = res.extras["curve"]
    assert len(curves) == 2 and [r["epoch"] for r in curves[0]] == [1, 2, 3]
    assert curves[1][-1]["val_accuracy"] == pytest.approx(float(res.metrics["val_accuracy"][1]))
    assert (res.metrics["gradient"] > 0).all()
    assert set(res.extras["grads"]) == set(layout.names)


def test_auto_trainer_stacks_small_networks_and_describes_itself(digits):
    spec, layout, _ = population(digits, widths=(32,), n=0)
    trainer = make_trainer(spec, digits, TrainSettings(), layout)
    assert isinstance(trainer.default, StackedTrainer)
    assert "population graph" in trainer.describe() and "free on cpu" in trainer.describe()
    assert "measured on its first chunk" in trainer.describe()
    small = trainer.footprint
    big = StackedTrainer(spec, digits, TrainSettings(batch_size=512), layout).footprint
    assert 0 < small.activations < big.activations and small.state == big.state


def test_auto_trainer_measures_once_and_trains_as_the_trainer_it_chose(digits, tmp_path,
                                                                        monkeypatch):
    from neuroprune.engine import autotune
    monkeypatch.setenv("NEUROPRUNE_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(autotune, "_CHOICES", {})
    spec, layout, bits = population(digits, widths=(32,), n=6)
    task = EvalTask(masks=bits, init=init_state(spec, 0), epochs=1, data_seed=0)
    auto = make_trainer(spec, digits, TrainSettings(), layout)
    assert auto.candidates(task) == ["stacked", "per_network", "sparse"]
    got = auto.run(task)
    choice = auto.chosen["choice"]
    assert set(auto.chosen["seconds"]) == {"stacked", "per_network", "sparse"}
    assert choice == autotune.choose(auto.chosen["seconds"])
    assert "auto: measured, predicted for" in auto.describe()
    # the measurement left no trace: the result is the chosen trainer's own
    alone = make_trainer(spec, digits, TrainSettings(), layout,
                         engine=EngineConfig(trainer=choice)).run(task)
    for k in ("val_loss", "val_accuracy", "train_loss"):
        assert torch.equal(got.metrics[k], alone.metrics[k]), k
    # remembered in the cache file: a new process (here: a new trainer with an empty
    # in-process table) takes the recorded choice without measuring
    (record,) = json.loads((tmp_path / "trainer_choices.json").read_text()).values()
    assert set(record["costs"]) == {"stacked", "per_network", "sparse"}
    assert all(c["step"] >= 0 and c["setup"] >= 0 for c in record["costs"].values())
    assert autotune.choose(autotune.predicted(record["costs"], auto.chosen["steps"])) == choice
    cache = tmp_path / "trainer_choices.json"
    table = json.loads(cache.read_text())
    (key,) = table
    cache.write_text(json.dumps({key: {**record, "disturbed": False}}))  # a quiet machine's
    monkeypatch.setattr(autotune, "_CHOICES", {})
    monkeypatch.setattr(autotune, "_MEASURED_HERE", set())
    again = make_trainer(spec, digits, TrainSettings(), layout)
    monkeypatch.setattr(again, "measure", lambda *a: pytest.fail("measured twice"))
    again.run(task)
    assert again.chosen["choice"] == choice
    # taken while other work shared the cores: the next process measures again, and keeps
    # its own measurement in place of the disturbed one
    busy = {"stacked": {"setup": 0.0, "step": 9.0}, "per_network": {"setup": 0.0, "step": 1.0},
            "sparse": {"setup": 0.0, "step": 9.0}}
    cache.write_text(json.dumps({key: {"costs": busy, "disturbed": True}}))
    monkeypatch.setattr(autotune, "_CHOICES", {})
    monkeypatch.setattr(autotune, "_MEASURED_HERE", set())
    third = make_trainer(spec, digits, TrainSettings(), layout)
    third.run(task)
    kept = json.loads(cache.read_text())[key]
    assert kept["costs"] != busy and kept["costs"] == autotune._CHOICES[key]["costs"]
    assert third.chosen["choice"] == autotune.choose(third.chosen["seconds"])
    # what the sparse trainer cannot run (a hook) is measured among the others only
    assert auto.candidates(replace(task, hooks=(RecordRows(),))) == ["stacked", "per_network"]
    assert auto.candidates(replace(task, masks=None, size=6)) == ["stacked", "per_network"]


def test_a_run_keeps_its_trainer_choices_whatever_the_machine_cache_says_later(
        digits, tmp_path, monkeypatch):
    """A resumed run trains with the trainers it started with (bit-identical resume), even
    when the machine's cache has been measured again since."""
    from neuroprune.engine import autotune
    monkeypatch.setenv("NEUROPRUNE_CACHE_DIR", str(tmp_path / "machine"))
    monkeypatch.setattr(autotune, "_CHOICES", {})
    monkeypatch.setattr(autotune, "_MEASURED_HERE", set())
    spec, layout, bits = population(digits, widths=(32,), n=4)
    task = EvalTask(masks=bits, init=init_state(spec, 0), epochs=1, data_seed=0)
    run_file = tmp_path / "run" / "trainer_choices.json"
    run_file.parent.mkdir()
    with autotune.run_choices(run_file):
        first = make_trainer(spec, digits, TrainSettings(), layout)
        first.run(task)
    (key, kept), = json.loads(run_file.read_text()).items()
    choice = first.chosen["choice"]
    # the machine's cache now says another trainer is far faster
    other = next(n for n in kept["costs"] if n != choice)
    costs = {n: {"setup": 0.0, "step": 0.001 if n == other else 9.0} for n in kept["costs"]}
    (tmp_path / "machine" / "trainer_choices.json").write_text(
        json.dumps({key: {"costs": costs, "disturbed": False}}))
    monkeypatch.setattr(autotune, "_CHOICES", {})
    with autotune.run_choices(run_file):  # the run resumed
        again = make_trainer(spec, digits, TrainSettings(), layout)
        monkeypatch.setattr(again, "measure", lambda *a: pytest.fail("measured on resume"))
        again.run(task)
    assert again.chosen["choice"] == choice
    fresh = make_trainer(spec, digits, TrainSettings(), layout)  # a new run: the machine's
    fresh.run(task)
    assert fresh.chosen["choice"] == other


def test_auto_trainer_does_not_measure_what_costs_more_than_the_task(digits, tmp_path,
                                                                     monkeypatch):
    from neuroprune.engine import autotune
    monkeypatch.setenv("NEUROPRUNE_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(autotune, "_CHOICES", {})
    monkeypatch.setattr(autotune, "BUDGET", 0.0)
    monkeypatch.setattr(autotune, "FLOOR", 0.0)
    spec, layout, bits = population(digits, widths=(32,), n=4)
    task = EvalTask(masks=bits, init=init_state(spec, 0), epochs=1, data_seed=0)
    auto = make_trainer(spec, digits, TrainSettings(), layout)
    auto.run(task)
    assert auto.chosen["choice"] == "stacked" and auto.chosen["seconds"] == {}
    assert not (tmp_path / "trainer_choices.json").exists()  # nothing measured to keep


def test_a_measurement_too_dear_for_one_generation_is_taken_once_the_search_pays_for_it(
        digits, tmp_path, monkeypatch):
    """A task too short to pay for the measurement trains with the default trainer; the
    measurement comes once the training of that kind in the process has paid for it, and
    the run's choices file then holds it in place of the put-off record."""
    from neuroprune.engine import autotune
    from neuroprune.engine.settings import steps_per_run
    monkeypatch.setenv("NEUROPRUNE_CACHE_DIR", str(tmp_path / "machine"))
    for table in ("_CHOICES", "_STEPS_SEEN", "_PUT_OFF"):
        monkeypatch.setattr(autotune, table, {})
    monkeypatch.setattr(autotune, "_MEASURED_HERE", set())
    spec, layout, bits = population(digits, widths=(32,), n=4)
    task = EvalTask(masks=bits, init=init_state(spec, 0), epochs=1, data_seed=0)
    settings = TrainSettings()
    steps = steps_per_run(len(digits.train_y), settings.batch_size, 1)
    names = 3  # stacked, per-network, sparse
    warmups = names * (1 + autotune.ROUNDS * (autotune.SHORT + autotune.LONG) / autotune.SHORT)
    # the measurement costs more than one task's training and less than two tasks'
    monkeypatch.setattr(autotune, "BUDGET", warmups * autotune.SHORT / (1.5 * steps))
    monkeypatch.setattr(autotune, "FLOOR", 0.0)
    run_file = tmp_path / "run" / "trainer_choices.json"
    run_file.parent.mkdir()
    with autotune.run_choices(run_file):
        auto = make_trainer(spec, digits, settings, layout)
        auto.run(task)
        assert auto.chosen["choice"] == "stacked" and auto.chosen["seconds"] == {}
        (key, kept), = json.loads(run_file.read_text()).items()
        assert kept["costs"] is None
        auto.run(task)  # the second generation: two tasks' training pays for it
    assert set(auto.chosen["seconds"]) == {"stacked", "per_network", "sparse"}
    assert set(json.loads(run_file.read_text())[key]["costs"]) == set(auto.chosen["seconds"])


def test_two_widths_of_one_architecture_are_measured_apart(digits):
    """The choice is kept per network: an MLP of width 16 and one of width 64 (one name,
    other shapes) and one with other options do not share a record."""
    keys = []
    for options in ({"widths": (16,)}, {"widths": (64,)}, {"widths": (16,), "dropout": 0.5}):
        spec, layout, bits = population(digits, n=2, **options)
        task = EvalTask(masks=bits, init=init_state(spec, 0), epochs=1, data_seed=0)
        auto = make_trainer(spec, digits, TrainSettings(), layout)
        keys.append(auto.key(task, 2, auto.candidates(task)))
    assert len(set(keys)) == 3


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs CPU affinity")
def test_a_measurement_that_shared_its_core_is_disturbed():
    """One thread on one core, alone and then beside a busy process on the same core."""
    from neuroprune.engine.autotune import disturbed

    def share() -> tuple[float, float]:
        cpu, wall = time.process_time(), time.perf_counter()
        x = torch.randn(256, 256)
        while time.perf_counter() - wall < 1.0:
            x = torch.tanh(x @ x)
        return time.process_time() - cpu, time.perf_counter() - wall

    mine, threads = os.sched_getaffinity(0), torch.get_num_threads()
    core = min(mine)
    busy = subprocess.Popen([sys.executable, "-c", "import os, time\n"
                             f"os.sched_setaffinity(0, {{{core}}})\n"
                             "t = time.time()\nwhile time.time() - t < 30: pass"])
    try:
        os.sched_setaffinity(0, {core})
        torch.set_num_threads(1)
        time.sleep(0.2)
        assert disturbed(*share(), torch.device("cpu"))
        busy.kill()
        busy.wait()
        # alone on the core (the rest of a busy machine may still pass by: three tries)
        assert any(not disturbed(*share(), torch.device("cpu")) for _ in range(3))
        assert not disturbed(0.1, 1.0, torch.device("cuda"))  # GPU timings are not judged
    finally:
        busy.kill()
        os.sched_setaffinity(0, mine)
        torch.set_num_threads(threads)


def test_auto_trainer_keeps_stacked_unless_another_is_clearly_faster():
    from neuroprune.engine.autotune import MARGIN, choose
    assert choose({"stacked": 1.0, "per_network": 1.0 / MARGIN * 1.01}) == "stacked"
    assert choose({"stacked": 1.0, "per_network": 0.5, "sparse": 0.6}) == "per_network"
    assert choose({"per_network": 0.5, "sparse": 0.4}) == "sparse"


class RecordRows:
    """A hook that records which networks of the task each chunk trained."""

    def start(self, state):
        self.rows = state.rows.tolist()

    def finish(self, state):
        return {"rows": [[r] for r in self.rows]}

    def loss(self, state):
        return None

    after_backward = after_step = end_epoch = lambda self, state: None


def test_hooks_know_their_networks_positions_in_the_task(digits):
    spec, layout, bits = population(digits, widths=(16,), n=5)
    task = EvalTask(masks=bits, init=init_state(spec, 0), epochs=0, hooks=(RecordRows(),))
    res = StackedTrainer(spec, digits, TrainSettings(), layout,
                         engine=EngineConfig(chunk_size=2)).run(task)
    assert res.extras["rows"] == [[0], [1], [2], [3], [4]]
    part = PerNetworkTrainer(spec, digits, TrainSettings(), layout).run(task.slice(3, 5))
    assert part.extras["rows"] == [[3], [4]]


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("key,values", [("lr", [0.01, 0.1, 0.03]), ("momentum", [0.0, 0.5, 0.9]),
                                        ("weight_decay", [0.0, 1e-3, 1e-2]),
                                        ("cosine", [0.0, 1.0, 0.0])])
def test_networks_with_their_own_settings_train_as_alone_with_them(digits, optimizer, key,
                                                                   values):
    if optimizer == "adam" and key == "momentum":
        pytest.skip("Adam has no momentum setting")
    spec, layout, bits = population(digits, widths=(32,), n=3)
    base = {"lr": 0.05 if optimizer == "sgd" else 3e-3, "momentum": 0.9, "weight_decay": 0.0,
            "schedule": "cosine"}
    if optimizer == "adam":
        values = [v / 10 for v in values] if key == "lr" else values
    init = init_state(spec, 0)
    mixed = StackedTrainer(spec, digits, TrainSettings(optimizer=optimizer, **base), layout).run(
        EvalTask(masks=bits, init=init, epochs=2, keep_weights=True,
                 network_settings={key: torch.tensor(values)}))
    for i, v in enumerate(values):
        own = dict(base, **({"schedule": "cosine" if v else "constant"} if key == "cosine"
                            else {key: v}))
        alone = PerNetworkTrainer(spec, digits, TrainSettings(optimizer=optimizer, **own),
                                  layout).run(EvalTask(masks=bits[i:i + 1], init=init, epochs=2,
                                                       keep_weights=True))
        torch.testing.assert_close(mixed.metrics["val_loss"][i:i + 1], alone.metrics["val_loss"],
                                   rtol=1e-4, atol=1e-6)
        for k in alone.weights:
            torch.testing.assert_close(mixed.weights[k][i:i + 1], alone.weights[k], rtol=1e-4,
                                       atol=1e-5)


def test_unseeded_random_ops_run_under_vmap_drawing_per_network():
    """Dropout2d is not one of the seeded layers: under vmap each network draws its own."""
    from neuroprune.engine.forward import VmapForward
    from neuroprune.engine.graph import Pass

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Dropout2d(0.5), nn.Flatten(),
                          nn.Linear(4 * 6 * 6, 3))
    params = {k: v.detach().unsqueeze(0).repeat(2, *[1] * v.dim())
              for k, v in model.named_parameters()}
    x = torch.randn(5, 1, 8, 8)
    out = VmapForward(model)(params, {}, x, Pass(p=2, training=True, seeds=torch.tensor([1, 2])))
    assert out.shape == (2, 5, 3)
    assert not torch.allclose(out[0], out[1])  # same weights, different channels dropped
    same = VmapForward(model)(params, {}, x, Pass(p=2, training=False))
    assert torch.allclose(same[0], same[1])


class _Shuffle(nn.Module):
    """ShuffleNet v2's unit: split the channels, convolve one half, concatenate, shuffle."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 8, 3, padding=1)
        self.branch = nn.Sequential(nn.Conv2d(4, 4, 1), nn.BatchNorm2d(4), nn.ReLU(),
                                    nn.Conv2d(4, 4, 3, padding=1, groups=4))
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        x = self.stem(x)
        left, right = x.chunk(2, dim=1)
        x = torch.cat((left, self.branch(right)), dim=1)
        b, c, h, w = x.size()
        x = x.view(b, 2, c // 2, h, w)
        x = torch.transpose(x, 1, 2).contiguous().view(b, -1, h, w)
        return self.head(x.mean((2, 3)))


def test_the_population_graph_takes_a_channel_shuffle_and_equals_the_module():
    from neuroprune.engine.forward import population_forward
    from neuroprune.engine.graph import Pass

    torch.manual_seed(0)
    model = _Shuffle()
    forward, reason = population_forward(model, (1, 6, 6))
    assert forward.kind == "graph", reason
    nets = [_Shuffle().double() for _ in range(2)]
    params = {k: torch.stack([dict(n.named_parameters())[k].detach() for n in nets])
              for k, _ in model.named_parameters()}
    buffers = {k: torch.stack([dict(n.named_buffers())[k] for n in nets])
               for k, _ in model.named_buffers()}
    x = torch.randn(4, 1, 6, 6, dtype=torch.float64)
    with torch.no_grad():
        got = forward(params, buffers, x, Pass(p=2, training=False))
        for i, net in enumerate(nets):
            assert torch.allclose(got[i], net.eval()(x), rtol=1e-10, atol=1e-12)


class _ConvNeXtBlock(nn.Module):
    """ConvNeXt's block: depthwise conv, channels last (permute), LayerNorm, MLP, a layer
    scale parameter used in forward, a functional layer norm with parameters."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 8, 2, stride=2)
        self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.norm = nn.LayerNorm(8)
        self.fc1, self.fc2 = nn.Linear(8, 16), nn.Linear(16, 8)
        self.scale = nn.Parameter(torch.rand(8, 1, 1))
        self.out_w, self.out_b = nn.Parameter(torch.rand(8)), nn.Parameter(torch.rand(8))
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        x = self.stem(x)
        y = self.dw(x).permute(0, 2, 3, 1)
        y = self.fc2(torch.nn.functional.gelu(self.fc1(self.norm(y)))).permute(0, 3, 1, 2)
        x = x + self.scale * y
        x = x.mean((2, 3))
        x = torch.nn.functional.layer_norm(x, (8,), self.out_w, self.out_b, 1e-6)
        return self.head(x)


def test_parameters_used_in_forward_and_permutes_take_the_population_graph():
    from neuroprune.engine.forward import check_graph, population_forward
    from neuroprune.engine.graph import PopulationGraph

    torch.manual_seed(0)
    model = _ConvNeXtBlock()
    forward, reason = population_forward(model, (1, 8, 8))
    assert forward.kind == "graph", reason
    check_graph(PopulationGraph.compile(model), model, (1, 8, 8), tolerance=1e-9)


def test_one_network_forward_fills_every_slot_of_a_tied_weight_and_switches_mode():
    """The per-network trainer's forward puts the given tensors into the module's own slots:
    a weight two layers share is one parameter, used (and differentiated) in both places."""
    from neuroprune.engine.forward import ModuleForward
    from neuroprune.engine.graph import Pass

    class Tied(nn.Module):
        def __init__(self):
            super().__init__()
            self.enc, self.dec, self.drop = nn.Linear(6, 6), nn.Linear(6, 6), nn.Dropout(0.5)
            self.dec.weight = self.enc.weight
            self.bn = nn.BatchNorm1d(6)

        def forward(self, x):
            return self.dec(self.drop(torch.tanh(self.bn(self.enc(x)))))

    torch.manual_seed(0)
    ref = Tied().double()
    params = {k: v.detach().clone().unsqueeze(0).requires_grad_()
              for k, v in ref.named_parameters()}
    assert sorted(params) == ["bn.bias", "bn.weight", "dec.bias", "enc.bias", "enc.weight"]
    buffers = {k: v.clone().unsqueeze(0) for k, v in ref.named_buffers()}
    x = torch.randn(5, 6, dtype=torch.float64)
    forward = ModuleForward(copy.deepcopy(ref))
    ref.eval()
    got = forward(params, buffers, x, Pass(p=1, training=False, seeds=torch.zeros(1).long()))
    torch.testing.assert_close(got[0], ref(x))
    got.sum().backward()
    ref(x).sum().backward()
    torch.testing.assert_close(params["enc.weight"].grad[0], ref.enc.weight.grad)
    # training mode: BatchNorm's running statistics move in the given buffers
    forward(params, buffers, x, Pass(p=1, training=True, seeds=torch.zeros(1).long()))
    assert forward.model.training
    assert not torch.equal(buffers["bn.running_mean"][0], ref.bn.running_mean)


class _PenaltyWithForward(TrainingHook):
    """A regulariser on the parameters that also runs a forward of its own inside ``loss``:
    the step's gradient must still reach every parameter, and the penalty's add to it."""

    def loss(self, state):
        penalty = sum((v ** 2).reshape(state.p, -1).sum(1) for k, v in state.params.items()
                      if k.endswith("weight"))
        extra = state.forward(state.x, True)  # another forward between step and backward
        return 1e-2 * penalty + 1e-3 * (extra ** 2).reshape(state.p, -1).mean(1)


def test_a_network_alone_trains_as_in_a_population_under_a_penalty_with_its_own_forward(digits):
    spec, layout, bits = population(digits, widths=(32, 16), n=3)
    settings = TrainSettings(lr=0.05, batch_size=64)
    task = EvalTask(masks=bits, init=init_state(spec, 0), epochs=1, data_seed=1,
                    keep_weights=True, hooks=(_PenaltyWithForward(),))
    cfg = EngineConfig(precision="fp64")
    stacked = StackedTrainer(spec, digits, settings, layout, engine=cfg).run(task)
    alone = PerNetworkTrainer(spec, digits, settings, layout, engine=cfg).run(task)
    _compare(stacked, alone, rel=1e-9)
    free = PerNetworkTrainer(spec, digits, settings, layout, engine=cfg).run(
        replace(task, hooks=()))
    assert not torch.allclose(free.metrics["train_loss"], alone.metrics["train_loss"])


def test_a_module_forward_after_one_without_gradients_still_reaches_the_parameters():
    """The one-network forward keeps what it put into the module's slots while the tensors
    are the same: a forward under no_grad (evaluation) must not leave views that a later
    forward with gradients (a score's autograd.grad) cannot differentiate through."""
    from neuroprune.engine.forward import ModuleForward
    from neuroprune.engine.graph import Pass
    net = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))  # no buffers
    params = {k: v.detach().unsqueeze(0).clone().requires_grad_() for k, v in
              net.named_parameters()}
    forward, x = ModuleForward(net), torch.randn(5, 4)
    with torch.no_grad():
        forward(params, {}, x, Pass(p=1, training=False))
    out = forward(params, {}, x, Pass(p=1, training=False))
    grads = torch.autograd.grad(out.sum(), list(params.values()))
    assert all(g.shape == v.shape for g, v in zip(grads, params.values()))
    # and the step's own leaves hand their gradients back to the [1, ...] parameters
    forward(params, {}, x, Pass(p=1, training=True, own_leaves=True)).sum().backward()
    forward.gather_grads()
    assert all(v.grad is not None and v.grad.abs().sum() > 0 for k, v in params.items()
               if k.endswith("weight"))
