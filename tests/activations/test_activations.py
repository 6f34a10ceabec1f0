import json

import pytest
import torch

import neuroprune.activations as acts
from neuroprune.activations.expr import (MAX_LINEARITY, compile_formula, is_well_behaved,
                                         linearity, parse, readable)
from neuroprune.activations.gp import primitive_set
from neuroprune.cli import main
from neuroprune.engine import (EpochSelection, EvalTask, PerNetworkTrainer, StackedTrainer,
                               TrainSettings, init_state)
from neuroprune.models import ModelSpec, RoleActivation, build_model

from helpers import REPO


def test_formulas_compile_to_torch_and_print_readably():
    f = compile_formula("mul(x, sigmoid(mul(1.5, x)))")
    x = torch.linspace(-3, 3, 7, requires_grad=True)
    torch.testing.assert_close(f(x), x * torch.sigmoid(1.5 * x))
    f(x).sum().backward()  # autograd flows through the compiled tree
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert readable("mul(x, sigmoid(mul(1.5, x)))") == "x * sigmoid(1.5 * x)"
    assert parse("add(x, -0.5)") == ("add", "x", -0.5)


@pytest.mark.parametrize("text", ["__import__(x)", "os.system(x)", "mul(x)", "add(x, x, x)",
                                  "relu(x", "x)"])
def test_parser_refuses_anything_but_primitives(text):
    with pytest.raises(ValueError):
        parse(text)


@pytest.mark.parametrize("formula,ok", [("relu(x)", True), ("mul(x, sigmoid(x))", True),
                                        ("exp(exp(x))", False), ("1.0", False),
                                        ("square(x)", False), ("div(1.0, x)", False)])
def test_probe_rejects_functions_that_blow_up(formula, ok):
    assert is_well_behaved(compile_formula(formula)) is ok


def test_population_with_different_functions_equals_each_alone(digits):
    spec = ModelSpec.zoo("mlp", digits.input_shape, digits.num_classes, widths=(24, 24, 24),
                         activation="evolved")
    init = init_state(spec, 0)
    funcs = [{"first": "relu(x)", "middle": "tanh(x)", "last": "mul(x, sigmoid(x))"},
             {"first": "tanh(x)", "middle": "tanh(x)", "last": "relu(x)"},
             {"first": "relu(x)", "middle": "tanh(x)", "last": "mul(x, sigmoid(x))"},
             {"first": "softplus(x)", "middle": "abs(x)", "last": "erf(x)"}]
    settings = TrainSettings(lr=0.05)
    task = EvalTask(masks=None, size=4, init=init, epochs=2, data_seed=1, activations=funcs)
    pop = StackedTrainer(spec, digits, settings).run(task).metrics["val_loss"]
    ref = PerNetworkTrainer(spec, digits, settings).run(task).metrics["val_loss"]
    torch.testing.assert_close(pop, ref, rtol=1e-4, atol=1e-6)
    assert pop[0] == pop[2]  # same functions
    assert pop[0] != pop[1]


def test_activation_search_run(tmp_path, capsys):
    out = tmp_path / "a"
    code = main(["run", str(REPO / "configs" / "activation_digits.yaml"), "--out", str(out),
                 "--set", "activation.population=3", "--set", "activation.generations=2",
                 "--set", "activation.search_epochs=1", "--set", "training.epochs=2",
                 "--set", "model.widths=[16, 16, 16]",
                 "--set", "activation.strategies=[relu, random, ga, coevolution]"])
    assert code == 0, capsys.readouterr().err
    s = json.loads((out / "summary.json").read_text())
    assert set(s["strategies"]) == {"relu", "random", "ga", "coevolution"}
    best = max(s["strategies"], key=lambda k: s["strategies"][k]["val_accuracy"])
    assert s["best_strategy"] == best  # chosen on validation, never on test
    for st in s["strategies"].values():
        assert set(st["functions"]) == {"first", "middle", "last"}
    loaded = acts.load(out / "best_activations.json")
    saved = json.loads((out / "best_activations.json").read_text())
    x = torch.linspace(-2, 2, 5)
    for role, module in loaded.items():
        assert isinstance(module, torch.nn.Module)
        torch.testing.assert_close(module(x), compile_formula(saved["functions"][role])(x))
    # each strategy got the same number of trainings in the search
    import pandas as pd
    df = pd.read_csv(out / "results.csv")
    counts = df[df.generation != "final"].groupby("strategy").size()
    assert counts["random"] == counts["coevolution"] == 3 * 3 * 2
    assert counts["ga"] <= counts["random"]  # the GA does not re-train unchanged elites


@pytest.mark.parametrize("formula", [
    "sub(x, abs(sigmoid(-0.5)))",                 # the GA's affine winner on digits
    "min(relu(div(x, -0.5)), div(x, -0.5))",      # -2x, written the long way
    "add(x, mul(0.5, mul(0.1, sin(x))))",         # a wiggle on a line
    "mul(2.0, hardtanh(mul(0.1, x)))"])           # linear where pre-activations live
def test_probe_rejects_affine_and_near_linear_functions(formula):
    fn = compile_formula(formula)
    assert linearity(fn) > MAX_LINEARITY
    assert not is_well_behaved(fn)
    assert is_well_behaved(fn, max_linearity=None)  # max_linearity: null keeps them


@pytest.mark.parametrize("formula", ["relu(x)", "tanh(x)", "hardshrink(x)", "elu(x)",
                                     "softshrink(x)", "rrelu(x)", "hardswish(x)"])
def test_probe_keeps_the_usual_nonlinearities(formula):
    assert is_well_behaved(compile_formula(formula))


