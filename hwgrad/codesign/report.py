"""Running a study and writing its report, trajectory, Pareto table and figure."""

from __future__ import annotations

import csv
import dataclasses
import os
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from .. import presets
from ..cost import evaluate
from .feasibility import closest_miss_report
from .fronts import pareto
from .optimize import RunResult, optimize
from .problem import Problem
from .rounding import Design, fix_discrete, round_and_repair
from .study import Study, divisors
from .variables import HARD


def compare_presets(study: Study, design: Design) -> list[dict]:
    """Today's systems at the same model and workload: the best feasible batch (same SLO and
    capacity) at the study's chip count, with fp8 weights/KV and with the chosen compression."""
    from .. import dtypes

    problem = study.problem
    specs = problem.specs
    wl = specs["workload"]
    chips = float(np.asarray(design.metrics["capex_usd"]) / np.asarray(design.metrics["chip_price_usd"]))
    tp = max(d for d in divisors(float(specs["model"].n_heads), 1, 64) if d <= max(chips, 8))
    rows = []
    batches = jnp.arange(1.0, 1025.0)
    chosen = problem.specs_at({k: jnp.asarray(v) for k, v in design.values.items()})[0]["compression"]

    def at(b, system, comp):
        w = dataclasses.replace(wl, batch=b, tp=tp, pp=1.0, dp=1.0)
        r = evaluate(system, specs["model"], w, comp, specs["efficiency"], specs["economics"], HARD)
        return r.usd_per_million_tokens, r.tpot_s, r.fits

    grid = jax.jit(jax.vmap(at, in_axes=(0, None, None)))
    for name in study.compare:
        system = jax.tree_util.tree_map(lambda x: jnp.asarray(x, dtype=float), presets.system(name, int(tp)))
        for label, comp in (
            ("fp8/fp8", dtypes.compression(*study.compare_compression)),
            ("co-designed bits", chosen),
        ):
            comp = jax.tree_util.tree_map(lambda x: jnp.asarray(x, dtype=float), comp)
            usd, tpot, fits = (np.asarray(a) for a in grid(batches, system, comp))
            tlim = [c.upper for c in problem.constraints if c.metric == "tpot_s" and c.upper]
            ok = (fits > 0) & (tpot <= (tlim[0] if tlim else np.inf))
            if not ok.any():
                rows.append(
                    dict(system=f"{int(tp)} x {name}", compression=label, batch=None, usd=None, tpot=None)
                )
                continue
            k = int(np.argmin(np.where(ok, usd, np.inf)))
            rows.append(
                dict(
                    system=f"{int(tp)} x {name}",
                    compression=label,
                    batch=int(batches[k]),
                    usd=float(usd[k]),
                    tpot=float(tpot[k]),
                )
            )
    return rows


def format_value(v) -> str:
    a = np.asarray(v, dtype=float)
    if a.ndim:
        return (
            f"mean {a.mean():.4g} (min {a.min():.4g}, max {a.max():.4g})"
            if a.size > 4
            else ", ".join(f"{x:.4g}" for x in a)
        )
    return f"{float(a):.4g}"


