"""Export the best network of a run (or of an Optuna trial) and load it back.

Formats:

* ``safetensors`` (default): trained weights under their state-dict names, boolean masks
  beside them as ``<name>_mask`` (``torch.nn.utils.prune``'s naming), metadata with the
  architecture spec (rebuilds the model), per-layer and global sparsity, method, dataset, seed,
  accuracies and the neuroprune version. Plain ``model.load_state_dict(
  safetensors.torch.load_file(path), strict=False)`` loads it.
* ``prune``: a ``torch.save`` state dict in the ``torch.nn.utils.prune`` convention
  (``<layer>.weight_orig`` and ``<layer>.weight_mask``), loadable into a model that had
  ``prune.custom_from_mask`` applied.
* ``sparse``: ``torch.save`` of the kept weights as CSR tensors (the rest dense), with the
  size on disk against the dense file reported.
* ``compact``: a smaller dense network (pruned neurons and channels, and the dead units an
  unstructured mask leaves, physically removed; see :mod:`neuroprune.masks.compact`) as
  safetensors: its weights under their state-dict names, ``network: compact`` and the pruning
  history that rebuilds its architecture in the metadata. :func:`load_model` rebuilds it.
  Needs ``torch-pruning``.
* ``onnx``: the compact network as ONNX (dynamic batch size; input ``input``, output
  ``logits``). Needs ``torch-pruning`` and ``onnx``.
* ``state_dict``: ``torch.save`` of the masked network's plain state dict (pruned entries
  zero), which ``build_model(spec).load_state_dict`` accepts; ``<name>.json`` beside it holds
  the architecture, classes and preprocessing.
* ``sparse_model``: the masked network on sparse kernels (its ``Linear`` layers as CSR
  buffers multiplied by ``torch.sparse.mm``; :mod:`neuroprune.sparse_model`), TorchScript with
  the preprocessing in front: ``torch.jit.load(path)`` runs it on raw inputs. ONNX has no
  equivalent (see that module).

Every format needs a mask: a file without one is refused. Every format carries the
preprocessing the run used (:mod:`neuroprune.preprocess`): in the metadata, and in ONNX as
the graph's first nodes, so the ONNX network takes raw inputs; :func:`load_model` attaches it.
A network defined in Python is rebuilt from the ``model`` the caller passes.
"""

from __future__ import annotations

import io
import json
import math
import os
import tempfile
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import torch
from torch import nn

from ._io import atomic_torch_save, atomic_write
from .errors import UserError
from .masks import apply_mask, load_mask, save_mask
from .models import ModelSpec, build_model
from .models.base import load_weights
from .rundir import FILES, factory_folder_of_run
from .preprocess import attach, describe, raw_shape, with_preprocessing

FORMATS = ("safetensors", "prune", "sparse", "compact", "onnx", "state_dict", "sparse_model")


def load_model(path: str | Path, model: Any = None, *, trust: bool = False) -> nn.Module:
    """Rebuild the trained sparse network stored in an exported (or run's) safetensors file.

    The file's metadata names its architecture: a zoo or torchvision model is built from it.
    A ``package.module:function`` factory named there would run code from the file, so it is
    refused unless you pass ``model`` (a module of the file's architecture, or the class or
    function that builds one, as for a network defined in Python: its weights are replaced by
    the file's) or ``trust=True`` for a file you trust (a run's own file: a factory module
    that sat beside the run's config imports from there, as ``factory.json`` records). A
    file that does not match its architecture (shapes, missing or extra tensors or masks,
    weights under a mask that are not zero) raises a :class:`~neuroprune.errors.UserError`
    naming what is wrong.

    The returned model has its masks attached with ``prune.custom_from_mask`` and takes raw
    inputs: the run's preprocessing runs in front of it (:func:`neuroprune.preprocess.attach`;
    ``neuroprune.preprocess.detach(model)`` removes it).
    """
    net, meta = _load_network(path, model, trust)
    return attach(net, meta.get("preprocessing"))