def test_paper_primitive_set_is_lapid_and_sippers():
    pset = primitive_set("paper")
    names = {p.name for prims in pset.primitives.values() for p in prims}
    assert names == {"max", "min", "add", "sub", "mul", "tanh", "relu", "leaky_relu", "elu",
                     "hardshrink", "celu", "hardtanh", "hardswish", "softshrink", "rrelu"}
    assert [t.format() for ts in pset.terminals.values() for t in ts] == ["x"]
    x = torch.linspace(-3, 3, 13)
    F = torch.nn.functional
    torch.testing.assert_close(compile_formula("celu(hardswish(x))")(x), F.celu(F.hardswish(x)))
    torch.testing.assert_close(compile_formula("rrelu(x)")(x),
                               F.rrelu(x, training=False))  # the slope's mean, no draws


def test_epoch_selection_scores_held_out_and_paper_way(digits):
    spec = ModelSpec.zoo("mlp", digits.input_shape, digits.num_classes, widths=(16,))
    task = EvalTask(masks=None, size=3, init=init_state(spec, 0), epochs=4, data_seed=0,
                    test=True, hooks=(EpochSelection(test=True),),
                    network_settings={"lr": torch.tensor([0.01, 0.1, 3.0])})
    m = StackedTrainer(spec, digits, TrainSettings(lr=0.1)).run(task).metrics
    assert (m["best_val_accuracy"] >= m["val_accuracy"]).all()
    assert ((m["best_val_epoch"] >= 1) & (m["best_val_epoch"] <= 4)).all()
    assert (m["best_test_accuracy"] >= m["test_at_best_val"]).all()  # selecting on test
    one = StackedTrainer(spec, digits, TrainSettings(lr=0.1)).run(EvalTask(
        masks=None, size=1, init=init_state(spec, 0), epochs=1, data_seed=0, test=True,
        hooks=(EpochSelection(test=True),))).metrics
    assert one["test_at_best_val"] == one["test_accuracy"] == one["best_test_accuracy"]


def test_paper_cnn_has_its_layers_and_three_slots():
    model = build_model(ModelSpec.zoo("cnn_32_64", (1, 28, 28), 10, activation="evolved"))
    assert sum(p.numel() for p in model.parameters()) == 320 + 18_496 + 9_217_000 + 10_010
    roles = [m.role for m in model.modules() if isinstance(m, RoleActivation)]
    assert roles == ["first", "middle", "last"]
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


def test_paper_protocol_run(tmp_path, capsys):
    out = tmp_path / "p"
    code = main(["run", str(REPO / "configs" / "activation_paper_mnist.yaml"), "--out", str(out),
                 "--set", "data.dataset=digits", "--set", "data.protocol=auto",
                 "--set", "model.widths=[8, 8, 8, 8]", "--set", "training.batch_size=128",
                 "--set", "activation.population=2", "--set", "activation.generations=2",
                 "--set", "activation.search_epochs=1", "--set", "training.epochs=2",
                 "--set", "activation.final_candidates=1", "--no-progress"])
    assert code == 0, capsys.readouterr().err
    import pandas as pd
    df = pd.read_csv(out / "results.csv")
    search = df[df.generation != "final"]
    counts = search.groupby("strategy").size()
    # one budget: population * slots * generations trainings for every searched strategy
    assert set(counts) == {2 * 3 * 2}
    # sequential coevolution: first the first slot's search, others fixed; then middle, last
    seq = search[search.strategy == "coevolution_sequential"]
    gen = seq.generation.str.split(":").str[1].astype(int)
    for g, (role, others) in zip((0, 2, 4), [("first", ("middle", "last")),
                                              ("middle", ("first", "last")),
                                              ("last", ("first", "middle"))]):
        phase = seq[(gen >= g) & (gen < g + 2)]
        assert all(phase[f"f_{o}"].nunique() == 1 for o in others)
    single = search[search.strategy == "es_single"]
    assert (single.f_first == single.f_middle).all() and (single.f_first == single.f_last).all()
    s = json.loads((out / "summary.json").read_text())
    for st in s["strategies"].values():
        assert st["paper_test_accuracy"] >= st["test_accuracy"]  # best over epochs vs held out
    assert "held out" in s["scores"]["test_accuracy"]


def test_permutation_test_on_medians():
    from neuroprune.report.stats import permutation_test
    assert permutation_test([0.90, 0.91, 0.92, 0.93, 0.94], [0.80, 0.81, 0.82, 0.83, 0.84]) \
        == pytest.approx(12 / 252)  # medians ignore the outer values: 12 splits as extreme,
    # so 5 against 5 replicates can never give p below 0.048
    assert permutation_test([0.9, 0.8, 0.85], [0.85, 0.9, 0.8]) == 1.0


def test_report_of_replicates(tmp_path):
    from neuroprune.report import make_report
    runs = []
    for seed in (0, 1):
        runs.append(tmp_path / f"r{seed}")
        assert main(["run", str(REPO / "configs" / "activation_paper_mnist.yaml"),
                     "--out", str(runs[-1]), "--set", "data.dataset=digits",
                     "--set", "data.protocol=auto", "--set", "model.widths=[8, 8, 8]",
                     "--set", "activation.strategies=[relu, coevolution_sequential]",
                     "--set", "activation.population=2", "--set", "activation.generations=1",
                     "--set", "activation.search_epochs=1", "--set", "training.epochs=1",
                     "--set", "activation.final_candidates=1", "--set", f"seed={seed}",
                     "--no-progress"]) == 0
    md = make_report(runs, tmp_path / "report").read_text()
    assert "Replicates of `activation_paper_mnist` on digits, model mlp (2 seeds)" in md
    assert "| relu | 2 |" in md and "permutation p" in md
    assert (tmp_path / "report" / "replicate-functions-1.png").is_file()
