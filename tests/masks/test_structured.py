"""Structured mask spaces (coupled groups from the dependency graph), budgets, compaction."""

import pytest
import torch
from torch import nn

from neuroprune.errors import UserError
from neuroprune.masks import unflatten
from neuroprune.masks.compact import compact, rebuild_compact
from neuroprune.masks.structure import structure_space
from neuroprune.models import ModelSpec, build_model

pytest.importorskip("torch_pruning")

#: every built-in architecture at a small size: (name, input shape, options)
ZOO = [("mlp", (1, 8, 8), {"widths": [16, 8]}), ("lenet_300_100", (1, 8, 8), {}),
       ("lenet5", (1, 16, 16), {}), ("lenet5_caffe", (1, 16, 16), {}),
       ("conv2", (3, 8, 8), {"width": 0.125, "widths": [16, 16]}),
       ("conv4", (3, 8, 8), {"width": 0.125, "widths": [16, 16], "batch_norm": True}),
       ("conv6", (3, 8, 8), {"width": 0.125, "widths": [16, 16]}),
       ("vgg11", (3, 16, 16), {"width": 0.125}), ("vgg16", (3, 16, 16), {"width": 0.0625}),
       ("resnet20", (3, 8, 8), {"width": 4}), ("resnet32", (3, 8, 8), {"width": 4}),
       ("resnet56", (3, 8, 8), {"width": 4})]


def _model(name, shape, opts, seed=0):
    torch.manual_seed(seed)
    model = build_model(ModelSpec.zoo(name, shape, 10, **opts))
    for mod in model.modules():  # statistics as after training, so BatchNorm is not trivial
        if isinstance(mod, nn.modules.batchnorm._BatchNorm):
            mod.running_mean.uniform_(-1, 1)
            mod.running_var.uniform_(0.5, 2)
    return model.eval()


def _apply_rows(model, space, keep):
    params = dict(model.named_parameters())
    with torch.no_grad():
        for k, r in unflatten(space.layout, space.expand(keep)).items():
            params[k].mul_(r[0])


def test_resnet_groups_couple_residual_channels_bias_and_batchnorm():
    model = _model("resnet20", (3, 8, 8), {"width": 4})
    space = structure_space(model, torch.randn(1, 3, 8, 8))
    stem = next(g for g in space.groups if g.root == "conv")
    names = {(m.name, m.dim) for m in stem.members}
    # the stem's channels are the residual stream of stage 1: its conv, every block's second
    # conv and BatchNorm, and the input channels of every conv that reads the stream
    assert {("conv.weight", 0), ("bn.weight", 0), ("bn.bias", 0), ("blocks.0.conv2.weight", 0),
            ("blocks.2.bn2.bias", 0), ("blocks.0.conv1.weight", 1),
            ("blocks.3.shortcut.0.weight", 1)} <= names
    assert not any(g.root == "fc" for g in space.groups)  # the output layer keeps its units
    keep = torch.ones(1, space.size, dtype=torch.bool)
    keep[0, space.offsets[space.groups.index(stem)] + 1] = False
    rows = unflatten(space.layout, space.expand(keep))
    assert not rows["bn.weight"][0, 1] and not rows["blocks.1.bn2.bias"][0, 1]
    assert not rows["blocks.1.conv1.weight"][0, :, 1].any()
    assert rows["blocks.1.conv1.weight"][0, :, 0].all()


@pytest.mark.parametrize("budget,value", [("flops", 0.25), ("params", 0.5), ("sparsity", 0.6)])
def test_select_meets_each_budget(budget, value):
    model = _model("lenet5", (1, 16, 16), {})
    space = structure_space(model, torch.randn(1, 1, 16, 16))
    keep = space.select(torch.rand(3, space.size), budget, value)
    cost = space.cost(space.expand(keep), budget)
    dense = space.cost(torch.ones(1, space.layout.numel, dtype=torch.bool), budget)
    if budget == "sparsity":
        assert bool((cost >= value).all())
    else:
        assert bool((cost <= value * dense).all())
        assert bool((cost > 0.8 * value * dense).all())  # not far below: it stops when met
    for chunk in space.split(keep).values():
        assert bool(chunk.any(1).all())  # every layer keeps a unit


def test_bad_structured_input_is_one_clear_error():
    model = _model("lenet5", (1, 16, 16), {})
    ex = torch.randn(1, 1, 16, 16)
    space = structure_space(model, ex)
    with pytest.raises(UserError, match="no structure meets the flops budget"):
        space.select(torch.rand(1, space.size), "flops", 1e-6)
    with pytest.raises(UserError, match=r"group spec names \['nope'\]"):
        structure_space(model, ex, layers=["nope"])

    class Untraceable(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 4)
            self.odd = Odd()
            self.out = nn.Linear(4, 2)

        def forward(self, x):
            return self.out(self.odd(self.fc(x)))

    class Odd(nn.Module):
        def forward(self, x):
            raise RuntimeError("cannot be traced")

    with pytest.raises(UserError, match="cannot trace module 'odd'"):
        structure_space(Untraceable(), torch.randn(1, 4))
    # zero-padded shortcuts change the channel count where the graph cannot see it
    padded = _model("resnet20", (3, 8, 8), {"width": 4, "shortcut": "pad"})
    with pytest.raises(UserError, match="cannot trace module 'blocks.3.shortcut'"):
        structure_space(padded, torch.randn(1, 3, 8, 8))


