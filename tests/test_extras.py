"""Every command with only the base install (``pip install neuroprune``): what needs an
optional extra ends in one line naming every missing package and the pip command, exit 2,
nothing written; the rest works. The extras are made absent in a subprocess (None in
``sys.modules``: imports fail and ``find_spec`` answers None, as without the packages)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import REPO

#: import names of every optional package (pyproject's extras)
OPTIONAL = ["optuna", "optuna_dashboard", "ray", "onnx", "onnxruntime", "torch_pruning",
            "matplotlib", "mlflow", "tensorboard", "torchvision", "gymnasium", "neat",
            "opacus", "river"]

#: runs each argv through neuroprune.cli.main in one process with OPTIONAL refused
DRIVER = r"""
import contextlib, io, json, sys

# None in sys.modules is how Python marks a module absent: `import optuna` raises
# ModuleNotFoundError and importlib.util.find_spec answers None, as without the package
for name in json.loads(sys.argv[1]):
    sys.modules[name] = None
from neuroprune.cli import main

results = []
for argv in json.loads(sys.argv[2]):
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(argv)
        except SystemExit as exc:
            code = exc.code
        except BaseException as exc:  # a traceback: what the test must not see
            code = f"{type(exc).__name__}: {exc}"
    results.append([code, err.getvalue()])
