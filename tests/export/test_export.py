import json

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch.nn.utils import prune

import neuroprune
from neuroprune import results
from neuroprune.cli import main
from neuroprune.config import load_config
from neuroprune.data import DataConfig, load_dataset
from neuroprune.errors import UserError
from neuroprune.export import export, load_model
from neuroprune.models import ModelSpec, build_model

from helpers import REPO, mask_search


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "r"
    cfg = load_config(REPO / "configs" / "quickstart.yaml",
                      ["method.population=4", "method.generations=3", "method.search_epochs=1",
                       "training.epochs=3", "model.widths=[32]", "device=cpu"])
    mask_search(cfg).run(out, progress=False)
    return out


def test_safetensors_round_trip_is_exact(run, tmp_path):
    export(run / "best_mask.safetensors", tmp_path / "e.safetensors")
    a, meta = neuroprune.load_mask(run / "best_mask.safetensors")
    b, meta_b = neuroprune.load_mask(tmp_path / "e.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a) and set(a) == set(b)
    assert meta_b["global_sparsity"] == pytest.approx(a.sparsity())
    for key in ("architecture", "method", "dataset", "seed", "test_accuracy", "layer_sparsity",
                "neuroprune_version"):
        assert key in meta_b
    plain = load_file(str(tmp_path / "e.safetensors"))
    assert plain["1.weight_mask"].dtype == torch.bool and plain["1.weight"].is_floating_point()


def test_mask_files_load_into_a_plain_model_and_others_can_read_them(run):
    path = run / "best_mask.safetensors"
    assert path.stat().st_mode & 0o044 == 0o044  # group and others may read (umask 022)
    model = neuroprune.load_model(path)
    spec = ModelSpec.from_dict(neuroprune.load_mask(path)[1]["architecture"])
    plain = build_model(spec)
    result = plain.load_state_dict(load_file(str(path)), strict=False)
    assert not result.missing_keys
    assert sorted(result.unexpected_keys) == ["1.weight_mask", "3.weight_mask"]
    x = torch.randn(5, *spec.input_shape)
    neuroprune.preprocess.detach(model)  # the plain model takes standardised inputs
    with torch.no_grad():
        assert torch.allclose(plain.eval()(x), model.eval()(x))
    from safetensors import safe_open
    with safe_open(str(path), "pt") as f:
        assert f.metadata()["format"] == "pt"


def test_apply_mask_on_a_masked_model_says_so(run):
    model = neuroprune.load_model(run / "best_mask.safetensors")
    mask, _ = neuroprune.load_mask(run / "best_mask.safetensors")
    with pytest.raises(ValueError, match="already carries a mask on 1.weight"):
        neuroprune.apply_mask(model, mask)


def test_files_of_the_earlier_layout_still_load(run, tmp_path):
    tensors = load_file(str(run / "best_mask.safetensors"))
    from safetensors import safe_open
    with safe_open(str(run / "best_mask.safetensors"), "pt") as f:
        meta = {k: v for k, v in f.metadata().items() if k not in ("format", "neuroprune_layout")}
    old = {(k[:-5] if k.endswith("_mask") else "weights/" + k): v for k, v in tensors.items()}
    save_file(old, str(tmp_path / "old.safetensors"), metadata=meta)
    a, _ = neuroprune.load_mask(tmp_path / "old.safetensors")
    b, _ = neuroprune.load_mask(run / "best_mask.safetensors")
    assert set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)
    assert neuroprune.masks.load_weights(tmp_path / "old.safetensors").keys() == \
        neuroprune.masks.load_weights(run / "best_mask.safetensors").keys()


def test_reloaded_model_reproduces_the_recorded_test_accuracy(run):
    model = neuroprune.load_model(run / "best_mask.safetensors")
    _, meta = neuroprune.load_mask(run / "best_mask.safetensors")
    d = meta["data"]
    data = load_dataset(DataConfig(**d))
    # the reloaded model takes raw digits (0..16): the run's standardisation is inside it
    from sklearn.datasets import load_digits

    from neuroprune.data.sklearn_sets import split
    X, y = load_digits(return_X_y=True)
    raw = torch.from_numpy(split(X.astype("float32"), y, DataConfig(**d))[4]).view(-1, 1, 8, 8)
    with torch.no_grad():
        acc = float((model(raw).argmax(1) == data.test_y).float().mean())
    summary = json.loads((run / "summary.json").read_text())
    assert acc == pytest.approx(summary["test_accuracy"], abs=1e-6)
    assert hasattr(model[1], "weight_mask")  # masks attached the torch.nn.utils.prune way
    assert torch.count_nonzero(model[1].weight[~model[1].weight_mask.bool()]) == 0