@pytest.mark.parametrize("name,shape,opts", ZOO, ids=[n for n, _, _ in ZOO])
def test_compacted_outputs_equal_masked_outputs(name, shape, opts):
    model = _model(name, shape, opts)
    ex = torch.randn(1, *shape)
    space = structure_space(model, ex)
    _apply_rows(model, space, space.select(torch.rand(1, space.size), "flops", 0.3))
    small, history = compact(model, ex)
    x = torch.randn(5, *shape)
    with torch.no_grad():
        assert torch.allclose(small(x), model(x), atol=1e-5, rtol=0)
    assert sum(p.numel() for p in small.parameters()) < sum(p.numel() for p in model.parameters())
    again = rebuild_compact(build_model(ModelSpec.zoo(name, shape, 10, **opts)), ex, history)
    again.load_state_dict(small.state_dict())
    with torch.no_grad():
        assert torch.equal(again.eval()(x), small(x))


def test_dead_units_of_an_unstructured_mask_are_removed_and_their_bias_folded():
    model = _model("mlp", (1, 8, 8), {"widths": [16, 8]})
    with torch.no_grad():
        model[1].weight[:5] = 0     # five hidden units with no input: constant relu(bias)
        model[1].bias[:5] = torch.tensor([0.5, -0.5, 1.0, 0.0, 2.0])
        model[3].weight[:, 6:9] = 0  # three units nobody reads
    small, _ = compact(model, torch.randn(1, 1, 8, 8))
    assert small[1].out_features == 16 - 8
    x = torch.randn(7, 1, 8, 8)
    with torch.no_grad():
        assert torch.allclose(small(x), model(x), atol=1e-5, rtol=0)


def _structured_file(tmp_path, name="lenet5", shape=(1, 16, 16), opts=None):
    """A safetensors file as a run writes it, holding a structured mask at 30% of the FLOPs."""
    from helpers import structured_mask_file
    opts = opts or {}
    model = _model(name, shape, opts)
    space = structure_space(model, torch.randn(1, *shape))
    keep = space.select(torch.rand(1, space.size), "flops", 0.3)
    path = structured_mask_file(tmp_path / "best_mask.safetensors", model,
                                ModelSpec.zoo(name, shape, 10, **opts), space, keep)
    return path, model


def test_export_compact_onnx_and_state_dict_give_the_masked_outputs(tmp_path):
    import onnxruntime

    import neuroprune
    from neuroprune.cli import main
    from neuroprune.export import export

    path, model = _structured_file(tmp_path, "resnet20", (3, 8, 8), {"width": 4})
    x = torch.randn(6, 3, 8, 8)
    with torch.no_grad():
        want = model(x)
    info = export(path, tmp_path / "c.safetensors", "compact")
    small = neuroprune.load_model(tmp_path / "c.safetensors")
    assert info["params"] == sum(p.numel() for p in small.parameters())
    assert info["params"] < sum(p.numel() for p in model.parameters())
    with torch.no_grad():
        assert torch.allclose(small(x), want, atol=1e-5, rtol=0)
    assert main(["export", str(tmp_path), "--out", str(tmp_path / "n.onnx"),
                 "--format", "onnx"]) == 0
    session = onnxruntime.InferenceSession(str(tmp_path / "n.onnx"),
                                           providers=["CPUExecutionProvider"])
    got = session.run(None, {"input": x.numpy()})[0]
    assert torch.allclose(torch.from_numpy(got), want, atol=1e-5, rtol=0)
    export(path, tmp_path / "s.pt", "state_dict")
    plain = build_model(ModelSpec.zoo("resnet20", (3, 8, 8), 10, width=4))
    plain.load_state_dict(torch.load(tmp_path / "s.pt"))
    with torch.no_grad():
        assert torch.allclose(plain.eval()(x), want, atol=1e-6, rtol=0)


def test_export_without_a_mask_is_one_line_and_writes_nothing(tmp_path, capsys):
    from neuroprune.cli import main
    from neuroprune.export import export

    path, _ = _structured_file(tmp_path)
    unmasked = tmp_path / "unmasked"  # a run folder whose file holds weights but no mask
    export(path, unmasked / "best_mask.safetensors", "compact")
    capsys.readouterr()
    for fmt in ("compact", "onnx", "state_dict"):
        out = tmp_path / f"again.{fmt}"
        assert main(["export", str(tmp_path), "--out", str(out), "--format", fmt]) == 0
        assert main(["export", str(unmasked), "--out", str(tmp_path / f"no.{fmt}"),
                     "--format", fmt]) == 2
        assert not (tmp_path / f"no.{fmt}").exists()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all("holds no mask" in line for line in err)
    assert not list(tmp_path.glob(".*tmp"))