print(json.dumps(results))
"""

QUICK = str(REPO / "configs" / "quickstart.yaml")
TUNE = str(REPO / "configs" / "tune_quickstart.yaml")
SMALL = ["--set", "training.epochs=1", "--set", "model.widths=[16]", "--set",
         "sparsity.latency_repeats=0", "--no-progress", "--device", "cpu"]
TINY = ["--set", "method.population=4", "--set", "method.generations=1",
        "--set", "method.search_epochs=1", *SMALL]


@pytest.fixture(scope="module")
def base_install(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("base")
    run = str(tmp / "run")
    commands = {
        # what the base install does
        "run": (["run", QUICK, "--out", run, *TINY], None),
        "methods": (["methods"], None), "datasets": (["datasets"], None),
        "models": (["models"], None), "kinds": (["kinds"], None),
        "config": (["config", "quickstart"], None),
        "resume": (["resume", run, "--no-progress"], None),
        "export": (["export", run, "--out", str(tmp / "m.safetensors")], None),
        "export state_dict": (["export", run, "--format", "state_dict", "--out",
                               str(tmp / "m.pt")], None),
        # what needs an extra: the packages named, all at once
        "export onnx": (["export", run, "--format", "onnx", "--out", str(tmp / "m.onnx")],
                        ("onnx,structured", ["'onnx'", "'torch-pruning'"])),
        "export compact": (["export", run, "--format", "compact", "--out",
                            str(tmp / "c.safetensors")], ("structured", ["'torch-pruning'"])),
        "export --storage": (["export", "--storage", str(tmp / "study"), "--study", "s",
                              "--out", str(tmp / "t.safetensors")], ("tune", ["'optuna'"])),
        "tune": (["tune", TUNE, "--out", str(tmp / "tune")], ("tune", ["'optuna'"])),
        "dashboard": (["dashboard", "--storage", str(tmp / "tune")],
                      ("tune,dashboard", ["'optuna'", "'optuna-dashboard'"])),
        "report": (["report", run, "--out", str(tmp / "report")], ("plots", ["'matplotlib'"])),
        "explain": (["explain", run], ("plots", ["'matplotlib'"])),
        "run ray": (["run", QUICK, "--backend", "ray", "--out", str(tmp / "r1"), *TINY],
                    ("ray", ["'ray'"])),
        "run tensorboard": (["run", QUICK, "--set", "logging=[tensorboard]", "--out",
                             str(tmp / "r2"), *TINY], ("tensorboard", ["'tensorboard'"])),
        "run mlflow": (["run", QUICK, "--set", "logging=[mlflow]", "--out", str(tmp / "r3"),
                        *TINY], ("mlflow", ["'mlflow-skinny'"])),
        "run neuroevolution": (["run", str(REPO / "configs" / "neat_ci.yaml"), "--out",
                                str(tmp / "r5"), "--no-progress"],
                               ("neuro", ["'gymnasium'", "'neat-python'"])),
        "run channels": (["run", QUICK, "--set", "sparsity.structure=channel", "--method",
                          "l1_filter", "--out", str(tmp / "r4"), *SMALL],
                         ("structured", ["'torch-pruning'"])),
        "run private": (["run", "private_digits", "--out", str(tmp / "r5"), *SMALL],
                        ("privacy", ["'opacus'"])),
        "run yeast": (["run", str(REPO / "configs" / "multilabel_yeast.yaml"), "--out",
                       str(tmp / "r6"), *SMALL], ("multilabel", ["'river'"])),
    }
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", DRIVER, json.dumps(OPTIONAL),
                           json.dumps([argv for argv, _ in commands.values()])],
                          capture_output=True, text=True, cwd=tmp, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    return tmp, {name: (expect, *got) for (name, (_, expect)), got
                 in zip(commands.items(), results)}


def test_what_needs_no_extra_works_with_the_base_install(base_install):
    tmp, results = base_install
    for name, (expect, code, err) in results.items():
        if expect is None:
            assert code == 0, (name, err)
    # without torch-pruning nothing compacts the network: the summary says so and why
    summary = json.loads((tmp / "run" / "summary.json").read_text())
    assert summary["deployed"] == "masked" and "params_compact" not in summary
    assert "pip install 'neuroprune[structured]'" in summary["compact_error"]
    assert summary["flops"] == summary["flops_masked"]


def test_every_command_needing_an_extra_says_which_in_one_line(base_install):
    tmp, results = base_install
    for name, (expect, code, err) in results.items():
        if expect is None:
            continue
        extras, packages = expect
        assert code == 2, (name, code, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("neuroprune: error: "), (name, err)
        assert lines[0].endswith(f"pip install 'neuroprune[{extras}]'"), (name, err)
        for package in packages:  # every missing package named at once
            assert package in lines[0], (name, err)
    # refused before anything was written
    for folder in ("r1", "r2", "r3", "r4", "r5", "r6", "tune", "report", "run/explain"):
        assert not (tmp / folder).exists(), folder
    assert not any((tmp / f).exists() for f in ("m.onnx", "c.safetensors", "t.safetensors"))


def test_a_factory_beside_its_config_imports_without_pythonpath(tmp_path):
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "mymodels.py").write_text(
        "from torch import nn\n\n"
        "def build(input_shape, num_classes):\n"
        "    return nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(),\n"
        "                         nn.Linear(16, num_classes))\n")
    (folder / "cfg.yaml").write_text("model:\n  factory: mymodels:build\n"
                                     "data:\n  dataset: digits\n")
    code = ("import sys\n"
            "from neuroprune.config import load_config\n"
            "from neuroprune.workbench import Workbench\n"
            "bench = Workbench.from_config(load_config(sys.argv[1]))\n"
            "print(type(bench.spec).__name__, sys.path[-1])\n")
    env = {**os.environ, "PYTHONPATH": str(REPO)}  # the package only, not the config's folder
    proc = subprocess.run([sys.executable, "-c", code, str(folder / "cfg.yaml")],
                          capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    # last on the path: a file beside a config never shadows an installed module
    assert proc.stdout.split() == ["ModelSpec", str(folder.resolve())]


def _run_with_a_factory_beside_its_config(tmp_path, module: str) -> tuple[Path, dict]:
    """A finished run of a config whose ``model.factory`` module sits beside it, run from
    another folder without that folder on PYTHONPATH; the run folder and the environment."""
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / f"{module}.py").write_text(
        "from torch import nn\n\n"
        "def build(input_shape, num_classes):\n"
        "    return nn.Sequential(nn.Flatten(), nn.Linear(64, 8), nn.ReLU(),\n"
        "                         nn.Linear(8, num_classes))\n")
    (folder / "cfg.yaml").write_text(
        f"model:\n  factory: {module}:build\ndata:\n  dataset: digits\n"
        "method: {name: kstarts, population: 4, generations: 2, search_epochs: 1}\n"
        "training: {epochs: 1}\n")
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    run = tmp_path / "elsewhere" / "run"
    first = subprocess.run([sys.executable, "-m", "neuroprune", "run", str(folder / "cfg.yaml"),
                            "--out", str(run), "--no-progress", "--device", "cpu"],
                           capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
    assert first.returncode == 0, first.stderr[-2000:]
    recorded = json.loads((run / "factory.json").read_text())
    assert recorded == {"factory": f"{module}:build", "folder": str(folder.resolve())}
    return run, env


def test_resume_imports_a_factory_that_sat_beside_the_config(tmp_path):
    """``resume RUN`` reads the run's own config.yaml, far from the user's: the factory's
    folder recorded by ``run`` goes on the path again, still without PYTHONPATH."""
    run, env = _run_with_a_factory_beside_its_config(tmp_path, "mymodels2")
    (run / "summary.json").unlink()  # as an interrupted run leaves it
    again = subprocess.run([sys.executable, "-m", "neuroprune", "resume", str(run),
                            "--no-progress"], capture_output=True, text=True, cwd=run.parent,
                           env=env, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    assert json.loads((run / "summary.json").read_text())["status"] == "complete"


EXPORT_TRUSTED = r"""
import sys
from pathlib import Path