def run_study(
    study: Study,
    out: str | os.PathLike,
    *,
    resume: bool = False,
    steps: int | None = None,
    progress: bool = True,
    log=print,
) -> dict:
    """Run a study and write ``report.md``, ``trajectory.csv``, ``pareto.csv``, ``codesign.png``
    and ``checkpoint.npz`` into ``out``. Returns a summary dict."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    problem = study.problem
    steps = steps or study.steps
    t0 = time.perf_counter()
    run = optimize(
        problem,
        steps,
        study.starts,
        lr=study.lr,
        seed=study.seed,
        inner_steps=study.inner_steps,
        checkpoint=out / "checkpoint.npz",
        checkpoint_every=study.checkpoint_every,
        resume=resume,
        progress=progress,
    )
    design = round_and_repair(problem, run.best_values)
    if study.polish_steps and design.feasible:
        sub = fix_discrete(problem, design)
        if sub is not None:
            pol = optimize(
                sub, study.polish_steps, 1, lr=study.lr / 2, seed=study.seed, inner_steps=study.inner_steps
            )
            if pol.violation[0] <= problem.feasibility_rtol:
                d2 = round_and_repair(sub, pol.best_values)
                if d2.feasible and d2.objective < design.objective:
                    vals = dict(design.values)
                    vals.update(d2.values)
                    design = round_and_repair(problem, vals)
    if not design.feasible and np.all(np.asarray(run.violation) > problem.feasibility_rtol):
        design.report = closest_miss_report(design.constraints, problem.feasibility_rtol)
    start = round_and_repair(problem, problem.start_values, max_passes=0)
    front = []
    if study.pareto_constraint and study.pareto_budgets:
        front = pareto(
            problem,
            study.pareto_constraint,
            study.pareto_budgets,
            steps=min(steps, 300),
            lr=study.lr,
            inner_steps=study.inner_steps,
        )
    comparison = compare_presets(study, design) if study.compare else []
    wall = time.perf_counter() - t0

    with open(out / "trajectory.csv", "w", newline="") as fh:
        wr = csv.writer(fh)
        wr.writerow(
            ["step", "start", "log_objective_ratio", problem.objective.weights[0][0], "max_violation"]
        )
        wr.writerows((s + 1, k, f"{J:.6g}", f"{o:.6g}", f"{v:.6g}") for s, k, J, o, v in run.trajectory)
    with open(out / "pareto.csv", "w", newline="") as fh:
        wr = csv.writer(fh)
        wr.writerow(
            [
                "budget",
                "relaxed_objective",
                "relaxed_violation",
                "rounded_objective",
                "rounded_feasible",
                "achieved",
                "on_front",
            ]
        )
        wr.writerows(
            (
                f["budget"],
                f"{f['relaxed_objective']:.6g}",
                f"{f['relaxed_violation']:.3g}",
                f"{f['objective']:.6g}",
                int(f["feasible"]),
                f"{f['achieved']:.6g}",
                int(f["on_front"]),
            )
            for f in front
        )
    _figure(out / "codesign.png", run, front, problem, study)
    report = _report(study, run, design, start, comparison, front, wall)
    (out / "report.md").write_text(report, encoding="utf-8")
    return dict(
        design=design, start=start, run=run, comparison=comparison, pareto=front, wall_s=wall, report=report
    )


def _figure(path: Path, run: RunResult, front: list, problem: Problem, study: Study) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    traj = np.asarray([r[1:] for r in run.trajectory])
    name = problem.objective.weights[0][0]
    if len(traj):
        for s in np.unique(traj[:, 0]):
            sel = traj[traj[:, 0] == s]
            axes[0].plot(np.arange(1, len(sel) + 1), sel[:, 2], label=f"start {int(s)}")
        axes[0].set_yscale("log")
    axes[0].set_xlabel("step")
    axes[0].set_ylabel(name)
    axes[0].set_title("descent (augmented Lagrangian)")
    axes[0].legend(fontsize=7)
    if front:
        b = [f["budget"] for f in front]
        axes[1].plot(b, [f["relaxed_objective"] for f in front], "o-", label="relaxed")
        axes[1].plot(
            b, [f["objective"] if f["feasible"] else np.nan for f in front], "s--", label="rounded (hard)"
        )
        axes[1].set_xlabel(f"{study.pareto_constraint} budget")
        axes[1].set_ylabel(name)
        axes[1].set_title("Pareto front")
        axes[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _report(study, run, design, start, comparison, front, wall) -> str:
    p = study.problem
    name = p.objective.weights[0][0]
    lines = [
        f"# Co-design: {study.name}",
        "",
        f"Objective: minimise {p.objective.label}; {run.evaluations} gradient evaluations "
        f"({len(run.z)} starts), {run.nan_steps} non-finite steps skipped, {wall:.1f} s in all.",
        "",
        "Result: **feasible**." if design.feasible else f"Result: **INFEASIBLE**: {design.report}.",
        "",
        "## Chosen design",
        "",
        "| variable | start | chosen | bounds |",
        "|---|---|---|---|",
    ]
    for v in p.variables:
        lines.append(
            f"| {v.name} | {format_value(start.values[v.name])} | {format_value(design.values[v.name])} | "
            f"[{v.lower:g}, {v.upper:g}]{' ' + str(list(v.values)) if v.values else ''} |"
        )
    lines += ["", "## Metrics (hard roofline)", "", "| metric | start | chosen |", "|---|---|---|"]
    for k in (
        "usd_per_million_tokens",
        "tpot_s",
        "ttft_s",
        "tokens_per_s",
        "tokens_per_s_per_chip",
        "energy_j_per_token",
        "power_w",
        "tco_usd",
        "chip_price_usd",
        "capex_usd",
        "delta_ppl",
        "capacity",
    ):
        lines.append(f"| {k} | {format_value(start.metrics[k])} | {format_value(design.metrics[k])} |")
    lines += [
        "",
        "## Constraints",
        "",
        "| constraint | value | limit | slack | g (<= rtol feasible) | status |",
        "|---|---|---|---|---|---|",
    ]
    for n, c in design.constraints.items():
        status = "VIOLATED" if c.status == "violated" else c.status
        lines.append(f"| {n} | {c.value:.4g} | {c.limit:.4g} | {c.slack:.4g} | {c.g:+.3g} | {status} |")
    lines += [
        "",
        f"Binding constraints: {', '.join(design.binding) or 'none'}. "
        f"Variables at a bound: {', '.join(design.at_bound) or 'none'}.",
        "",
        f"Feasibility rule: every normalised constraint g = (value - limit) / |limit| <= "
        f"{p.feasibility_rtol:g} (relative tolerance; see hwgrad.codesign.feasibility).",
        "",
    ]
    if comparison:
        lines += [
            "## Today's systems at the same workload and service level",
            "",
            f"| system | compression | best batch | {name} | TPOT |",
            "|---|---|---|---|---|",
        ]
        for r in comparison:
            usd = "infeasible" if r["usd"] is None else f"{r['usd']:.4g}"
            tp = "-" if r["tpot"] is None else f"{1e3 * r['tpot']:.3g} ms"
            lines.append(f"| {r['system']} | {r['compression']} | {r['batch'] or '-'} | {usd} | {tp} |")
        lines.append(
            f"| co-designed | | {format_value(design.values.get('workload.batch', np.nan))} | {design.objective:.4g} | "
            f"{1e3 * float(design.metrics['tpot_s']):.3g} ms |"
        )
        lines.append("")
    if front:
        lines += [
            "## Pareto front",
            "",
            f"Budgets of {study.pareto_constraint}: each keeps the cheapest rounded design feasible at it "
            "(warm-started neighbours, cross-checked), so a looser budget is never worse; "
            "'on front' marks the points no other point dominates.",
            "",
            "| budget | relaxed | rounded (hard) | achieved | feasible | on front |",
            "|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {f['budget']:g} | {f['relaxed_objective']:.4g} | {f['objective']:.4g} | {f['achieved']:.4g} | "
            f"{'yes' if f['feasible'] else 'no'} | {'yes' if f['on_front'] else 'no'} |"
            for f in front
        ]
    return "\n".join(lines) + "\n"
