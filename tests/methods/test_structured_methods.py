"""Structured methods on a tiny problem: budgets met, regularisers as per-network hooks."""

import json
import re

import pytest
import torch

from neuroprune.config import load_config
from neuroprune.errors import ConfigError
from neuroprune.methods import METHODS, get_method_class

from helpers import mask_search

pytest.importorskip("torch_pruning")

STRUCTURED = sorted(n for n in METHODS if get_method_class(n).structured)


def _search(method, structure="all", budget="flops", target=0.5, **params):
    over = [f"method.{k}={v}" for k, v in params.items()]
    tree = {"data": {"dataset": "digits"}, "device": "cpu",
            "model": {"name": "conv2", "width": 0.125, "widths": [16], "batch_norm": True},
            "sparsity": {"target": target, "structure": structure, "budget": budget,
                         "latency_repeats": 1},
            "training": {"epochs": 1, "lr": 0.05, "batch_size": 128},
            "method": {"name": method}}
    return mask_search(load_config(tree=tree, overrides=over))


@pytest.mark.parametrize("name", STRUCTURED)
def test_every_structured_method_meets_its_budget(name):
    params = {"stressednets": {"generations": 2, "offspring": 2}}.get(name, {"dense_epochs": 1})
    search = _search(name, **params)
    with search.bench.evaluator() as ev:
        ctx = search.context(ev)
        res = search.method.find(ctx)
    space = ctx.structure
    dense = space.cost(torch.ones(1, space.layout.numel, dtype=torch.bool), "flops")
    assert float(space.cost(res.bits[None], "flops")[0]) <= 0.5 * float(dense[0]) + 1e-6
    assert res.info["exact"] is False and not res.from_init
    assert get_method_class(name).citation


def test_a_regularised_network_trains_alike_alone_and_in_a_mixed_batch():
    from neuroprune.methods.group_lasso import GroupNorms
    from neuroprune.methods.slimming import ScaleL1
    search = _search("group_lasso")
    with search.bench.evaluator() as ev:
        ctx = search.context(ev)
        space = ctx.structure
        for hook in (GroupNorms, ScaleL1):
            mixed = ev.evaluate(ctx.task(None, 1, size=3, keep_weights=True, hooks=(
                hook(space, torch.tensor([0.0, 1e-2, 1e-1])),)))
            alone = ev.evaluate(ctx.task(None, 1, size=1, keep_weights=True, hooks=(
                hook(space, torch.tensor([1e-1])),)))
            for k, v in alone.weights.items():
                assert torch.allclose(mixed.weights[k][2], v[0], atol=1e-6, rtol=0), k
            assert not torch.allclose(mixed.weights["0.weight"][0], alone.weights["0.weight"][0])


def test_a_strength_sweep_gives_a_front_and_the_run_its_efficiency(tmp_path):
    search = _search("group_lasso", target=0.75, strengths="[0.0, 0.001, 0.01]",
                     dense_epochs=1)
    summary = search.run(tmp_path / "r", progress=False)
    assert [r["strength"] for r in summary["front"]] == [0.0, 0.001, 0.01]
    assert all(r["flops_fraction"] <= 0.25 + 1e-9 for r in summary["front"])
    assert summary["flops_compact"] < 0.5 * summary["flops_dense"]
    assert json.loads((tmp_path / "r" / "summary.json").read_text())["params"] == \
        summary["params_compact"]


def test_structured_config_errors_are_one_line():
    with pytest.raises(ConfigError, match="set sparsity.structure to neuron, channel or all"):
        _search("l1_filter", structure="element")
    with pytest.raises(ConfigError, match="set sparsity.structure to element"):
        _search("magnitude")
    with pytest.raises(Exception, match="no structure meets the flops budget"):
        _search("l1_filter", target=0.9999)