def test_prune_format_loads_into_a_pruned_model(run, tmp_path):
    export(run / "best_mask.safetensors", tmp_path / "p.pt", "prune")
    blob = torch.load(tmp_path / "p.pt")
    state = blob["state_dict"]
    assert "1.weight_orig" in state and "1.weight_mask" in state
    model = build_model(ModelSpec.from_dict(blob["metadata"]["architecture"]))
    for name in ("1", "3"):
        prune.custom_from_mask(model[int(name)], "weight",
                               torch.ones_like(model[int(name)].weight))
    model.load_state_dict(state)
    mask, _ = neuroprune.load_mask(run / "best_mask.safetensors")
    assert torch.equal(model[1].weight_mask.bool(), mask["1.weight"])


def test_sparse_format_is_smaller_and_exact(run, tmp_path):
    info = export(run / "best_mask.safetensors", tmp_path / "s.pt", "sparse")
    assert info["sparse_bytes"] < info["dense_bytes"]
    sparse = torch.load(tmp_path / "s.pt")["state_dict"]
    dense = neuroprune.masks.load_weights(run / "best_mask.safetensors")
    assert sparse["1.weight"].layout == torch.sparse_csr
    assert torch.equal(sparse["1.weight"].to_dense(), dense["1.weight"])


def test_broken_files_give_clear_errors(run, tmp_path):
    tensors = load_file(str(run / "best_mask.safetensors"))
    from safetensors import safe_open
    with safe_open(str(run / "best_mask.safetensors"), "pt") as f:
        meta = f.metadata()
    wrong = dict(tensors)
    wrong["1.weight_mask"] = torch.ones(3, 3, dtype=torch.bool)
    save_file(wrong, str(tmp_path / "shape.safetensors"), metadata=meta)
    with pytest.raises(UserError, match="1.weight"):
        load_model(tmp_path / "shape.safetensors")
    missing = {k: v for k, v in tensors.items() if k != "3.bias"}
    save_file(missing, str(tmp_path / "missing.safetensors"), metadata=meta)
    with pytest.raises(UserError, match="3.bias"):
        load_model(tmp_path / "missing.safetensors")
    data = (run / "best_mask.safetensors").read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) // 3])
    with pytest.raises(UserError, match="truncated or corrupt"):
        load_model(tmp_path / "cut.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file at all")
    with pytest.raises(UserError, match="truncated or corrupt"):
        load_model(tmp_path / "junk.safetensors")
    other = build_model(ModelSpec.zoo("mlp", (1, 8, 8), 10, widths=(7,)))
    mask, _ = neuroprune.load_mask(run / "best_mask.safetensors")
    with pytest.raises(ValueError, match="shape"):
        neuroprune.apply_mask(other, mask)


