"""Shared helpers for the paper-reproduction scripts in ``experiments/``.

Every script defines ``compute(out_dir, quick=False) -> dict`` (writes CSV/JSON, returns the
summary it also saves as ``<name>.json``), ``plot(out_dir)`` (draws PNGs from those files)
and ``main()`` built with :func:`main_for`. :func:`evaluate_many` is the one jitted, vmapped
entry to :func:`hwgrad.evaluate` that all scripts share, so a model/system structure is
compiled once per process (``run_all.py`` and the tests run every script in one process).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import jax  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import hwgrad as hg  # noqa: E402

DEFAULT_OUT = Path(__file__).resolve().parent / "out"

__all__ = [
    "DEFAULT_OUT",
    "plt",
    "main_for",
    "write_csv",
    "read_csv",
    "write_json",
    "read_json",
    "save_fig",
    "compare",
    "evaluate_many",
    "stack",
    "num",
]


# ----------------------------------------------------------------------------- I/O


def write_csv(path: Path, rows: list[dict]) -> Path:
    """Write ``rows`` (dicts with the same keys) as a CSV file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        for r in rows:
            writer.writerow({k: _plain(v) for k, v in r.items()})
    return path


def read_csv(path: Path) -> list[dict]:
    """Rows of a CSV written by :func:`write_csv`, numbers converted to float."""
    with Path(path).open(newline="", encoding="utf-8") as fh:
        return [{k: _parse(v) for k, v in r.items()} for r in csv.DictReader(fh)]


def _parse(v: str):
    try:
        return float(v)
    except ValueError:
        return v


def _plain(v):
    if isinstance(v, np.generic | np.ndarray) or hasattr(v, "dtype"):
        v = np.asarray(v).tolist()
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    return v


def write_json(path: Path, obj) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2, default=_plain) + "\n", encoding="utf-8")
    return path


def read_json(path: Path):
    return json.loads(Path(path).read_text(encoding="utf-8"))


def save_fig(fig, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def compare(label: str, paper, ours, unit: str = "") -> dict:
    """Print the paper's number beside hwgrad's and return both as a record."""
    paper_s = paper if isinstance(paper, str) else f"{paper:g}{unit}"
    ours_s = ours if isinstance(ours, str) else f"{ours:.3g}{unit}"
    print(f"  {label:<58s} paper {paper_s:>12s}   hwgrad {ours_s:>12s}")
    return {"quantity": label, "paper": paper, "hwgrad": ours, "unit": unit}


def num(x) -> float:
    return float(np.asarray(x))


# ----------------------------------------------------------------------------- evaluation


def stack(trees: list):
    """Stack pytrees with the same structure along a new leading axis (numpy leaves)."""
    return jax.tree_util.tree_map(lambda *xs: np.stack([np.asarray(x, dtype=float) for x in xs]), *trees)


@jax.jit
def _evaluate_batch(systems, models, workloads, compressions, efficiency, economics):
    return jax.vmap(hg.evaluate, in_axes=(0, 0, 0, 0, None, None))(
        systems, models, workloads, compressions, efficiency, economics
    )


CHUNK = 16  # points per compiled call: one compilation per structure, whatever the sweep size


def evaluate_many(points, efficiency=None, economics=None):
    """Evaluate ``[(system, model, workload, compression), ...]`` in one vmapped call.

    All points must share one pytree structure (same tiers, topology, attention kind...).
    Points go through in chunks of :data:`CHUNK` (the last one padded), so every sweep of a
    structure reuses one compilation. Returns a :class:`hwgrad.Result` whose leaves are
    numpy arrays with a leading axis of ``len(points)``.
    """
    n = len(points)
    padded = list(points) + [points[-1]] * (-n % CHUNK)
    eff = hg.calibrated_efficiency() if efficiency is None else efficiency
    eco = hg.presets.default_economics() if economics is None else economics
    parts = []
    for start in range(0, len(padded), CHUNK):
        chunk = padded[start : start + CHUNK]
        cols = [stack([p[i] for p in chunk]) for i in range(4)]
        parts.append(jax.device_get(_evaluate_batch(*cols, eff, eco)))
    return jax.tree_util.tree_map(lambda *v: np.concatenate(v)[:n], *parts)


# ----------------------------------------------------------------------------- command line


def main_for(name: str, compute, plot, doc: str = ""):
    """Build ``main()`` for a script: ``--quick``, ``--out DIR``, ``--no-plot``."""

    def main(argv=None) -> int:
        parser = argparse.ArgumentParser(
            prog=f"{name}.py", description=doc.strip().splitlines()[0] if doc else None
        )
        parser.add_argument("--quick", action="store_true", help="small sizes (smoke test)")
        parser.add_argument(
            "--out", type=Path, default=DEFAULT_OUT, help="output folder (default experiments/out)"
        )
        parser.add_argument("--no-plot", action="store_true", help="write data only")
        args = parser.parse_args(argv)
        args.out.mkdir(parents=True, exist_ok=True)
        print(f"[{name}]")
        compute(args.out, quick=args.quick)
        if not args.no_plot:
            plot(args.out)
        return 0

    return main
