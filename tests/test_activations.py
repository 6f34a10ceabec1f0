import json

import pytest
import torch

import neuroprune.activations as acts
from neuroprune.activations.expr import compile_formula, is_well_behaved, parse, readable
from neuroprune.cli import main
from neuroprune.engine import (EvalTask, PerNetworkTrainer, StackedTrainer, TrainSettings,
                               init_state)
from neuroprune.models import ModelSpec

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
    spec = ModelSpec.zoo("mlp", digits.input_shape, digits.num_classes, widths=(24, 24, 24), activation="evolved")
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
