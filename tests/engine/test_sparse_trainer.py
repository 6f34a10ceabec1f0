"""The sparse trainer: CSR weights give the masked dense trainer's results; SET regrowth acts
on the sparse structure; bad input is one line."""

import pytest
import torch

from neuroprune.data import load_dataset
from neuroprune.engine import EngineConfig, EvalTask, PerNetworkTrainer, TrainSettings, init_state
from neuroprune.engine.sparse import SparseTrainer
from neuroprune.errors import UserError
from neuroprune.models.base import AllReLU

from helpers import population


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.mark.parametrize("optimizer,activation", [("sgd", "relu"), ("adam", "all_relu")])
def test_sparse_trainer_equals_the_masked_dense_trainer(digits, optimizer, activation):
    spec, layout, bits = population(digits, "mlp", n=2, sparsity=0.9, widths=(48, 24),
                                    activation=activation)
    settings = TrainSettings(optimizer=optimizer, lr=0.1 if optimizer == "sgd" else 0.01,
                             batch_size=64, weight_decay=1e-4)
    inits = [init_state(spec, s) for s in (1, 2)]
    task = EvalTask(masks=bits, inits={k: torch.stack([i[k] for i in inits]) for k in inits[0]},
                    epochs=2, data_seed=3, keep_weights=True, test=True, rescale_init=True)
    dense = PerNetworkTrainer(spec, digits, settings, layout,
                              engine=EngineConfig(precision="fp64")).run(task)
    sparse = SparseTrainer(spec, digits, settings, layout,
                           engine=EngineConfig(trainer="sparse", precision="fp64")).run(task)
    for k in ("train_loss", "val_loss", "val_accuracy", "test_accuracy", "magnitude"):
        torch.testing.assert_close(sparse.metrics[k], dense.metrics[k], rtol=1e-9, atol=1e-10,
                                   msg=k)
    for k in dense.weights:
        torch.testing.assert_close(sparse.weights[k].double(), dense.weights[k].double(),
                                   rtol=1e-9, atol=1e-10, msg=k)
    assert sparse.metrics["val_accuracy"].min() > 0.2  # learns: chance is 0.1


def test_set_regrowth_keeps_the_kept_count_and_moves_the_structure(digits):
    spec, layout, bits = population(digits, "mlp", n=1, sparsity=0.9, widths=(48,))
    task = EvalTask(masks=bits, init=init_state(spec, 0), epochs=3, data_seed=1)
    engine = EngineConfig(trainer="sparse", sparse_regrow=0.3)
    out = SparseTrainer(spec, digits, TrainSettings(lr=0.05), layout, engine=engine).run(task)
    assert out.masks is not None
    assert int(out.masks.sum()) == int(bits.sum())
    assert bool((out.masks != bits).any())
    assert out.metrics["val_accuracy"].item() > 0.2


def test_all_relu_alternates_its_negative_slope_by_layer():
    x = torch.tensor([-2.0, 3.0])
    assert AllReLU(1, 0.5)(x).tolist() == [-1.0, 3.0]
    assert AllReLU(2, 0.5)(x).tolist() == [1.0, 3.0]


def test_unsupported_layer_and_empty_layer_are_one_line_errors(digits):
    spec, layout, bits = population(digits, "lenet5", n=1, sparsity=0.5)
    with pytest.raises(UserError, match="Conv2d"):
        SparseTrainer(spec, digits, TrainSettings(), layout)
    spec, layout, bits = population(digits, "mlp", n=1, sparsity=0.5, widths=(8,))
    bits[:] = False
    task = EvalTask(masks=bits, init=init_state(spec, 0))
    with pytest.raises(UserError, match="keeps no weight"):
        SparseTrainer(spec, digits, TrainSettings(), layout).run(task)


@pytest.mark.parametrize("importance", ["incoming", "in_out"])
def test_neuron_removal_shrinks_the_hidden_layers_and_the_network_still_predicts(digits,
                                                                              importance):
    spec, layout, bits = population(digits, "mlp", n=1, sparsity=0.5, widths=(48, 24))
    task = EvalTask(masks=bits, init=init_state(spec, 0), epochs=4, data_seed=1,
                    keep_weights=True)
    engine = EngineConfig(trainer="sparse", sparse_neuron_prune=0.25,
                          sparse_neuron_importance=importance)
    trainer = SparseTrainer(spec, digits, TrainSettings(optimizer="adam", lr=0.01), layout,
                            engine=engine)
    out = trainer.run(task)
    # three epoch ends, a quarter of the remaining neurons each: 48 -> 36 -> 27 -> 21
    first = [k for k in out.weights if k.endswith(".weight")][0]
    w = out.weights[first][0]
    assert w.shape[0] == 48  # exported at the original shape
    alive = int(w.ne(0).any(1).sum())
    assert alive <= 21
    assert int(out.masks.sum()) < int(bits.sum())
    assert out.metrics["val_accuracy"].item() > 0.5


def test_neuron_removal_off_changes_nothing(digits):
    spec, layout, bits = population(digits, "mlp", n=1, sparsity=0.8, widths=(32,))
    task = EvalTask(masks=bits, init=init_state(spec, 0), epochs=2, data_seed=2,
                    keep_weights=True)
    runs = [SparseTrainer(spec, digits, TrainSettings(lr=0.05), layout,
                          engine=EngineConfig(trainer="sparse", precision="fp64", **kw)).run(task)
            for kw in ({}, {"sparse_neuron_prune": 0.0})]
    for k in runs[0].metrics:
        torch.testing.assert_close(runs[0].metrics[k], runs[1].metrics[k], msg=k)
    for k in runs[0].weights:
        torch.testing.assert_close(runs[0].weights[k], runs[1].weights[k], msg=k)


def test_a_network_that_would_not_fit_is_refused_in_one_line_before_training(digits):
    from neuroprune.engine import make_trainer
    spec, layout, bits = population(digits, "mlp", n=1, sparsity=0.99, widths=(64,))
    huge = TrainSettings(batch_size=10 ** 10)  # its activations alone outgrow any memory
    with pytest.raises(UserError, match="engine.trainer: sparse") as e:
        make_trainer(spec, digits, huge, layout, engine=EngineConfig(trainer="stacked"))
    assert "\n" not in str(e.value)
    task = EvalTask(masks=bits, init=init_state(spec, 0))
    with pytest.raises(UserError, match="one sparse network needs about") as e:
        make_trainer(spec, digits, huge, layout, engine=EngineConfig(trainer="sparse")).run(task)
    assert "\n" not in str(e.value)


def test_an_empty_layer_in_any_network_is_refused_before_the_first_trains(digits):
    spec, layout, bits = population(digits, "mlp", n=2, sparsity=0.5, widths=(8,))
    bits[1] = False
    inits = [init_state(spec, s) for s in (1, 2)]
    task = EvalTask(masks=bits, inits={k: torch.stack([i[k] for i in inits]) for k in inits[0]},
                    epochs=1)
    trainer = SparseTrainer(spec, digits, TrainSettings(), layout)
    trained = []
    trainer._train_one = lambda t, i: trained.append(i)
    with pytest.raises(UserError, match="keeps no weight"):
        trainer.run(task)
    assert trained == []