def _load_network(path: str | Path, model: Any = None, trust: bool = False
                  ) -> tuple[nn.Module, dict[str, Any]]:
    """The network of ``path`` without its preprocessing, checked, and the file's metadata."""
    from .masks import read_mask_file

    mask, weights, meta = read_mask_file(path)
    refuse_other_networks(path, meta)
    if meta.get("network") == "compact":
        return _load_compact(path, meta, weights, model, trust), meta
    if not weights:
        raise UserError(f"{path} holds masks only (no trained weights) and cannot rebuild a "
                        f"trained model; apply it with neuroprune.apply_mask instead")
    net = _checked_model(path, mask, weights, meta, model, trust)
    try:
        load_weights(net, weights)
        apply_mask(net, mask)
    except (RuntimeError, ValueError) as exc:
        raise UserError(f"{path}: {str(exc).splitlines()[0]}") from None
    return net.eval(), meta


def _network_files(kind: Any) -> str:
    """What a kind's run writes in place of a layered network (empty: nothing of the sort)."""
    from .searches.registry import KINDS

    return KINDS.load(kind).network_files if isinstance(kind, str) and kind in KINDS else ""


def refuse_other_networks(path, meta: dict[str, Any]) -> None:
    """Refuse, in one line, a file that holds no layered network (a NEAT genome, an RBM),
    saying what it holds and how to read it. Genome files written before they named their
    kind are known by their ``node_keys``."""
    kind = meta.get("kind") or ("neuroevolution" if "node_keys" in meta else None)
    files = _network_files(kind)
    if files:
        raise UserError(f"{path} comes from a run of kind {kind} and holds no network that "
                        f"load_model or export can rebuild: {files}")


def missing_best_mask(run_dir: Path) -> UserError:
    """The error for a run folder without ``best_mask.safetensors``: for a kind that writes
    other network files, which ones it wrote and how to read them."""
    from . import results

    try:
        kind = results.config(run_dir).get("kind")
    except UserError:  # no readable config.yaml: not a run folder
        kind = None
    files = _network_files(kind)
    written = sorted(p.name for p in run_dir.glob("*.safetensors"))
    if files and written:
        return UserError(f"{run_dir} is a run of kind {kind}: it has no "
                         f"best_mask.safetensors to export, and wrote {', '.join(written)}. "
                         f"{files}")
    return UserError(f"{run_dir} has no best_mask.safetensors (unfinished run, or not a "
                     f"mask-search run directory)")


def _architecture(path, meta: dict[str, Any], model: Any, trust: bool) -> nn.Module:
    """A fresh module of the file's architecture: from ``model`` when the caller gives one
    (a module, or the class or function that builds one), else built from the metadata,
    checked first (a factory only if trusted; the size against this machine's memory)."""
    arch = meta.get("architecture")
    if isinstance(model, nn.Module):
        from .masks.compact import unmasked_copy
        from .preprocess import detach
        net = unmasked_copy(model)
        detach(net)
        return net
    if model is not None:
        spec = ModelSpec(tuple(arch["input_shape"]), int(arch["num_classes"]), None, {}, None,
                         model)
        return build_model(spec)
    if isinstance(arch, dict) and "arch" not in arch and arch.get("name") is None \
            and arch.get("factory") is None:
        raise UserError("this network was defined in Python and its file cannot rebuild it; "
                        "pass the model from Python: neuroprune.export.export(path, out, "
                        "fmt, model=MyNet) or neuroprune.load_model(path, model=MyNet)")
    spec = file_spec(path, meta, factory=trust)
    if spec.source == "factory":  # a run's file: its factory may sit beside the run's config
        factory_folder_of_run(Path(path).parent)
    _check_size(path, spec)
    try:
        return build_model(spec)
    except UserError as exc:
        raise UserError(f"{path}: its architecture metadata: {exc}") from None


