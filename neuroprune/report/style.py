"""How every report figure looks: one qualitative palette (a distinct colour per method, no
paired hues), markers that tell lines apart in grey print too, a log axis of the weights
remaining, bands in their line's colour, and PNGs written at print resolution."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

from ..errors import MissingDependencyError

#: tab10 without its grey (kept for references), then four darker hues that stay distinct
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#bcbd22", "#17becf", "#393b79", "#e7ba52", "#637939", "#843c39", "#7f7f7f")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "h", "<", ">", "p", "d", "8")
REFERENCE = "black"  # dense baseline, ReLU, planted ticket: dashed or dotted black
BAND_ALPHA = 0.18
X_RANGE, Y_CLIP = (-4.0, 4.0), 6.0  # activation functions: drawn on x in X_RANGE, y cut there


def pyplot():
    """matplotlib's pyplot on the file-only backend, with the report's defaults."""
    try:
        import matplotlib
    except ImportError:
        raise MissingDependencyError("matplotlib", "plots", "neuroprune report") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"figure.dpi": 100, "axes.grid": True, "grid.alpha": 0.3,
                         "axes.spines.top": False, "axes.spines.right": False,
                         "legend.fontsize": 8, "legend.framealpha": 0.9,
                         "axes.titlesize": 11, "axes.labelsize": 10})
    return plt


def styles(names: Iterable[str]) -> dict[str, dict]:
    """A colour and a marker per name, in order of first appearance (the same name gets the
    same look in every figure of a report)."""
    out: dict[str, dict] = {}
    for name in names:
        if name not in out:
            i = len(out)
            out[name] = {"color": PALETTE[i % len(PALETTE)], "marker": MARKERS[i % len(MARKERS)]}
    return out


def percent(fraction: float) -> str:
    """0.9 -> '90%', 0.975 -> '97.5%', 0.004444 -> '0.444%'."""
    return f"{fraction * 100:.3g}%"


def weights_remaining_axis(ax, remaining: Sequence[float]) -> None:
    """x: the share of weights remaining (1 - sparsity), log scale, ticks at the values used,
    densest network on the left."""
    from matplotlib.ticker import FixedLocator, NullLocator

    ticks = sorted({round(r, 8) for r in remaining if r > 0}, reverse=True)
    if ticks:  # before the log scale, which would otherwise autoscale to one point's width
        lo, hi = min(ticks), max(ticks)
        ax.set_xlim(hi * 1.3, lo / 1.3)  # inverted: sparser to the right
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticklabels([percent(t) for t in ticks])
    ax.set_xlabel("weights remaining (log scale)")


def band(ax, x, mean, std, color: str) -> None:
    """mean ± std as a band in the line's own colour."""
    ax.fill_between(x, mean - std, mean + std, color=color, alpha=BAND_ALPHA, linewidth=0)


def integer_ticks(ax) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def save(fig, path: Path, dpi: int = 150, tight: bool = True) -> None:
    """Write ``fig`` as a PNG and close it; ``tight`` crops to the drawn area (a second
    layout pass: about a third of the time of a small figure)."""
    import matplotlib.pyplot as plt

    fig.savefig(path, dpi=dpi, bbox_inches="tight" if tight else None, format="png")
    plt.close(fig)
