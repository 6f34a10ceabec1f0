"""RBM connectivity (kind rbm_connectivity): CD gradients, AIS against the exact partition
function, equal connection counts, learned against random connectivity, bad input."""

import json

import pandas as pd
import pytest
import torch

from neuroprune.cli import main
from neuroprune.rbm import RBMStack, ais_log_partition, exact_log_partition, log_likelihood
from tests.helpers import REPO

DIGITS = str(REPO / "configs" / "rbm_digits.yaml")


def tiny(seed=0, std=1.0, variants=("full", "random", "learned")):
    g = torch.Generator().manual_seed(seed)
    rate = torch.rand(8, generator=g) * 0.8 + 0.1
    r = RBMStack.create(list(variants), 8, 6, 3, rate, g, init_std=std)
    r.b += torch.randn(r.b.shape, generator=g) * 0.5
    r.c += torch.randn(r.c.shape, generator=g) * 0.5
    return r, rate, g


def test_cd_gradient_shapes_and_signs():
    r, _, g = tiny(std=0.0)
    r.b.zero_()
    r.c.zero_()
    v0 = torch.ones(3, 64, 8)  # every pixel on; the model's p(v=1) is 1/2
    gW, gb, gc = r.cd_gradients(v0, 1, g)
    assert gW.shape == (3, 8, 6) and gb.shape == (3, 8) and gc.shape == (3, 6)
    assert (gb > 0.2).all()  # raise the biases of pixels the data has on more than the model
    for _ in range(2):  # persistent chains start at the data and are carried on
        r.cd_gradients(v0, 1, g, persistent=True)
        assert r.chains.shape == v0.shape and not torch.equal(r.chains, v0)
    # contrastive divergence raises the exact log-likelihood of what it is trained on
    r, _, g = tiny(seed=1, std=0.1)
    data = torch.bernoulli(torch.full((200, 8), 0.2), generator=g)
    data[:, :4] = data[:, 4:]  # correlated pixels, which only the weights can model
    before = log_likelihood(r, data, exact_log_partition(r))
    for _ in range(300):
        r.step(data[torch.randint(0, 200, (20,), generator=g)].expand(3, -1, -1), lr=0.1,
               strength_lr=1.0, k=1, generator=g)
    after = log_likelihood(r, data, exact_log_partition(r))
    assert (after > before + 0.5).all(), (before, after)


def test_ais_matches_the_exact_log_partition_function():
    r, rate, g = tiny()
    exact = exact_log_partition(r)
    est = ais_log_partition(r, rate, runs=200, steps=2000, generator=g)
    assert torch.allclose(est, exact, atol=0.1), (est, exact)


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("rbm") / "run"
    assert main(["run", DIGITS, "--out", str(out)]) == 0
    return out


def test_equal_connection_counts_and_outputs(digits_run):
    from neuroprune import load_mask
    s = json.loads((digits_run / "summary.json").read_text())
    rows = pd.read_csv(digits_run / "results.csv")
    assert s["connections"] == 16 * 64
    assert set(rows.variant) == {"full", "random", "learned"}
    assert (rows.connections == s["connections"]).all()  # every variant, every epoch
    assert rows.epoch.max() == 20 and rows.test_log_likelihood.notna().sum() == 3 * 5
    assert rows.val_log_likelihood.notna().sum() == 3 * 5 and rows.val_reconstruction_error.all()
    assert rows[rows.variant == "learned"].pattern_changed.iloc[1:].gt(0).any()
    assert (digits_run / "rbm_connectivity.png").stat().st_size > 10_000
    mask, meta = load_mask(digits_run / "learned_mask.safetensors")
    assert mask["weight"].shape == (64, 64) and int(mask["weight"].sum()) == s["connections"]
    assert meta["method"] == "network_connectivity_gradients"


def test_export_and_load_model_say_what_the_learned_rbm_is(digits_run, tmp_path, capsys):
    import neuroprune
    from neuroprune.errors import UserError
    capsys.readouterr()
    assert main(["export", str(digits_run), "--out", str(tmp_path / "x.safetensors")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "wrote learned_mask.safetensors" in err
    assert "energy model" in err and "read_mask_file" in err
    with pytest.raises(UserError, match="energy model") as exc:
        neuroprune.load_model(digits_run / "learned_mask.safetensors")
    assert "altered" not in str(exc.value) and "\n" not in str(exc.value)


def test_learned_connectivity_beats_random_on_digits(digits_run):
    v = json.loads((digits_run / "summary.json").read_text())["variants"]
    # seeds 0-2 put learned 0.8-1.4 nats above random; 0.3 leaves room for other BLAS
    assert v["learned"]["test_log_likelihood"] > v["random"]["test_log_likelihood"] + 0.3
    assert v["learned"]["reconstruction_error"] < v["random"]["reconstruction_error"]


def test_the_validation_figures_are_the_objective_variants(digits_run):
    """The summary's val_* figures are the learned variant's last epoch on the validation
    split: another split than the test's, under the same log Z."""
    s = json.loads((digits_run / "summary.json").read_text())
    rows = pd.read_csv(digits_run / "results.csv")
    last = rows[(rows.epoch == 20) & (rows.variant == "learned")].iloc[0]
    assert s["objective_variant"] == "learned"
    assert s["val_log_likelihood"] == pytest.approx(last.val_log_likelihood, rel=1e-12)
    assert s["val_reconstruction_error"] == pytest.approx(last.val_reconstruction_error,
                                                          rel=1e-12)
    assert last.val_log_likelihood != last.test_log_likelihood
    assert abs(last.val_log_likelihood - last.test_log_likelihood) < 2  # one model, one log Z


def test_runs_without_validation_columns_still_report(digits_run, tmp_path):
    """Runs made before the validation split was scored report, its column left blank."""
    import shutil
    old = tmp_path / "old"
    shutil.copytree(digits_run, old)
    rows = pd.read_csv(old / "results.csv")
    rows.drop(columns=["val_log_likelihood", "val_reconstruction_error"]).to_csv(
        old / "results.csv", index=False)
    s = json.loads((old / "summary.json").read_text())
    for k in ("objective_variant", "val_log_likelihood", "val_reconstruction_error"):
        del s[k]
    (old / "summary.json").write_text(json.dumps(s))
    assert main(["report", str(old), "--out", str(tmp_path / "report")]) == 0
    md = (tmp_path / "report" / "report.md").read_text()
    row = next(line for line in md.splitlines() if "| learned |" in line)
    assert f"{s['variants']['learned']['test_log_likelihood']:.4f} | – |" in row


@pytest.mark.parametrize("override, says", [
    ("rbm.objective_variant=full rbm.variants=[random,learned]", "not among the variants"),
    ("rbm.full_hidden=65", "more than the 4,096 possible"),
    ("rbm.full_hidden=0", "rbm.full_hidden"),
    ("rbm.binarise=none", "not binary"),
    ("data.standardise=true", "data.standardise=false"),
])
def test_bad_input_is_one_line(tmp_path, capsys, override, says):
    out = tmp_path / "bad"
    sets = [a for o in override.split(" ") for a in ("--set", o)]
    assert main(["run", DIGITS, "--out", str(out), *sets]) == 2
    err = capsys.readouterr().err.strip()
    assert says in err and "\n" not in err, err
    assert not out.exists()
