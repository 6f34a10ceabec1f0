"""Files from others run no code (issue 33): every way of loading a mask file, a checkpoint or
an ensemble, fed a file that would create ``PWNED`` if it ran code, ends in one line (exit 2
on the command line, :class:`UserError` in Python) and creates nothing; tampered mask files
are refused the same way, before anything is written or allocated.
"""

import json
import os
import shutil
import sys

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

import neuroprune
from neuroprune.checkpoint import CHECKPOINT_VERSION, decode, encode, load_checkpoint
from neuroprune.cli import main
from neuroprune.errors import UserError
from neuroprune.export import FORMATS, export

from helpers import REPO
from faults import QUICK, TINY, finished, unfinished  # noqa: F401  (fixtures: a tiny run)



class Evil:
    """A pickle that runs a command as it loads."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


@pytest.fixture
def pwned(tmp_path):
    path = tmp_path / "PWNED"
    yield path
    assert not path.exists(), "a loaded file ran code"


def _one_line(capsys, needle: str = "") -> str:
    err = capsys.readouterr().err.strip().splitlines()
    errors = [ln for ln in err if ln.startswith("neuroprune: error:")]
    assert len(errors) == 1 and errors == err[-1:] and "Traceback" not in "".join(err), err
    assert needle in errors[0], errors[0]
    return errors[0]


def _tampered(src, dst, tensors=None, **meta_changes):
    """A copy of mask file ``src`` at ``dst`` with other tensors and metadata values."""
    with safe_open(str(src), "pt") as f:
        meta = dict(f.metadata())
    meta.update({k: v if isinstance(v, str) else json.dumps(v) for k, v in meta_changes.items()})
    dst.parent.mkdir(parents=True, exist_ok=True)
    save_file(load_file(str(src)) if tensors is None else tensors, str(dst), metadata=meta)
    return dst


def _evil_mask(finished, dst, pwned):
    arch = {"name": None, "factory": "os:system", "options": {"command": f"touch {pwned}"},
            "input_shape": [1, 8, 8], "num_classes": 10}
    return _tampered(finished / "best_mask.safetensors", dst, architecture=arch)


# ------------------------------------------------------------------ S1: mask files
def test_a_factory_named_in_a_mask_file_is_never_called(finished, tmp_path, pwned, capsys):
    run = tmp_path / "evil_run"
    path = _evil_mask(finished, run / "best_mask.safetensors", pwned)
    tried = 0
    with pytest.raises(UserError, match="names the model factory 'os:system'"):
        neuroprune.load_model(path)
    tried += 1
    for fmt in FORMATS:
        out = tmp_path / f"out.{fmt}"
        with pytest.raises(UserError, match="--trust-code"):
            export(path, out, fmt)
        assert main(["export", str(run), "--out", str(out), "--format", fmt]) == 2
        _one_line(capsys, "os:system")
        assert not out.exists()
        tried += 2
    assert tried == 1 + 2 * len(FORMATS) and len(FORMATS) >= 6 and not pwned.exists()


def test_the_caller_may_pass_the_model_or_trust_the_file(finished, tmp_path, capsys):
    from neuroprune.models import ModelSpec, build_model
    src = finished / "best_mask.safetensors"
    spec = ModelSpec.from_dict(neuroprune.load_mask(src)[1]["architecture"])
    arch = {**spec.to_dict(), "name": None, "factory": "neuroprune.models.mlp:mlp"}
    path = _tampered(src, tmp_path / "r" / "best_mask.safetensors", architecture=arch)
    with pytest.raises(UserError, match="factory"):
        neuroprune.load_model(path)
    x = torch.randn(4, 1, 8, 8)
    want = neuroprune.load_model(src)(x)
    assert torch.equal(neuroprune.load_model(path, model=build_model(spec))(x), want)
    assert torch.equal(neuroprune.load_model(path, trust=True)(x), want)
    assert main(["export", str(tmp_path / "r"), "--out", str(tmp_path / "t.pt"),
                 "--format", "state_dict", "--trust-code"]) == 0


def test_export_of_a_study_trial_with_a_factory_file_runs_nothing(tmp_path, pwned, capsys):
    from neuroprune.config import load_config
    from neuroprune.tuning.tune import Tuner
    cfg = load_config(REPO / "configs" / "tune_quickstart.yaml",
                      ["method.population=4", "method.generations=1", "training.epochs=1",
                       "model.widths=[16]", "tune.pruner=none"])
    Tuner(cfg, tmp_path / "t", n_trials=1).run(progress=False)
    trial = tmp_path / "t" / "trials" / "trial_0000"
    _evil_mask(trial, trial / "best_mask.safetensors", pwned)
    capsys.readouterr()
    assert main(["export", "--storage", str(tmp_path / "t"), "--study", "tune_quickstart",
                 "--out", str(tmp_path / "x.safetensors")]) == 2
    _one_line(capsys, "os:system")
    assert not (tmp_path / "x.safetensors").exists()


# ------------------------------------------------------------------ S2: checkpoints
def _evil_checkpoint(run, pwned):
    last = sorted((run / "checkpoints").glob("gen_*.pt"))[-1]
    torch.save({"generation": int(last.stem[4:]), "x": Evil(pwned)}, last)
    return last


@pytest.mark.parametrize("how", ["resume", "run --resume"])
def test_a_pickled_checkpoint_is_not_loaded(unfinished, pwned, capsys, how):
    _evil_checkpoint(unfinished, pwned)
    args = (["resume", str(unfinished), "--no-progress"] if how == "resume" else
            ["run", QUICK, "--resume", str(unfinished), *TINY])
    assert main(args) == 2
    _one_line(capsys, "is of version 1")
    assert not (unfinished / "summary.json").exists()


def test_a_trial_folder_with_a_pickled_checkpoint_is_not_loaded(unfinished, tmp_path, pwned,
                                                                 capsys):
    trial = tmp_path / "t" / "trials" / "trial_0000"
    shutil.copytree(unfinished, trial)
    _evil_checkpoint(trial, pwned)
    assert main(["resume", str(trial), "--no-progress"]) == 2
    _one_line(capsys, "--trust-code")


def test_a_comparison_cell_with_a_pickled_checkpoint_is_not_loaded(tmp_path, pwned, capsys):
    out = tmp_path / "cmp"
    assert main(["run", str(REPO / "configs" / "compare_digits.yaml"), "--out", str(out),
                 "--set", "comparison.sparsities=[0.9]", "--set", "comparison.seeds=[0]",
                 "--set", "comparison.methods=[{name: kstarts, population: 4, generations: 2, "
                 "search_epochs: 1}]", "--set", "training.epochs=1",
                 "--set", "model.widths=[16]", "--no-progress", "--device", "cpu"]) == 0
    (out / "summary.json").unlink()
    cell = next(p for p in (out / "cells").iterdir() if (p / "checkpoints").is_dir())
    (cell / "summary.json").unlink()
    _evil_checkpoint(cell, pwned)
    capsys.readouterr()
    assert main(["resume", str(out), "--no-progress"]) == 2
    _one_line(capsys, "is of version 1")


def test_an_old_checkpoint_resumes_only_with_trust_code(unfinished, tmp_path, capsys):
    last = sorted((unfinished / "checkpoints").glob("gen_*.pt"))[-1]
    torch.save(load_checkpoint(last), last)  # as version 1 wrote it: a pickle of the objects
    assert main(["resume", str(unfinished), "--no-progress"]) == 2
    _one_line(capsys, f"this neuroprune writes version {CHECKPOINT_VERSION}")
    assert main(["resume", str(unfinished), "--no-progress", "--trust-code"]) == 0
    assert (unfinished / "summary.json").is_file()


def test_checkpoints_load_as_weights_only_and_decode_exactly(finished):
    import pickle
    for path in (finished / "checkpoints").glob("gen_*.pt"):
        blob = torch.load(path, weights_only=True)
        assert blob["checkpoint_version"] == CHECKPOINT_VERSION
        state = decode(blob["state"])
        assert pickle.dumps(decode(encode(state))) == pickle.dumps(state)
        hof = state["hof"]
        assert [i.fitness.values for i in hof.items] == [k.values for k in hof.keys[::-1]]
        assert isinstance(state["logbook"][0]["best"], type(state["logbook"][-1]["best"]))
    with pytest.raises(TypeError, match="cannot hold"):
        encode({"f": lambda: None})


# ------------------------------------------------------------------ S3: ensembles
def test_an_ensemble_pickle_naming_other_code_is_not_loaded(tmp_path, pwned, capsys):
    import joblib
    run = tmp_path / "ens"
    run.mkdir()
    joblib.dump(Evil(pwned), run / "ensemble.joblib")
    with pytest.raises(UserError, match="posix.system|os.system"):
        neuroprune.load_ensemble(run)
    assert main(["export", str(run), "--out", str(tmp_path / "e.joblib")]) == 2
    _one_line(capsys, "--trust-code")
    assert not (tmp_path / "e.joblib").exists()


def test_a_trusted_ensemble_loads_as_it_is(tmp_path):
    from fractions import Fraction

    import numpy as np

    from neuroprune.ensembles import EvolvedEnsembleClassifier
    from neuroprune.searches.ensemble_search import save_ensemble

    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3))
    y = (X[:, 0] > 0).astype(int)
    est = EvolvedEnsembleClassifier(pool=("knn3", "gnb"), population=4, generations=2,
                                    random_state=0).fit(X, y)
    est.note_ = Fraction(1, 3)  # a class no saved ensemble holds: refused unless trusted
    save_ensemble(est, tmp_path / "e.joblib")
    with pytest.raises(UserError, match="fractions"):
        neuroprune.load_ensemble(tmp_path / "e.joblib")
    loaded = neuroprune.load_ensemble(tmp_path / "e.joblib", trust=True)
    assert loaded.note_ == Fraction(1, 3)
    assert (loaded.predict(X) == est.predict(X)).all()


# ------------------------------------------------------------------ D4 / D5: tampered files
def _drop(name):
    return lambda t: {k: v for k, v in t.items() if k != name}


TAMPERED = {
    "wrong shape": (lambda t: {**t, "1.weight_mask": torch.ones(3, 3, dtype=torch.bool)},
                    {}, "shape"),
    "mask of a layer it lacks": (lambda t: {**t, "9.weight_mask": torch.ones(3, dtype=torch.bool)},
                                 {}, "does not have"),
    "extra tensor": (lambda t: {**t, "extra": torch.zeros(2)}, {}, "unexpected"),
    "float mask": (lambda t: {**t, "1.weight_mask": t["1.weight_mask"].float()}, {}, "not bool"),
    "architecture not JSON": (None, {"architecture": "{mlp, widths: [16"}, "not a JSON object"),
    "architecture of another type": (None, {"architecture": {"name": "mlp", "input_shape": 5,
                                                             "num_classes": 10}},
                                     "not a model spec"),
    "weights under the mask": (lambda t: {**t, "1.weight": t["1.weight"] + 1.0}, {}, "not zero"),
    "missing mask": (_drop("3.weight_mask"), {}, "no mask for ['3.weight']"),
    "3e9 wide": (None, {"architecture": {"name": "mlp", "options": {"widths": [3000000000]},
                                         "input_shape": [1, 8, 8], "num_classes": 10}},
                 "free"),
}


@pytest.mark.parametrize("name", TAMPERED)
def test_tampered_mask_files_end_in_one_line_and_write_nothing(finished, tmp_path, capsys,
                                                               name):
    change, meta, needle = TAMPERED[name]
    src = finished / "best_mask.safetensors"
    tensors = None if change is None else change(load_file(str(src)))
    run = tmp_path / "r"
    path = _tampered(src, run / "best_mask.safetensors", tensors, **meta)
    with pytest.raises(UserError, match=needle.replace("[", r"\[").replace("]", r"\]")):
        neuroprune.load_model(path)
    for fmt in ("safetensors", "sparse", "compact"):
        out = tmp_path / f"out.{fmt}"
        assert main(["export", str(run), "--out", str(out), "--format", fmt]) == 2
        _one_line(capsys, needle)
        assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r"]


def test_a_huge_architecture_is_refused_before_allocating(finished, tmp_path):
    import resource
    import time
    src = finished / "best_mask.safetensors"
    path = _tampered(src, tmp_path / "big.safetensors",
                     architecture={"name": "mlp", "options": {"widths": [3000000000]},
                                   "input_shape": [1, 8, 8], "num_classes": 10})
    assert path.stat().st_size < 20_000
    before, t0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, time.time()
    with pytest.raises(UserError, match="225,000,000,010 parameters"):
        neuroprune.load_model(path)
    assert time.time() - t0 < 10
    grown_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kb < 200_000  # not the 768 GB it names


# ------------------------------------------------------------------ S5: dashboard
def test_dashboard_beyond_loopback_warns_that_the_api_is_open():
    from neuroprune.tuning.dashboard import exposure_warning
    for host in ("127.0.0.1", "localhost", "::1", "127.0.1.1"):
        assert exposure_warning(host) is None
    for host in ("0.0.0.0", "::", "192.168.1.5", "myhost.example"):
        assert "no authentication" in exposure_warning(host)


if sys.platform == "win32":  # pragma: no cover
    pytest.skip("the PWNED payload uses touch", allow_module_level=True)
