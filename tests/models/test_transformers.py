"""The zoo's transformers (``vit``, ``text_transformer``): the population engine reproduces
them, searches run with unstructured masks, structured masks remove MLP neurons and compact to
a smaller network (and ONNX) with equal outputs."""

import copy

import numpy as np
import pytest
import torch

import neuroprune
from neuroprune.engine.forward import population_forward
from neuroprune.engine.graph import Pass
from neuroprune.errors import UserError
from neuroprune.models import ModelSpec, build_model

from helpers import structured_mask_file

SHAPE = (3, 16, 16)


def _vit(**opts):
    torch.manual_seed(0)
    return build_model(ModelSpec.zoo("vit", SHAPE, 4, dim=32, heads=4, **opts)).eval()


def test_the_population_forward_equals_each_vit():
    model = _vit()
    forward, reason = population_forward(model, SHAPE)
    assert forward.kind == "graph", reason  # class token, position embedding, attention
    model = model.double()
    nets = [copy.deepcopy(model) for _ in range(2)]
    with torch.no_grad():
        for i, net in enumerate(nets):
            for prm in net.parameters():
                prm.add_(torch.randn(prm.shape, dtype=prm.dtype,
                                     generator=torch.Generator().manual_seed(i)) * 0.05)
    params = {k: torch.stack([dict(n.named_parameters())[k].detach() for n in nets])
              for k, _ in model.named_parameters()}
    x = torch.randn(3, *SHAPE, dtype=torch.float64)
    with torch.no_grad():
        got = forward(params, {}, x, Pass(p=2, training=False))
        for i, net in enumerate(nets):
            assert torch.allclose(got[i], net(x), rtol=1e-9, atol=1e-10)
    assert not torch.allclose(got[0], got[1])


def _images(n=96, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.random((n, *SHAPE), dtype=np.float32)
    return X, (X[:, 0, :8].mean((1, 2)) > 0.5).astype(int)


def test_a_vit_and_a_text_transformer_search_with_unstructured_masks(tmp_path):
    X, y = _images()
    result = neuroprune.prune("vit", data=(X, y), method="magnitude", sparsity=0.8, epochs=2,
                              progress=False, out=tmp_path / "vit",
                              config={"training": {"batch_size": 16, "lr": 0.01},
                                      "model": {"dim": 32}, "sparsity": {"latency_repeats": 0}})
    masks = [v for k, v in result.model.state_dict().items()
             if k.endswith("weight_mask") and v.dim() == 2]
    assert masks  # the mask reached the attention and MLP layers
    assert sum(int(m.count_nonzero()) for m in masks) / sum(m.numel() for m in masks) < 0.5
    assert torch.isfinite(result.model(torch.from_numpy(X[:4]))).all()

    rng = np.random.default_rng(1)
    tokens = rng.integers(0, 50, (96, 12)).astype(np.float32)
    labels = (tokens == 7).any(1).astype(int)
    text = neuroprune.prune("text_transformer", data=(tokens, labels), method="kstarts",
                            sparsity=0.8, epochs=2, progress=False, out=tmp_path / "text",
                            population=4, generations=2,
                            config={"training": {"batch_size": 16, "lr": 0.01},
                                    "data": {"standardise": False},
                                    "model": {"vocab": 50, "dim": 32},
                                    "sparsity": {"latency_repeats": 0}})
    assert (tmp_path / "text" / "best_mask.safetensors").exists()
    out = text.model(torch.from_numpy(tokens[:4]))
    assert out.shape == (4, 2) and torch.isfinite(out).all()


def test_structured_mlp_neurons_compact_and_export_with_equal_outputs(tmp_path):
    import onnxruntime

    from neuroprune.export import export
    from neuroprune.masks.structure import structure_space

    model = _vit()
    ex = torch.randn(1, *SHAPE)
    space = structure_space(model, ex)
    assert {(g.root, g.kind, g.size) for g in space.groups} == {
        ("blocks.0.fc1", "neuron", 64), ("blocks.1.fc1", "neuron", 64),
        ("blocks.0.attention.value", "head", 4), ("blocks.1.attention.value", "head", 4)}
    scores = torch.rand(1, space.size, generator=torch.Generator().manual_seed(0))
    heads = [i for i, g in enumerate(space.groups) if g.kind == "head"]
    for i in heads:  # each attention layer loses two of its four heads ...
        scores[0, space.offsets[i]:space.offsets[i] + 2] = -1.0
    for i, g in enumerate(space.groups):  # ... and each MLP some neurons
        if g.kind == "neuron":
            scores[0, space.offsets[i]:space.offsets[i] + 8] = -0.5
    keep = space.select(scores, "flops", 0.75)
    path = structured_mask_file(tmp_path / "best_mask.safetensors", model,
                                ModelSpec.zoo("vit", SHAPE, 4, dim=32, heads=4), space, keep)
    x = torch.randn(5, *SHAPE)
    with torch.no_grad():
        want = model(x)
    info = export(path, tmp_path / "c.safetensors", "compact")
    small = neuroprune.load_model(tmp_path / "c.safetensors")
    assert info["params"] < sum(p.numel() for p in model.parameters())
    assert small.blocks[0].fc1.out_features < 64
    assert [b.attention.heads for b in small.blocks] == [2, 2]
    assert small.blocks[0].attention.query.out_features == 16
    with torch.no_grad():
        assert torch.allclose(small(x), want, atol=1e-5, rtol=1e-5)
    export(path, tmp_path / "n.onnx", "onnx")
    session = onnxruntime.InferenceSession(str(tmp_path / "n.onnx"),
                                           providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    assert np.allclose(got, want.numpy(), atol=1e-5, rtol=1e-5)


def test_bad_transformer_options_are_one_line():
    with pytest.raises(UserError, match="model.patch 5 does not divide"):
        build_model(ModelSpec.zoo("vit", SHAPE, 4, patch=5))
    with pytest.raises(UserError, match="not divisible by model.heads"):
        build_model(ModelSpec.zoo("vit", SHAPE, 4, dim=30, heads=4))
    with pytest.raises(UserError, match="reads token sequences"):
        build_model(ModelSpec.zoo("text_transformer", SHAPE, 4))