def test_kind_comparison_runs_structured_methods_at_flops_budgets(tmp_path):
    from neuroprune.searches.comparison import Comparison
    from neuroprune.workbench import Workbench
    tree = {"kind": "comparison", "data": {"dataset": "digits"}, "device": "cpu",
            "model": {"name": "conv2", "width": 0.125, "widths": [16], "batch_norm": True},
            "sparsity": {"structure": "channel", "budget": "flops", "latency_repeats": 1},
            "training": {"epochs": 1, "batch_size": 128},
            "comparison": {"methods": [{"name": "l1_filter", "dense_epochs": 1},
                                       {"name": "slimming", "dense_epochs": 1}],
                           "sparsities": [0.5, 0.75]}}
    summary = Comparison(Workbench.from_config(load_config(tree=tree))).run(
        tmp_path / "c", progress=False, log=lambda _: None)
    assert summary["cells"] == 4
    table = (tmp_path / "c" / "comparison.md").read_text()
    assert "l1_filter" in table and "slimming" in table and "FLOPs / sample" in table
    assert "| 50.0% fewer FLOPs | 75.0% fewer FLOPs |" in table  # the budget, not sparsity
    # what was compacted and with what, latency with its quartiles, speedup with its interval
    assert re.search(r"\| l1_filter \| 75% \| compact \(torch-pruning [\d.]+\) \| [\d,]+ \| "
                     r"[\d,]+ \| [\d.]+ \([\d.]+-[\d.]+\) \| (\d+\.\d\dx \([\d.]+-[\d.]+\)|"
                     r"no speedup measurable \([\d.]+-[\d.]+x\)) \|", table)
    assert (tmp_path / "c" / "report" / "accuracy_vs_flops.png").read_bytes()[:4] == b"\x89PNG"
    from neuroprune.cli import main
    assert main(["report", str(tmp_path / "c"), "--out", str(tmp_path / "rep")]) == 0
    assert "FLOPs / sample" in (tmp_path / "rep" / "report.md").read_text()
    assert (tmp_path / "rep" / "accuracy_vs_flops.png").is_file()
    # FLOPs budgets are not weight sparsities: no accuracy-against-weights figure
    assert not (tmp_path / "rep" / "accuracy_vs_sparsity.png").exists()


UNTRACEABLE = '''
import torch
from torch import nn


class Odd(nn.Module):
    def forward(self, x):
        return torch.cat([x, x], 1)[:, ::2].clone() if x.shape[0] > 1 else self.fail(x)

    def fail(self, x):
        raise RuntimeError("data-dependent branch")


def build(input_shape, num_classes):
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 16), Odd(), nn.ReLU(),
                         nn.Linear(16, num_classes))
'''


@pytest.mark.parametrize("sets,message", [
    (["sparsity.budget=flops", "sparsity.target=0.9999"], "no structure meets the flops budget"),
    (["sparsity.layers=[nope]"], "group spec names ['nope']"),
    (["model={factory: untraceable_net:build}"], "cannot trace module '2'"),
])
def test_bad_structured_runs_exit_2_in_one_line_and_write_nothing(tmp_path, monkeypatch,
                                                                   capsys, sets, message):
    from neuroprune.cli import main
    (tmp_path / "untraceable_net.py").write_text(UNTRACEABLE)
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "c.yaml").write_text("data: {dataset: digits}\nmodel: {widths: [16]}\n"
                                     "method: {name: l1_filter}\ndevice: cpu\n"
                                     "sparsity: {structure: all}\n")
    args = ["run", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "r")]
    for s in sets:
        args += ["--set", s]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not (tmp_path / "r").exists()


def test_oicsr_groups_reach_the_next_layers_inputs_and_group_lasso_does_not():
    from neuroprune.methods.group_lasso import GroupNorms
    from neuroprune.methods.oicsr import OutInNorms
    search = _search("oicsr", structure="channel")
    space = search.bench.structure
    params = {k: v[None].clone().requires_grad_(True) for k, v in search.bench.init_state().items()
              if k in space.layout.names}
    for hook, reached in ((OutInNorms, True), (GroupNorms, False)):
        rows = space.rows_of(params)
        hook(space, torch.ones(1)).penalty(rows).sum().backward()
        assert bool(params["3.weight"].grad.ne(0).any())  # a conv's own filters
        # the first Linear reads the last conv's channels: only out-in groups reach it
        assert bool(params["8.weight"].grad.ne(0).any()) is reached
        for p in params.values():
            p.grad = None


def test_sparse_group_l0_pulls_weights_onto_a_sparse_split_copy():
    search = _search("sparse_group_l0", structure="channel", target=0.5, dense_epochs=2,
                     strengths="[0.05]", l0_ratio=0.01, growth=2.0)
    with search.bench.evaluator() as ev:
        ctx = search.context(ev)
        res = search.method.find(ctx)
    space = ctx.structure
    weights = space.rows_of({k: v[None] for k, v in res.init.items() if k in space.layout.names})
    k = space.layout.offsets[len(space.weights)]
    assert float((weights[0, :k] == 0).float().mean()) > 0.05  # l1 / l0 zeros inside V
    assert not bool(res.bits[:k][weights[0, :k] == 0].any())   # and they are masked