def file_spec(path, meta: dict[str, Any], factory: bool = False) -> ModelSpec:
    """The architecture a mask file's metadata names, checked; a factory only if ``factory``
    (the caller trusts the file or builds the model itself)."""
    from .errors import ConfigError
    from .models.spec import validate_options

    arch = meta.get("architecture")
    if arch is None:
        raise UserError(f"{path} has no architecture in its metadata; it was not written by "
                        f"neuroprune")
    if not isinstance(arch, dict):
        raise UserError(f"{path}: its architecture metadata is not a JSON object; the file was "
                        f"altered or not written by neuroprune")
    try:
        spec = ModelSpec.from_dict(arch)
        shape = tuple(int(d) for d in spec.input_shape)
        if not shape or min(shape) < 1 or int(spec.num_classes) < 1:
            raise ValueError("input_shape and num_classes must be positive")
        if spec.source == "zoo":
            from .models import MODELS
            spec = ModelSpec.zoo(spec.name, shape, spec.num_classes, **validate_options(
                MODELS.load(spec.name), spec.options, f"model '{spec.name}'"))
    except ConfigError as exc:
        raise UserError(f"{path}: its architecture metadata: {exc}") from None
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        raise UserError(f"{path}: its architecture metadata is not a model spec "
                        f"({type(exc).__name__}: {exc}); the file was altered or not written "
                        f"by neuroprune") from None
    if spec.source == "factory" and not factory:
        raise UserError(f"{path} names the model factory '{spec.factory}', and calling it "
                        f"would run code named by the file: pass the model yourself "
                        f"(neuroprune.load_model(path, model=...)), or trust the file "
                        f"(trust=True, or --trust-code on the command line)")
    return spec


def _check_size(path, spec: ModelSpec) -> None:
    """Refuse an architecture too large for this machine before allocating it (a few bytes of
    metadata can name a network of terabytes): it is built on the meta device and counted."""
    from ._system import free_memory, human

    try:
        with torch.device("meta"):
            meta_model = build_model(spec)
    except UserError as exc:
        raise UserError(f"{path}: its architecture metadata: {exc}") from None
    except Exception:  # an architecture that cannot be built on meta: it is built below
        return
    numel = sum(t.numel() for t in (*meta_model.parameters(), *meta_model.buffers()))
    need = 3 * 4 * numel + 4 * math.prod(spec.input_shape)  # model, weights read, masks
    free = free_memory(torch.device("cpu"))
    if need > 0.8 * free:
        raise UserError(f"{path}: its architecture ({spec.describe()}, {numel:,} parameters) "
                        f"needs about {human(need)} to load, but this machine has "
                        f"{human(free)} free; the file was altered, or load it on a larger "
                        f"machine")


def _checked_model(path, mask, weights: dict[str, torch.Tensor], meta: dict[str, Any],
                   model: nn.Module | None, trust: bool) -> nn.Module:
    """The file's architecture, built (or ``model``), with every tensor of the file checked
    against it: mask names and shapes, a mask for every layer the file says it masks, the
    weights' names and shapes, and zeros under every mask."""
    model = _architecture(path, meta, model, trust)
    params = dict(model.named_parameters())
    unknown = sorted(k for k in mask if k not in params)
    if unknown:
        raise UserError(f"{path} holds masks for {unknown[:4]}, which its architecture does "
                        f"not have; the file was altered or belongs to another model")
    listed = meta.get("layer_sparsity", {})
    if not isinstance(listed, dict):
        raise UserError(f"{path}: its layer_sparsity metadata is not a JSON object; the file "
                        f"was altered or not written by neuroprune")
    unmasked = sorted(k for k in listed if k not in mask)
    if unmasked:
        raise UserError(f"{path} has no mask for {unmasked[:4]}, which its metadata lists as "
                        f"pruned; the file was altered (that layer would load unpruned)")
    _same_shapes(path, "mask", mask, params)
    if weights:
        expected = model.state_dict()
        missing, extra = set(expected) - set(weights), set(weights) - set(expected)
        if missing or extra:
            raise UserError(f"{path} does not match its architecture: missing tensors "
                            f"{sorted(missing)[:4]}, unexpected {sorted(extra)[:4]}")
        _same_shapes(path, "tensor", weights, expected)
        under = [k for k, m in mask.items() if bool(weights[k][~m].any())]
        if under:
            raise UserError(f"{path}: weights of '{under[0]}' under its mask are not zero; "
                            f"the file was altered (its pruned weights are zero when written)")
    return model


def _same_shapes(path, what: str, tensors: dict[str, torch.Tensor],
                 expected: dict[str, torch.Tensor]) -> None:
    for k, t in tensors.items():
        if tuple(t.shape) != tuple(expected[k].shape):
            raise UserError(f"{path}: {what} '{k}' has shape {tuple(t.shape)}, the "
                            f"architecture's has {tuple(expected[k].shape)}")


