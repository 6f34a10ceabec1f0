"""Multi-label classification (data.task: multilabel) and the output-structure regulariser."""

import json

import pytest
import torch

from neuroprune.config import load_config
from neuroprune.errors import ConfigError

from helpers import mask_search


def _tree(dataset="digits_attributes", epochs=3, **training):
    data = {"dataset": dataset, "task": "multilabel"}
    if dataset == "multilabel":  # a generated set: its size is its own option
        data["samples"] = 400
    return {"data": data,
            "model": {"name": "mlp", "widths": [32]}, "device": "cpu", "seed": 0,
            "sparsity": {"target": 0.5}, "method": {"name": "magnitude"},
            "training": {"epochs": epochs, "lr": 0.1, "batch_size": 64, **training}}


def test_the_multilabel_task_trains_with_bce_and_refuses_what_does_not_fit():
    assert load_config(tree=_tree()).training.loss == "bce"
    cases = [(_tree(loss="cross_entropy"), "does not fit data.task=multilabel"),
             ({"training": {"loss": "bce"}}, "set data.task=multilabel"),
             ({"training": {"output_structure": {}}}, "set data.task=multilabel"),
             (_tree(output_structure={"anneal_start": 0.8, "anneal_end": 0.2}),
              "anneal_end must not come before anneal_start")]
    for tree, needle in cases:
        with pytest.raises(ConfigError, match=needle) as err:
            load_config(tree=tree)
        assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="dataset digits_attributes is multi-label"):
        mask_search(load_config(tree={"data": {"dataset": "digits_attributes"}}))
    with pytest.raises(ConfigError, match="needs a multi-label dataset") as err:
        mask_search(load_config(tree={**_tree(), "data": {"dataset": "digits",
                                                          "task": "multilabel"}}))
    assert "(multilabel, digits_attributes, yeast)" in str(err.value)  # every one of them


def test_the_multilabel_datasets_give_multi_hot_labels():
    from neuroprune.data import load_dataset
    digits = load_dataset("digits")
    attrs = load_dataset("digits_attributes")
    assert attrs.num_classes == 6 and attrs.train_y.shape == (len(digits.train_y), 6)
    eight = attrs.train_y[digits.train_y == 8][0].tolist()  # even, 5 or more, closed loop
    assert eight == [1.0, 0.0, 1.0, 1.0, 0.0, 0.0]
    gen = load_dataset("multilabel", samples=300, classes=5)
    assert gen.train_y.shape[1] == 5 and set(gen.train_y.unique().tolist()) == {0.0, 1.0}
    assert gen.train_y.sum(1).mean() > 1  # several labels per sample


def test_a_multilabel_run_reports_subset_accuracy_hamming_loss_and_micro_f1(tmp_path):
    from sklearn.metrics import accuracy_score, f1_score, hamming_loss

    from neuroprune.export import masked_model
    search = mask_search(load_config(tree=_tree(epochs=5)))
    summary = search.run(tmp_path / "r", progress=False, log=lambda _: None)
    data = search.bench.data
    model = masked_model(tmp_path / "r" / "best_mask.safetensors")
    with torch.no_grad():
        pred = (model(data.test_x) > 0).numpy()
    truth = data.test_y.numpy()
    assert summary["test_accuracy"] == pytest.approx(accuracy_score(truth, pred), abs=1e-6)
    assert summary["test_hamming_loss"] == pytest.approx(hamming_loss(truth, pred), abs=1e-6)
    assert summary["test_micro_f1"] == pytest.approx(f1_score(truth, pred, average="micro"),
                                                     abs=1e-6)
    assert summary["test_micro_f1"] > 0.6  # learnt: labels are about 40% positive
    assert json.loads((tmp_path / "r" / "summary.json").read_text())["test_micro_f1"] == \
        summary["test_micro_f1"]