def test_scl_gates_switch_units_off_during_training():
    search = _search("scl", structure="channel", target=0.3, dense_epochs=2,
                     strengths="[0.0, 5.0]", mask_lr=0.5, select_epochs=0)
    with search.bench.evaluator() as ev:
        ctx = search.context(ev)
        hook = search.method.hook(ctx, torch.tensor([0.0, 5.0]))
        res = ev.evaluate(ctx.task(torch.ones(2, ctx.structure.layout.numel, dtype=torch.bool),
                                   2, keep_weights=True, hooks=(hook,)))
    on = (res.extras["unit_scores"] > 0).sum(1)
    assert int(on[1]) < int(on[0]) <= ctx.structure.size  # the penalty closes gates
    assert res.masks is not None and int(res.masks[1].sum()) < int(res.masks[0].sum())


def test_ispasp_keeps_the_units_that_best_recover_the_dense_output():
    from torch.func import functional_call

    from neuroprune.masks import unflatten
    from neuroprune.models import build_model
    search = _search("ispasp", structure="channel", target=0.5, dense_epochs=1, batch=128)
    with search.bench.evaluator() as ev:
        ctx = search.context(ev)
        res = search.method.find(ctx)
    space, model = ctx.structure, build_model(ctx.spec).eval()
    x = ctx.data.train_x[:128].float()
    state = {k: v.float() for k, v in res.init.items()}

    def error(bits):
        masked = {**state, **{k: state[k] * m[0] for k, m in
                              unflatten(space.layout, bits[None]).items()}}
        with torch.no_grad():
            return float((functional_call(model, masked, (x,)) -
                          functional_call(model, state, (x,))).square().mean())
    g = torch.Generator().manual_seed(0)
    randoms = [space.expand(space.meet(torch.rand(1, space.size, generator=g), "flops", 0.5))[0]
               for _ in range(5)]
    assert error(res.bits) < min(error(r) for r in randoms)


def test_stressednets_offspring_shrink_over_generations():
    rows = []
    search = _search("stressednets", structure="channel", target=0.6, generations=3,
                     offspring=4)
    with search.bench.evaluator() as ev:
        ctx = search.context(ev, commit=lambda g, r, s: rows.extend(r))
        res = search.method.find(ctx)
    units = [r["units"] for r in res.info["logbook"]]
    assert units == sorted(units, reverse=True) and units[-1] < ctx.structure.size
    assert len(rows) == 12 and {r["generation"] for r in rows} == {0, 1, 2}


def test_bernoulli_keep_probabilities_fall_under_a_strong_prior_and_draws_are_per_network():
    from neuroprune.methods.bernoulli import BernoulliGates, BernoulliParams
    search = _search("bernoulli", structure="channel")
    with search.bench.evaluator() as ev:
        ctx = search.context(ev)
        space = ctx.structure
        ones = torch.ones(3, space.layout.numel, dtype=torch.bool)
        params = BernoulliParams(prior=0.01)
        mixed = ev.evaluate(ctx.task(ones, 2, keep_weights=True, hooks=(
            BernoulliGates(space, torch.tensor([0.0, 1e3, 3e3]), params),)))
        alone = ev.evaluate(ctx.task(ones[:1], 2, keep_weights=True, hooks=(
            BernoulliGates(space, torch.tensor([3e3]), params),)))
    theta = mixed.extras["keep_probability"]
    assert float(theta[2].mean()) < float(theta[0].mean())
    assert torch.allclose(theta[2], alone.extras["keep_probability"][0], atol=1e-5)


def test_feature_flow_penalty_is_per_network_and_shortens_the_flow():
    from neuroprune.methods.ffr import FeatureFlow, FFRParams
    search = _search("ffr", structure="channel")
    with search.bench.evaluator() as ev:
        ctx = search.context(ev)
        hook = FeatureFlow(ctx.structure, torch.tensor([0.0, 0.5]), FFRParams(), ctx.spec)
        assert hook.points == ["2", "5", "9"]  # the hidden activations
        res = ev.evaluate(ctx.task(None, 2, size=2, keep_weights=True, hooks=(hook,)))
    x = ctx.data.train_x[:64]

    def flow(i):
        state = {k: v[i] for k, v in res.weights.items()}
        got = []
        mods = dict(hook.model.named_modules())
        hs = [mods[n].register_forward_hook(lambda m, a, o: got.append(o)) for n in hook.points]
        with torch.no_grad():
            torch.func.functional_call(hook.model, state, (x,))
        for h in hs:
            h.remove()
        return float(hook.flow(got))
    assert flow(1) < flow(0)


