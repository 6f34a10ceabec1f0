"""The in-memory Python API: any method on any model and data, without a config file.

    import neuroprune
    result = neuroprune.prune(MyNet, data=(X, y), method="kstarts", sparsity=0.95)
    result.model      # the trained network, masks attached (torch.nn.utils.prune); raw inputs
    result.masks      # {parameter name: bool tensor}
    result.metrics    # pandas DataFrame: one row per evaluated network
    result.summary    # test and validation accuracy, sparsity, ...

It builds the same config a YAML file would, runs the same mask search into a run directory
(``out``, or a new temporary folder), and reads the results back.
"""

from __future__ import annotations

import copy
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from torch import nn

from .config import load_config
from .data import DataSplits
from .errors import UserError
from .masks import Mask
from .rundir import FILES


@dataclass
class PruneResult:
    """What :func:`prune` found: the trained masked model, its masks, every evaluation, the
    summary, and the run directory that holds them."""

    model: nn.Module  # takes raw inputs: the run's preprocessing runs in front of it
    masks: Mask
    metrics: Any  # pandas.DataFrame
    summary: dict[str, Any]
    run_dir: Path

    def __repr__(self) -> str:
        s = self.summary
        return (f"PruneResult({s['method']}: test accuracy {s['test_accuracy']:.4f} at sparsity "
                f"{s['sparsity']:.4f}; run_dir={str(self.run_dir)!r})")


def _merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for k, v in extra.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _model_section(model: Any) -> tuple[dict[str, Any], Callable[..., nn.Module] | None]:
    """The config's ``model:`` section, or a Python builder for a class or instance."""
    if isinstance(model, str):
        return ({"factory": model} if ":" in model and not model.startswith("torchvision:")
                else {"name": model}), None
    if isinstance(model, nn.Module):  # its current weights: the initialisation, or trained
        from .masks.compact import unmasked_copy
        from .preprocess import detach
        template = unmasked_copy(model)  # a pruned model (a result's) starts from its zeros
        detach(template)  # the engine feeds standardised inputs itself
        return {}, lambda: copy.deepcopy(template)
    if callable(model):
        return {}, model
    raise TypeError(f"model must be a model name, 'package.module:function', an nn.Module "
                    f"class or instance, or a function returning one; got {type(model).__name__}")


def _data(data: Any, cfg) -> tuple[dict[str, Any], DataSplits | None]:
    if isinstance(data, str):
        return {"dataset": data}, None
    if isinstance(data, DataSplits):
        return {}, data
    from torch.utils.data import DataLoader, Dataset
    from .data.streamed import from_datasets
    if isinstance(data, (Dataset, DataLoader)):  # one set: split by cfg's fractions and seed
        return {}, _split_one(data, cfg)
    if isinstance(data, (tuple, list)) and len(data) in (2, 3) and all(
            isinstance(d, (Dataset, DataLoader)) for d in data):
        return {}, from_datasets(*data, cfg=cfg.data, name="datasets")
    if isinstance(data, (tuple, list)) and len(data) in (2, 4):
        from .data.arrays import from_arrays
        return {}, from_arrays(*data[:2], cfg.data, *data[2:])
    raise TypeError("data must be a dataset name, DataSplits, (X, y), (X_train, y_train, "
                    "X_test, y_test), a torch Dataset or DataLoader, or (train, val[, test]) "
                    "Datasets")


def _split_one(data: Any, cfg):
    """One Dataset or DataLoader, read once, split (stratified) by ``cfg.data``'s fractions
    and split seed like ``(X, y)``."""
    import numpy as np

    from .data.arrays import from_arrays
    from .data.streamed import gather
    x, y = gather(data, "given", cfg.data)
    if int(y.min()) < 0:
        from .errors import DataError
        raise DataError(f"given dataset: labels run from {int(y.min())}; labels must be class "
                        f"numbers 0..classes-1")
    return from_arrays(x.numpy(), np.asarray(y), cfg.data)


