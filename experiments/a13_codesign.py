"""Artifact 12 (beyond the paper) - gradient co-design: the Pareto front of TPOT vs $/M
tokens (with the accuracy loss of each chosen design) and gradient vs black-box convergence.

The problem is the built-in study of ``hwgrad codesign`` (Llama-3.1-70B decode, cheapest
$/M tokens at TPOT <= 30 ms and delta ppl <= 0.1, co-optimising HBM capacity and bandwidth,
link latency, chip count, batch, weight/KV/activation bits and sparsity). The front sweeps
the TPOT budget (one vmapped descent per budget, then rounding and repair on the hard
roofline); the convergence curves give the best feasible $/M tokens found against model
evaluations for gradient descent, CMA-ES and random search on the same problem, counted in
forward-pass equivalents: one gradient step costs `hwgrad.codesign.gradient_cost_in_forwards`
forward evaluations, measured on the machine that runs this script (the rule of
``benchmarks/bench_codesign.py``).

    python experiments/a13_codesign.py [--quick] [--out DIR]
"""

from __future__ import annotations

from pathlib import Path

import common as c
import numpy as np

import hwgrad.codesign as cd

NAME = "a13_codesign"


def compute(out_dir: Path, quick: bool = False) -> dict:
    study = cd.default_study()
    problem = study.problem
    budgets = [0.02, 0.05] if quick else [0.01, 0.015, 0.02, 0.03, 0.05, 0.08]
    steps = 50 if quick else 300
    front = cd.pareto(problem, "tpot_s", budgets, steps=steps)
    rows = []
    for b, pt in zip(budgets, front, strict=True):
        rows.append({"tpot_budget_s": b, **{k: v for k, v in pt.items() if k != "budget"}})
    c.write_csv(out_dir / f"{NAME}_pareto.csv", rows)

    evals = 2000 if quick else 20000
    run = cd.optimize(problem, steps=steps, starts=1)
    traj = np.asarray(run.trajectory, dtype=float)  # step, start, J, objective, violation, lagrangian
    feasible = np.where(traj[:, 4] <= problem.feasibility_rtol, traj[:, 3], np.inf)
    grad_hist = np.minimum.accumulate(feasible)
    _, rs_hist = cd.random_search(problem, evals, seed=0)
    _, cma_hist = cd.cma_es(problem, evals, seed=0)
    curves = []
    # one gradient step costs this many forward evaluations, measured here (the counting rule
    # of benchmarks/bench_codesign.py: hwgrad.codesign.gradient_cost_in_forwards)
    grad_cost = cd.gradient_cost_in_forwards(problem)
    for method, hist, per_step in (
        ("gradient", grad_hist, grad_cost),
        ("cma-es", cma_hist, 1),
        ("random", rs_hist, 1),
    ):
        for k in np.unique(np.geomspace(1, len(hist), 60).astype(int)):
            curves.append(
                {
                    "method": method,
                    "evaluations": round(k * per_step),
                    "best_usd_per_mtok": float(hist[k - 1]),
                }
            )
    c.write_csv(out_dir / f"{NAME}_convergence.csv", curves)
    best = {
        m: min((r["best_usd_per_mtok"] for r in curves if r["method"] == m), default=np.inf)
        for m in ("gradient", "cma-es", "random")
    }
    summary = {
        "records": [
            c.compare("feasible Pareto points (TPOT budgets)", "-", sum(bool(r["feasible"]) for r in rows)),
            *[c.compare(f"best $/M tokens, {m}", "-", v, "$/M") for m, v in best.items()],
        ],
        "gradient_cost_in_forwards": grad_cost,
    }
    c.write_json(out_dir / f"{NAME}.json", summary)
    return summary


def plot(out_dir: Path) -> None:
    front = c.read_csv(out_dir / f"{NAME}_pareto.csv")
    curves = c.read_csv(out_dir / f"{NAME}_convergence.csv")
    fig, (ax1, ax2) = c.plt.subplots(1, 2, figsize=(12, 4.5))
    feas = [r for r in front if r["feasible"] in (True, "True", 1, "1")]
    ax1.plot(
        [r["tpot_budget_s"] * 1e3 for r in front],
        [r["relaxed_objective"] for r in front],
        "o--",
        label="relaxed optimum",
    )
    ax1.plot(
        [r["tpot_budget_s"] * 1e3 for r in feas],
        [r["objective"] for r in feas],
        "s-",
        label="rounded, hard roofline (feasible)",
    )
    ax1.set_xlabel("TPOT budget (ms)")
    ax1.set_ylabel("$ per million output tokens")
    ax1.set_yscale("log")
    ax1.set_title("Pareto front: cost vs latency budget")
    ax1.grid(True, which="both", alpha=0.3)
    ax1.legend()
    for method in ("gradient", "cma-es", "random"):
        pts = [r for r in curves if r["method"] == method and np.isfinite(r["best_usd_per_mtok"])]
        if pts:
            ax2.plot([r["evaluations"] for r in pts], [r["best_usd_per_mtok"] for r in pts], label=method)
    ax2.set_xscale("log")
    ax2.set_yscale("log")
    ax2.set_xlabel("forward-equivalent model evaluations (one gradient = measured cost)")
    ax2.set_ylabel("best feasible $ per million tokens")
    ax2.set_title("gradient vs black-box search (same problem)")
    ax2.grid(True, which="both", alpha=0.3)
    ax2.legend()
    fig.suptitle("Co-design of Llama-3.1-70B decode hardware and compression")
    c.save_fig(fig, out_dir / f"{NAME}.png")


main = c.main_for(NAME, compute, plot, __doc__)

if __name__ == "__main__":
    raise SystemExit(main())
