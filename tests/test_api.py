"""The in-memory Python API: any model and data, no config file."""

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from torch import nn

import neuroprune
from neuroprune.errors import UserError


class TinyNet(nn.Module):
    def __init__(self, input_shape, num_classes):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(int(np.prod(input_shape)), 48),
                                  nn.BatchNorm1d(48), nn.ReLU(), nn.Linear(48, num_classes))

    def forward(self, x):
        return self.body(x)


@pytest.fixture(scope="module")
def xy():
    return load_digits(return_X_y=True)


def test_prune_a_model_class_on_arrays(xy, tmp_path):
    X, y = xy
    r = neuroprune.prune(TinyNet, data=(X, y), method="kstarts", sparsity=0.8, epochs=3,
                         population=4, generations=2, search_epochs=1, progress=False,
                         out=tmp_path / "r")
    assert r.run_dir == tmp_path / "r" and (r.run_dir / "summary.json").is_file()
    assert isinstance(r.model, TinyNet) and r.masks.sparsity() == pytest.approx(0.8, abs=1e-3)
    assert {"generation", "fitness", "val_accuracy"} <= set(r.metrics.columns)
    assert (r.metrics.phase == "search").sum() >= 4
    # the returned model is the trained masked network: on the raw test inputs (it
    # standardises them itself) it reproduces the test accuracy
    from neuroprune.data import DataConfig
    from neuroprune.data.sklearn_sets import split
    *_, x_test, y_test = split(X.astype(np.float32), y, DataConfig())
    with torch.no_grad():
        pred = r.model(torch.from_numpy(x_test)).argmax(1).numpy()
    assert float((pred == y_test).mean()) == pytest.approx(r.summary["test_accuracy"], abs=1e-6)
    first = r.model.body[1]
    assert hasattr(first, "weight_mask") and torch.count_nonzero(
        first.weight[~first.weight_mask.bool()]) == 0


def test_prune_an_instance_keeps_its_weights_as_the_start(xy):
    X, y = xy
    net = TinyNet((64,), 10)
    start = net.body[1].weight.detach().clone()
    r = neuroprune.prune(net, data=(X[:1400], y[:1400], X[1400:], y[1400:]), method="magnitude",
                         sparsity=0.5, epochs=1, progress=False)
    kept = r.masks["body.1.weight"]
    # magnitude at init keeps this instance's largest weights (ERK: per layer)
    assert start[kept].abs().min() >= start[~kept].abs().max()
    assert torch.equal(net.body[1].weight, start)  # the caller's model is left alone


def test_prune_by_names_and_config(tmp_path):
    r = neuroprune.prune("mlp", data="digits", method="snip", sparsity=0.9, epochs=1,
                         progress=False, config={"model": {"widths": [32]},
                                                 "training": {"lr": 0.05}})
    assert r.summary["method"] == "snip" and r.summary["model"] == "mlp"
    assert r.model[1].weight.shape == (32, 64)


def test_bad_arguments_are_one_line_errors(xy):
    X, y = xy
    with pytest.raises(UserError, match="unknown method 'kstart'"):
        neuroprune.prune(TinyNet, data=(X, y), method="kstart", progress=False)
    with pytest.raises(UserError, match="X has 10 rows but y has 9"):
        neuroprune.prune(TinyNet, data=(X[:10], y[:9]), progress=False)
    with pytest.raises(UserError, match="single class"):
        neuroprune.prune(TinyNet, data=(X[y == 1], y[y == 1]), progress=False)
    with pytest.raises(TypeError, match="model must be"):
        neuroprune.prune(42, data=(X, y), progress=False)
    with pytest.raises(UserError, match="no parameter 'populaton'"):
        neuroprune.prune(TinyNet, data=(X, y), populaton=4, progress=False)
