import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from neuroprune.masks import (Mask, apply_mask, bits_to_mask, check_bits, erk_densities,
                              flatten, load_mask, make_layout, random_bits, save_mask, top_bits)

SHAPES = {"0.weight": (300, 64), "2.weight": (100, 300), "4.weight": (10, 100)}


@pytest.mark.parametrize("allocation", ["uniform", "global", "erk"])
@pytest.mark.parametrize("sparsity", [0.0, 0.5, 0.9, 0.98])
def test_random_masks_keep_exact_counts(allocation, sparsity):
    layout = make_layout(SHAPES, sparsity, allocation)
    bits = random_bits(layout, torch.Generator().manual_seed(0))
    check_bits(layout, bits)
    total = sum(torch.tensor(s).prod().item() for s in SHAPES.values())
    if allocation == "global":
        assert int(bits.sum()) == round((1 - sparsity) * total)
    if allocation == "uniform":
        for start, stop, kept in layout.units:
            assert kept == round((1 - sparsity) * (stop - start))


def test_erk_density_matches_target_and_favours_small_layers():
    dens = erk_densities(list(SHAPES.values()), 0.1)
    numel = [torch.tensor(s).prod().item() for s in SHAPES.values()]
    mean = sum(d * n for d, n in zip(dens, numel)) / sum(numel)
    assert mean == pytest.approx(0.1, rel=1e-9)
    assert dens[2] > dens[0] > dens[1]  # the small output layer is kept densest
    assert all(d <= 1.0 for d in dens)


def test_erk_caps_dense_layers():
    dens = erk_densities([(1000, 1000), (2, 2)], 0.5)
    assert dens[1] == 1.0 and dens[0] < 0.5


def test_top_bits_keeps_largest_scores():
    layout = make_layout({"w": (2, 5)}, 0.6, "uniform")
    scores = torch.arange(10.0)
    bits = top_bits(layout, scores)
    assert bits.nonzero().flatten().tolist() == [6, 7, 8, 9]


def test_mask_refuses_non_binary_values():
    with pytest.raises(ValueError):
        Mask({"w": torch.tensor([0.0, 0.5])})
    with pytest.raises(TypeError):
        Mask({"w": [1, 0]})
    assert Mask({"w": torch.tensor([1.0, 0.0])})["w"].dtype == torch.bool


def test_save_load_apply_round_trip(tmp_path):
    model = nn.Sequential(nn.Linear(64, 300), nn.ReLU(), nn.Linear(300, 100), nn.ReLU(),
                          nn.Linear(100, 10))
    layout = make_layout(SHAPES, 0.9, "erk")
    mask = bits_to_mask(layout, random_bits(layout, torch.Generator().manual_seed(1)))
    path = tmp_path / "m.safetensors"
    save_mask(path, mask, {"sparsity": mask.sparsity(), "method": "kstarts",
                           "architecture": {"arch": "mlp"}})
    loaded, meta = load_mask(path)
    assert meta["method"] == "kstarts" and meta["architecture"] == {"arch": "mlp"}
    assert all(torch.equal(loaded[k], mask[k]) for k in mask)
    plain = load_file(str(path))  # plain safetensors reads it, in prune's naming
    assert set(plain) == {k + "_mask" for k in mask}
    apply_mask(model, loaded)
    assert torch.equal(model[0].weight == 0, ~mask["0.weight"] | (model[0].weight_orig == 0))
    assert hasattr(model[0], "weight_mask")


def test_apply_mask_names_the_mismatch():
    model = nn.Sequential(nn.Linear(4, 3))
    with pytest.raises(ValueError, match="0.weight"):
        apply_mask(model, {"0.weight": torch.ones(3, 5, dtype=torch.bool)})
    with pytest.raises(ValueError, match="not parameters"):
        apply_mask(model, {"9.weight": torch.ones(3, 4, dtype=torch.bool)})


def test_corrupt_mask_file_is_a_clear_error(tmp_path):
    from neuroprune.errors import UserError
    layout = make_layout({"w": (4, 4)}, 0.5, "uniform")
    path = tmp_path / "m.safetensors"
    save_mask(path, bits_to_mask(layout, random_bits(layout, torch.Generator())), {})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match="truncated or corrupt"):
        load_mask(path)


def test_flatten_and_split_are_inverse():
    layout = make_layout(SHAPES, 0.8, "erk")
    bits = random_bits(layout, torch.Generator().manual_seed(3))
    assert torch.equal(flatten(layout, bits_to_mask(layout, bits)), bits)
