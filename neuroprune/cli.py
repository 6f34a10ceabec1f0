"""Command line: ``neuroprune run | resume | methods | datasets | config``.

Config values are set in YAML or with ``--set key=value``; flags exist only for what is about
the invocation (where to write, which device, which seed), so each knob lives in one place.
Bad input ends with one line on stderr and exit code 2 (``--debug`` shows the traceback).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import errno
import os
import sys
import threading
from pathlib import Path


from . import __version__
from .errors import MissingDependencyError, UserError, require
from .rundir import FILES

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports Ctrl-C
EXIT_TERMINATED = 143  # 128 + SIGTERM: `ray job stop`, a preempted node, Kubernetes
#: errno -> what to do; what was finished is kept (every file is written atomically)
FILE_SYSTEM_ERRORS = {
    errno.ENOSPC: "free some space, then run the command again (a run continues with "
                  "`neuroprune resume`)",
    errno.EDQUOT: "free some space, then run the command again",
    errno.EACCES: "give a folder you can write to",
    errno.EPERM: "give a folder you can write to",
    errno.EROFS: "give a folder on a writable file system",
    errno.ENOTDIR: "a part of the path is a file, not a folder; give another path",
    errno.EISDIR: "give a file name, not a folder",
    errno.ENAMETOOLONG: "give a shorter path",
}


class _Parser(argparse.ArgumentParser):
    """Reports a bad flag in one line, like every other error (``--help`` shows usage)."""

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value (repeatable), e.g. --set sparsity.target=0.95")
    p.add_argument("--method", help="replace the config's method section by this method with "
                   "its defaults (then --set method.KEY=VALUE for its parameters)")
    p.add_argument("--device", help="overrides config device: cpu, cuda, cuda:N, mps or auto")
    p.add_argument("--seed", type=int, help="overrides config seed")
    p.add_argument("--backend", help="overrides config backend (local, sequential, ray)")
    p.add_argument("--address", help="Ray address (auto, ray://HOST:10001); implies --backend ray")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    _trust(p)


def _trust(p: argparse.ArgumentParser) -> None:
    p.add_argument("--trust-code", action="store_true", help="load files that can run code "
                   "(pickled checkpoints of older versions, ensembles naming other classes, "
                   "mask files naming a model factory): only files you trust")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="neuroprune", description="Evolutionary search for sparse neural networks.")
    parser.add_argument("--version", action="version",
                        version=f"neuroprune {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run a search from a YAML config")
    run.add_argument("config", help="YAML config, or the name of a shipped one (quickstart)")
    run.add_argument("--out", help="run directory (default runs/<config name>-<timestamp>)")
    run.add_argument("--resume", metavar="RUN_DIR",
                     help="continue the run in RUN_DIR from its last generation checkpoint")
    _common(run)

    res = sub.add_parser("resume", help="continue an interrupted run from its run directory")
    res.add_argument("run_dir")
    res.add_argument("--no-progress", action="store_true")
    _trust(res)

    tune = sub.add_parser("tune", help="tune config values with Optuna (config's tune: section)")
    tune.add_argument("config")
    tune.add_argument("--storage", help="Optuna storage: a journal file path (default "
                      "<out>/optuna.journal), postgresql://..., mysql+pymysql://..., "
                      "redis://HOST:6379/DB or sqlite:///FILE (one writer)")
    tune.add_argument("--study", help="study name (default: the config name); an existing "
                      "study is continued, and only with the config it was run with")
    tune.add_argument("--force-new-study", action="store_true",
                      help="start the study afresh: an existing one of that name is kept "
                      "as NAME-replaced-TIMESTAMP, with its trial folders")
    tune.add_argument("--n-trials", type=int, help="trials to run now (default tune.n_trials)")
    tune.add_argument("--n-jobs", type=int, default=1, help="trials in parallel (threads)")
    tune.add_argument("--batch", type=int, default=1, metavar="N",
                      help="ask N trials at once and train those of one structure as one "
                      "population (default 1: one trial at a time)")
    tune.add_argument("--out", help="study folder (default runs/<config name>-tune)")
    _common(tune)

    dash = sub.add_parser("dashboard", help="start optuna-dashboard on a study storage")
    dash.add_argument("--storage", required=True,
                      help="journal file (or the tune folder holding optuna.journal) or URL")
    dash.add_argument("--artifacts", help="the study's artifacts folder (default: beside a "
                      "journal or SQLite file; for a server URL, give <tune --out>/artifacts)")
    dash.add_argument("--host", default="127.0.0.1")
    dash.add_argument("--port", type=int, default=8080)

    exp = sub.add_parser("export", help="export the best network of a run or an Optuna trial")
    exp.add_argument("run_dir", nargs="?", help="a run directory")
    exp.add_argument("--storage", help="Optuna storage (instead of a run directory): the "
                     "study folder of `neuroprune tune` (holding optuna.journal), a journal "
                     "file or a database URL")
    exp.add_argument("--artifacts", help="with --storage: the study's artifact folder, used "
                     "when the trial's run folder is not on this machine (default: beside "
                     "the journal or SQLite file)")
    exp.add_argument("--study", help="study name, with --storage")
    exp.add_argument("--trial", default="best", help="'best' (multi-objective: the Pareto "
                     "trial with the highest first objective) or a trial number")
    exp.add_argument("--out", required=True, help="file to write")
    exp.add_argument("--format", default="safetensors",
                     help="safetensors (mask and weights), prune (torch.nn.utils.prune state "
                     "dict), sparse (CSR), compact (pruned units removed), onnx (the compact "
                     "network), state_dict (plain, masked), sparse_model (TorchScript on "
                     "sparse kernels)")
    _trust(exp)

    rep = sub.add_parser("report", help="plots and a markdown summary of runs of any kind and "
                         "of tuning folders, finished or not")
    rep.add_argument("run_dirs", nargs="+", metavar="RUN",
                     help="a run folder, or a tuning folder (holding optuna.journal)")
    rep.add_argument("--out", help="folder (default: <first run>/report)")

    expl = sub.add_parser("explain", help="the class-relevant channels of a conv-net run: "
                          "figures and explain.json in RUN/explain")
    expl.add_argument("run_dir", metavar="RUN", help="a finished mask_search run folder")
    expl.add_argument("--layer", help="the convolution to explain (default: the last)")
    expl.add_argument("--k", type=int, default=5, help="at most this many channels per class")
    expl.add_argument("--mu", type=float, default=0.02, help="the selection's l1 penalty")
    expl.add_argument("--pooling", default="mean", help="a channel's response: mean or max of "
                      "its map")
    expl.add_argument("--images", type=int, default=6, help="test images whose predictions "
                      "are explained")
    expl.add_argument("--out", help="folder (default: RUN/explain)")
    _trust(expl)

    sub.add_parser("methods", help="list the pruning / search methods, one line each")
    sub.add_parser("datasets", help="list the datasets")
    sub.add_parser("models", help="list the built-in models (and other ways to give one)")
    sub.add_parser("kinds", help="list the kinds of run")
    cfg = sub.add_parser("config", help="print a resolved config: every key with its value "
                         "and help")
    cfg.add_argument("config", nargs="?", help="YAML config or shipped config name (default: "
                     "all defaults)")
    cfg.add_argument("--set", dest="overrides", action="append", default=[],
                     metavar="KEY=VALUE")
    cfg.add_argument("--schema", action="store_true", help="print the JSON schema of configs "
                     "(for editors) instead")
    return parser


def _apply_flags(args: argparse.Namespace) -> list[str]:
    over = list(args.overrides)
    if getattr(args, "method", None):  # first, so that --set method.X=... refines it
        if not args.method.replace("_", "").isalnum():
            raise UserError(f"--method takes a method name (see `neuroprune methods`), "
                            f"got '{args.method}'")
        over.insert(0, f"method={{name: {args.method}}}")
    if args.device:
        over.append(f"device={args.device}")
    if args.seed is not None:
        over.append(f"seed={args.seed}")
    if args.backend:
        over.append(f"backend={args.backend}")
    if getattr(args, "address", None):
        over += ["backend=ray", f"ray.address={args.address}"]
    return over


def _default_out(name: str) -> Path:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{name}-{stamp}"


def _check_fresh_out(out: Path) -> None:
    from .rundir import LOCK_FILES

    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; give a folder")
    if out.exists() and any(p.name not in LOCK_FILES for p in out.iterdir()):
        raise UserError(f"run directory {out} already holds files; choose another --out, or "
                        f"continue it with `neuroprune resume {out}`")


def _exit_code(exc: BaseException) -> int:
    """130 for Ctrl-C, 143 for SIGTERM."""
    import signal

    from .searches.mask_search import stop_signal
    return EXIT_TERMINATED if stop_signal(exc) == signal.SIGTERM else EXIT_INTERRUPTED


@contextlib.contextmanager
def _ray_cluster(cfg, resume_hint: str, writable: Path | None = None):
    """With ``backend: ray``: the cluster joined (or a local Ray started) and checked before
    anything is written (an unreachable address, too few GPUs, a folder some node cannot
    write), and watched while the run goes on (a lost head ends it in one line)."""
    if cfg.backend != "ray":
        yield
        return
    from .backends.ray_session import (ClusterLost, HeadWatch, RaySession, plan_workers,
                                       watched_address)

    rc = cfg.ray
    with RaySession(True, rc.address) as session:
        plan_workers(rc.num_workers, rc.cpus_per_worker, rc.gpus_per_worker, ask=False)
        if writable is not None:
            from .backends.ray_session import check_writable
            check_writable(str(writable))
        address = watched_address(rc.address)
        local = session.owned and rc.address == "local"
        try:
            with (HeadWatch(address, resume_hint) if address and not local
                  else contextlib.nullcontext()):
                yield
        except ClusterLost as exc:  # the node that could run a shard went away
            raise ClusterLost(f"{exc}; finished work is saved. Continue with: "
                              f"{resume_hint}") from None


def _mirror(uri: str, fresh: bool):
    """The :class:`~.mirror.Mirror` of a run kept at ``uri``, its staging folder emptied:
    checked writable and empty for a new run, copied back for a resume."""
    import shutil

    from .mirror import Mirror, staging_dir

    mirror = Mirror(uri, staging_dir(uri))
    if fresh and mirror.remote_files():
        raise UserError(f"run directory {uri} already holds files; choose another --out, or "
                        f"continue it with `neuroprune resume {uri}`")
    if fresh:
        mirror.check_writable()
    shutil.rmtree(mirror.local, ignore_errors=True)  # a copy: what counts is at the URI
    if not fresh:
        mirror.pull()
    return mirror


def _tune_mirror(uri: str):
    """The :class:`~.mirror.Mirror` of a tuning folder kept at ``uri``: what is there (the
    study's journal, trial folders, artifacts) copied into staging to be continued, or the
    URI checked writable for a new one, before any trial starts."""
    import shutil

    from .mirror import Mirror, staging_dir

    mirror = Mirror(uri, staging_dir(uri))
    shutil.rmtree(mirror.local, ignore_errors=True)  # a copy: what counts is at the URI
    if mirror.remote_files():
        mirror.pull()
    else:
        mirror.check_writable()
    return mirror


def _run_search(cfg, out: Path, resume: bool, progress: bool, mirror=None) -> int:
    from .rundir import RunDir
    from .searches.kinds import prepare
    from .searches.mask_search import Interrupted
    from .workbench import Workbench

    # every check before anything is written
    kind = prepare(Workbench.from_config(cfg).check_sparsity(), resume)
    if not resume:
        _check_fresh_out(out)
    rd = RunDir(out)
    where = mirror.uri if mirror is not None else out.absolute()
    hint = f"neuroprune resume {where}"
    with _ray_cluster(cfg, hint), rd.locked():  # one writer per run directory
        if resume:
            rd.remove_temp_files()  # of atomic writes a killed process left
        else:
            _check_fresh_out(out)  # again under the lock: a rival may have begun meanwhile
        try:
            with _kept_unless_resumed(out / FILES.config, resume), (
                    mirror.active() if mirror is not None else contextlib.nullcontext()):
                summary = kind.run(out, progress=progress, resume=resume,
                                   log=lambda m: print(m, file=sys.stderr))
        except (KeyboardInterrupt, Interrupted) as exc:
            print(f"\ninterrupted; finished work is saved. Continue with:\n"
                  f"  {hint}", file=sys.stderr)
            return _exit_code(exc)
    print("\n".join(kind.lines(summary, where)))
    return 0


@contextlib.contextmanager
def _kept_unless_resumed(path: Path, resume: bool):
    """A kind writes its config first (with a resume's new device or backend); a resume that
    fails (a cell's broken checkpoint, an unreachable cluster) puts the run's config.yaml back
    as it was, so that a failed resume leaves the run as it found it."""
    from ._io import atomic_write

    before = path.read_bytes() if resume and path.is_file() else None
    try:
        yield
    except Exception:
        if before is not None and (not path.is_file() or path.read_bytes() != before):
            atomic_write(path, lambda tmp: Path(tmp).write_bytes(before))
        raise


def run_name(cfg) -> str:
    """The run folder's name before its timestamp: the kind's ``run_name`` (``<config
    name>``; for a mask search ``<config name>-<method>``)."""
    from .searches.registry import KINDS

    return KINDS.load(cfg.kind).run_name(cfg)


def cmd_run(args: argparse.Namespace) -> int:
    from .config import load_config

    from .mirror import is_uri

    if args.resume:
        return _resume(args.resume, not args.no_progress, _apply_flags(args),
                       given=args.config)
    cfg = load_config(args.config, _apply_flags(args))
    if is_uri(args.out):  # written locally, copied there at every committed generation
        mirror = _mirror(args.out, fresh=True)
        return _run_search(cfg, mirror.local, resume=False, progress=not args.no_progress,
                           mirror=mirror)
    out = Path(args.out) if args.out else _default_out(run_name(cfg))
    return _run_search(cfg, out, resume=False, progress=not args.no_progress)


def _resume(where: str, progress: bool, overrides: list[str] | None = None,
            given: str | None = None) -> int:
    """Continue the run at ``where`` (a folder or a URI) with its own config; ``given``
    (``run CONFIG --resume``) and ``overrides`` may differ from it only in
    :data:`RESUME_MAY_CHANGE`."""
    from .config import changed_keys, load_config, read_yaml, saved_tree, to_dict
    from .mirror import is_uri
    from .rundir import RESUME_MAY_CHANGE

    mirror = _mirror(where, fresh=False) if is_uri(where) else None
    run_dir = mirror.local if mirror is not None else Path(where)

    cfg_path = run_dir / FILES.config
    if not cfg_path.is_file():
        raise UserError(f"{where} is not a run directory (no config.yaml)")
    from .rundir import RunDir, factory_folder_of_run
    if RunDir(run_dir).is_complete():
        print(f"{where} is already complete (summary.json exists)")
        return 0
    factory_folder_of_run(run_dir)
    # config.yaml as written (a given config resolves to it when it asks for the same run)
    saved = saved_tree(read_yaml(cfg_path)) if given else to_dict(load_config(cfg_path))
    asked = to_dict(load_config(given or cfg_path, overrides))
    asked["name"] = saved.get("name")  # from the file name; the run keeps its own
    changed = [k for k in changed_keys(saved, asked) if k.split(".")[0] not in RESUME_MAY_CHANGE]
    if changed:
        raise UserError(f"{where} was run with other values of {', '.join(changed[:8])}; a "
                        f"resumed run keeps its config (only {', '.join(RESUME_MAY_CHANGE)} "
                        f"may change): drop those changes, continue it with `neuroprune "
                        f"resume {where}`, or start a new run with --out")
    cfg = load_config(cfg_path, [o for o in overrides or []
                                 if o.split("=")[0].split(".")[0] in RESUME_MAY_CHANGE])
    return _run_search(cfg, run_dir, resume=True, progress=progress, mirror=mirror)


def cmd_resume(args: argparse.Namespace) -> int:
    return _resume(args.run_dir, not args.no_progress)


def cmd_methods(args: argparse.Namespace) -> int:
    from .methods import METHODS

    for name in METHODS:
        cls = METHODS.load(name)
        print(f"{name:<22} {cls.summary}  [{cls.citation}]")
    return 0


def _listing(module: str, attr: str) -> int:
    import importlib

    registry = getattr(importlib.import_module(module, __package__), attr)
    width = max(len(n) for n in registry) + 2
    for name in registry:
        print(f"{name:<{width}} {registry.help(name)}")
    return 0


def cmd_datasets(args: argparse.Namespace) -> int:
    return _listing(".data.registry", "DATASETS")


def cmd_models(args: argparse.Namespace) -> int:
    code = _listing(".models", "MODELS")
    print("torchvision:NAME    any torchvision classification model (needs neuroprune[vision])")
    print("factory: pkg.mod:fn your own function returning an nn.Module (model.factory)")
    return code


def cmd_kinds(args: argparse.Namespace) -> int:
    return _listing(".searches.registry", "KINDS")


def cmd_config(args: argparse.Namespace) -> int:
    from .config import load_config
    from .config_help import annotated_yaml, config_schema

    if args.schema:
        import json
        print(json.dumps(config_schema(), indent=2))
        return 0
    cfg = load_config(args.config, args.overrides)
    print(annotated_yaml(cfg), end="")
    return 0


def cmd_tune(args: argparse.Namespace) -> int:
    from .config import load_config

    if args.n_trials is not None and args.n_trials < 1:
        raise UserError("--n-trials must be at least 1")
    if args.n_jobs < 1:
        raise UserError("--n-jobs must be at least 1")
    from .mirror import is_uri
    cfg = load_config(args.config, _apply_flags(args))
    require(["optuna", "ray"] if cfg.backend == "ray" else ["optuna"], "neuroprune tune")
    mirror = None
    if is_uri(args.out):
        from .tuning.storage import journal_path
        if cfg.backend == "ray" and journal_path(args.storage or "journal") is not None:
            raise UserError(f"tune --out {args.out} with backend ray needs --storage on a "
                            f"database server every node reaches (postgresql://, "
                            f"mysql+pymysql://, redis://): trials on other nodes cannot share "
                            f"a journal file at a URI")
        mirror = _tune_mirror(args.out)
    # absolute: Ray Tune runs each trial in a folder of its own, where a relative --out
    # would strand the trial's run folder
    out = (mirror.local if mirror is not None else Path(args.out) if args.out
           else Path("runs") / f"{cfg.name}-tune").absolute()
    if cfg.backend == "ray":
        from .tuning.ray_tune import RayTuner as TunerCls
    else:
        from .tuning.tune import Tuner as TunerCls
    tuner = TunerCls(cfg, out, storage=args.storage, study_name=args.study,
                     n_trials=args.n_trials, n_jobs=args.n_jobs, batch=args.batch,
                     new_study=args.force_new_study)
    if mirror is not None and cfg.backend == "ray":
        tuner.uri = mirror.uri  # each trial sends its own folder and artifacts there
    again = f"the same command (the study {tuner.study_name!r} is continued)"
    writable = out if cfg.backend == "ray" and mirror is None else None
    try:
        with _ray_cluster(cfg, again, writable=writable), \
                (mirror.active() if mirror is not None else contextlib.nullcontext()):
            summary = tuner.run(progress=not args.no_progress)
    except KeyboardInterrupt as exc:
        print(f"\ninterrupted; finished trials are in the study, and a trial it stopped "
              f"runs again first. Continue with {again}", file=sys.stderr)
        if tuner.busy:  # a batch's threads in torch kernels: end now rather than abort later
            import os
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(_exit_code(exc))
        return _exit_code(exc)
    t = summary["trials"]
    if "replaced" in summary:
        trials = f"{mirror.uri}/trials" if mirror is not None else out / "trials"
        print(f"study {summary['study']} started afresh; the old one is kept as "
              f"{summary['replaced']}, its trial folders in {trials}/"
              f"{summary['replaced']}")
    storage = summary["storage"]
    if mirror is not None:  # the journal's place at the URI, not its staging copy
        with contextlib.suppress(ValueError):
            rel = Path(storage).resolve().relative_to(mirror.local.resolve()).as_posix()
            storage = f"{mirror.uri}/{rel}"
        print(f"trials, artifacts and study at {mirror.uri}")
    print(f"study {summary['study']}: {t['complete']} complete, {t['pruned']} pruned, "
          f"{t['fail']} failed trials; storage {storage}")
    if "best" in summary:
        print(f"best trial {summary['best']['number']}: {summary['best']['value']:.4f} "
              f"with {summary['best']['params']}")
    for p in summary.get("pareto_front", []):
        print(f"pareto trial {p['number']}: {p['values']} with {p['params']}")
    return 0


def _stop_serving(signum: int, _frame) -> None:
    """Stop the dashboard now, with 130 for Ctrl-C and 143 for SIGTERM."""
    import signal
    print("dashboard stopped", flush=True)
    sys.stderr.flush()
    os._exit(EXIT_TERMINATED if signum == signal.SIGTERM else EXIT_INTERRUPTED)


def cmd_dashboard(args: argparse.Namespace) -> int:
    require(["optuna", "optuna_dashboard"], "the dashboard")
    from .tuning.storage import existing_artifacts, existing_storage, open_storage

    if not 0 < args.port < 65536:
        raise UserError(f"--port {args.port} is not a TCP port; give one from 1 to 65535")
    import optuna_dashboard

    from .mirror import Mirror, is_uri, staging_dir
    if is_uri(args.artifacts):  # Optuna's artifact store reads a folder: a copy of it
        cache = Mirror(args.artifacts, staging_dir(args.artifacts))
        if not cache.remote_files():
            raise UserError(f"--artifacts {args.artifacts} holds no artifacts; give "
                            f"<tune --out>/artifacts")
        cache.pull()
        args.artifacts = str(cache.local)
    url = existing_storage(args.storage)
    artifacts = existing_artifacts(url, args.artifacts)
    storage = open_storage(url)
    from .tuning.dashboard import exposure_warning
    if exposure_warning(args.host):
        print(f"neuroprune: warning: {exposure_warning(args.host)}", file=sys.stderr)
    print(f"optuna-dashboard on http://{args.host}:{args.port} (Ctrl-C stops it); artifacts: "
          f"{artifacts or 'none (give --artifacts <tune --out>/artifacts)'}", flush=True)
    # The server's request handler catches every exception, KeyboardInterrupt included, so a
    # stop raised while it answers a request would be swallowed. The dashboard keeps no state of
    # its own (the study lives in its storage): stop the process at once.
    import signal
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _stop_serving)
        signal.signal(signal.SIGINT, _stop_serving)
    try:
        from optuna.artifacts import FileSystemArtifactStore
        optuna_dashboard.run_server(storage, host=args.host, port=args.port, artifact_store=(
            FileSystemArtifactStore(str(artifacts)) if artifacts else None))
    except OSError as exc:
        raise UserError(f"cannot serve on {args.host}:{args.port}: {exc.strerror}") from None
    except KeyboardInterrupt:
        pass
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from contextlib import nullcontext

    from .export import EXPORT_NEEDS, export, trial_mask
    # every missing package named at once, before anything is read
    require(EXPORT_NEEDS.get(args.format, []) + (["optuna"] if args.storage else []),
            f"export{' --storage' * bool(args.storage)} --format {args.format}")

    if args.storage:
        if not args.study:
            raise UserError("--storage needs --study NAME")
        source = trial_mask(args.storage, args.study, args.trial, args.artifacts)
    elif args.run_dir and (Path(args.run_dir) / "ensemble.joblib").is_file():
        if args.format not in ("safetensors", "joblib"):  # safetensors: the default
            raise UserError(f"an ensemble run exports as joblib only (a fitted scikit-learn "
                            f"estimator), not --format {args.format}")
        return _export_ensemble(Path(args.run_dir), Path(args.out))
    elif args.run_dir:
        path = Path(args.run_dir) / FILES.best_mask
        if not path.is_file():
            from .export import missing_best_mask
            raise missing_best_mask(Path(args.run_dir))
        source = nullcontext(path)
    else:
        raise UserError("give a run directory, or --storage URL --study NAME")
    with source as path:
        info = export(path, args.out, args.format, trust=args.trust_code)
    extra = ""
    if "sparse_bytes" in info:
        extra = (f"; {info['sparse_bytes']:,} bytes against {info['dense_bytes']:,} dense "
                 f"({info['sparse_bytes'] / info['dense_bytes']:.1%})")
    print(f"wrote {info['path']} ({info['format']}, {info['bytes']:,} bytes{extra})")
    return 0


def _export_ensemble(run_dir: Path, out: Path) -> int:
    """An ensemble run's fitted estimator, written to ``out`` (joblib)."""
    from .searches.ensemble_search import load_ensemble, save_ensemble

    if out.is_dir():
        raise UserError(f"--out {out} is a folder; give a file name (e.g. ensemble.joblib)")
    est = load_ensemble(run_dir)
    save_ensemble(est, out)
    print(f"wrote {out} (joblib, {out.stat().st_size:,} bytes; load it with "
          f"neuroprune.load_ensemble)")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from .report import make_report

    first = Path(args.run_dirs[0])
    out = Path(args.out) if args.out else (first.parent if first.is_file() else first) / "report"
    print(f"wrote {make_report(args.run_dirs, out)}")
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    require(["matplotlib"], "explain")
    from .explain import explain_run, summary_line

    info = explain_run(args.run_dir, layer=args.layer, k=args.k, mu=args.mu,
                       pooling=args.pooling, images=args.images, trust=args.trust_code,
                       out=args.out)
    out = Path(args.out) if args.out else Path(args.run_dir) / "explain"
    print(f"wrote {out}: {summary_line(info)}")
    return 0


COMMANDS = {"run": cmd_run, "explain": cmd_explain, "export": cmd_export, "report": cmd_report,
            "tune": cmd_tune,
            "dashboard": cmd_dashboard, "resume": cmd_resume, "methods": cmd_methods,
            "datasets": cmd_datasets, "models": cmd_models, "kinds": cmd_kinds,
            "config": cmd_config}


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    return f"neuroprune: warning: {message}\n"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.debug:
        import warnings
        warnings.formatwarning = _one_line_warning
        # Optuna marks features it may change (metric names, artifacts) as experimental;
        # that is its roadmap, not something a neuroprune user can act on.
        warnings.filterwarnings("ignore", message=".*is an experimental feature")
    import signal

    from .checkpoint import trusting
    from .searches.mask_search import raise_terminated
    on_main = threading.current_thread() is threading.main_thread()
    # SIGTERM stops like Ctrl-C: an "interrupted" line, exit 143, and resume continues
    previous = signal.signal(signal.SIGTERM, raise_terminated) if on_main else None
    try:
        with trusting(getattr(args, "trust_code", False)):
            return COMMANDS[args.command](args)
    except UserError as exc:
        if args.debug:
            raise
        print(f"neuroprune: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except ImportError as exc:  # an optional package missing where no check named it first
        missing = MissingDependencyError.of(exc, f"neuroprune {args.command}")
        if args.debug or missing is None:
            raise
        print(f"neuroprune: error: {missing}", file=sys.stderr)
        return missing.exit_code
    except OSError as exc:  # a folder that cannot be written, a full disk
        if args.debug or exc.errno not in FILE_SYSTEM_ERRORS:
            raise
        where = f" {exc.filename}" if exc.filename else ""
        print(f"neuroprune: error: cannot write{where}: {exc.strerror or exc}; "
              f"{FILE_SYSTEM_ERRORS[exc.errno]}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        if on_main:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
