"""What is deployed is what was measured: raw inputs in every export, the data on the record."""

import json

import numpy as np
import pytest
import torch
import yaml
from sklearn.datasets import load_digits
from torch import nn

import neuroprune
from neuroprune.config import load_config, to_dict
from neuroprune.data import DataConfig, load_dataset
from neuroprune.data.sklearn_sets import split
from neuroprune.export import export
from neuroprune.models import ModelSpec, build_model
from neuroprune.preprocess import Preprocess, describe, detach, preprocessing_of
from neuroprune.rundir import DATA_RAN, RunDir


def _raw_problem():
    """Digits on a raw scale far from standard: pixel values 0..16 times 50, plus 300."""
    X, y = load_digits(return_X_y=True)
    return (X * 50.0 + 300.0).astype(np.float32), y


def _accuracy(model, x, y) -> float:
    with torch.no_grad():
        return float((model(torch.as_tensor(x)).argmax(1).numpy() == np.asarray(y)).mean())


@pytest.fixture(scope="module")
def raw_run(tmp_path_factory):
    X, y = _raw_problem()
    out = tmp_path_factory.mktemp("raw") / "r"
    r = neuroprune.prune("mlp", data=(X, y), method="magnitude", sparsity=0.7, epochs=4,
                         progress=False, out=out,
                         config={"model": {"widths": [32]}, "sparsity": {"latency_repeats": 0}})
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
    r = neuroprune.prune("lenet5", data="digits", method="random", sparsity=0.5, epochs=1,
                         progress=False, out=tmp_path / "r",
                         config={"data": {"pad": 2}, "sparsity": {"latency_repeats": 0},
                                 "model": {"channels": [4, 8], "widths": [16]}})
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