import neuroprune
from neuroprune.cli import main

run = Path(sys.argv[1])
for fmt in ("safetensors", "state_dict", "compact", "onnx"):
    assert main(["export", str(run), "--trust-code", "--format", fmt, "--out",
                 f"best.{fmt}"]) == 0, fmt
print(type(neuroprune.load_model(run / "best_mask.safetensors", trust=True)).__name__)
"""


def test_export_and_load_model_import_a_factory_that_sat_beside_the_config(tmp_path):
    """``export RUN --trust-code`` (every format) and ``load_model(..., trust=True)`` of a
    run's file put the factory folder recorded by ``run`` on the path, as ``resume`` does."""
    pytest.importorskip("torch_pruning")
    pytest.importorskip("onnx")
    run, env = _run_with_a_factory_beside_its_config(tmp_path, "mymodels3")
    other = tmp_path / "other"
    other.mkdir()
    proc = subprocess.run([sys.executable, "-c", EXPORT_TRUSTED, str(run)], capture_output=True,
                          text=True, cwd=other, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split()[-1] == "Sequential"
    assert sorted(p.name for p in other.iterdir()) == [
        "best.compact", "best.json", "best.onnx", "best.safetensors", "best.state_dict"]


API_EXPORT = r"""
import json, sys

for name in json.loads(sys.argv[1]):
    sys.modules[name] = None  # absent, as without the packages (see DRIVER)
from neuroprune.errors import MissingDependencyError
from neuroprune.export import export

lines = []
for fmt, out in (("onnx", "m.onnx"), ("compact", "c.safetensors")):
    try:
        export(sys.argv[2], out, fmt)
        lines.append("no error")
    except MissingDependencyError as exc:
        lines.append(str(exc))
print(json.dumps(lines))
"""


def test_the_python_export_names_every_missing_extra_at_once(tmp_path):
    """``neuroprune.export.export`` (the Python API) checks a format's extras as the CLI's
    ``export`` does: one error naming all of them, before the source is even read."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", API_EXPORT, json.dumps(OPTIONAL),
                           str(tmp_path / "no_such_run.safetensors")], capture_output=True,
                          text=True, cwd=tmp_path, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    onnx_line, compact_line = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "\n" not in onnx_line and "fmt='onnx'" in onnx_line
    assert "'onnx' and 'torch-pruning'" in onnx_line
    assert "pip install 'neuroprune[onnx,structured]'" in onnx_line
    assert "'torch-pruning'" in compact_line and "'onnx'" not in compact_line
    assert "pip install 'neuroprune[structured]'" in compact_line
    assert not any((tmp_path / f).exists() for f in ("m.onnx", "c.safetensors"))
