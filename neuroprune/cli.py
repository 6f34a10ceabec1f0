"""Command line: ``neuroprune run | resume | methods | datasets | config``.

Config values are set in YAML or with ``--set key=value``; flags exist only for what is about
the invocation (where to write, which device, which seed), so each knob lives in one place.
Bad input ends with one line on stderr and exit code 2 (``--debug`` shows the traceback).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import sys
from pathlib import Path

import yaml

from .errors import UserError

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value (repeatable), e.g. --set sparsity.target=0.95")
    p.add_argument("--device", choices=["cpu", "cuda", "auto"], help="overrides config device")
    p.add_argument("--seed", type=int, help="overrides config seed")
    p.add_argument("--backend", help="overrides config backend (local, sequential, ray)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="neuroprune", description="Evolutionary search for sparse neural networks.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run a search from a YAML config")
    run.add_argument("config", help="YAML config (see configs/)")
    run.add_argument("--out", help="run directory (default runs/<config name>-<timestamp>)")
    run.add_argument("--resume", metavar="RUN_DIR",
                     help="continue the run in RUN_DIR from its last generation checkpoint")
    _common(run)

    res = sub.add_parser("resume", help="continue an interrupted run from its run directory")
    res.add_argument("run_dir")
    res.add_argument("--no-progress", action="store_true")

    sub.add_parser("methods", help="list the pruning / search methods, one line each")
    sub.add_parser("datasets", help="list the datasets")
    cfg = sub.add_parser("config", help="print a resolved config (all keys with defaults)")
    cfg.add_argument("config", nargs="?", help="YAML config (default: all defaults)")
    cfg.add_argument("--set", dest="overrides", action="append", default=[],
                     metavar="KEY=VALUE")
    return parser


def _apply_flags(args: argparse.Namespace) -> list[str]:
    over = list(args.overrides)
    if args.device:
        over.append(f"device={args.device}")
    if args.seed is not None:
        over.append(f"seed={args.seed}")
    if args.backend:
        over.append(f"backend={args.backend}")
    return over


def _default_out(name: str) -> Path:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{name}-{stamp}"


def _check_fresh_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; give a folder")
    if out.exists() and any(out.iterdir()):
        raise UserError(f"run directory {out} already holds files; choose another --out, or "
                        f"continue it with `neuroprune resume {out}`")


def _run_search(cfg, out: Path, resume: bool, progress: bool) -> int:
    if cfg.kind == "comparison":
        return _run_comparison(cfg, out, resume, progress)
    from .searches.mask_search import MaskSearch

    search = MaskSearch(cfg)  # validates and loads data before anything is written
    if not resume:
        _check_fresh_out(out)
    try:
        summary = search.run(out, progress=progress, resume=resume,
                             log=lambda m: print(m, file=sys.stderr))
    except KeyboardInterrupt:
        print(f"\ninterrupted; the last finished generation is saved. Continue with:\n"
              f"  neuroprune resume {out}", file=sys.stderr)
        return EXIT_INTERRUPTED
    print(f"{summary['method']}: test accuracy {summary['test_accuracy']:.4f} at sparsity "
          f"{summary['sparsity']:.4f} ({summary['wall_seconds']:.1f}s on {summary['device']})")
    print(f"run directory: {out}")
    return 0


def _run_comparison(cfg, out: Path, resume: bool, progress: bool) -> int:
    from .searches.comparison import cells, run_comparison

    for cell, _ in cells(cfg):  # fail on bad data/method before anything is written
        cell.method_params()
    if not resume:
        _check_fresh_out(out)
    try:
        summary = run_comparison(cfg, out, progress=progress,
                                 log=lambda m: print(m, file=sys.stderr))
    except KeyboardInterrupt:
        print(f"\ninterrupted; finished cells are kept. Continue with:\n"
              f"  neuroprune resume {out}", file=sys.stderr)
        return EXIT_INTERRUPTED
    print((out / "comparison.md").read_text(), end="")
    print(f"{summary['cells']} cells in {summary['wall_seconds']:.0f}s; run directory: {out}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from .config import load_config

    if args.resume:
        return _resume(Path(args.resume), not args.no_progress, _apply_flags(args))
    cfg = load_config(args.config, _apply_flags(args))
    out = Path(args.out) if args.out else _default_out(cfg.name)
    return _run_search(cfg, out, resume=False, progress=not args.no_progress)


def _resume(run_dir: Path, progress: bool, overrides: list[str] | None = None) -> int:
    from .config import load_config

    cfg_path = run_dir / "config.yaml"
    if not cfg_path.is_file():
        raise UserError(f"{run_dir} is not a run directory (no config.yaml)")
    if (run_dir / "summary.json").is_file():
        print(f"{run_dir} is already complete (summary.json exists)")
        return 0
    cfg = load_config(cfg_path, overrides)
    return _run_search(cfg, run_dir, resume=True, progress=progress)


def cmd_resume(args: argparse.Namespace) -> int:
    return _resume(Path(args.run_dir), not args.no_progress)


def cmd_methods(args: argparse.Namespace) -> int:
    from .methods import METHODS, get_method_class

    for name in METHODS:
        cls = get_method_class(name)
        print(f"{name:<22} {cls.summary}  [{cls.citation}]")
    return 0


def cmd_datasets(args: argparse.Namespace) -> int:
    from .data import DATASETS

    for name, (_, text) in DATASETS.items():
        print(f"{name:<15} {text}")
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    from .config import load_config, to_dict

    cfg = load_config(args.config, args.overrides)
    tree = to_dict(cfg)
    tree["method"] = {"name": cfg.method.name, **cfg.method_params().model_dump(mode="json")}
    print(yaml.safe_dump(tree, sort_keys=False), end="")
    return 0


COMMANDS = {"run": cmd_run, "resume": cmd_resume, "methods": cmd_methods,
            "datasets": cmd_datasets, "config": cmd_config}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except UserError as exc:
        if args.debug:
            raise
        print(f"neuroprune: error: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