def test_the_report_of_a_multilabel_run_shows_its_hamming_loss_and_micro_f1(tmp_path):
    pytest.importorskip("matplotlib")
    from neuroprune.report import make_report
    summary = mask_search(load_config(tree=_tree(epochs=1))).run(
        tmp_path / "r", progress=False, log=lambda _: None)
    text = make_report([tmp_path / "r"], tmp_path / "report").read_text()
    header = next(line for line in text.splitlines() if "test accuracy" in line)
    assert "test Hamming loss" in header and "test micro-F1" in header
    row = next(line for line in text.splitlines() if "`r`" in line)
    cells = [c.strip() for c in row.strip("|").split("|")]
    named = dict(zip([c.strip() for c in header.strip("|").split("|")], cells))
    assert float(named["test Hamming loss"]) == pytest.approx(summary["test_hamming_loss"],
                                                              abs=1e-4)
    assert float(named["test micro-F1"]) == pytest.approx(summary["test_micro_f1"], abs=1e-4)


def _trained(tree):
    from neuroprune.engine import EvalTask
    search = mask_search(load_config(tree=tree))
    with search.bench.evaluator() as ev:
        return ev.evaluate(EvalTask(masks=None, size=2, epochs=2, data_seed=0,
                                    seeds=torch.tensor([0, 1]), init=search.bench.init_state(),
                                    keep_weights=True))


def test_the_regulariser_trains_the_output_layer_as_the_targets_decoder_alike_in_both_trainers():
    off = _trained(_tree())
    on = {t: _trained({**_tree(output_structure={"strength": 1.0, "corruption": 0.2}),
                       "engine": {"trainer": t}}) for t in ("stacked", "per_network")}
    out = "3.weight"  # the MLP's output layer (flatten, linear, relu, linear)
    assert not torch.allclose(on["stacked"].weights[out], off.weights[out], atol=1e-4)
    for k, v in on["stacked"].weights.items():
        assert torch.allclose(v, on["per_network"].weights[k], atol=1e-5), k
    # the two networks of a population have their own seeds: their encoders differ too
    assert not torch.allclose(on["stacked"].weights[out][0], on["stacked"].weights[out][1])
    # strength 0 is no regulariser at all
    zero = _trained(_tree(output_structure={"strength": 0.0}))
    assert torch.equal(zero.weights[out], off.weights[out])


def test_the_reconstruction_weight_is_annealed_linearly_to_zero():
    from neuroprune.engine.output_structure import OutputStructure
    from neuroprune.engine.settings import OutputStructureConfig

    hook = OutputStructure("w", "b", 3, 4, OutputStructureConfig(strength=2.0, anneal_start=0.2,
                                                                 anneal_end=0.6))

    class S:
        total_steps = 100
    weights = []
    for step in (0, 20, 40, 60, 90):
        S.step = step
        weights.append(hook.strength_at(S))
    assert weights == pytest.approx([2.0, 2.0, 1.0, 0.0, 0.0])


def test_yeast_is_a_real_multilabel_set_that_a_run_learns(tmp_path):
    """Yeast as river ships it (neuroprune[multilabel], in the dev install): 2,417 genes,
    103 features, 14 dependent labels; a short run beats predicting each label's majority."""
    pytest.importorskip("river", reason="dataset yeast needs neuroprune[multilabel]")
    from neuroprune.data import load_dataset
    data = load_dataset("yeast")
    assert (len(data.train_y) + len(data.val_y) + len(data.test_y)) == 2417
    assert data.train_x.shape[1] == 103 and data.num_classes == 14
    assert set(data.train_y.unique().tolist()) == {0.0, 1.0}
    assert 4.0 < float(data.train_y.sum(1).mean()) < 4.5  # 4.2 labels per gene
    assert data.provenance["task"] == "multilabel"
    # another split_seed shuffles the genes differently, the same split sizes
    other = load_dataset("yeast", split_seed=1)
    assert other.train_y.shape == data.train_y.shape
    assert not torch.equal(other.train_x, data.train_x)
    tree = {**_tree("yeast", epochs=15), "data": {"dataset": "yeast", "task": "multilabel"}}
    summary = mask_search(load_config(tree=tree)).run(tmp_path / "r", progress=False,
                                                      log=lambda _: None)
    majority = (data.test_y.mean(0) > 0.5).float()  # the best constant prediction
    constant = float((data.test_y != majority).float().mean())
    assert summary["test_hamming_loss"] < constant - 0.02, (summary["test_hamming_loss"], constant)
