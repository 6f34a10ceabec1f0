"""The report being written: figures saved into a folder, markdown assembled in order."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Sequence

from .style import save


def cell(value: Any) -> str:
    """A table cell: floats to 4 digits, missing values as a dash, pipes escaped."""
    if value is None or (isinstance(value, float) and value != value):
        return "–"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value).replace("|", "\\|")


class Document:
    """Markdown lines and the PNG files they show. ``prefix`` keeps the file names of one
    section apart from another's in a report of mixed inputs."""

    def __init__(self, folder: Path, prefix: str = "", dpi: int = 150, tight: bool = True):
        self.folder, self.prefix = folder, prefix
        self.dpi, self.tight = dpi, tight  # how figures are written (see style.save)
        self.lines: list[str] = []
        self.figures: list[str] = []

    def section(self, prefix: str) -> "Document":
        """A document writing into the same folder and lines under another file prefix."""
        other = Document(self.folder, prefix, self.dpi, self.tight)
        other.lines, other.figures = self.lines, self.figures
        return other

    def heading(self, text: str, level: int = 2) -> None:
        self.lines += [f"{'#' * level} {text}", ""]

    def para(self, text: str) -> None:
        self.lines += [text, ""]

    def table(self, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        self.lines += ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
        self.lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
        self.lines.append("")

    def figure(self, name: str, fig, caption: str) -> None:
        """Save ``fig`` as ``<prefix><name>.png`` and show it with its caption."""
        filename = re.sub(r"[^A-Za-z0-9_.-]", "_", f"{self.prefix}{name}") + ".png"
        save(fig, self.folder / filename, self.dpi, self.tight)
        self.figures.append(filename)
        self.lines += [f"![{name}]({filename})", "", f"*{caption}*", ""]

    def copy(self, source: Path, name: str, caption: str) -> None:
        """Show the PNG ``source`` (written elsewhere, e.g. by ``neuroprune explain``) as
        ``<prefix><name>.png`` with its caption."""
        import shutil

        filename = re.sub(r"[^A-Za-z0-9_.-]", "_", f"{self.prefix}{name}") + ".png"
        shutil.copyfile(source, self.folder / filename)
        self.figures.append(filename)
        self.lines += [f"![{name}]({filename})", "", f"*{caption}*", ""]

    def markdown(self) -> str:
        return "\n".join(self.lines).rstrip("\n") + "\n"
