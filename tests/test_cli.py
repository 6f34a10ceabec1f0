import json
import subprocess
import sys

import pandas as pd
import pytest
import torch
import yaml
from safetensors.torch import load_file

from neuroprune.cli import main
from neuroprune.config import load_config
from neuroprune.errors import ConfigError

from helpers import REPO, run_cli

QUICK = str(REPO / "configs" / "quickstart.yaml")
TINY = ["--set", "method.population=4", "--set", "method.generations=2",
        "--set", "method.search_epochs=1", "--set", "training.epochs=2",
        "--set", "model.widths=[32]", "--no-progress"]


def test_quickstart_run_writes_the_documented_run_directory(tmp_path):
    out = tmp_path / "run"
    proc = run_cli("run", QUICK, "--out", str(out), *TINY, "--device", "cpu", "--seed", "3")
    assert proc.returncode == 0, proc.stderr
    assert "test accuracy" in proc.stdout
    summary = json.loads((out / "summary.json").read_text())
    for key in ("method", "sparsity", "test_accuracy", "val_accuracy", "seed", "wall_seconds",
                "device"):
        assert key in summary
    assert summary["method"] == "kstarts" and summary["seed"] == 3
    assert summary["sparsity"] == pytest.approx(0.9, abs=1e-3)
    lines = (out / "results.csv").read_text().splitlines()
    assert lines[0].startswith("generation,index,fitness,val_accuracy")
    assert 1 + 4 <= len(lines) <= 1 + 4 + 4 + 1  # gen 0: all 4; gen 1: the changed ones; final
    assert (out / "config.yaml").read_text().count("population: 4") == 1
    tensors = load_file(str(out / "best_mask.safetensors"))
    masks = {k: v for k, v in tensors.items() if k.endswith("_mask")}
    assert set(masks) == {"1.weight_mask", "3.weight_mask"} and all(v.dtype == torch.bool
                                                          for v in masks.values())
    kept = sum(int(v.sum()) for v in masks.values())
    assert kept == summary["kept_weights"]
    assert len(list((out / "checkpoints").glob("gen_*.pt"))) == 2
    curve = pd.read_csv(out / "learning_curve.csv")
    assert curve.epoch.tolist() == list(range(1, 3))
    assert curve.val_accuracy.iloc[-1] == pytest.approx(summary["val_accuracy"], abs=1e-6)


