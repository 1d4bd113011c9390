"""One figure style for the CLI, the co-design report and ``experiments/``.

Publication grade by default: every axis label carries its unit (`axis_label`), log axes
get plain-number ticks (`readable_log_ticks`), legends sit outside the data
(`legend_outside`), and `save` writes PNG (200 dpi), PDF and SVG side by side so a
figure can go straight into a paper. matplotlib is imported lazily: ``hwgrad eval`` never pays
for it.
"""

from __future__ import annotations

import math
from pathlib import Path

__all__ = ["STYLE", "axis_label", "figure", "legend_outside", "readable_log_ticks", "save"]

STYLE = {
    "figure.dpi": 100,
    "savefig.dpi": 200,
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "legend.fontsize": 9,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "pdf.fonttype": 42,  # TrueType in PDFs: editable text, accepted by publishers
    "svg.fonttype": "none",
}

FORMATS = (".png", ".pdf", ".svg")


def _plt():
    import matplotlib

    if matplotlib.get_backend().lower() not in ("agg", "pdf", "svg", "cairo"):
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update(STYLE)
    return plt


def figure(nrows: int = 1, ncols: int = 1, width_in: float = 6.4, height_in: float = 4.0, **kwargs):
    """``(fig, axes)`` in the house style (``plt.subplots`` arguments pass through)."""
    return _plt().subplots(nrows, ncols, figsize=(width_in, height_in), **kwargs)


def axis_label(quantity: str, unit: str = "") -> str:
    """``"TPOT (ms)"``; a dimensionless quantity passes ``unit=""`` or ``"-"``."""
    return f"{quantity} ({unit})" if unit and unit != "-" else quantity


def readable_log_ticks(ax, axis: str = "both") -> None:
    """Plain numbers (0.5, 1, 2, 5, 10 ...) instead of 10^x on a log axis, without overlaps."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    def fmt(v, _pos):
        if v <= 0:
            return ""
        if 1e-3 <= v < 1e4:
            return f"{v:g}"
        return f"{v:.0e}".replace("e+0", "e").replace("e-0", "e-")

    for name in ("x", "y") if axis == "both" else (axis,):
        target = ax.xaxis if name == "x" else ax.yaxis
        if (ax.get_xscale() if name == "x" else ax.get_yscale()) != "log":
            continue
        lo, hi = (ax.get_xlim() if name == "x" else ax.get_ylim())
        decades = abs(math.log10(max(hi, 1e-300)) - math.log10(max(lo, 1e-300))) if lo > 0 and hi > 0 else 9
        # 1-2-5 ticks over a few decades, decades only over a wide range (no overlapping labels)
        subs = (1.0, 2.0, 5.0) if decades <= 3 else (1.0, 3.0) if decades <= 5 else (1.0,)
        target.set_major_locator(LogLocator(base=10, subs=subs, numticks=12))
        target.set_major_formatter(FuncFormatter(fmt))
        target.set_minor_formatter(NullFormatter())


def legend_outside(ax, **kwargs):
    """The legend to the right of the axes, clear of the data."""
    return ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, **kwargs)


def save(fig, path: str | Path, formats: tuple[str, ...] = FORMATS) -> list[Path]:
    """Write ``fig`` as ``path`` plus its siblings in ``formats``; returns the written paths.

    The suffix of ``path`` chooses the primary format; with ``formats=()`` only ``path`` is
    written.
    """
    plt = _plt()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    out = [path] + [path.with_suffix(s) for s in formats if s != path.suffix]
    for p in out:
        fig.savefig(p, bbox_inches="tight")
    plt.close(fig)
    return out
