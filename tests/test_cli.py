import json
import os
import shutil
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
    names = data["anyOf"][0]["enum"]  # or "package.module:function"
    assert "cifar10" in names and "digits" in names and "folder" in names
    assert ":" in data["anyOf"][1]["pattern"]
    # each kind's section (and tune:) is described by the class that validates it, so an
    # editor flags a misspelt key in a shipped config of that kind, and accepts the config
    import jsonschema
    import yaml
    for section, cls in (("comparison", "ComparisonConfig"), ("planted", "PlantedConfig"),
                         ("activation", "ActivationConfig"), ("tune", "TuneConfig")):
        assert schema["properties"][section]["anyOf"][0] == {"$ref": f"#/$defs/{cls}"}
    for shipped in sorted((REPO / "configs").glob("*.yaml")):
        jsonschema.validate(yaml.safe_load(shipped.read_text()), schema)
    comparison = yaml.safe_load((REPO / "configs" / "compare_digits.yaml").read_text())
    comparison["comparison"]["sparsitys"] = [0.5]
    with pytest.raises(jsonschema.ValidationError, match="sparsitys"):
        jsonschema.validate(comparison, schema)


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
    ("padding of features", ["--set", "data.dataset=iris", "--set", "data.pad=2"],
     "not images"),
    ("negative padding", ["--set", "data.pad=-1"], "data.pad"),
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
    # a factory's own code (tests/bad_factories.py) that fails where models enter
    ("factory raising ValueError", ["--set", "model={factory: 'bad_factories:raises'}"],
     "ValueError: no such layer size"),
    ("factory calling sys.exit", ["--set", "model={factory: 'bad_factories:exits'}"],
     "sys.exit(0)"),
    ("forward failing in training", ["--set",
                                     "model={factory: 'bad_factories:fails_in_training'}"],
     "in training mode"),
    ("forward of one batch size", ["--set", "model={factory: 'bad_factories:batch_of_two'}"],
     "for a batch of 3"),
    ("outputs all NaN", ["--set", "model={factory: 'bad_factories:nan_outputs'}"],
     "NaN or infinite outputs"),
    # sizes checked against memory before anything is allocated
    ("width beyond memory", ["--set", "model.widths=[100000000]"], "use a smaller model"),
    ("generated samples beyond memory", ["--set", "data.dataset=blobs", "--set",
                                         "data.samples=1000000000"], "lower data.samples"),
    ("generated images beyond memory", ["--set", "data.dataset=images", "--set",
                                        "data.image_size=100000"], "data.image_size"),
    ("latency repeats 1e9", ["--set", "sparsity.latency_repeats=1000000000"],
     "sparsity.latency_repeats"),
    # values that mean nothing for the data or the model
    ("mse on classes", ["--set", "training.loss=mse"], "training.loss=cross_entropy"),
    ("dropout 1.5", ["--set", "model.dropout=1.5"], "model.dropout"),
    ("dropout 1", ["--set", "model.dropout=1"], "model.dropout"),
    ("set value 100 levels deep", ["--set", "x=" + "[" * 100 + "]" * 100], "levels deep"),
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


ALIAS_BOMB = "a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1]\n" + "".join(
    f"{c}: &{c} [{', '.join([f'*{p}'] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi"))

BAD_FILES = [
    ("invalid yaml", "name: [unclosed\n", "not valid YAML"),
    ("a list", "- 1\n- 2\n", "mapping"),
    ("alias bomb", ALIAS_BOMB, "more than 100,000 values"),
    ("5000 nested brackets", "[" * 5000 + "]" * 5000 + "\n", "levels deep"),
    ("aliases 100 deep", "".join(f"k{i}: &k{i} [{f'*k{i - 1}' if i else 1}]\n"
                                 for i in range(100)), "levels deep"),
    ("alias of itself", "a: &a [*a]\n", "refers to itself"),
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
    for command in (["run", _yaml(tmp_path, text), "--out", str(out)],
                    ["config", _yaml(tmp_path, text)]):
        assert main(command) == 2
        err = capsys.readouterr().err.strip()
        assert needle in err and len(err.splitlines()) == 1, err
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


# ------------------------------------------------------------------ bad input, every command
# Each case: one line on stderr naming what is wrong, exit code 2, no traceback, and nothing
# written anywhere (its --out, the working folder, the run and study it reads). `{name}`
# stands for a file or folder made for the case (see MATERIALS) or a shared run or study.

def _idx(path, array):
    """Write ``array`` (uint8) as a gzipped IDX file, as MNIST ships it."""
    import gzip

    import numpy as np
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big")
                                                     for d in array.shape)
    path.write_bytes(gzip.compress(header + np.ascontiguousarray(array, np.uint8).tobytes()))