def _load_compact(path, meta: dict[str, Any], weights: dict[str, torch.Tensor],
                  model: Any, trust: bool) -> nn.Module:
    from .masks import rebuild_compact

    model = _architecture(path, meta, model, trust)
    shape = tuple(meta["architecture"]["input_shape"])
    history = meta.get("pruning_history")
    if not isinstance(history, list):
        raise UserError(f"{path}: its pruning_history metadata is not a list; the file was "
                        f"altered or not written by neuroprune")
    try:
        model = rebuild_compact(model, torch.zeros(1, *shape), history)
        load_weights(model, weights)
    except UserError:
        raise
    except Exception as exc:  # a history or tensors that do not fit the architecture
        raise UserError(f"{path}: {type(exc).__name__}: "
                        f"{str(exc).splitlines()[0] if str(exc) else ''}") from None
    return model.eval()


def masked_model(path: str | Path, model: Any = None, *, trust: bool = False) -> nn.Module:
    """The network in a run's (or exported) safetensors file as a plain dense model whose
    pruned entries are zero (no pruning hooks), in evaluation mode. It takes the inputs it
    was trained on (standardised): the preprocessing is not attached."""
    model, _ = _load_network(path, model, trust)
    for mod in model.modules():
        for hook in [h for h in mod._forward_pre_hooks.values()
                     if isinstance(h, torch.nn.utils.prune.BasePruningMethod)]:
            torch.nn.utils.prune.remove(mod, hook._tensor_name)
    return model.eval()


def compact_model(path: str | Path, model: Any = None, *, trust: bool = False
                  ) -> tuple[nn.Module, list[Any], tuple]:
    """The compact network of a run's safetensors file (without its preprocessing):
    ``(model, pruning history, input shape)``."""
    from .masks import compact

    _, meta = load_mask(path)
    shape = tuple(meta["architecture"]["input_shape"])
    small, history = compact(masked_model(path, model, trust=trust), torch.zeros(1, *shape))
    return small.eval(), history, shape


def onnx_metadata(meta: dict[str, Any]) -> dict[str, str]:
    """What an ONNX file says about its network (``metadata_props``): classes, the
    preprocessing inside the graph, sparsity, and where the network came from."""
    from . import __version__
    record = meta.get("data_record") or {}
    classes = record.get("classes") or list(range(int(meta["architecture"]["num_classes"])))
    pre = meta.get("preprocessing")
    provenance = {k: meta.get(k) for k in ("method", "dataset", "seed", "test_accuracy",
                                           "val_accuracy", "neuroprune_version")}
    provenance.update(exported_by=f"neuroprune {__version__}", data=record or None,
                      architecture=meta["architecture"])
    return {"classes": json.dumps(classes), "preprocessing": json.dumps(pre),
            "preprocessing_text": "inside the graph, before the network: " + describe(pre)
            if pre else describe(pre),
            "input": _input_text(pre),
            "sparsity": json.dumps(meta.get("sparsity")), "provenance": json.dumps(provenance)}


def _input_text(pre: dict[str, Any] | None) -> str:
    """What the ONNX graph's input takes (a float tensor: integer pixels scaled by the user)."""
    if not pre:
        return "the network's inputs"
    if pre.get("scale"):
        return f"raw inputs: float pixels in [0, 1] (0..255 pixels times {pre['scale']:.8g})"
    return "raw inputs"