def prune(model: Any, data: Any, *, method: str = "kstarts", sparsity: float = 0.9,
          epochs: int | None = None, seed: int = 0, device: str = "auto",
          out: str | Path | None = None, progress: bool = True, init: str = "initial",
          config: dict[str, Any] | None = None, **method_params: Any) -> PruneResult:
    """Find a ``sparsity``-sparse mask of ``model`` with ``method`` and train it on ``data``.

    ``model``: a zoo name (``"resnet20"``), ``"torchvision:NAME"``, ``"package.module:
    function"``, an ``nn.Module`` class or function (called with ``input_shape``,
    ``in_channels`` and ``num_classes`` when it takes them) or an instance (its current
    weights are the initialisation). ``init="trained"``: the instance is a trained model to
    prune, its weights kept as given (no ``sparsity.rescale_init``); the summary then has the
    test accuracy before pruning, after pruning and after fine-tuning, and ``epochs=0``
    prunes without fine-tuning (one-shot methods). ``data``: a dataset name,
    :class:`DataSplits`, ``(X, y)`` (split 65/15/20, stratified) or ``(X_train, y_train,
    X_test, y_test)``, a torch ``Dataset`` or ``DataLoader`` of ``(input, label)`` items
    (split like ``(X, y)``) or ``(train, val[, test])`` Datasets (each item read once, see
    :mod:`neuroprune.data.streamed`), as raw inputs: they are standardised for training, and
    ``result.model`` takes raw inputs too. ``epochs`` is the
    final training's length; ``method_params`` are the method's own parameters
    (``population=8`` for K-starts); ``config`` holds any other config section as a nested
    dict (``{"training": {"lr": 0.05}}``). Errors in any of them raise
    :class:`~neuroprune.errors.UserError` before anything is written.
    """
    from .export import load_model
    from .masks import load_mask
    from .results import load as load_results
    from .searches.mask_search import MaskSearch
    from .workbench import Workbench

    if init not in ("initial", "trained"):
        raise UserError(f"init must be 'initial' or 'trained', got {init!r}")
    if init == "trained" and not isinstance(model, nn.Module):
        raise UserError("init='trained' prunes a trained model: pass the model instance (or "
                        "set config={'model': {'weights': PATH}} with a model name)")
    model_tree, builder = _model_section(model)
    tree: dict[str, Any] = {"name": "prune", "kind": "mask_search", "seed": seed,
                            "device": device, "sparsity": {"target": sparsity},
                            "method": {"name": method, **method_params}, "model": model_tree}
    if epochs is not None:
        tree["training"] = {"epochs": epochs}
    if init == "trained":  # pruned as given, on the inputs it was trained on
        tree["sparsity"]["rescale_init"] = False
        tree["data"] = {"standardise": False}
    tree = _merge(tree, config or {})
    cfg = load_config(tree=tree)
    data_tree, splits = _data(data, cfg)
    if data_tree:
        cfg = load_config(tree=_merge(tree, {"data": data_tree}))
    spec = None
    if builder is not None:
        from .data import load_dataset
        from .models import ModelSpec
        splits = splits if splits is not None else load_dataset(cfg.data)
        spec = ModelSpec(tuple(splits.input_shape), splits.num_classes, None, {}, None, builder)
    bench = Workbench.from_config(cfg, data=splits, spec=spec).check_sparsity()
    bench.trained_init = bench.trained_init or init == "trained"
    run_dir = Path(out) if out is not None else Path(tempfile.mkdtemp(prefix="neuroprune-"))
    summary = MaskSearch(bench).run(run_dir, progress=progress)
    path = run_dir / FILES.best_mask
    masks, _ = load_mask(path)
    # this run's own architecture (the user's model, or the zoo's): a factory named in the
    # file is not called again
    trained = load_model(path, model=bench.build_model())
    return PruneResult(model=trained, masks=masks, metrics=load_results(run_dir),
                       summary=summary, run_dir=run_dir)