def _mnist(folder, images=None, labels=None, raw_images=None, raw_labels=None):
    import numpy as np
    rng = np.random.default_rng(0)
    folder.mkdir()
    x = folder / "t10k-images-idx3-ubyte.gz"
    y = folder / "t10k-labels-idx1-ubyte.gz"
    if raw_images is not None:
        x.write_bytes(raw_images)
    else:
        _idx(x, images if images is not None else rng.integers(0, 255, (200, 28, 28)))
    if raw_labels is not None:
        y.write_bytes(raw_labels)
    else:
        _idx(y, labels if labels is not None else np.arange(200) % 10)
    return folder


def _truncated_gz(folder):
    _mnist(folder)
    x = folder / "t10k-images-idx3-ubyte.gz"
    x.write_bytes(x.read_bytes()[: len(x.read_bytes()) // 2])
    return folder


def _kmnist(folder, corrupt):
    import numpy as np
    folder.mkdir()
    for part, arr in (("imgs", np.zeros((200, 28, 28), np.uint8)),
                      ("labels", np.arange(200) % 10)):
        path = folder / f"kmnist-test-{part}.npz"
        if corrupt:
            path.write_bytes(b"PK\x03\x04" + os.urandom(500))
        else:
            np.savez(path, images=arr)  # no arr_0
    return folder


def _csv(path, text):
    path.write_text(text)
    return path


def _rows(n_classes, per_class, value="1.0"):
    return "".join(f"{value},{i * 0.1},{c}\n" for c in range(n_classes) for i in range(per_class))


MATERIALS = {
    "mnist_random": lambda d: _mnist(d, raw_images=os.urandom(3000), raw_labels=os.urandom(300)),
    "mnist_truncated": _truncated_gz,
    "mnist_labels_above_9": lambda d: _mnist(d, labels=__import__("numpy").arange(200) % 13),
    "mnist_missing_labels": lambda d: _mnist(d, labels=__import__("numpy").arange(150) % 10),
    "mnist_not_idx": lambda d: _mnist(d, raw_images=__import__("gzip").compress(b"hello" * 99)),
    "kmnist_corrupt": lambda d: _kmnist(d, corrupt=True),
    "kmnist_keyless": lambda d: _kmnist(d, corrupt=False),
    "csv_label_only": lambda d: _csv(d, "label\n" + "a\nb\n" * 30),
    "csv_empty_labels": lambda d: _csv(d, "x,y,label\n" + _rows(3, 10) + "1,2,\n"),
    "csv_100x3": lambda d: _csv(d, "x,y,label\n" + _rows(100, 3)),
    "csv_one_class": lambda d: _csv(d, "x,y,label\n" + _rows(1, 40)),
    "csv_inf": lambda d: _csv(d, "x,y,label\n" + _rows(3, 10) + "inf,1,0\n"),
    "csv_1e38": lambda d: _csv(d, "x,y,label\n" + _rows(3, 10, value="1e38")),
    "csv_text": lambda d: _csv(d, "x,y,label\n" + "a,1,0\nb,2,1\n" * 20),
    "csv_nan": lambda d: _csv(d, "x,y,label\n" + _rows(3, 10) + ",1,0\n"),
    "csv_binary": lambda d: (d.write_bytes(b"\xff\xfe\x00" + os.urandom(400)), d)[1],
    "csv_empty": lambda d: _csv(d, ""),
    "csv_two_per_class": lambda d: _csv(d, "x,y,label\n" + _rows(3, 2)),
    "a_file": lambda d: _csv(d, "not a folder"),
    "empty_dir": lambda d: d.mkdir() or d,
    "bad_yaml": lambda d: _csv(d, "name: [unclosed\n"),
    "yaml_list": lambda d: _csv(d, "- 1\n"),
    "yaml_unknown_key": lambda d: _csv(d, "nonsense: 1\n"),
    "not_utf8_yaml": lambda d: (d.write_bytes(b"\xff\xfe\xfa"), d)[1],
    "run_bad_config": lambda d: d.mkdir() or _csv(d / "config.yaml", "training: {lr: -1}\n") and d,
    "run_torn_config": lambda d: d.mkdir() or _csv(d / "config.yaml", "data: {x: [1\n") and d,
    "run_bomb_config": lambda d: d.mkdir() or _csv(d / "config.yaml", ALIAS_BOMB) and d,
    "bomb_yaml": lambda d: _csv(d, ALIAS_BOMB),
    "deep_yaml": lambda d: _csv(d, "[" * 5000 + "]" * 5000),
    # MNIST's files under the name of another dataset: its test labels begin as MNIST's do
    "mnist_as_kmnist": lambda d: _mnist(d, labels=__import__("numpy").array(
        [7, 2, 1, 0, 4, 1, 4, 9, 5, 9] * 20)),
    "csv_two_labels": lambda d: _csv(d, "x,label,label\n" + _rows(3, 10)),
    "csv_nan_text_labels": lambda d: _csv(d, "x,y,label\n" + _rows(3, 10) + "1,2,NAN\n" * 3),
    "csv_inf_labels": lambda d: _csv(d, "x,y,label\n" + _rows(3, 10) + "1,2,inf\n" * 3),
    "random_journal": lambda d: (d.write_bytes(os.urandom(2000)), d)[1],
    "ensemble_run": lambda d: d.mkdir() or (d / "ensemble.joblib").write_bytes(b"x") and d,
}


class _Materials(dict):
    """``{name}`` in a case's arguments: made on first use under ``root``."""

    def __init__(self, root, shared):
        super().__init__(shared)
        self.root = root

    def __missing__(self, key):
        self[key] = str(MATERIALS[key](self.root / key))
        return self[key]

    def fill(self, command: str) -> list[str]:
        import re
        import shlex
        return [re.sub(r"\{(\w+)\}", lambda m: self[m.group(1)], arg)
                for arg in shlex.split(command)]


TQ = str(REPO / "configs" / "tune_quickstart.yaml")
CONFIGS = {"quick": QUICK, "tq": TQ, **{k: str(REPO / "configs" / f"{name}.yaml") for k, name in (
    ("ens", "ensemble_breast_cancer"), ("act", "activation_digits"), ("cmp", "compare_digits"),
    ("planted", "planted_ci"))}}

BAD_COMMANDS = [
    # run: data files that are corrupt, truncated or meaningless
    ("mnist random bytes", "run {quick} --set data.dataset=mnist --set data.protocol=10k --set data.root={mnist_random}", "corrupt"),
    ("mnist truncated gz", "run {quick} --set data.dataset=mnist --set data.protocol=10k --set data.root={mnist_truncated}", "truncated"),
    ("mnist labels above 9", "run {quick} --set data.dataset=mnist --set data.protocol=10k --set data.root={mnist_labels_above_9}", "labels run"),
    ("mnist fewer labels", "run {quick} --set data.dataset=mnist --set data.protocol=10k --set data.root={mnist_missing_labels}", "labels"),
    ("mnist not idx", "run {quick} --set data.dataset=mnist --set data.protocol=10k --set data.root={mnist_not_idx}", "not an unsigned-byte IDX"),
    ("kmnist corrupt npz", "run {quick} --set data.dataset=kmnist --set data.protocol=10k "
     "--set data.root={kmnist_corrupt}", "corrupt"),
    ("kmnist npz without arr_0", "run {quick} --set data.dataset=kmnist --set "
     "data.protocol=10k --set data.root={kmnist_keyless}", "arr_0"),
    ("mnist root a file", "run {quick} --set data.dataset=mnist --set data.protocol=10k --set data.root={a_file}", "is a file"),
    ("mnist root empty", "run {quick} --set data.dataset=mnist --set data.protocol=10k --set data.root={empty_dir}", "files not found"),
    ("csv only a label column", "run {quick} --set data.dataset=csv --set data.path={csv_label_only}", "no feature columns"),
    ("csv empty labels", "run {quick} --set data.dataset=csv --set data.path={csv_empty_labels}", "have no label"),
    ("csv 100 classes of 3 rows", "run {quick} --set data.dataset=csv --set data.path={csv_100x3}", "cannot split"),
    ("csv one class", "run {quick} --set data.dataset=csv --set data.path={csv_one_class}", "two classes"),
    ("csv inf", "run {quick} --set data.dataset=csv --set data.path={csv_inf}", "infinite"),
    ("csv 1e38", "run {quick} --set data.dataset=csv --set data.path={csv_1e38}", "beyond"),
    ("csv text feature", "run {quick} --set data.dataset=csv --set data.path={csv_text}", "non-numeric"),
    ("csv missing value", "run {quick} --set data.dataset=csv --set data.path={csv_nan}", "missing values"),
    ("csv binary", "run {quick} --set data.dataset=csv --set data.path={csv_binary}", "cannot read"),
    ("csv empty file", "run {quick} --set data.dataset=csv --set data.path={csv_empty}", "cannot read"),
    ("csv two rows a class", "run {quick} --set data.dataset=csv --set data.path={csv_two_per_class}", "at least 3 rows"),
    ("csv no path", "run {quick} --set data.dataset=csv", "data.path"),
    ("csv path missing", "run {quick} --set data.dataset=csv --set data.path=nope.csv", "not a file"),
    ("csv label column missing", "run {quick} --set data.dataset=csv --set data.path={csv_inf} --set data.label_column=cls",
     "no column 'cls'"),
    ("ensemble on one class", "run {ens} --set data.dataset=csv --set data.path={csv_one_class}", "two classes"),
    ("ensemble on inf", "run {ens} --set data.dataset=csv --set data.path={csv_inf}", "infinite"),
    ("activation on one class", "run {act} --set data.dataset=csv --set data.path={csv_one_class}", "two classes"),
    ("val fraction too large", "run {quick} --set data.val_fraction=0.7", "data.val_fraction"),
    ("blobs one class", "run {quick} --set data.dataset=blobs --set data.classes=1",
     "data.classes"),
    ("blobs few samples", "run {quick} --set data.dataset=blobs --set data.samples=3",
     "data.samples"),
    ("augment twice", "run {quick} --set data.augment=[crop,crop] --set data.dataset=images",
     "twice"),
    ("kmnist on mnist files", "run {quick} --set data.dataset=kmnist --set data.protocol=10k "
     "--set data.root={mnist_as_kmnist}", "holds mnist's test labels"),
    ("fashion on mnist files", "run {quick} --set data.dataset=fashion_mnist --set "
     "data.protocol=10k --set data.root={mnist_as_kmnist}", "data.dataset=mnist"),
    ("csv two label columns", "run {quick} --set data.dataset=csv --set data.path={csv_two_labels}", "'label' twice"),
    ("csv NAN labels", "run {quick} --set data.dataset=csv --set data.path={csv_nan_text_labels}", "include NAN"),
    ("csv inf labels", "run {quick} --set data.dataset=csv --set data.path={csv_inf_labels}", "include inf"),
    # run: meaningless or impossible values
    ("sparsity empties a layer", "run {quick} --set sparsity.target=0.999999 --set "
     "sparsity.allocation=global", "some layer would keep none"),
    ("lr nan", "run {quick} --set training.lr=.nan", "training.lr"),
    ("weight decay inf", "run {quick} --set training.weight_decay=.inf",
     "training.weight_decay"),
    ("momentum 1", "run {quick} --set training.momentum=1", "training.momentum"),
    ("unknown schedule", "run {quick} --set training.schedule=step", "training.schedule"),
    ("unknown loss", "run {quick} --set training.loss=hinge", "training.loss"),
    ("chunk size 0", "run {quick} --set engine.chunk_size=0", "engine.chunk_size"),
    ("unknown engine key", "run {quick} --set engine.foo=1", "engine.foo"),
    ("ray unknown key", "run {quick} --set ray.foo=1", "ray.foo"),
    ("ray workers 0", "run {quick} --set ray.num_workers=0", "ray.num_workers"),
    ("ray cpus 0", "run {quick} --set ray.cpus_per_worker=0", "ray.cpus_per_worker"),
    ("seed 2**32", "run {quick} --seed 4294967296", "seed"),
    ("seed not a number", "run {quick} --seed abc", "invalid int value"),
    ("unknown device", "run {quick} --device tpu", "is not a device; use cpu, cuda, cuda:N"),
    ("unknown kind", "run {quick} --set kind=nope", "kind"),
    ("empty name", "run {quick} --set name=", "name"),
    ("name with a slash", "run {quick} --set name=a/b", "plain name"),
    ("method flag with a path", "run {quick} --method ../x", "--method takes a method name"),
    ("unknown flag", "run {quick} --population 3", "unrecognized arguments"),
    ("default elite above population", "run {tq} --set method.population=2",
     "must be smaller than population"),
    ("no config", "run", "required"),
    ("config a folder", "run {empty_dir}", "is a folder"),
    ("config bad yaml", "run {bad_yaml}", "not valid YAML"),
    ("config a list", "run {yaml_list}", "mapping"),
    ("config unknown key", "run {yaml_unknown_key}", "unknown config key 'nonsense'"),
    ("config not utf-8", "run {not_utf8_yaml}", "not valid YAML"),
    ("out is a file", "run {quick} --out {a_file}", "is a file"),
    ("out holds files", "run {quick} --out {run}", "already holds files"),
    # run: the sections of other kinds
    ("comparison sparsity 1.5", "run {cmp} --set comparison.sparsities=[1.5]",
     "comparison.sparsities"),
    ("comparison no methods", "run {cmp} --set comparison.methods=[]", "comparison.methods"),
    ("comparison unknown method", "run {cmp} --set comparison.methods=[nope]", "nope"),
    ("comparison method param", "run {cmp} --set 'comparison.methods=[{name: snip, x: 1}]'",
     "no parameter 'x'"),
    ("comparison no seeds", "run {cmp} --set comparison.seeds=[]", "comparison.seeds"),
    ("comparison budget 0", "run {cmp} --set comparison.budget=0", "comparison.budget"),
    ("comparison cannot resume", "run {cmp} --resume {unfinished}", "other values"),
    ("ensemble unknown classifier", "run {ens} --set ensemble.pool=[nope]", "nope"),
    ("ensemble population 1", "run {ens} --set ensemble.population=1", "ensemble.population"),
    ("ensemble generations 0", "run {ens} --set ensemble.generations=0",
     "ensemble.generations"),
    ("ensemble diversity", "run {ens} --set ensemble.diversity=kappa", "ensemble.diversity"),
    ("ensemble val fraction 1", "run {ens} --set ensemble.val_fraction=1",
     "ensemble.val_fraction"),
    ("activation strategy", "run {act} --set activation.strategies=[nope]", "nope"),
    ("activation population 1", "run {act} --set activation.population=1",
     "activation.population"),
    ("activation height 20", "run {act} --set activation.max_height=20",
     "activation.max_height"),
    ("activation collaborators 3", "run {act} --set activation.collaborators=3",
     "activation.collaborators"),
    ("planted task", "run {planted} --set planted.tasks=[nope]", "planted.tasks"),
    ("planted depth 2", "run {planted} --set planted.depth=2", "planted.depth"),
    ("planted width 8", "run {planted} --set planted.width=8", "planted.width"),
    ("planted samples 10", "run {planted} --set planted.samples=10", "planted.samples"),
    ("planted no methods", "run {planted} --set planted.methods=[]", "planted.methods"),
    ("planted unknown method", "run {planted} --set planted.methods=[nope]", "nope"),
    ("ensemble population 1e9", "run {ens} --set ensemble.population=1000000000",
     "lower ensemble.population"),
    ("activation population 1e9", "run {act} --set activation.population=1000000000",
     "lower activation.population"),
    # sweeps: every list checked when the config loads, before any cell runs
    ("planted sparsity 1.5", "run {planted} --set planted.sparsities=[1.5]",
     "planted.sparsities"),
    ("planted sparsity twice", "run {planted} --set planted.sparsities=[0.5,0.5]",
     "0.5 twice"),
    ("planted seed -1", "run {planted} --set planted.seeds=[-1]", "planted.seeds"),
    ("planted seed twice", "run {planted} --set planted.seeds=[0,0]", "seed 0 twice"),
    ("planted method twice", "run {planted} --set planted.methods=[random,random]",
     "both called 'random'"),
    ("planted task twice", "run {planted} --set planted.tasks=[relu,relu]", "task relu twice"),
    ("comparison sparsity twice", "run {cmp} --set comparison.sparsities=[0.5,0.5]",
     "0.5 twice"),
    ("comparison seed twice", "run {cmp} --set comparison.seeds=[1,1]", "seed 1 twice"),
    ("comparison seed 2**32", "run {cmp} --set comparison.seeds=[4294967296]",
     "comparison.seeds"),
    ("comparison method twice", "run {cmp} --set comparison.methods=[snip,snip]",
     "both called 'snip'"),
    # resume
    ("resume missing folder", "resume {root}/nope", "not a run directory"),
    ("resume a file", "resume {a_file}", "not a run directory"),
    ("resume empty folder", "resume {empty_dir}", "no config.yaml"),
    ("resume bad config", "resume {run_bad_config}", "training.lr"),
    ("resume torn config", "resume {run_torn_config}", "not valid YAML"),
    ("resume changed config", "run {quick} --resume {unfinished} --set sparsity.target=0.5",
     "sparsity.target"),
    ("resume another config", "run {act} --resume {unfinished}", "other values"),
    ("resume unknown flag", "resume {unfinished} --seed 3", "unrecognized arguments"),
    ("resume alias bomb config", "resume {run_bomb_config}", "more than 100,000 values"),
    ("resume ledger of wrong types", "resume {bad_ledger}", "line 2 is damaged"),
    # tune
    ("tune without tune section", "tune {quick} --out {out}", "no 'tune:' section"),
    ("tune n-trials 0", "tune {tq} --out {out} --n-trials 0", "--n-trials"),
    ("tune n-jobs 0", "tune {tq} --out {out} --n-jobs 0", "--n-jobs"),
    ("tune batch 0", "tune {tq} --out {out} --batch 0", "--batch"),
    ("tune batch and jobs", "tune {tq} --out {out} --batch 2 --n-jobs 2",
     "cannot be combined"),
    ("tune sqlite two writers", "tune {tq} --out {out} --n-jobs 2 --storage "
     "sqlite:///{root}/db.sqlite", "SQLite"),
    ("tune unknown scheme", "tune {tq} --out {out} --storage ftp://x/y", "unknown storage"),
    ("tune postgres spelling", "tune {tq} --out {out} --storage postgres://u@h/db",
     "postgresql://"),
    ("tune storage a folder", "tune {tq} --out {out} --storage {empty_dir}", "a folder"),
    ("tune out a file", "tune {tq} --out {a_file}", "is a file"),
    ("tune a comparison", "tune {cmp} --out {out} --set "
     "'tune={params: {seed: {type: int, low: 0, high: 3}}}'", "cannot be tuned"),
    ("tune unknown objective", "tune {tq} --out {out} --set tune.objectives=[speed]", "speed"),
    ("tune unknown param key", "tune {tq} --out {out} --set "
     "'tune.params={training.lrr: {type: float, low: 0.1, high: 0.2}}'", "training.lrr"),
    ("tune range out of bounds", "tune {tq} --out {out} --set "
     "'tune.params={sparsity.target: {type: float, low: 0.5, high: 1.5}}'", "sparsity.target"),
    ("tune low above high", "tune {tq} --out {out} --set "
     "'tune.params={training.lr: {type: float, low: 0.5, high: 0.1}}'", "tune.params"),
    ("tune unknown type", "tune {tq} --out {out} --set "
     "'tune.params={training.lr: {type: complex, low: 0.1, high: 0.5}}'", "tune.params"),
    ("tune no choices", "tune {tq} --out {out} --set "
     "'tune.params={training.optimizer: {type: categorical}}'", "tune.params"),
    ("tune unknown sampler", "tune {tq} --out {out} --set tune.sampler=grid", "tune.sampler"),
    ("tune unknown pruner", "tune {tq} --out {out} --set tune.pruner=nope", "tune.pruner"),
    ("tune n_trials 0", "tune {tq} --out {out} --set tune.n_trials=0", "tune.n_trials"),
    ("tune stale_after 0", "tune {tq} --out {out} --set tune.stale_after=0",
     "tune.stale_after"),
    ("tune retry_failed -1", "tune {tq} --out {out} --set tune.retry_failed=-1",
     "tune.retry_failed"),
    ("tune empty params", "tune {tq} --out {out} --set tune.params={}", "tune"),
    ("tune on corrupt data", "tune {tq} --out {out} --set data.dataset=mnist --set data.protocol=10k --set data.root={mnist_random}", "corrupt"),
    ("tune n-trials not a number", "tune {tq} --n-trials many", "invalid int value"),
    ("tune step 0", "tune {tq} --out {out} --set "
     "'tune.params={training.lr: {type: float, low: 0.1, high: 0.2, step: 0}}'", "step"),
    ("tune step with log", "tune {tq} --out {out} --set "
     "'tune.params={training.lr: {type: float, low: 0.1, high: 0.2, step: 0.05, log: true}}'",
     "log scale"),
    ("tune int of halves", "tune {tq} --out {out} --set "
     "'tune.params={method.population: {type: int, low: 3.5, high: 9}}'", "whole"),
    ("tune nan bound", "tune {tq} --out {out} --set "
     "'tune.params={training.lr: {type: float, low: 0.1, high: .nan}}'", "finite"),
    ("tune population below elite", "tune {tq} --out {out} --set "
     "'tune.params={method.population: {type: int, low: 3, high: 9}, "
     "method.elite: {type: int, low: 1, high: 5}}'", "method.population=3, method.elite=5"),
    ("tune objective twice", "tune {tq} --out {out} --set "
     "tune.objectives=[val_accuracy,val_accuracy]", "twice"),
    ("tune journal of random bytes", "tune {tq} --out {out} --storage {random_journal}",
     "not an Optuna journal"),
    # export
    ("export nothing", "export --out {out}", "give a run directory"),
    ("export missing journal", "export --storage {root}/missing/dir/optuna.journal --study x "
     "--out {out}", "no study storage"),
    ("export empty folder storage", "export --storage {empty_dir} --study x --out {out}",
     "no study storage"),
    ("export storage without study", "export --storage {study} --out {out}", "--study"),
    ("export unknown study", "export --storage {study} --study nope --out {out}",
     "no study named 'nope'"),
    ("export trial not a number", "export --storage {study} --study tune_quickstart --trial "
     "abc --out {out}", "--trial"),
    ("export trial out of range", "export --storage {study} --study tune_quickstart --trial "
     "99 --out {out}", "--trial"),
    ("export artifacts missing", "export --storage {study} --study tune_quickstart "
     "--artifacts {root}/nope --out {out}", "--artifacts"),
    ("export unfinished run", "export {empty_dir} --out {out}", "no best_mask"),
    ("export out in a file", "export {run} --out {a_file}/x.safetensors", "not a folder"),
    ("export out a folder", "export {run} --out {empty_dir}", "is a folder"),
    ("export unknown format", "export {run} --format zip --out {out}", "unknown export format 'zip'"),
    ("export no out", "export {run}", "--out"),
    ("export trial -1", "export --storage {study} --study tune_quickstart --trial -1 "
     "--out {out}", "--trial"),
    ("export ensemble as onnx", "export {ensemble_run} --format onnx --out {out}",
     "joblib only"),
    ("export journal of random bytes", "export --storage {random_journal} --study x "
     "--out {out}", "not an Optuna journal"),
    # report
    ("report missing run", "report {root}/nope --out {out}", "nope"),
    ("report empty folder", "report {empty_dir} --out {out}", "empty_dir"),
    ("report out a file", "report {run} --out {a_file}", "is a file"),
    ("report nothing", "report", "required"),
    # dashboard
    ("dashboard port 99999", "dashboard --storage {study} --port 99999", "--port 99999"),
    ("dashboard port 0", "dashboard --storage {study} --port 0", "--port 0"),
    ("dashboard port not a number", "dashboard --storage {study} --port http",
     "invalid int value"),
    ("dashboard missing storage", "dashboard --storage {root}/nope.journal", "no study storage"),
    ("dashboard folder without journal", "dashboard --storage {empty_dir}", "no study storage"),
    ("dashboard artifacts missing", "dashboard --storage {study} --artifacts {root}/nope",
     "--artifacts"),
    ("dashboard no storage", "dashboard", "--storage"),
    ("dashboard journal of random bytes", "dashboard --storage {random_journal}",
     "not an Optuna journal"),
    # config and the listings
    ("config missing file", "config {root}/nope.yaml", "does not exist"),
    ("config bad set", "config {quick} --set training.lrr=1", "training.lrr"),
    ("config bad yaml", "config {bad_yaml}", "not valid YAML"),
    ("config alias bomb", "config {bomb_yaml}", "more than 100,000 values"),
    ("config 5000 brackets", "config {deep_yaml}", "levels deep"),
    ("unknown command", "prune", "invalid choice"),
    ("methods takes no argument", "methods x", "unrecognized arguments"),
]


@pytest.fixture(scope="module")
def shared_run(tmp_path_factory):
    """A finished tiny run and a study of one tiny trial, read (never written) by the cases."""
    root = tmp_path_factory.mktemp("shared")
    run = root / "run"
    assert main(["run", QUICK, "--out", str(run), *TINY]) == 0
    study = root / "study"
    assert main(["tune", TQ, "--out", str(study), "--n-trials", "1", "--no-progress",
                 *TINY[:-1], "--set", "tune.pruner=none"]) == 0
    unfinished = root / "unfinished"  # as an interrupted run leaves it
    shutil.copytree(run, unfinished)
    (unfinished / "summary.json").unlink()
    bad_ledger = root / "bad_ledger"  # its second generation's rows are not rows
    shutil.copytree(unfinished, bad_ledger)
    first = (bad_ledger / "ledger.jsonl").read_text().splitlines()[0]
    (bad_ledger / "ledger.jsonl").write_text(
        first + '\n{"generation": 1, "rows": [1, {"index": "x", "fitness": "abc"}]}\n')
    return {"run": str(run), "study": str(study), "unfinished": str(unfinished),
            "bad_ledger": str(bad_ledger)}


def _tree(*folders):
    return {str(p): p.read_bytes() for f in folders for p in sorted(f.rglob("*"))
            if p.is_file()} | {str(p): None for f in folders for p in f.rglob("*") if p.is_dir()}


@pytest.mark.parametrize("name,command,needle", BAD_COMMANDS, ids=[b[0] for b in BAD_COMMANDS])
def test_bad_input_of_every_command_exits_2_in_one_line_and_writes_nothing(
        tmp_path, capsys, monkeypatch, shared_run, name, command, needle):
    from pathlib import Path

    root = tmp_path / "m"
    root.mkdir()
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    values = _Materials(root, {**CONFIGS, **shared_run, "root": str(root),
                               "out": str(tmp_path / "out")})
    argv = values.fill(command)
    monkeypatch.chdir(cwd)
    watched = (tmp_path, *(Path(p) for p in shared_run.values()))
    before = _tree(*watched)
    try:
        code = main(argv)
    except SystemExit as exc:  # a bad flag: argparse's exit, one line as well
        code = exc.code
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and "error:" in err, err
    assert "Traceback" not in err
    assert needle in err, err
    assert _tree(*watched) == before
    assert not (tmp_path / "out").exists()


def test_the_bad_input_tables_hold_at_least_249_cases():
    assert len(BAD) + len(BAD_FILES) + len(BAD_COMMANDS) >= 249  # 250 without a GPU


def test_a_final_training_that_diverges_is_one_line_and_no_result(tmp_path):
    """A network whose loss became NaN is not written as a result ("status: complete" with
    accuracy 0 read as a finding): one line naming the learning rate, exit 2."""
    out = tmp_path / "run"
    proc = run_cli("run", QUICK, "--out", str(out), *TINY, "--set", "training.lr=1e12",
                   "--set", "training.schedule=constant")
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith(
        "neuroprune: error: the final training diverged")
    assert "training.lr=1e+12" in proc.stderr or "training.lr=1000000000000" in proc.stderr
    assert not (out / "best_mask.safetensors").exists()
    summary = out / "summary.json"
    assert not summary.exists() or json.loads(summary.read_text())["status"] != "complete"
