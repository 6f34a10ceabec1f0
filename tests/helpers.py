"""Shared helpers for the test suite."""

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_cli(*args: str, cwd: Path | None = None, timeout: int = 600):
    """Run ``python -m neuroprune ARGS`` in a subprocess; returns CompletedProcess."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "2"}
    return subprocess.run([sys.executable, "-m", "neuroprune", *args], cwd=cwd or REPO,
                          capture_output=True, text=True, timeout=timeout, env=env)


def run_without(module: str, *args: str):
    """``neuroprune ARGS`` in a subprocess where ``module`` cannot be imported (as if it were
    not installed); returns CompletedProcess."""
    code = (f"import sys; sys.modules[{module!r}] = None\n"
            "from neuroprune.cli import main\n"
            f"sys.exit(main({list(args)!r}))")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)


def mask_search(cfg):
    """A MaskSearch on the workbench of ``cfg`` (a validated RunConfig)."""
    from neuroprune.searches.mask_search import MaskSearch
    from neuroprune.workbench import Workbench
    return MaskSearch(Workbench.from_config(cfg))


def population(data, name="mlp", n=3, sparsity=0.8, allocation="erk", seed=0, **options):
    """``(spec, layout, bits [n, N])``: a zoo model for ``data`` and ``n`` random masks."""
    import torch

    from neuroprune.evolution.operators import Draws, random_rows
    from neuroprune.masks import make_layout
    from neuroprune.models import ModelSpec, build_model, prunable_names

    spec = ModelSpec.zoo(name, data.input_shape, data.num_classes, **options)
    model = build_model(spec)
    shapes = {k: tuple(v.shape) for k, v in model.named_parameters()}
    layout = make_layout({k: shapes[k] for k in prunable_names(model)}, sparsity, allocation)
    bits = random_rows(layout, n, Draws(seed)) if n else torch.zeros(0, layout.numel,
                                                                     dtype=torch.bool)
    return spec, layout, bits


def assert_same_run(a, b):
    """Run directories ``a`` and ``b`` found the same network: summary figures and masks."""
    import json

    import pytest
    from safetensors.torch import load_file

    sa, sb = (json.loads((Path(d) / "summary.json").read_text()) for d in (a, b))
    for k in ("test_accuracy", "val_accuracy", "sparsity", "kept_weights"):
        assert sa[k] == pytest.approx(sb[k], abs=1e-9), k
    ma, mb = (load_file(str(Path(d) / "best_mask.safetensors")) for d in (a, b))
    assert all((ma[k] == mb[k]).all() for k in ma if k.endswith("mask"))
    return sa, sb


def structured_mask_file(path, model, spec, space, keep):
    """Zero in ``model`` the units a structured selection ``keep`` (of ``space``) removes and
    save its mask with the weights at ``path``, as a run's best_mask.safetensors; the path."""
    import torch

    from neuroprune.masks import save_mask, unflatten

    rows = unflatten(space.layout, space.expand(keep))
    params = dict(model.named_parameters())
    with torch.no_grad():
        for k, r in rows.items():
            params[k].mul_(r[0])
    save_mask(path, {k: v[0] for k, v in rows.items()},
              {"architecture": spec.to_dict(), "sparsity": 0.0, "method": "test"},
              weights=model.state_dict())
    return path
