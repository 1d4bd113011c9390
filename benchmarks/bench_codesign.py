"""Gradient co-design vs CMA-ES vs random search, counted in forward-pass equivalents.

Three problems (Llama-3.1-70B, prompt 2048, output 512, cheapest $/M tokens at TPOT <= 30 ms,
delta ppl <= 0.1, capacity, chip TDP <= 1 kW; the chip built from HBM3e stacks, an N5 die
and NVLink4 links, `hwgrad.codesign.technology`):

* ``default``: the built-in study's variables (relaxed, continuous);
* ``per-layer``: per-layer weight bits, KV bits and sparsity (3 x 80 variables) plus the
  hardware variables, chip count and batch (>= 200 variables);
* ``keep-gates``: structured pruning (issue 19): per-layer keep gates in [0, 1] (80) and
  per-layer weight bits (80) plus the KV bits, the hardware variables, chip count and batch
  (>= 160 variables). The structured-pruning loss reads the gates through the assumed
  layer-importance profile (`hwgrad.codesign.default_layer_sensitivity`).

Counting rule: one forward evaluation of the model = 1; one gradient evaluation (value and
gradient of the augmented Lagrangian) = ``c`` forward evaluations, where ``c`` is measured
here, on this machine, by timing the compiled batched forward and gradient programs on the
same points. Every method uses the same feasibility rule (``problem.feasibility_rtol``), the
same start (seed 0: the base design; seed k > 0: the base design moved 5 % of the way to a
random point of the box, the same point for every method) and its best *feasible* objective so
far. "To within 1 %" means within 1 % of the best feasible objective any method found on that
problem and seed. Each problem prints the median and range over seeds and ends with:

    evaluations to within 1%: gradient N | cma-es N | random N (dims D)

(medians, forward-equivalent evaluations; ``>N``: that method did not get there within its
budget of N in the median seed).

With ``--out results.json`` every finished (problem, seed) is written there atomically as it
completes; rerunning with the same settings skips those (a checkpoint: an interrupted run
resumes at the next seed and prints the same summary).

Usage: python benchmarks/bench_codesign.py [--seeds 3] [--steps 600] [--cma 20000]
       [--random 100000] [--problems default,per-layer,keep-gates] [--out results.json]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

import hwgrad.codesign as cd

PROBLEMS = ("default", "per-layer", "keep-gates")


def _doc(name: str) -> dict:
    doc = cd.default_study_dict()
    variables = [
        {"path": "technology.memory_stacks", "min": 1, "max": 12},
        {"path": "technology.logic_die_area_mm2", "min": 100, "max": 858},
        {"path": "technology.links", "min": 1, "max": 18},
        {"path": "system.network.endpoint_overhead_s", "min": 0.5e-6, "max": 5e-6},
        {"path": ["system.n_chips", "workload.tp"], "name": "chips (= tp)", "min": 1, "max": 64},
        {"path": "workload.batch", "min": 1, "max": 1024},
    ]
    if name == "per-layer":
        variables += [
            {"path": "compression.weight_bits", "min": 2, "max": 16, "per_layer": True},
            {"path": "compression.kv_bits", "min": 2, "max": 16, "per_layer": True},
            {"path": "compression.sparsity", "min": 0.0, "max": 0.6, "per_layer": True},
        ]
    elif name == "keep-gates":
        variables += [
            {
                "path": "compression.layer_keep_gates",
                "min": 0.0,
                "max": 1.0,
                "scale": "linear",
                "per_layer": True,
            },
            {"path": "compression.weight_bits", "min": 2, "max": 16, "per_layer": True},
            {"path": "compression.kv_bits", "min": 2, "max": 16},
        ]
    elif name == "default":
        variables += [
            {"path": "compression.weight_bits", "min": 2, "max": 16},
            {"path": "compression.kv_bits", "min": 2, "max": 16},
            {"path": "compression.act_bits", "min": 4, "max": 16},
            {"path": "compression.sparsity", "min": 0.0, "max": 0.6},
        ]
    else:
        raise SystemExit(f"--problems: unknown problem {name!r}; use {', '.join(PROBLEMS)}")
    doc["variables"] = variables
    doc.pop("pareto", None)
    return doc


def problem(name: str = "per-layer") -> cd.Problem:
    return cd.study_from_dict(_doc(name), "bench").problem


#: the counting rule (shared with experiments/a13_codesign.py)
gradient_cost_in_forwards = cd.gradient_cost_in_forwards


def start_point(p: cd.Problem, seed: int) -> np.ndarray:
    z0 = np.asarray(p.project(p.z0))
    if seed == 0:
        return z0
    rng = np.random.default_rng(1000 + seed)
    lo, hi = np.asarray(p.z_lower), np.asarray(p.z_upper)
    return 0.95 * z0 + 0.05 * (lo + (hi - lo) * rng.uniform(size=z0.shape))


def evals_to(hist: np.ndarray, target: float, per_eval: float) -> float | None:
    hit = np.nonzero(hist <= target)[0]
    return (int(hit[0]) + 1) * per_eval if len(hit) else None


def _save(path: Path, records: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(records, indent=1), encoding="utf-8")
    os.replace(tmp, path)


def run_seed(p: cd.Problem, c: float, seed: int, args) -> dict:
    """One seed of every method: ``method -> [evals to 1 % or None, budget, best, wall s]``."""
    tol = p.feasibility_rtol
    z = start_point(p, seed)
    hist, wall = {}, {}
    t = time.perf_counter()
    run = cd.optimize(p, args.steps, 1, lr=0.05, seed=seed, z_init=z[None])
    wall["gradient"] = time.perf_counter() - t
    traj = np.asarray([(o, v) for _, _, _, o, v in run.trajectory])
    hist["gradient"] = np.minimum.accumulate(np.where(traj[:, 1] <= tol, traj[:, 0], np.inf))
    t = time.perf_counter()
    _, hist["cma-es"] = cd.cma_es(p, args.cma, seed=seed, x0=z)
    wall["cma-es"] = time.perf_counter() - t
    t = time.perf_counter()
    _, hist["random"] = cd.random_search(p, args.random, seed=seed)
    wall["random"] = time.perf_counter() - t
    best = min(float(h[-1]) for h in hist.values())
    target = 1.01 * best
    cost = {"gradient": c, "cma-es": 1.0, "random": 1.0}
    return {
        m: [evals_to(h, target, cost[m]), len(h) * cost[m], float(h[-1]), wall[m]] for m, h in hist.items()
    }


def run_problem(name: str, p: cd.Problem, args, records: dict | None = None, out: Path | None = None) -> None:
    records = {} if records is None else records
    key = f"{name}|steps={args.steps}|cma={args.cma}|random={args.random}"
    rec = records.setdefault(key, {"seeds": {}})
    if "gradient_cost_in_forwards" not in rec:
        rec["gradient_cost_in_forwards"] = gradient_cost_in_forwards(p)
    c = rec["gradient_cost_in_forwards"]
    print(
        f"[{name}] dims {p.dim}; start {p.reference['usd_per_million_tokens']:.4g} $/M tokens; "
        f"one gradient evaluation = {c:.2f} forward evaluations (measured)",
        flush=True,
    )
    per_seed = []
    for seed in range(args.seeds):
        row = rec["seeds"].get(str(seed))
        resumed = row is not None
        if row is None:
            row = run_seed(p, c, seed, args)
            rec["seeds"][str(seed)] = row
            if out is not None:
                _save(out, records)
        per_seed.append(row)
        best = min(r[2] for r in row.values())
        print(
            f"[{name}] seed {seed}: best feasible {best:.5g}; "
            + "; ".join(
                f"{m} {r[2]:.5g} ({'>' if r[0] is None else ''}{r[0] or r[1]:.0f} evals to 1 %, {r[3]:.0f} s)"
                for m, r in row.items()
            )
            + (" (from --out)" if resumed else ""),
            flush=True,
        )
    cells = []
    for m in ("gradient", "cma-es", "random"):
        vals = np.array([r[m][0] if r[m][0] is not None else np.inf for r in per_seed])
        budget = per_seed[0][m][1]
        med = float(np.median(vals))
        cell = f">{budget:.0f}" if not np.isfinite(med) else f"{med:.0f}"
        finite = vals[np.isfinite(vals)]
        spread = f"{finite.min():.0f}-{finite.max():.0f}" if len(finite) else "-"
        print(
            f"[{name}] {m:<9} median {cell:>9} forward-equivalent evaluations to within 1 % "
            f"(range {spread}; reached in {len(finite)} of {len(vals)} seeds)"
        )
        cells.append(f"{m} {cell}")
    print(f"evaluations to within 1%: {' | '.join(cells)} (dims {p.dim})", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=600, help="gradient steps (one start)")
    ap.add_argument("--cma", type=int, default=20_000, help="CMA-ES evaluation budget")
    ap.add_argument("--random", type=int, default=100_000, help="random-search evaluation budget")
    ap.add_argument("--problems", default="default,per-layer,keep-gates")
    ap.add_argument(
        "--out", type=Path, default=None, help="per-seed results (JSON), written as they finish; resumed"
    )
    args = ap.parse_args()
    records = {}
    if args.out is not None and args.out.exists():
        records = json.loads(args.out.read_text(encoding="utf-8"))
    for name in args.problems.split(","):
        run_problem(name, problem(name), args, records, args.out)


if __name__ == "__main__":
    main()