def test_export_and_report_commands(run, tmp_path, capsys):
    assert main(["export", str(run), "--out", str(tmp_path / "x.pt"), "--format", "sparse"]) == 0
    assert "dense" in capsys.readouterr().out
    assert main(["export", str(tmp_path), "--out", str(tmp_path / "y")]) == 2
    assert main(["report", str(run), "--out", str(tmp_path / "rep")]) == 0
    for png in ("fitness.png", "layers.png"):
        assert (tmp_path / "rep" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (tmp_path / "rep" / "report.md").read_text()
    summary = json.loads((run / "summary.json").read_text())
    assert f"{summary['test_accuracy']:.4f}" in md
    assert main(["report", str(tmp_path / "nothing")]) == 2


def test_results_dataframe_api(run):
    df = results.load(run)
    assert set(df.phase) == {"search", "final"}
    gen = results.per_generation(df, run)
    assert list(gen.generation) == [0, 1, 2]
    assert (gen.best.diff().dropna() >= 0).all()


def test_export_from_an_optuna_study(tmp_path, capsys):
    from neuroprune.tuning.tune import Tuner
    cfg = load_config(REPO / "configs" / "tune_quickstart.yaml",
                      ["method.population=4", "method.generations=1", "training.epochs=1",
                       "model.widths=[16]", "tune.pruner=none"])
    Tuner(cfg, tmp_path / "t", n_trials=2).run(progress=False)
    journal = str(tmp_path / "t" / "optuna.journal")
    assert main(["export", "--storage", journal, "--study", "tune_quickstart",
                 "--out", str(tmp_path / "best.safetensors")]) == 0
    assert neuroprune.load_model(tmp_path / "best.safetensors") is not None
    assert main(["export", "--storage", journal, "--study", "nope", "--out",
                 str(tmp_path / "n.safetensors")]) == 2
    assert main(["export", "--storage", journal, "--study", "tune_quickstart", "--trial", "99",
                 "--out", str(tmp_path / "n.safetensors")]) == 2


def test_export_of_a_trial_whose_run_folder_is_elsewhere_uses_its_artifact(tmp_path, capsys):
    import shutil

    from neuroprune.tuning.tune import Tuner
    cfg = load_config(REPO / "configs" / "tune_quickstart.yaml",
                      ["method.population=4", "method.generations=1", "training.epochs=1",
                       "model.widths=[16]", "tune.pruner=none"])
    folder = tmp_path / "t"
    Tuner(cfg, folder, n_trials=1).run(progress=False)
    original = load_file(str(folder / "trials" / "trial_0000" / "best_mask.safetensors"))
    shutil.rmtree(folder / "trials")  # as if the trial had run on another node
    args = ["export", "--storage", str(folder), "--study", "tune_quickstart", "--trial", "0"]
    assert main([*args, "--out", str(tmp_path / "a.safetensors")]) == 0
    again = load_file(str(tmp_path / "a.safetensors"))
    assert set(original) == set(again)
    assert all(torch.equal(original[k], again[k]) for k in original)
    assert neuroprune.load_model(tmp_path / "a.safetensors") is not None
    shutil.move(folder / "artifacts", tmp_path / "moved")  # a server storage: say where
    capsys.readouterr()
    assert main([*args, "--out", str(tmp_path / "b.safetensors")]) == 2
    assert "no best mask on this machine" in capsys.readouterr().err
    assert main([*args, "--artifacts", str(tmp_path / "moved"),
                 "--out", str(tmp_path / "b.safetensors")]) == 0
    assert main(["export", "--storage", str(tmp_path / "nothing"), "--study", "x",
                 "--out", str(tmp_path / "c.safetensors")]) == 2
    assert "no study storage at" in capsys.readouterr().err
    assert not (tmp_path / "nothing").exists()


def test_compact_export_of_an_unstructured_run_gives_its_outputs(run, tmp_path):
    pytest.importorskip("torch_pruning")
    from neuroprune.export import masked_model
    info = export(run / "best_mask.safetensors", tmp_path / "c.safetensors", "compact")
    small = neuroprune.load_model(tmp_path / "c.safetensors")
    neuroprune.preprocess.detach(small)  # masked_model takes standardised inputs
    dense = masked_model(run / "best_mask.safetensors")
    x = torch.randn(9, 1, 8, 8)
    with torch.no_grad():
        assert torch.allclose(small(x), dense(x), atol=1e-5, rtol=0)
    assert info["params"] <= sum(p.numel() for p in dense.parameters())


def test_summary_results_and_report_carry_the_efficiency_figures(run, tmp_path):
    summary = json.loads((run / "summary.json").read_text())
    for key in ("params_dense", "params_masked", "params_compact", "flops_dense",
                "flops_masked", "flops_compact", "effective_sparsity",
                "latency_b1_dense", "latency_b256_masked", "latency_b256_compact"):
        assert key in summary, key
    assert summary["params_masked"] < summary["params_dense"]
    assert summary["flops_compact"] <= summary["flops_dense"]
    assert summary["effective_sparsity"] >= summary["sparsity"] - 1e-9
    final = results.load(run).query("phase == 'final'").iloc[0]
    assert final["flops_compact"] == summary["flops_compact"]
    assert main(["report", str(run), "--out", str(tmp_path / "rep")]) == 0
    assert "effective sparsity" in (tmp_path / "rep" / "report.md").read_text()


def test_sparse_model_export_runs_in_plain_torch_and_gives_the_masked_outputs(run, tmp_path):
    from neuroprune.export import masked_model
    export(run / "best_mask.safetensors", tmp_path / "m.pt", "sparse_model")
    plain = torch.jit.load(str(tmp_path / "m.pt"))  # TorchScript: no neuroprune needed
    layouts = {v.layout for v in plain.state_dict().values()}
    assert torch.sparse_csr in layouts
    reference = neuroprune.load_model(run / "best_mask.safetensors")  # takes raw inputs too
    x = torch.randn(9, 1, 8, 8) * 4 + 8
    with torch.no_grad():
        assert torch.allclose(plain(x), reference(x), atol=1e-5, rtol=0)
    dense = masked_model(run / "best_mask.safetensors")
    assert sum(int(v._nnz()) for v in plain.state_dict().values()
               if v.layout == torch.sparse_csr) < sum(
        p.numel() for n, p in dense.named_parameters() if n.endswith("weight"))