def test_methods_lists_one_line_each(capsys):
    assert main(["methods"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert any(line.startswith("kstarts ") for line in lines)
    assert all(len(line.split()) > 2 for line in lines)


def test_config_prints_every_key_with_defaults_and_help(capsys):
    assert main(["config", QUICK, "--set", "sparsity.target=0.95"]) == 0
    out = capsys.readouterr().out
    assert "target: 0.95  # fraction of prunable weights removed" in out
    assert "tournament_size: 3" in out
    tree = yaml.safe_load(out)  # comments aside, it is the resolved config
    from neuroprune.config import RunConfig
    for section, model in (("training", "TrainSettings"), ("data", "DataConfig")):
        fields = RunConfig.model_fields[section].annotation.model_fields
        assert set(tree[section]) == set(fields), section
        for name, info in fields.items():  # every key has its help text
            assert info.description, f"{section}.{name} has no help text"
            assert f"{name}: " in out


def test_json_schema_lists_registered_names(capsys):
    import json
    assert main(["config", "--schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert "kstarts" in json.dumps(schema["properties"]["method"])
    data = schema["$defs"]["DataConfig"]["properties"]["dataset"]
    assert "cifar10" in data["enum"] and "digits" in data["enum"]


def test_version_and_help_do_not_import_torch():
    code = ("import sys; from neuroprune.cli import main\n"
            "try:\n    main(['--version'])\nexcept SystemExit:\n    pass\n"
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=REPO).stdout.split()
    assert out[0] == "neuroprune" and out[-1] == "False"


def test_shipped_configs_run_by_name_and_the_run_folder_names_the_method(tmp_path):
    proc = run_cli("run", "quickstart", "--method", "random", "--set", "training.epochs=1",
                   "--no-progress", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    runs = list((tmp_path / "runs").iterdir())
    assert len(runs) == 1 and runs[0].name.startswith("quickstart-random-")


def test_a_value_is_shown_once_in_an_error(capsys):
    assert main(["run", QUICK, "--set", "sparsity.target=1.0"]) == 2
    assert capsys.readouterr().err.count("got 1.0") == 1


def test_overrides_parse_yaml_values():
    cfg = load_config(QUICK, ["model.widths=[10, 5]", "method.fitness.magnitude=1",
                              "training.optimizer=adam"])
    assert cfg.model.widths == [10, 5]
    assert cfg.method_params().fitness.magnitude == 1.0
    with pytest.raises(ConfigError, match="training.optimizer"):
        load_config(QUICK, ["training.optimizer=rmsprop"])


def _yaml(tmp_path, text):
    p = tmp_path / "c.yaml"
    p.write_text(text)
    return str(p)


BAD = [
    ("unknown top key", ["--set", "foo=1"], "unknown config key 'foo'"),
    ("unknown nested key", ["--set", "training.lrr=0.1"], "training.lrr"),
    ("wrong type", ["--set", "training.lr=abc"], "training.lr"),
    ("sparsity 1.0", ["--set", "sparsity.target=1.0"], "sparsity.target"),
    ("sparsity negative", ["--set", "sparsity.target=-0.1"], "sparsity.target"),
    ("population 0", ["--set", "method.population=0"], "method.population"),
    ("unknown method", ["--set", "method.name=nope"], "unknown method 'nope'"),
    ("unknown dataset", ["--set", "data.dataset=imagenet"], "unknown dataset"),
    ("mnist without root", ["--set", "data.dataset=mnist"], "data.root"),
    ("missing data root", ["--set", "data.dataset=mnist", "--set", "data.root=/no/such"],
     "not found"),
    ("set without =", ["--set", "training.lr"], "key=value"),
    ("elite >= population", ["--set", "method.elite=24"], "elite"),
    ("unknown method param", ["--set", "method.foo=1"], "no parameter 'foo'"),
    ("batch size 0", ["--set", "training.batch_size=0"], "training.batch_size"),
    ("epochs 0", ["--set", "training.epochs=0"], "training.epochs"),
    ("empty widths", ["--set", "model.widths=[]"], "model.widths"),
    ("negative width", ["--set", "model.widths=[-3]"], "model.widths"),
    ("bad allocation", ["--set", "sparsity.allocation=foo"], "sparsity.allocation"),
    ("unknown backend", ["--backend", "spark"], "backend"),
    ("zero fitness weights", ["--set", "method.fitness={accuracy: 0, magnitude: 0, gradient: 0}"], "fitness"),
    ("negative lr", ["--set", "training.lr=-1"], "training.lr"),
    ("negative seed", ["--seed", "-1"], "seed"),
    ("unknown model", ["--set", "model.name=resnet"], "model.name"),
    ("renamed arch key", ["--set", "model.arch=mlp"], "model.name"),
    ("mutation rate 0", ["--set", "method.mutation_rate=0"], "method.mutation_rate"),
    ("section set to value", ["--set", "training=5"], "training"),
    ("population beyond memory", ["--set", "method.population=2000000"],
     "lower method.population"),
    ("batch beyond memory", ["--set", "training.batch_size=1000000000"],
     "lower training.batch_size"),
    ("unknown zoo option", ["--set", "model.depth=3"], "has no option 'depth'"),
    ("zoo option wrong type", ["--set", "model.dropout=abc"], "model.dropout"),
    ("factory that does not import", ["--set", "model={factory: 'nosuch.module:build'}"],
     "cannot import module 'nosuch.module'"),
    ("factory without a colon", ["--set", "model={factory: nosuch}"], "package.module:function"),
    ("factory that is not a module", ["--set", "model={factory: 'builtins:dict'}"],
     "not a torch.nn.Module"),
    ("factory with a bad argument", ["--set", "model={factory: 'math:sqrt', kwargs: {x: 4}}"],
     "calling math:sqrt failed"),
    ("factory with bad output", ["--set", "model={factory: 'torch.nn:Identity'}"],
     "gives outputs of shape"),
    ("zoo options on a factory", ["--set", "model.factory=torch.nn:Identity"],
     "go in model.kwargs"),
    ("kwargs on a zoo model", ["--set", "model.kwargs={widths: [3]}"], "model.kwargs"),
    ("torchvision without a name", ["--set", "model.name=torchvision:"], "model.name"),
    ("vgg on 8x8 inputs", ["--set", "model={name: vgg16}"], "at least 16x16"),
    ("unknown augmentation", ["--set", "data.augment=[rotate]"], "unknown augmentation"),
    ("augmentation of features", ["--set", "data.dataset=iris", "--set", "data.augment=[flip]"],
     "needs image inputs"),
    ("cifar without root", ["--set", "data.dataset=cifar10"], "data.root"),
    ("unknown precision", ["--set", "engine.precision=fp8"], "engine.precision"),
    ("renamed tf32 key", ["--set", "engine.tf32=true"], "engine.precision"),
    ("unknown trainer", ["--set", "engine.trainer=fast"], "engine.trainer"),
    ("exclude unknown layer", ["--set", "sparsity.exclude=[nope]"], "sparsity.exclude"),
    ("exclude everything", ["--set", "sparsity.exclude=[1.weight, 3.weight, 5.weight]"],
     "no layer to prune"),
    ("infinite learning rate", ["--set", "training.lr=.inf"], "training.lr"),
    ("misspelt optimizer", ["--set", "training.optimizer=adma"], "did you mean 'adam'"),
    ("seed beyond 32 bits", ["--seed", "99999999999999999999"], "seed"),
    ("run name with a path", ["--set", "name=../../x"], "plain name"),
    ("subkey of a value", ["--set", "seed.x=1"], "seed"),
    ("unknown logger", ["--set", "logging=[tensorbord]"],
     "unknown logger 'tensorbord' (did you mean 'tensorboard'?)"),
    ("logging not a list", ["--set", "logging=tensorboard"], "logging"),
]
if not torch.cuda.is_available():
    BAD.append(("cuda without gpu", ["--device", "cuda"], "--device cpu"))


@pytest.mark.parametrize("name,args,needle", BAD, ids=[b[0] for b in BAD])
def test_bad_input_exits_2_with_one_line_and_writes_nothing(tmp_path, capsys, name, args,
                                                            needle):
    out = tmp_path / "out"
    code = main(["run", QUICK, "--out", str(out), "--no-progress", *args])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and err.startswith("neuroprune: error:")
    assert needle in err
    assert "Traceback" not in err
    assert not out.exists()


BAD_FILES = [
    ("invalid yaml", "name: [unclosed\n", "not valid YAML"),
    ("a list", "- 1\n- 2\n", "mapping"),
]


def test_bad_tune_flags(tmp_path, capsys):
    tq = str(REPO / "configs" / "tune_quickstart.yaml")
    for args, needle in ((["--batch", "0"], "--batch must be at least 1"),
                         (["--batch", "2", "--n-jobs", "2"], "cannot be combined")):
        out = tmp_path / "t"
        assert main(["tune", tq, "--out", str(out), *args]) == 2
        err = capsys.readouterr().err.strip()
        assert needle in err and len(err.splitlines()) == 1
        assert not out.exists()


@pytest.mark.parametrize("name,text,needle", BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_bad_config_files(tmp_path, capsys, name, text, needle):
    out = tmp_path / "out"
    assert main(["run", _yaml(tmp_path, text), "--out", str(out)]) == 2
    assert needle in capsys.readouterr().err
    assert not out.exists()


def test_bad_paths(tmp_path, capsys):
    assert main(["run", str(tmp_path / "missing.yaml")]) == 2
    assert main(["run", str(tmp_path)]) == 2
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert main(["run", QUICK, "--out", str(afile)]) == 2
    assert main(["run", QUICK, "--set", "data.dataset=mnist", "--set",
                 f"data.root={afile}"]) == 2
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.txt").write_text("x")
    assert main(["run", QUICK, "--out", str(full)]) == 2
    errs = capsys.readouterr().err.strip().splitlines()
    assert len(errs) == 5 and all(e.startswith("neuroprune: error:") for e in errs)
    assert sorted(p.name for p in full.iterdir()) == ["keep.txt"]


def test_subprocess_error_has_no_traceback_unless_debug(tmp_path):
    proc = run_cli("run", QUICK, "--set", "sparsity.target=1.5")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().count("\n") == 0
    proc = run_cli("--debug", "run", QUICK, "--set", "sparsity.target=1.5")
    assert proc.returncode != 0 and "Traceback" in proc.stderr


def test_method_flag_replaces_the_method_section(tmp_path, capsys):
    out = tmp_path / "m"
    assert main(["run", QUICK, "--method", "rigl", "--set", "method.update_interval=10",
                 "--set", "training.epochs=1", "--out", str(out), "--no-progress"]) == 0
    assert "rigl: test accuracy" in capsys.readouterr().out
    assert main(["run", QUICK, "--method", "nope", "--out", str(tmp_path / "n")]) == 2
    assert "unknown method 'nope'" in capsys.readouterr().err
