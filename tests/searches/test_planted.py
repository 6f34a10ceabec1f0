import json

import pandas as pd
import pytest
import torch

from neuroprune.cli import main
from neuroprune.engine import EvalTask
from neuroprune.masks import Mask, flatten
from neuroprune.planted import make_task, recovery
from neuroprune.searches.planted_search import scorer

from helpers import REPO


@pytest.mark.parametrize("name", ["relu", "circle", "helix"])
def test_planted_mask_solves_its_task_exactly(name):
    task = make_task(name, depth=4, width=20, n_samples=400)
    trainer = scorer(task, "cpu")

    def untrained(mask):
        bits = flatten(trainer.layout, mask).unsqueeze(0)
        return trainer.run(EvalTask(masks=bits, init=task.init, epochs=0, test=True)).row(0)

    assert untrained(task.mask)["test_accuracy"] == pytest.approx(1.0, abs=1e-6)  # acc or R^2
    dense = {k: torch.ones_like(v) for k, v in task.mask.items()}
    assert untrained(dense)["test_accuracy"] < 0.9  # the rest of the network hides the ticket
    assert 0.9 < task.planted_sparsity < 1.0


def test_recovery_metrics():
    a = Mask({"w": torch.tensor([True, True, False, False])})
    b = Mask({"w": torch.tensor([True, False, True, False])})
    assert recovery(a, a) == {"precision": 1.0, "recall": 1.0, "iou": 1.0}
    assert recovery(a, b) == {"precision": 0.5, "recall": 0.5, "iou": pytest.approx(1 / 3)}


def test_planted_run_reports_quality_and_recovery(tmp_path, capsys):
    out = tmp_path / "p"
    code = main(["run", str(REPO / "configs" / "planted_ci.yaml"), "--out", str(out),
                 "--no-progress", "--set", "planted.tasks=[relu, circle]",
                 "--set", "planted.methods=[random, magnitude]", "--set", "planted.samples=300",
                 "--set", "training.epochs=1"])
    assert code == 0, capsys.readouterr().err
    df = pd.read_csv(out / "results.csv")
    assert len(df) == 2 * 2 * 3  # tasks x methods x (0.9, planted, below planted)
    assert ((df.iou >= 0) & (df.iou <= 1)).all()
    summary = json.loads((out / "summary.json").read_text())
    assert all(q == pytest.approx(1.0) for q in summary["planted_mask_quality"].values())
    md = (out / "planted.md").read_text()
    assert "### relu" in md and "*" in md
    assert (out / "report" / "planted.png").read_bytes()[:4] == b"\x89PNG"


def test_bad_planted_method_is_refused_before_writing(tmp_path, capsys):
    out = tmp_path / "o"
    code = main(["run", str(REPO / "configs" / "planted_ci.yaml"), "--out", str(out),
                 "--set", "planted.methods=[{name: imp, rat: 0.5}]"])
    assert code == 2 and "planted.methods: method 'imp' has no parameter 'rat'" in \
        capsys.readouterr().err
    assert not out.exists()