def _write_onnx(model: nn.Module, input_shape: tuple, out: Path, meta: dict[str, Any]) -> None:
    import importlib.util
    if importlib.util.find_spec("onnx") is None:  # the exporter needs it
        from .errors import MissingDependencyError
        raise MissingDependencyError("onnx", "onnx", "export --format onnx")
    pre = meta.get("preprocessing")
    graph = with_preprocessing(model, pre).eval()

    def write(tmp: str) -> None:
        import onnx
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(graph, (torch.zeros(1, *raw_shape(input_shape, pre)),), tmp,
                              dynamo=False, input_names=["input"], output_names=["logits"],
                              dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
        proto = onnx.load(tmp)
        onnx.helper.set_model_props(proto, onnx_metadata(meta))
        onnx.save(proto, tmp)
    atomic_write(out, write)


def _sidecar(out: Path) -> Path:
    """The JSON beside an exported state dict."""
    return out.with_name(out.name + ".json") if out.suffix == ".json" else out.with_suffix(".json")


def _prune_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


#: the optional packages (import names) each format needs beyond the base install
EXPORT_NEEDS = {"compact": ["torch_pruning"], "onnx": ["onnx", "torch_pruning"]}


def export(source: str | Path, out: str | Path, fmt: str = "safetensors",
           model: Any = None, *, trust: bool = False) -> dict[str, Any]:
    """Write the network in ``source`` (a run's safetensors file) to ``out`` as ``fmt``.

    The file is checked against its architecture before anything is written (see
    :func:`load_model`, which also says what ``model`` and ``trust`` allow). ``model``: for a
    network defined in Python, a module of its architecture (or its class or builder), which
    the file cannot rebuild by itself. A format whose optional packages are missing raises
    one :class:`~neuroprune.errors.MissingDependencyError` naming all of them, before
    anything is read or written."""
    from .errors import require
    from .masks import read_mask_file

    if fmt not in FORMATS:
        raise UserError(f"unknown export format '{fmt}'; choose one of {', '.join(FORMATS)}")
    require(EXPORT_NEEDS.get(fmt, []), f"export(..., fmt='{fmt}')")
    out = Path(out)
    if out.is_dir():
        raise UserError(f"--out {out} is a folder; give a file name")
    mask, weights, meta = read_mask_file(source)
    refuse_other_networks(source, meta)
    if not mask:
        raise UserError(f"{source} holds no mask (a compact network, or a run without one); "
                        f"export needs a masked network")
    _checked_model(source, mask, weights, meta, model, trust)
    info: dict[str, Any] = {"format": fmt, "path": str(out), "sparsity": meta.get("sparsity")}
    if fmt in ("compact", "onnx"):
        small, history, shape = compact_model(source, model, trust=trust)
        info["params"] = sum(p.numel() for p in small.parameters())
        if fmt == "onnx":
            _write_onnx(small, shape, out, meta)
        else:
            save_mask(out, {}, {**meta, "network": "compact", "pruning_history": history},
                      weights=small.state_dict())
    elif fmt == "state_dict":
        state = {k: v.detach().clone()
                 for k, v in masked_model(source, model, trust=trust).state_dict().items()}
        atomic_torch_save(out, state)
        from ._io import atomic_write_json
        atomic_write_json(_sidecar(out), {k: meta.get(k) for k in (
            "architecture", "preprocessing", "data_record", "sparsity", "method", "dataset",
            "seed", "test_accuracy", "neuroprune_version")})
        info["metadata"] = str(_sidecar(out))
    elif fmt == "sparse_model":
        from .sparse_model import save, script, sparse_module
        graph = script(with_preprocessing(sparse_module(masked_model(source, model, trust=trust)),
                                          meta.get("preprocessing")).eval())
        atomic_write(out, lambda tmp: save(graph, tmp))
    elif fmt == "safetensors":
        save_mask(out, mask, {**meta, "global_sparsity": mask.sparsity(),
                              "layer_sparsity": mask.layer_sparsity()},
                  weights=weights or None)
    elif fmt == "prune":
        state = _prune_state(_load_network(source, model, trust)[0])
        atomic_torch_save(out, {"state_dict": state, "metadata": meta})
    else:
        _load_network(source, model, trust)  # a masks-only file cannot be made sparse
        dense = weights  # pruned entries are exactly zero (checked above)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
            sparse = {k: (v.to_sparse_csr() if k in mask and v.dim() == 2 else
                          v.to_sparse() if k in mask else v) for k, v in dense.items()}
        atomic_torch_save(out, {"state_dict": sparse, "metadata": meta})
        buf = io.BytesIO()
        torch.save(dense, buf)
        info["dense_bytes"] = buf.getbuffer().nbytes
        info["sparse_bytes"] = os.path.getsize(out)
    info["bytes"] = os.path.getsize(out)
    return info


def choose_trial(study, trial: str = "best"):
    """``best`` (multi-objective: the Pareto-front trial with the highest first objective,
    ties broken by the next) or a trial number."""
    import optuna

    if trial == "best":
        front = study.best_trials
        if not front:
            raise UserError(f"study '{study.study_name}' has no complete trial yet")
        sign = [1 if d == optuna.study.StudyDirection.MAXIMIZE else -1 for d in study.directions]
        return max(front, key=lambda t: tuple(s * v for s, v in zip(sign, t.values)))
    try:
        if int(trial) < 0:  # Python would count from the end
            raise IndexError(trial)
        return study.trials[int(trial)]
    except (ValueError, IndexError):
        raise UserError(f"--trial must be 'best' or a trial number of study "
                        f"'{study.study_name}' (0..{len(study.trials) - 1}), got '{trial}'") \
            from None


@contextmanager
def _tune_at_uri(journal_uri: str, artifacts: str | None) -> Iterator[tuple[Path, Path]]:
    """The journal of a tune kept at a URI (``tune --out URI``) and its artifact folder
    (``artifacts``, default ``artifacts`` beside the journal), copied into a temporary
    folder for as long as the context lasts."""
    import pyarrow.fs as pafs

    from .mirror import Mirror, is_uri

    base = journal_uri.rstrip("/").rsplit("/", 1)[0]
    art_uri = artifacts if is_uri(artifacts) else f"{base}/artifacts"
    with tempfile.TemporaryDirectory() as tmp:
        journal = Path(tmp) / "optuna.journal"
        src = Mirror(journal_uri, journal)
        if src.fs.get_file_info(src.root).type != pafs.FileType.File:
            raise UserError(f"--storage {journal_uri} is no journal file; give "
                            f"<tune --out URI>/optuna.journal")
        with src.fs.open_input_stream(src.root) as f:
            journal.write_bytes(f.read())
        folder = Path(artifacts) if artifacts and not is_uri(artifacts) else Path(tmp) / "art"
        if not (artifacts and not is_uri(artifacts)):
            folder.mkdir()
            art = Mirror(art_uri, folder)
            if art.remote_files():
                art.pull()
        yield journal, folder


@contextmanager
def trial_mask(storage: str, study: str, trial: str = "best",
               artifacts: str | None = None) -> Iterator[Path]:
    """The best-mask file of an Optuna trial: in the trial's run folder, or, when that folder
    is not on this machine (a cluster's trials run on other nodes), the copy the trial
    uploaded as an artifact, downloaded into a temporary folder for as long as the context
    lasts. ``artifacts``: the artifact folder (default: beside a journal or SQLite file)."""
    import optuna

    from .mirror import is_uri
    from .tuning.storage import is_database_url
    if is_uri(storage) and not is_database_url(storage):
        with _tune_at_uri(storage, artifacts) as (journal, folder):
            with trial_mask(str(journal), study, trial, str(folder)) as path:
                yield path
        return
    from .tuning.storage import existing_artifacts, existing_storage, open_storage

    url = existing_storage(storage)
    folder = existing_artifacts(url, artifacts)  # a given folder must exist, used or not
    try:
        st = optuna.load_study(study_name=study, storage=open_storage(url))
    except KeyError:
        raise UserError(f"no study named '{study}' in {storage}") from None
    chosen = choose_trial(st, trial)
    run_dir = chosen.user_attrs.get("run_dir")
    path = Path(run_dir) / FILES.best_mask if run_dir else None
    if path is not None and path.is_file():
        yield path
        return
    artifact_id = chosen.user_attrs.get("best_mask_artifact")
    if artifact_id is None or folder is None or not (folder / artifact_id).is_file():
        where = ("no mask artifact" if artifact_id is None else
                 f"no artifact of it in {folder or 'an artifact folder'} (give --artifacts "
                 f"<tune --out>/artifacts)")
        raise UserError(f"trial {chosen.number} has no best mask on this machine "
                        f"(state {chosen.state.name}; run folder {run_dir} is missing, and "
                        f"{where})")
    from optuna.artifacts import FileSystemArtifactStore, download_artifact

    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / FILES.best_mask
        download_artifact(artifact_store=FileSystemArtifactStore(str(folder)),
                          file_path=str(local), artifact_id=artifact_id)
        yield local
