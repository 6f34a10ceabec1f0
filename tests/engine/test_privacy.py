"""Differentially private training (kind private_training): the accountant's epsilon, masks
under noise, the non-private limit, LSG's reduced space, and bad input."""

from __future__ import annotations

import json

import pytest
import torch

pytest.importorskip("opacus")

from helpers import run_cli  # noqa: E402
from neuroprune.cli import main  # noqa: E402
from neuroprune.config import load_config  # noqa: E402
from neuroprune.engine.lsg import LowRankSparseCoder  # noqa: E402
from neuroprune.engine.privacy import PrivacyConfig  # noqa: E402
from neuroprune.engine.private_trainer import train_private  # noqa: E402
from neuroprune.workbench import Workbench  # noqa: E402

CONFIG = "private_digits"


def bench(*overrides: str) -> Workbench:
    return Workbench.from_config(load_config(CONFIG, list(overrides)))


def train(b: Workbench, mask=None, **privacy):
    """Train ``b``'s model under ``privacy`` (none: plainly); returns (model, result)."""
    settings = b.settings
    settings = settings.model_copy(update={"privacy": PrivacyConfig(**privacy)
                                           if privacy else None})
    torch.manual_seed(0)
    model = b.build_model()
    model.load_state_dict(b.init_state())
    return model, train_private(model, b.data, settings, mask=mask, seed=0)


def test_summary_epsilon_is_within_the_target(tmp_path):
    proc = run_cli("run", CONFIG, "--out", str(tmp_path / "r"), "--no-progress",
                   "--set", "training.epochs=2", "--set", "training.privacy.epsilon=2")
    assert proc.returncode == 0, proc.stderr
    s = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert s["kind"] == "private_training" and s["private"]
    assert 1.5 < s["epsilon"] <= 2.0  # calibrated to the budget, never over it
    assert s["noise_multiplier"] > 0.3 and s["sparsity"] == pytest.approx(0.5, abs=0.01)


@pytest.mark.parametrize("method", ["dpsgd", "lsg"])
def test_masked_weights_stay_exactly_zero_under_noise(method):
    b = bench("training.epochs=1", "training.momentum=0.9", "training.weight_decay=0.01")
    gen = torch.Generator().manual_seed(1)
    model = b.build_model()
    mask = {k: torch.rand(p.shape, generator=gen) < 0.5
            for k, p in model.named_parameters() if p.dim() == 2}
    before = {k: v.clone() for k, v in b.init_state().items()}
    model, result = train(b, mask, epsilon=0.5, method=method, rank=2)
    assert result["noise_multiplier"] > 1  # loud noise: a leak onto a masked weight shows
    for k, m in mask.items():
        w = dict(model.named_parameters())[k].detach()
        assert torch.equal(w[~m], torch.zeros_like(w[~m]))
        assert not torch.equal(w[m], before[k][m])  # the kept weights did train


def test_huge_epsilon_approaches_plain_training():
    b = bench("training.epochs=4")
    _, plain = train(b)
    _, loose = train(b, epsilon=1e7, max_grad_norm=20)  # noise std: sigma * clip
    _, tight = train(b, epsilon=0.3)
    assert loose["noise_multiplier"] < 0.05
    assert abs(loose["test_accuracy"] - plain["test_accuracy"]) < 0.04
    assert tight["test_accuracy"] < loose["test_accuracy"] - 0.03


def test_lsg_coordinates_are_low_rank_and_sparse():
    torch.manual_seed(0)
    coder = LowRankSparseCoder(torch.Size([20, 30]), None, rank=3, density=0.5)
    coder.prepare(torch.Generator().manual_seed(0))
    assert int(coder.keep.sum()) == round(0.5 * 3 * 50)
    z = coder.reduce(torch.randn(7, 20, 30))
    assert z.shape == (7, 150) and torch.equal(z[:, ~coder.keep], torch.zeros(7, 75))
    g = coder.expand(torch.randn(150) * coder.keep)
    assert torch.linalg.matrix_rank(g) <= 6  # L a + b R - L L^T b R: rank <= 2r
    full = LowRankSparseCoder(torch.Size([20, 30]), None, rank=3, density=1.0)
    full.prepare(torch.Generator().manual_seed(0))
    inside = full.L @ torch.randn(3, 30)  # a gradient in the carriers' span comes back whole
    assert torch.allclose(full.expand(full.reduce(inside.unsqueeze(0))[0]), inside, atol=1e-5)


def test_one_lsg_step_updates_each_matrix_in_rank_2r():
    b = bench("training.epochs=1", "training.batch_size=2000", "training.momentum=0")
    before = b.init_state()
    model, result = train(b, epsilon=5, method="lsg", rank=2, density=0.6)
    assert result["steps"] == 1
    assert result["noised_coordinates"] < 0.3 * result["parameters"]
    for k, p in model.named_parameters():
        if p.dim() == 2:
            assert torch.linalg.matrix_rank(p.detach() - before[k]) <= 4


@pytest.mark.parametrize("override, words", [
    ("training.privacy.epsilon=0", "epsilon"),
    ("training.privacy.delta=1", "delta"),
    ("training.privacy.max_grad_norm=0", "max_grad_norm"),
    ("kind=mask_search", "private_training"),
    ("model={name: conv2, batch_norm: true, width: 0.25}", "BatchNorm"),
])
def test_bad_privacy_input_is_one_line_exit_2(tmp_path, capsys, override, words):
    assert main(["run", CONFIG, "--out", str(tmp_path / "r"), "--set", override]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and words in err, err
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("overrides", [["training.epochs=2"],
                                       ["training.epochs=2", "training.privacy=null",
                                        "sparsity.target=0"]])
def test_a_private_run_exports_and_reloads_its_network(tmp_path, overrides):
    import neuroprune
    from neuroprune.preprocess import detach

    run = tmp_path / "r"
    sets = [a for o in overrides for a in ("--set", o)]
    assert main(["run", CONFIG, "--out", str(run), "--no-progress", *sets]) == 0
    summary = json.loads((run / "summary.json").read_text())
    out = tmp_path / "net.safetensors"
    assert main(["export", str(run), "--out", str(out)]) == 0
    b = bench(*overrides)
    for path in (run / "best_mask.safetensors", out):
        model = neuroprune.load_model(path)
        detach(model)  # the workbench's data is standardised
        with torch.no_grad():
            acc = float((model(b.data.test_x).argmax(1) == b.data.test_y).float().mean())
        assert acc == pytest.approx(summary["test_accuracy"])
    mask, meta = neuroprune.load_mask(out)
    assert mask.sparsity() == pytest.approx(summary["sparsity"], abs=1e-6)
    assert meta["test_accuracy"] == summary["test_accuracy"]
    assert main(["export", str(run), "--out", str(tmp_path / "sd.pt"),
                 "--format", "state_dict"]) == 0