@pytest.mark.parametrize("name,params", [
    ("group_lasso", {"strengths": "[0.0, 0.01]"}), ("bernoulli", {}), ("scl", {})])
def test_structured_methods_give_the_same_result_on_the_reference_backend(name, params):
    found = []
    for backend in ("local", "sequential"):
        search = _search(name, dense_epochs=1, **params)
        search = mask_search(search.cfg.model_copy(update={"backend": backend}))
        with search.bench.evaluator() as ev:
            found.append(search.method.find(search.context(ev)))
    local, reference = found
    assert torch.equal(local.bits, reference.bits)
    for k, v in local.init.items():
        assert torch.allclose(v.float(), reference.init[k].float(), atol=1e-6), k


def test_a_structured_run_reports_the_sparsity_of_its_weights(tmp_path):
    summary = _search("l1_filter", target=0.5, dense_epochs=1).run(tmp_path / "r",
                                                                  progress=False)
    from neuroprune.models import build_model, prunable_names
    search = _search("l1_filter")
    names = prunable_names(build_model(search.bench.spec))
    assert summary["prunable_weights"] == sum(
        dict(build_model(search.bench.spec).named_parameters())[n].numel() for n in names)
    assert 0 < summary["sparsity"] < 1


def test_slimming_without_batchnorm_says_it_ranks_by_filter_norms():
    tree = {"data": {"dataset": "digits"}, "device": "cpu",
            "model": {"name": "conv2", "width": 0.125, "widths": [16]},
            "sparsity": {"target": 0.5, "structure": "all", "budget": "flops",
                         "latency_repeats": 0},
            "training": {"epochs": 1, "batch_size": 128},
            "method": {"name": "slimming", "dense_epochs": 1}}
    search = mask_search(load_config(tree=tree))
    with search.bench.evaluator() as ev, pytest.warns(UserWarning, match="no BatchNorm"):
        search.method.find(search.context(ev))


def test_the_shipped_resnet20_config_runs_on_kmnist_files_padded_to_32x32(tmp_path):
    """configs/compare_structured_resnet20_kmnist.yaml, shrunk: KMNIST-format files, one
    seed, one budget, two methods, one epoch."""
    import numpy as np
    import pandas as pd

    from helpers import REPO
    from neuroprune.searches.comparison import Comparison
    from neuroprune.workbench import Workbench
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "kmnist-test-imgs.npz", arr_0=rng.integers(0, 256, (60, 28, 28),
                                                                      dtype=np.uint8))
    np.savez(tmp_path / "kmnist-test-labels.npz", arr_0=np.arange(60) % 10)
    cfg = load_config(REPO / "configs" / "compare_structured_resnet20_kmnist.yaml", [
        f"data.root={tmp_path}", "device=cpu", "training.epochs=1", "comparison.seeds=[0]",
        "comparison.sparsities=[0.75]", "sparsity.latency_repeats=0",
        "comparison.methods=[{name: l1_filter, dense_epochs: 1}, "
        "{name: slimming, dense_epochs: 1}]"])
    bench = Workbench.from_config(cfg)
    assert bench.data.input_shape == (1, 32, 32)
    Comparison(bench).run(tmp_path / "c", progress=False, log=lambda _: None)
    rows = pd.read_csv(tmp_path / "c" / "results.csv")
    assert len(rows) == 2
    for cell in (tmp_path / "c" / "cells").iterdir():
        summary = json.loads((cell / "summary.json").read_text())
        assert summary["flops_compact"] <= 0.25 * summary["flops_dense"], cell.name


UNREGULARISED = {"l1_filter", "ispasp", "stressednets", "class_relevance"}


@pytest.mark.parametrize("name", sorted(set(STRUCTURED) - UNREGULARISED))
def test_every_regularised_method_trains_one_network_per_strength(name):
    search = _search(name, dense_epochs=1, strengths="[0.001, 0.1]")
    with search.bench.evaluator() as ev:
        res = search.method.find(search.context(ev))
    assert [r["strength"] for r in res.info["front"]] == [0.001, 0.1]
    assert res.info["strength"] in (0.001, 0.1)


@pytest.mark.parametrize("name", ["l1_filter", "ispasp", "class_relevance"])
def test_strengths_of_a_method_without_a_regulariser_are_refused(name):
    with pytest.raises(ConfigError, match="without a regulariser"):
        _search(name, strengths="[0.001, 0.1]")