def _idx(path, array):
    header = bytes([0, 0, 8, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def test_which_data_ran_is_on_the_record_and_a_failed_download_says_so(tmp_path, raw_run):
    r = raw_run[0]
    config = r.run_dir / "config.yaml"
    asked, ran = config.read_text().split(DATA_RAN + "\n")
    ran = yaml.safe_load("".join(line.removeprefix("#   ") + "\n" for line in ran.splitlines()))
    for record in (r.summary["data"], json.loads((r.run_dir / "data.json").read_text()), ran):
        assert record["sizes"] == {"train": 1167, "val": 270, "test": 360}
        assert record["source"] == "arrays" and record["protocol"] == "split"
    # comments: the config loads as it was asked, and a second record (resume) replaces it
    assert to_dict(load_config(config)) == to_dict(load_config(tree=yaml.safe_load(asked)))
    RunDir(r.run_dir).write_data_record(ran)
    assert config.read_text().count(DATA_RAN) == 1
    # MNIST with its test split alone: auto runs MNIST-10k, and a download that cannot
    # happen (no torchvision or no internet) is one warning line, on the record too
    g = np.random.default_rng(0)
    _idx(tmp_path / "t10k-images-idx3-ubyte", g.integers(0, 256, (200, 28, 28)))
    _idx(tmp_path / "t10k-labels-idx1-ubyte", np.arange(200) % 10)
    data = load_dataset("mnist", root=str(tmp_path))
    assert data.record()["protocol"] == "10k" and data.record()["download"] == "not requested"
    assert data.record()["files"] == ["t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]
    with pytest.warns(UserWarning, match="could not fetch the mnist training images") as seen:
        data = load_dataset("mnist", root=str(tmp_path), download=True)
    assert len(seen) == 1 and "\n" not in str(seen[0].message)
    record = data.record()
    assert record["protocol"] == "10k" and record["download"].startswith("failed: ")
    assert record["sizes"] == {"train": 140, "val": 20, "test": 40}
    with pytest.raises(neuroprune.errors.UserError):
        load_dataset("mnist", root=str(tmp_path), download=True, protocol="full")


def test_pixels_0_to_255_score_the_run_and_their_scale_is_on_the_record(tmp_path):
    """MNIST is read as 0..255 pixels divided by 255: the record, its text and the ONNX
    metadata say so; a uint8 image scores the run, as its float [0, 1] form does."""
    import onnx
    import onnxruntime

    pytest.importorskip("torch_pruning")
    g = np.random.default_rng(0)
    labels = np.arange(1000) % 10
    pixels = g.integers(0, 60, (1000, 28, 28))
    for i, k in enumerate(labels):  # a bright band per class: learnable in a few epochs
        pixels[i, 2 * k + 4: 2 * k + 7] += 190
    _idx(tmp_path / "t10k-images-idx3-ubyte", pixels)
    _idx(tmp_path / "t10k-labels-idx1-ubyte", labels)
    r = neuroprune.prune("mlp", data="mnist", method="magnitude", sparsity=0.5, epochs=2,
                         progress=False, out=tmp_path / "r",
                         config={"data": {"root": str(tmp_path)}, "model": {"widths": [16]},
                                 "sparsity": {"latency_repeats": 0}})
    pre = r.summary["preprocessing"]
    assert pre["scale"] == pytest.approx(1 / 255) and "resize" not in pre
    assert "0..255 pixels times 1/255" in describe(pre)
    want = r.summary["test_accuracy"]
    assert want > 0.5
    x_test = torch.from_numpy(pixels[800:].astype(np.uint8))[:, None]  # MNIST-10k's test
    y_test = labels[800:]
    best = r.run_dir / "best_mask.safetensors"
    for model in (r.model, neuroprune.load_model(best)):
        assert _accuracy(model, x_test, y_test) == pytest.approx(want, abs=1e-6)
        assert _accuracy(model, x_test.numpy(), y_test) == pytest.approx(want, abs=1e-6)
        assert _accuracy(model, x_test / 255.0, y_test) == pytest.approx(want, abs=1e-6)
    export(best, tmp_path / "n.onnx", "onnx")
    props = {p.key: p.value for p in onnx.load(str(tmp_path / "n.onnx")).metadata_props}
    assert json.loads(props["preprocessing"])["scale"] == pytest.approx(1 / 255)
    assert "float pixels in [0, 1]" in props["input"]
    session = onnxruntime.InferenceSession(str(tmp_path / "n.onnx"),
                                           providers=["CPUExecutionProvider"])
    logits = session.run(None, {"input": (x_test / 255.0).numpy()})[0]
    assert float((logits.argmax(1) == y_test).mean()) == pytest.approx(want, abs=1e-6)


class TinyNet(nn.Module):
    def __init__(self, input_shape=(64,), num_classes=10):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(int(np.prod(input_shape)), 48),
                                  nn.ReLU(), nn.Linear(48, num_classes))

    def forward(self, x):
        return self.body(x)


def _trained_on(x, y, net, epochs=25):
    """``net`` trained by plain torch on ``(x, y)`` as they are (no standardisation)."""
    torch.manual_seed(0)
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    x, y = torch.as_tensor(x), torch.as_tensor(y)
    for _ in range(epochs):
        for i in range(0, len(y), 64):
            opt.zero_grad()
            nn.functional.cross_entropy(net(x[i:i + 64]), y[i:i + 64]).backward()
            opt.step()
    return net.eval()


@pytest.fixture(scope="module")
def trained_net():
    X, y = load_digits(return_X_y=True)
    X = X.astype(np.float32)
    x_tr, y_tr, _, _, x_te, y_te = split(X, y, DataConfig())
    return _trained_on(x_tr, y_tr, TinyNet()), X, y, x_te, y_te


def test_a_trained_instance_is_pruned_as_given_and_scored_at_each_stage(trained_net, tmp_path):
    net, X, y, x_te, y_te = trained_net
    dense = _accuracy(net, x_te, y_te)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    r = neuroprune.prune(net, data=(X, y), method="magnitude", sparsity=0.6, epochs=0,
                         init="trained", progress=False, out=tmp_path / "r")
    s = r.summary
    assert s["test_accuracy_before_pruning"] == pytest.approx(dense, abs=1e-6)
    assert s["test_accuracy_after_pruning"] == s["test_accuracy_after_finetuning"] == \
        s["test_accuracy"]
    assert s["preprocessing"]["mean"] == [0.0]  # the model's own inputs, as it was trained
    assert _accuracy(r.model, x_te, y_te) == pytest.approx(s["test_accuracy"], abs=1e-6)
    kept = r.masks["body.1.weight"]
    w = r.model.body[1].weight.detach()
    assert torch.equal(w[kept], before["body.1.weight"][kept])  # no rescale, no training
    assert all(torch.equal(net.state_dict()[k], v) for k, v in before.items())  # left alone

    # fine-tuned: a third figure, and the magnitude mask is the trained weights' largest
    tuned = neuroprune.prune(net, data=(X, y), method="magnitude", sparsity=0.9, epochs=3,
                             init="trained", progress=False, config={"training": {"lr": 0.01}})
    t = tuned.summary
    assert t["test_accuracy_before_pruning"] == pytest.approx(dense, abs=1e-6)
    assert t["test_accuracy_after_finetuning"] == t["test_accuracy"]
    assert t["finetuning_epochs"] == 3


def test_python_models_export_when_the_caller_passes_them(trained_net, tmp_path, capsys):
    import onnxruntime
    pytest.importorskip("torch_pruning")
    from neuroprune.masks import compact

    net, X, y, x_te, y_te = trained_net
    Xs = (X * 50.0 + 300.0).astype(np.float32)  # raw and far from standard: standardised inside
    r = neuroprune.prune(TinyNet, data=(Xs, y), method="snip", sparsity=0.8, epochs=3,
                         progress=False, out=tmp_path / "r")
    raw_te = (x_te * 50.0 + 300.0).astype(np.float32)
    want = r.summary["test_accuracy"]
    small, _ = compact(r.model, torch.zeros(1, 64))  # a masked, preprocessed model compacts
    assert _accuracy(small, raw_te, y_te) == pytest.approx(want, abs=1e-6)
    best = r.run_dir / "best_mask.safetensors"
    for given in (TinyNet, r.model):
        export(best, tmp_path / "c.safetensors", "compact", model=given)
        loaded = neuroprune.load_model(tmp_path / "c.safetensors", model=given)
        assert _accuracy(loaded, raw_te, y_te) == pytest.approx(want, abs=1e-6)
    export(best, tmp_path / "n.onnx", "onnx", model=TinyNet)
    session = onnxruntime.InferenceSession(str(tmp_path / "n.onnx"),
                                           providers=["CPUExecutionProvider"])
    logits = session.run(None, {"input": raw_te})[0]
    assert float((logits.argmax(1) == y_te).mean()) == pytest.approx(want, abs=1e-6)
    # a class defined where no file can import it: the command line says to pass the model
    from neuroprune.cli import main
    from neuroprune.masks import load_weights, save_mask
    masks, meta = neuroprune.load_mask(best)
    local = tmp_path / "py" / "best_mask.safetensors"
    local.parent.mkdir()
    save_mask(local, masks, {**meta, "architecture": {**meta["architecture"], "name": None,
                                                      "factory": None}},
              weights=load_weights(best))
    assert main(["export", str(local.parent), "--out", str(tmp_path / "x.onnx"),
                 "--format", "onnx"]) == 2
    assert "pass the model from Python" in capsys.readouterr().err
    assert not (tmp_path / "x.onnx").exists()
    export(local, tmp_path / "s.pt", "state_dict", model=TinyNet())
    plain = TinyNet()
    plain.load_state_dict(torch.load(tmp_path / "s.pt"))
    side = json.loads((tmp_path / "s.json").read_text())
    deployed = nn.Sequential(Preprocess(side["preprocessing"]), plain.eval())
    assert _accuracy(deployed, raw_te, y_te) == pytest.approx(want, abs=1e-6)


def test_model_weights_in_a_config_prune_a_trained_model(tmp_path):
    from neuroprune.config import load_config
    from neuroprune.errors import ConfigError

    from helpers import mask_search

    data = load_dataset("digits", standardise=False)
    spec = ModelSpec.zoo("mlp", data.input_shape, 10, widths=(32,))
    torch.manual_seed(0)
    net = _trained_on(data.train_x, data.train_y, build_model(spec))
    torch.save(net.state_dict(), tmp_path / "w.pt")
    tree = {"name": "t", "device": "cpu", "model": {"name": "mlp", "widths": [32],
                                                   "weights": str(tmp_path / "w.pt")},
            "method": {"name": "magnitude"}, "sparsity": {"target": 0.5},
            "training": {"epochs": 0}}
    s = mask_search(load_config(tree=tree)).run(tmp_path / "r", progress=False)
    assert s["test_accuracy_before_pruning"] == pytest.approx(
        _accuracy(net, data.test_x, data.test_y), abs=1e-6)
    assert s["test_accuracy_after_pruning"] == s["test_accuracy"] > 0.5
    model = neuroprune.load_model(tmp_path / "r" / "best_mask.safetensors")
    assert _accuracy(model, data.test_x, data.test_y) == pytest.approx(s["test_accuracy"],
                                                                       abs=1e-6)
    with pytest.raises(ConfigError, match="one-shot methods"):
        mask_search(load_config(tree={**tree, "method": {"name": "kstarts"}}))
    torch.save({"other.weight": torch.zeros(2)}, tmp_path / "bad.pt")
    bad = {**tree, "model": {**tree["model"], "weights": str(tmp_path / "bad.pt")}}
    with pytest.raises(ConfigError, match="does not fit the model: missing"):
        mask_search(load_config(tree=bad))
