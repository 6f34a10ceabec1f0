"""torchvision's classification models as a contract (marked ``vision``).

They need torchvision, which needs the torch build it was made for: CI runs this file in a
second environment (torch 2.14.1 with torchvision 0.29.1, see ``.ci/run``); where torchvision
cannot be imported the file skips, saying why.

For every model ``torchvision.models.list_models(module=torchvision.models)`` lists (those
above :data:`BUDGET_PARAMS` skip: their memory and time do not fit the test's budget), on
small inputs: the engine's population forward equals the plain module's (eval mode, fp64),
and the path it takes is printed. For one model per family: one search runs, a structured
channel mask compacts to a smaller network with equal outputs, and its ONNX export gives the
same outputs in onnxruntime.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

pytestmark = pytest.mark.vision

try:
    import torchvision.models as tvm
except Exception as exc:  # noqa: BLE001 - absent, or built for another torch
    pytest.skip(f"torchvision cannot be imported here ({type(exc).__name__}); "
                f"install torch==2.14.1 torchvision==0.29.1 to run these",
                allow_module_level=True)

from neuroprune.engine.dropout import seed_dropout  # noqa: E402
from neuroprune.engine.forward import ModuleForward, population_forward  # noqa: E402
from neuroprune.engine.graph import Pass  # noqa: E402
from neuroprune.models.torchvision_models import torchvision_model  # noqa: E402

from helpers import structured_mask_file  # noqa: E402

BUDGET_PARAMS = 30e6  # parameters at 4 classes; larger models skip (memory and time)
CLASSES = 4
#: the smallest input side each model takes (32 unless listed)
SIDE = {"inception_v3": 75, "maxvit_t": 224, "vit_b_16": 224, "vit_b_32": 224,
        "vit_l_16": 224, "vit_l_32": 224, "vit_h_14": 224}
#: one model per family: searched, compacted and exported
FAMILIES = ["resnet18", "vgg11_bn", "mobilenet_v2", "mobilenet_v3_small", "efficientnet_b0",
            "mnasnet0_5", "densenet121", "squeezenet1_0", "googlenet", "shufflenet_v2_x0_5",
            "regnet_x_400mf", "convnext_tiny", "swin_t", "resnext50_32x4d"]
#: what structured compaction cannot do yet, and why (strict: a fix must remove the entry)
NO_COMPACTION: dict[str, str] = {}


def _names() -> list[str]:
    return sorted(tvm.list_models(module=tvm))


def _build(name: str) -> tuple[nn.Module, tuple[int, int, int]]:
    side = SIDE.get(name, 32)
    shape = (3, side, side)
    torch.manual_seed(0)
    model = torchvision_model(name, shape, CLASSES, {})
    if sum(p.numel() for p in model.parameters()) > BUDGET_PARAMS:
        pytest.skip(f"{name}: over {BUDGET_PARAMS / 1e6:.0f}M parameters (test budget)")
    for mod in model.modules():  # statistics as after training, so BatchNorm is not trivial
        if isinstance(mod, nn.modules.batchnorm._BatchNorm):
            mod.running_mean.uniform_(-0.1, 0.1)
            mod.running_var.uniform_(0.5, 2)
    return seed_dropout(model), shape


@pytest.mark.parametrize("name", _names())
def test_the_population_forward_equals_the_plain_module(name):
    model, shape = _build(name)
    forward, reason = population_forward(model, shape)  # chosen in fp32, as a run does
    model = model.double().eval()
    print(f"{name}: {forward.kind} path{f' ({reason})' if reason else ''}")
    nets = []
    for seed in (1, 2):
        net = copy.deepcopy(model)
        with torch.no_grad():
            for prm in net.parameters():
                prm.add_(torch.randn(prm.shape, generator=torch.Generator().manual_seed(seed),
                                     dtype=prm.dtype) * 0.01)
        nets.append(net)
    params = {k: torch.stack([dict(n.named_parameters())[k].detach() for n in nets])
              for k, _ in model.named_parameters()}
    buffers = {k: torch.stack([dict(n.named_buffers())[k] for n in nets])
               for k, _ in model.named_buffers()}
    x = torch.randn(2, *shape, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        got = forward(params, buffers, x, Pass(p=2, training=False))
        assert got.shape == (2, 2, CLASSES)
        for i, net in enumerate(nets):
            want = net.eval()(x)
            assert torch.allclose(got[i], want, rtol=1e-7, atol=1e-9), \
                f"{name}: network {i} differs by {float((got[i] - want).abs().max()):.2e}"
        one = ModuleForward(nets[0])({k: v[:1] for k, v in params.items()},
                                     {k: v[:1] for k, v in buffers.items()}, x,
                                     Pass(p=1, training=False))
        assert torch.allclose(one[0], got[0], rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("name", FAMILIES)
def test_one_search_runs(name, tmp_path):
    import neuroprune

    _, shape = _build(name)
    rng = np.random.default_rng(0)
    X = rng.random((24, *shape), dtype=np.float32)
    y = np.arange(24) % CLASSES
    result = neuroprune.prune(f"torchvision:{name}", data=(X, y), method="magnitude",
                              sparsity=0.9, epochs=1, progress=False, out=tmp_path / "run",
                              config={"training": {"batch_size": 8, "lr": 0.01},
                                      "sparsity": {"latency_repeats": 0}})
    assert (tmp_path / "run" / "best_mask.safetensors").exists()
    with torch.no_grad():
        out = result.model(torch.from_numpy(X[:3]))
    assert out.shape == (3, CLASSES) and torch.isfinite(out).all()


@pytest.mark.parametrize("name", [
    pytest.param(n, marks=pytest.mark.xfail(reason=NO_COMPACTION[n], strict=True))
    if n in NO_COMPACTION else n for n in FAMILIES])
def test_structured_channels_compact_and_export_to_onnx(name, tmp_path):
    import onnxruntime

    import neuroprune
    from neuroprune.export import export
    from neuroprune.masks.structure import structure_space
    from neuroprune.models import ModelSpec

    model, shape = _build(name)
    model = model.eval()
    ex = torch.randn(1, *shape)
    space = structure_space(model, ex)
    keep = space.select(torch.rand(1, space.size, generator=torch.Generator().manual_seed(0)),
                        "flops", 0.5)
    path = structured_mask_file(tmp_path / "best_mask.safetensors", model,
                                ModelSpec(shape, CLASSES, f"torchvision:{name}", {}), space, keep)
    x = torch.randn(3, *shape)
    with torch.no_grad():
        want = model(x)
    info = export(path, tmp_path / "c.safetensors", "compact")
    small = neuroprune.load_model(tmp_path / "c.safetensors")
    assert info["params"] < sum(p.numel() for p in model.parameters())
    with torch.no_grad():
        assert torch.allclose(small(x), want, atol=1e-4, rtol=1e-4)
    export(path, tmp_path / "n.onnx", "onnx")
    session = onnxruntime.InferenceSession(str(tmp_path / "n.onnx"),
                                           providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    assert np.allclose(got, want.numpy(), atol=1e-4, rtol=1e-4)
