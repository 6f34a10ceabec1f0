"""What is deployed is what was measured: raw inputs in every export, the data on the record."""

import json

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from torch import nn

import neuroprune
from neuroprune.data import DataConfig, load_dataset
from neuroprune.data.sklearn_sets import split
from neuroprune.export import export
from neuroprune.models import ModelSpec, build_model
from neuroprune.preprocess import Preprocess, detach, preprocessing_of


def _raw_problem():
    """Digits on a raw scale far from standard: pixel values 0..16 times 50, plus 300."""
    X, y = load_digits(return_X_y=True)
    return (X * 50.0 + 300.0).astype(np.float32), y


def _accuracy(model, x, y) -> float:
    with torch.no_grad():
        return float((model(torch.as_tensor(x)).argmax(1).numpy() == y).mean())


@pytest.fixture(scope="module")
def raw_run(tmp_path_factory):
    X, y = _raw_problem()
    out = tmp_path_factory.mktemp("raw") / "r"
    r = neuroprune.prune("mlp", data=(X, y), method="magnitude", sparsity=0.7, epochs=4,
                         progress=False, out=out, config={"model": {"widths": [32]}})
    *_, x_test, y_test = split(X, y, DataConfig())
    return r, x_test, y_test


def test_the_returned_model_and_every_export_score_the_run_on_raw_inputs(raw_run, tmp_path):
    import onnx
    import onnxruntime

    r, x_test, y_test = raw_run
    want = r.summary["test_accuracy"]
    assert want > 0.5  # learnt something: a raw-scale mistake would sit near chance
    assert _accuracy(r.model, x_test, y_test) == pytest.approx(want, abs=1e-6)
    best = r.run_dir / "best_mask.safetensors"
    assert _accuracy(neuroprune.load_model(best), x_test, y_test) == pytest.approx(want, abs=1e-6)
    # without its preprocessing the network sees raw values it never saw in training
    bare = neuroprune.load_model(best)
    assert isinstance(detach(bare), Preprocess) and preprocessing_of(bare) is None
    assert _accuracy(bare, x_test, y_test) < want - 0.2

    pytest.importorskip("torch_pruning")
    export(best, tmp_path / "c.safetensors", "compact")
    small = neuroprune.load_model(tmp_path / "c.safetensors")
    assert _accuracy(small, x_test, y_test) == pytest.approx(want, abs=1e-6)

    export(best, tmp_path / "n.onnx", "onnx")
    session = onnxruntime.InferenceSession(str(tmp_path / "n.onnx"),
                                           providers=["CPUExecutionProvider"])
    logits = session.run(None, {"input": x_test})[0]
    assert float((logits.argmax(1) == y_test).mean()) == pytest.approx(want, abs=1e-6)
    proto = onnx.load(str(tmp_path / "n.onnx"))
    ops = [n.op_type for n in proto.graph.node]
    assert ops[:2] == ["Sub", "Div"]  # the standardisation is the graph's prefix
    props = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(props["classes"]) == list(range(10))
    assert json.loads(props["preprocessing"])["shape"] == [64]  # per feature, as trained
    assert json.loads(props["sparsity"]) == pytest.approx(r.summary["sparsity"])
    provenance = json.loads(props["provenance"])
    assert provenance["method"] == "magnitude" and provenance["data"]["sizes"]["test"] == 360

    info = export(best, tmp_path / "s.pt", "state_dict")
    side = json.loads((tmp_path / "s.json").read_text())
    assert info["metadata"] == str(tmp_path / "s.json")
    plain = build_model(ModelSpec.from_dict(side["architecture"]))
    plain.load_state_dict(torch.load(tmp_path / "s.pt"))
    deployed = nn.Sequential(Preprocess(side["preprocessing"]), plain.eval())
    assert _accuracy(deployed, x_test, y_test) == pytest.approx(want, abs=1e-6)


def test_padding_travels_with_the_model_too(tmp_path):
    onnxruntime = pytest.importorskip("onnxruntime")
    pytest.importorskip("torch_pruning")
    r = neuroprune.prune("lenet5", data="digits", method="random", sparsity=0.5, epochs=2,
                         progress=False, out=tmp_path / "r",
                         config={"data": {"pad": 2}, "model": {"channels": [4, 8],
                                                               "widths": [16]}})
    X, y = load_digits(return_X_y=True)
    *_, x_test, y_test = split(X.astype(np.float32), y, DataConfig())
    raw = x_test.reshape(-1, 1, 8, 8)  # 8x8: the 12x12 padding is the model's own business
    want = r.summary["test_accuracy"]
    assert r.summary["preprocessing"]["pad"] == 2
    assert _accuracy(r.model, raw, y_test) == pytest.approx(want, abs=1e-6)
    export(r.run_dir / "best_mask.safetensors", tmp_path / "n.onnx", "onnx")
    session = onnxruntime.InferenceSession(str(tmp_path / "n.onnx"),
                                           providers=["CPUExecutionProvider"])
    logits = session.run(None, {"input": raw})[0]
    assert float((logits.argmax(1) == y_test).mean()) == pytest.approx(want, abs=1e-6)


def test_the_loaders_record_a_preprocessing_that_rebuilds_their_inputs():
    X, y = load_digits(return_X_y=True)
    data = load_dataset("digits", pad=1)
    raw = torch.from_numpy(split(X.astype(np.float32), y, DataConfig())[4]).view(-1, 1, 8, 8)
    assert torch.equal(Preprocess(data.preprocessing)(raw), data.test_x)
    blobs = load_dataset("blobs", samples=300)
    assert blobs.preprocessing["shape"] == [20]