def test_without_torch_pruning_compaction_names_the_extra(tmp_path):
    from helpers import run_without
    _structured_file(tmp_path)
    done = run_without("torch_pruning", "export", str(tmp_path), "--out",
                       str(tmp_path / "c.safetensors"), "--format", "compact")
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        "neuroprune: error: export --format compact needs the 'torch-pruning' package: "
        "pip install 'neuroprune[structured]'"]
    assert not (tmp_path / "c.safetensors").exists()


class _Fire(nn.Module):
    """SqueezeNet's and DenseNet's pattern: two branches concatenated, then a layer reading
    the concatenation (channels 0..5 from one branch, 6..11 from the other)."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.left = nn.Conv2d(4, 6, 1)
        self.right = nn.Conv2d(4, 6, 3, padding=1)
        self.head = nn.Conv2d(12, 5, 1)

    def forward(self, x):
        x = torch.relu(self.stem(x))
        x = torch.cat([torch.relu(self.left(x)), torch.relu(self.right(x))], 1)
        return self.head(x).mean((2, 3))


def test_a_concatenation_compacts_each_branch_by_its_own_channels():
    torch.manual_seed(0)
    model = _Fire().eval()
    with torch.no_grad():
        model.right.weight[[1, 4]] = 0       # two channels of the second branch silent ...
        model.right.bias[[1, 4]] = 0
        model.head.weight[:, [0, 2]] = 0     # ... two of the first nobody reads
    ex = torch.randn(1, 3, 8, 8)
    small, _ = compact(model, ex)
    assert (small.left.out_channels, small.right.out_channels) == (4, 4)
    assert small.head.in_channels == 8
    x = torch.randn(4, 3, 8, 8)
    with torch.no_grad():
        assert torch.allclose(small(x), model(x), atol=1e-5, rtol=0)


class _Shuffled(nn.Module):
    """ShuffleNet's pattern (a half of the channels through a branch, concatenated back and
    shuffled) and ConvNeXt's (channels last: LayerNorm, a Linear-GELU-Linear block, a layer
    scale, back to channels first)."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.expand = nn.Conv2d(4, 6, 1)
        self.depthwise = nn.Conv2d(6, 6, 3, padding=1, groups=6)
        self.reduce = nn.Conv2d(6, 4, 1)
        self.norm = nn.LayerNorm(8)
        self.up = nn.Linear(8, 12)
        self.down = nn.Linear(12, 8)
        self.scale = nn.Parameter(torch.rand(8, 1, 1))
        self.head = nn.Linear(8, 5)

    def forward(self, x):
        x = torch.relu(self.stem(x))
        keep, branch = x.chunk(2, dim=1)
        branch = self.reduce(torch.relu(self.depthwise(torch.relu(self.expand(branch)))))
        x = torch.cat([keep, branch], 1)
        b, c, h, w = x.shape
        x = x.view(b, 2, c // 2, h, w).transpose(1, 2).reshape(b, c, h, w)
        y = self.down(nn.functional.gelu(self.up(self.norm(x.permute(0, 2, 3, 1)))))
        x = x + self.scale * y.permute(0, 3, 1, 2)
        return self.head(x.mean((2, 3)))


def test_shuffled_and_normalised_channels_stay_whole_and_the_rest_compacts():
    torch.manual_seed(0)
    model = _Shuffled().eval()
    ex = torch.randn(1, 3, 8, 8)
    space = structure_space(model, ex)
    # the stem's channels are shuffled and normalised: only the branch's inner channels and
    # the hidden units go one by one
    assert {g.root for g in space.groups} == {"depthwise", "up"}
    _apply_rows(model, space, space.select(torch.rand(1, space.size), "flops", 0.7))
    small, history = compact(model, ex)
    assert small.expand.out_channels < 6 and small.up.out_features < 12
    assert small.stem.out_channels == 8 and small.norm.normalized_shape == (8,)
    x = torch.randn(4, 3, 8, 8)
    with torch.no_grad():
        assert torch.allclose(small(x), model(x), atol=1e-5, rtol=0)
    again = rebuild_compact(_Shuffled(), ex, history)
    again.load_state_dict(small.state_dict())
    with torch.no_grad():
        assert torch.equal(again.eval()(x), small(x))


class _Versioned(nn.Linear):
    """A module that refuses a state dict without its version (as torchvision's MNASNet)."""
    _version = 2

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, *args):
        if local_metadata.get("version") != 2:
            raise ValueError(f"version should be 2, not {local_metadata.get('version')}")
        super()._load_from_state_dict(state_dict, prefix, local_metadata, *args)


def test_weights_rebuilt_from_tensors_load_into_a_versioned_module():
    from neuroprune.models.base import load_weights

    model, other = _Versioned(3, 2), _Versioned(3, 2)
    plain = {k: v.clone() for k, v in model.state_dict().items()}  # no _metadata
    with pytest.raises(ValueError, match="version"):
        other.load_state_dict(plain)
    load_weights(other, plain)
    assert torch.equal(other.weight, model.weight)
