"""Shared helpers for the paper-reproduction scripts in ``experiments/``.

Every script defines ``compute(out_dir, quick=False) -> dict`` (writes CSV/JSON, returns the
summary it also saves as ``<name>.json``), ``plot(out_dir)`` (draws PNGs from those files)
and ``main()`` built with `main_for`. `evaluate_many` is the one jitted, vmapped
entry to `hwgrad.evaluate` that all scripts share, so a model/system structure is
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
from hwgrad import plotting  # noqa: E402

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
    "figure",
    "caption",
    "verdict",
    "plotting",
    "operating_grid",
    "best_under",
    "iso_slo",
    "TPOT_BUDGETS_S",
    "plot_iso_slo",
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
    """Rows of a CSV written by `write_csv`, numbers converted to float."""
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
    """Save through `hwgrad.plotting.save` (the one figure style): PNG + PDF + SVG."""
    return plotting.save(fig, path)[0]


def figure(nrows: int = 1, ncols: int = 1, width_in: float = 6.4, height_in: float = 4.0, **kwargs):
    """`hwgrad.plotting.figure` (the house style)."""
    return plotting.figure(nrows, ncols, width_in, height_in, **kwargs)


def caption(fig, text: str, y: float = -0.02) -> None:
    """A figure caption (the assumptions) under the axes, wrapped to the figure width."""
    fig.text(0.0, y, text, ha="left", va="top", fontsize=8, wrap=True)


def compare(label: str, paper, ours, unit: str = "", verdict: str = "-") -> dict:
    """Print the paper's number beside hwgrad's and return both as a record.

    ``verdict``: ``"reproduced"``, ``"differs, because ..."`` (see `verdict`), ``"input"``
    for a table printed back, or ``"-"`` where the paper states no claim to check."""
    if verdict == "-" and not isinstance(paper, str) and not isinstance(ours, str):
        off = float(ours) / float(paper) - 1.0 if float(paper) else math.inf
        verdict = (
            "reproduced"
            if abs(off) <= 0.15
            else f"differs, because the data give {off:+.0%} (see the script's docstring for the sources)"
        )
    paper_s = paper if isinstance(paper, str) else f"{paper:g}{unit}"
    ours_s = ours if isinstance(ours, str) else f"{ours:.3g}{unit}"
    print(f"  {label:<58s} paper {paper_s:>12s}   hwgrad {ours_s:>12s}   {verdict}")
    return {"quantity": label, "paper": paper, "hwgrad": ours, "unit": unit, "verdict": verdict}


def verdict(holds: bool, because: str) -> str:
    """``"reproduced"`` when the claim holds, else ``"differs, because <because>"``."""
    return "reproduced" if holds else f"differs, because {because}"


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
    Points go through in chunks of `CHUNK` (the last one padded), so every sweep of a
    structure reuses one compilation. Returns a `hwgrad.Result` whose leaves are
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


# ----------------------------------------------------------------------------- iso-SLO search

#: TPOT budgets of the direction studies (s): interactive (10 ms) to relaxed batch (100 ms)
TPOT_BUDGETS_S = (0.010, 0.015, 0.020, 0.030, 0.050, 0.070, 0.100)
#: the operating-point grid every design is searched over (batch x chips)
BATCHES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
CHIPS = (1, 2, 4, 8, 16, 32)


def operating_grid(
    build,
    model,
    compression,
    workload: dict,
    chips=CHIPS,
    batches=BATCHES,
    moe: bool = False,
    efficiency=None,
    economics=None,
    batching: str = "static",
) -> list[dict]:
    """Every (chips, batch) operating point of one design, in one vmapped evaluation.

    ``build(n_chips) -> System``; one replica spans all ``n_chips`` (TP = chips, and EP =
    chips for an MoE). Data parallelism is left out on purpose: ``dp`` replicas of a point
    have the same TPOT, $/M tokens and J/token, so they add throughput, not a better point.
    Returns one row per point with the figures of merit and ``ok`` = fits in memory and no
    KV cache on a low-endurance tier.
    """
    meta, points = [], []
    for n in chips:
        system = build(n)
        for b in batches:
            w = hg.Workload(
                batch=float(b),
                tp=float(n),
                ep=float(n) if moe else 1.0,
                batching=batching,
                **{k: float(v) for k, v in workload.items()},
            )
            points.append((system, model, w, compression))
            meta.append({"chips": n, "batch": b})
    res = evaluate_many(points, efficiency, economics)
    rows = []
    for i, m in enumerate(meta):
        fits = float(res.fits[i]) == 1.0 and float(res.kv_on_low_endurance[i]) == 0.0
        rows.append(
            {
                **m,
                "tpot_s": float(res.tpot_s[i]),
                "ttft_s": float(res.ttft_s[i]),
                "usd_per_million_tokens": float(res.usd_per_million_tokens[i]),
                "energy_j_per_token": float(res.energy_j_per_token[i]),
                "gco2e_per_token": float(res.gco2e_per_token[i]),
                "tokens_per_s": float(res.tokens_per_s[i]),
                "power_w": float(res.power_w[i]),
                "ok": int(fits and math.isfinite(float(res.tpot_s[i]))),
            }
        )
    return rows


def best_under(rows: list[dict], tpot_budget_s: float, metric: str = "usd_per_million_tokens"):
    """The feasible row with the lowest ``metric`` whose TPOT meets the budget (None if none)."""
    ok = [r for r in rows if r["ok"] and r["tpot_s"] <= tpot_budget_s * (1 + 1e-9)]
    return min(ok, key=lambda r: r[metric]) if ok else None


def iso_slo(designs: dict, budgets=TPOT_BUDGETS_S, metric: str = "usd_per_million_tokens") -> list[dict]:
    """``designs``: name -> grid rows. One row per (design, budget): the best point, or a row
    with ``feasible`` 0 when no point of the design meets the budget."""
    out = []
    for name, rows in designs.items():
        for t in budgets:
            best = best_under(rows, t, metric)
            row = {"design": name, "tpot_budget_s": t, "feasible": int(best is not None)}
            keys = (
                "chips",
                "batch",
                "tpot_s",
                "usd_per_million_tokens",
                "energy_j_per_token",
                "gco2e_per_token",
            )
            row.update({k: (best[k] if best else float("nan")) for k in keys})
            out.append(row)
    return out


def plot_iso_slo(axes, rows: list[dict], designs=None) -> None:
    """$/M tokens, J/token and chips of each design's best point vs the TPOT budget."""
    names = designs or list(dict.fromkeys(r["design"] for r in rows))
    markers = "osD^v<>"
    for j, name in enumerate(names):
        pts = [r for r in rows if r["design"] == name and r["feasible"] == 1]
        if not pts:
            continue
        x = [r["tpot_budget_s"] * 1e3 for r in pts]
        for ax, col in zip(axes, ("usd_per_million_tokens", "energy_j_per_token", "chips"), strict=False):
            ax.plot(x, [r[col] for r in pts], marker=markers[j % len(markers)], color=f"C{j}", label=name)
    labels = (
        ("cost per million output tokens", "USD"),
        ("energy per output token", "J"),
        ("chips of the best point", "-"),
    )
    for ax, (q, u) in zip(axes, labels, strict=False):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(plotting.axis_label("TPOT budget", "ms"))
        ax.set_ylabel(plotting.axis_label(q, u))
        plotting.readable_log_ticks(ax)


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
