"""Shared body of the entry scripts: ``neuroprune run`` / ``tune`` with a fixed command."""

import sys


def main(command: str, default_config: str) -> int:
    from neuroprune.cli import main as cli

    args = sys.argv[1:] or [default_config]
    return cli([command, *args])
