"""Class-relevant channels (neuroprune explain) and the class_relevance pruning method."""

import json

import numpy as np
import pytest
import torch

from neuroprune.cli import main
from neuroprune.relevance import entry_scores, select_relevant

pytest.importorskip("matplotlib")

TINY = ["--set", "data.dataset=digits", "--set", "model.name=conv2", "--set",
        "model.width=0.25", "--set", "model.widths=[32]", "--set", "training.epochs=4",
        "--set", "training.lr=0.05", "--method", "magnitude", "--set", "sparsity.target=0.5",
        "--device", "cpu", "--seed", "0", "--no-progress"]


def _planted(n=600, channels=12, classes=4, seed=0):
    """Pooled responses where channel ``c + 4`` fires only for class ``c``."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    x = rng.normal(size=(n, channels))
    for c in range(classes):
        x[:, c + 4] += 3.0 * (y == c)
    return x, y


@pytest.fixture(scope="module")
def conv_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("explain") / "run"
    assert main(["run", "quickstart", "--out", str(out), *TINY]) == 0
    return out


def test_the_selection_finds_the_planted_channel_of_each_class():
    x, y = _planted()
    sel = select_relevant(x, y, 4, k=3)
    assert [c[0] for c in sel.channels] == [4, 5, 6, 7]
    assert all(1 <= len(c) <= 3 for c in sel.channels)
    # a penalty that leaves every class empty falls back to the first channel on the path
    strict = select_relevant(x, y, 4, k=3, mu=10.0)
    assert [c for c in strict.channels] == [[4], [5], [6], [7]]
    assert all(m < 10.0 for m in strict.mu)
    scores = entry_scores(x, y, 4)
    assert set(np.argsort(-scores)[:4].tolist()) == {4, 5, 6, 7}


def test_explain_writes_figures_and_few_channels_per_class(conv_run, capsys):
    assert main(["explain", str(conv_run), "--k", "3", "--images", "4"]) == 0
    assert "channels per class" in capsys.readouterr().out
    folder = conv_run / "explain"
    for name in ("classes.png", "explanations.png"):
        assert (folder / name).read_bytes()[:4] == b"\x89PNG"
    info = json.loads((folder / "explain.json").read_text())
    assert info["layer"] == "2"  # conv2: conv, relu, conv, relu, pool, ...
    assert len(info["classes"]) == 10
    assert all(1 <= len(c["channels"]) <= 3 for c in info["classes"])
    assert all(0 <= j < info["channels"] for c in info["classes"] for j in c["channels"])
    # the few channels carry class information well above chance (10%)
    assert info["selection_accuracy"] > 0.3
    assert len(info["explanations"]) == 4
    for e in info["explanations"]:
        relevant = info["classes"][e["predicted"]]["channels"]
        assert all(s["channel"] in relevant and s["contribution"] > 0 for s in e["supporting"])
    # the run's report shows them
    assert main(["report", str(conv_run), "--out", str(conv_run.parent / "rep")]) == 0
    text = (conv_run.parent / "rep" / "report.md").read_text()
    assert "### Class-relevant channels" in text and "explain_0_classes.png" in text
    assert (conv_run.parent / "rep" / "explain_0_classes.png").is_file()
    # another layer by name, into another folder
    assert main(["explain", str(conv_run), "--layer", "0", "--out",
                 str(conv_run / "first")]) == 0
    assert json.loads((conv_run / "first" / "explain.json").read_text())["layer"] == "0"


def _files(folder):
    return {str(p): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_bad_input_is_one_line_and_exit_2(conv_run, tmp_path, capsys):
    mlp = tmp_path / "mlp"
    assert main(["run", "quickstart", "--out", str(mlp), "--method", "magnitude",
                 "--set", "training.epochs=1", "--set", "model.widths=[16]",
                 "--device", "cpu", "--no-progress"]) == 0
    capsys.readouterr()
    before = _files(conv_run)
    cases = [(["explain", str(tmp_path)], "is not a run directory"),
             (["explain", str(mlp)], "has no 2-d convolution"),
             (["explain", str(conv_run), "--layer", "nope"], "choose one of 0, 2"),
             (["explain", str(conv_run), "--k", "0"], "explain needs k >= 1"),
             (["explain", str(conv_run), "--pooling", "median"], "use mean or max")]
    for argv, needle in cases:
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and needle in err, err
    assert not (mlp / "explain").exists()
    assert _files(conv_run) == before  # nothing written


def _relevance_search(target=0.5, **params):
    from neuroprune.config import load_config

    from helpers import mask_search
    tree = {"data": {"dataset": "digits"}, "device": "cpu", "seed": 0,
            "model": {"name": "conv2", "width": 0.25, "widths": [16]},
            "sparsity": {"target": target, "structure": "channel", "budget": "sparsity",
                         "latency_repeats": 0},
            "training": {"epochs": 2, "lr": 0.05, "batch_size": 64},
            "method": {"name": "class_relevance", "dense_epochs": 2, "samples": 512, **params}}
    return mask_search(load_config(tree=tree))


def test_class_relevance_keeps_the_most_relevant_channels_at_the_requested_sparsity():
    pytest.importorskip("torch_pruning")
    from neuroprune.masks import bits_to_mask
    from neuroprune.relevance import layer_outputs, pooled

    search = _relevance_search(0.5)
    with search.bench.evaluator() as ev:
        ctx = search.context(ev)
        res = search.method.find(ctx)
    space = ctx.structure
    assert res.bits.shape == (space.layout.numel,) and res.bits.dtype == torch.bool
    assert float(space.cost(res.bits[None], "sparsity")[0]) >= 0.5
    mask = bits_to_mask(space.layout, res.bits)
    kept = {k: mask[k].reshape(mask[k].shape[0], -1).any(1) for k in ("0.weight", "2.weight")}
    assert all(1 <= int(v.sum()) < len(v) for v in kept.values())
    # the kept channels are the highest relevance over each layer's mean, recomputed here
    # from the trained weights the method returns
    model = search.bench.build_model().eval()
    model.load_state_dict({k: v.float() for k, v in res.init.items()})
    y = ctx.data.train_y[:512].numpy()
    scores = {}
    for layer in ("0", "2"):
        out, _ = layer_outputs(model, ctx.data.train_x[:512].float(), layer)
        s = torch.from_numpy(entry_scores(pooled(out).double().numpy(), y, 10)).float()
        scores[layer] = s / s.mean()
    flat = torch.cat(list(scores.values()))
    best = torch.cat([s == s.max() for s in scores.values()])
    ref = torch.zeros(len(flat), dtype=torch.bool)
    n = int(sum(int(v.sum()) for v in kept.values()))
    ref[torch.topk(torch.where(best, torch.inf, flat), n).indices] = True
    assert torch.equal(torch.cat(list(kept.values())), ref)
