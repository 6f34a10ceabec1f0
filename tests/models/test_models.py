"""The model zoo, factories and torchvision: one factory builds every model."""

import pytest
import torch
from torch import nn

from neuroprune.errors import ConfigError, UserError
from neuroprune.models import MODELS, ModelSpec, build_model, check_model, prunable_names

# (name, input shape, parameters at the paper's size for 10 classes)
SIZES = [("lenet_300_100", (1, 28, 28), 266_610), ("lenet5_caffe", (1, 28, 28), 431_080),
         ("cnn_32_64", (1, 28, 28), 9_245_826),
         ("conv2", (3, 32, 32), 4_301_642), ("conv4", (3, 32, 32), 2_425_930),
         ("conv6", (3, 32, 32), 2_262_602), ("resnet20", (3, 32, 32), 272_474),
         ("resnet56", (3, 32, 32), 855_770)]


@pytest.mark.parametrize("name,shape,count", SIZES, ids=[s[0] for s in SIZES])
def test_zoo_models_have_the_papers_sizes(name, shape, count):
    model = check_model(ModelSpec.zoo(name, shape, 10))
    assert sum(p.numel() for p in model.parameters()) == count


def test_every_zoo_model_builds_checks_and_rebuilds_from_its_spec():
    for name in MODELS:
        spec = ModelSpec.zoo(name, (12,) if name == "text_transformer" else (3, 32, 32), 7)
        model = check_model(spec)
        assert prunable_names(model)
        again = build_model(ModelSpec.from_dict(spec.to_dict()))
        assert [n for n, _ in again.named_parameters()] == \
            [n for n, _ in model.named_parameters()]


def test_resnet_shortcut_options_and_bias_free_convs():
    conv = build_model(ModelSpec.zoo("resnet20", (3, 32, 32), 10))
    pad = build_model(ModelSpec.zoo("resnet20", (3, 32, 32), 10, shortcut="pad"))
    assert all(m.bias is None for m in conv.modules() if isinstance(m, nn.Conv2d))
    assert sum(p.numel() for p in pad.parameters()) < sum(p.numel() for p in conv.parameters())
    with pytest.raises(ConfigError, match="shortcut"):
        build_model(ModelSpec.zoo("resnet20", (3, 32, 32), 10, shortcut="x"))


def build(input_shape, num_classes, width=8):
    """A user factory (used by the tests as ``test_models:build``)."""
    return nn.Sequential(nn.Flatten(), nn.Linear(int(torch.tensor(input_shape).prod()), width),
                         nn.ReLU(), nn.Linear(width, num_classes))


class Declared(nn.Module):
    """A model that declares what is prunable and its output layer (as OpenLTH's do)."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(64, 16), nn.Linear(16, 10)

    def forward(self, x):
        return self.b(torch.relu(self.a(x.flatten(1))))

    prunable_layer_names = ["a.weight"]
    output_layer_names = ["b.weight"]


def test_factories_receive_the_data_shape_and_their_kwargs():
    spec = ModelSpec((1, 8, 8), 10, None, {"width": 5}, "test_models:build")
    model = check_model(spec)
    assert model[1].weight.shape == (5, 64)
    assert prunable_names(check_model(ModelSpec((1, 8, 8), 10, builder=Declared))) == \
        ["a.weight"]


def test_bad_models_are_one_line_errors():
    with pytest.raises(ConfigError, match=r"outputs of shape \(2, 7\).*needs \(2, 3\)"):
        check_model(ModelSpec((1, 8, 8), 3, builder=lambda: nn.Sequential(nn.Flatten(),
                                                                         nn.Linear(64, 7))))
    with pytest.raises(ConfigError, match="cannot take this dataset's inputs"):
        check_model(ModelSpec((1, 8, 8), 3, builder=lambda: nn.Linear(10, 3)))
    with pytest.raises(ConfigError, match="cannot import module"):
        check_model(ModelSpec((1, 8, 8), 10, None, {}, "no_such_package.nets:build"))
    with pytest.raises(ConfigError, match="has no attribute"):
        check_model(ModelSpec((1, 8, 8), 10, None, {}, "test_models:nothing"))


def test_torchvision_models_are_adapted_or_the_error_says_what_to_install():
    try:
        import torchvision  # noqa: F401
        usable = True
    except Exception:
        usable = False
    spec = ModelSpec((1, 16, 16), 4, "torchvision:resnet18", {})
    if not usable:  # this machine's torch build has no matching torchvision
        with pytest.raises(UserError, match="torchvision"):
            check_model(spec)
        return
    model = check_model(spec)
    assert next(m for m in model.modules() if isinstance(m, nn.Conv2d)).in_channels == 1
    with pytest.raises(ConfigError, match="did you mean"):
        check_model(ModelSpec((1, 16, 16), 4, "torchvision:resnet81", {}))
