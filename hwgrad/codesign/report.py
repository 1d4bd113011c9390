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
    """Today's systems at the same model, workload and service level.

    Each preset runs at the study's own fixed quantities: its batch unless the study frees
    ``workload.batch`` (then each system's own best feasible batch, 1-1024), the study's
    lengths and serving stack, at the co-designed chip count (at least 8); with fp8
    weights/KV and with the chosen compression. A row is feasible when it fits in memory and
    meets the study's TPOT and TTFT limits (the one feasibility rule's tolerance).
    """
    from .. import dtypes

    problem = study.problem
    specs = problem.specs
    wl = specs["workload"]
    rtol = problem.feasibility_rtol
    freed = {p for v in problem.variables for p in v.paths}
    chips = float(np.asarray(design.metrics["capex_usd"]) / np.asarray(design.metrics["chip_price_usd"]))
    tp = max(d for d in divisors(float(specs["model"].n_heads), 1, 64) if d <= max(chips, 8))
    rows = []
    batch_freed = "workload.batch" in freed
    batches = jnp.arange(1.0, 1025.0) if batch_freed else jnp.asarray([float(wl.batch)])
    chosen = problem.specs_at({k: jnp.asarray(v) for k, v in design.values.items()})[0]["compression"]

    def at(b, system, comp):
        w = dataclasses.replace(wl, batch=b, tp=tp, pp=1.0, dp=1.0)
        r = evaluate(system, specs["model"], w, comp, specs["efficiency"], specs["economics"], HARD)
        return r.usd_per_million_tokens, r.tpot_s, r.ttft_s, r.fits

    grid = jax.jit(jax.vmap(at, in_axes=(0, None, None)))

    def limit(metric):
        lim = [c.upper for c in problem.constraints if c.metric == metric and c.upper]
        return lim[0] * (1 + rtol) if lim else np.inf

    for name in study.compare:
        system = jax.tree_util.tree_map(lambda x: jnp.asarray(x, dtype=float), presets.system(name, int(tp)))
        for label, comp in (
            ("fp8/fp8", dtypes.compression(*study.compare_compression)),
            ("co-designed bits", chosen),
        ):
            comp = jax.tree_util.tree_map(lambda x: jnp.asarray(x, dtype=float), comp)
            usd, tpot, ttft, fits = (np.asarray(a) for a in grid(batches, system, comp))
            ok = (fits > 0) & (tpot <= limit("tpot_s")) & (ttft <= limit("ttft_s"))
            row = dict(
                system=f"{int(tp)} x {name}",
                compression=label,
                batch_freed=batch_freed,
                feasible=bool(ok.any()),
            )
            k = int(np.argmin(np.where(ok, usd, np.inf))) if ok.any() else 0
            row.update(batch=int(batches[k]), usd=float(usd[k]), tpot=float(tpot[k]), ttft=float(ttft[k]))
            if not ok.any():
                why = (
                    "does not fit"
                    if not fits[k] > 0
                    else "misses TPOT"
                    if tpot[k] > limit("tpot_s")
                    else "misses TTFT"
                )
                row.update(usd=None, why=why)
            rows.append(row)
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
    _figure(out / "codesign.png", run, front, problem, study, design, comparison)
    report = _report(study, run, design, start, comparison, front, wall)
    (out / "report.md").write_text(report, encoding="utf-8")
    return dict(
        design=design, start=start, run=run, comparison=comparison, pareto=front, wall_s=wall, report=report
    )


_UNITS = {
    "usd_per_million_tokens": ("cost", "$ / M tokens"),
    "energy_j_per_token": ("energy", "J / token"),
    "tco_usd": ("TCO", "$"),
    "tpot_s": ("TPOT", "s"),
    "ttft_s": ("TTFT", "s"),
    "gco2e_per_token": ("carbon", "gCO2e / token"),
    "tokens_per_s": ("throughput", "tokens / s"),
    "tokens_per_s_per_chip": ("throughput per chip", "tokens / s"),
    "delta_ppl": ("delta perplexity", ""),
}


def _figure(
    path: Path, run: RunResult, front: list, problem: Problem, study: Study, design=None, comparison=()
):
    """Descent (left) and the Pareto front with the chosen design and today's systems (right);
    PNG + PDF through :mod:`hwgrad.plotting`."""
    from .. import plotting

    fig, axes = plotting.figure(1, 2, width_in=11.0, height_in=4.2)
    traj = np.asarray([r[1:] for r in run.trajectory])
    name = problem.objective.weights[0][0]
    q, unit = _UNITS.get(name, (name, ""))
    if len(traj):
        for s in np.unique(traj[:, 0]):
            sel = traj[traj[:, 0] == s]
            axes[0].plot(np.arange(1, len(sel) + 1), sel[:, 2], lw=1, label=f"start {int(s)}")
        axes[0].set_yscale("log")
        plotting.readable_log_ticks(axes[0], "y")
    axes[0].set_xlabel(plotting.axis_label("optimiser step"))
    axes[0].set_ylabel(plotting.axis_label(f"{q} (relaxed)", unit))
    axes[0].set_title("descent (augmented Lagrangian)")
    plotting.legend_outside(axes[0])
    cq, cu = _UNITS.get(study.pareto_constraint or "tpot_s", (study.pareto_constraint or "tpot_s", ""))
    if front:
        b = np.array([f["budget"] for f in front])
        o = np.argsort(b)
        rel = np.array([f["relaxed_objective"] for f in front])
        hard = np.array([f["objective"] if f["feasible"] else np.nan for f in front])
        axes[1].plot(b[o], rel[o], "o:", color="0.5", label="relaxed optimum")
        axes[1].plot(b[o], hard[o], "s-", label="rounded design (hard roofline)")
    if design is not None and design.feasible:
        axes[1].plot(
            [float(design.metrics[study.pareto_constraint or "tpot_s"])],
            [design.objective],
            "*",
            ms=14,
            label="chosen design",
        )
    for r in comparison:
        if (
            r.get("usd") is not None
            and r["compression"] == "fp8/fp8"
            and study.pareto_constraint in (None, "tpot_s")
        ):
            axes[1].plot([r["tpot"]], [r["usd"]], "^", ms=8, label=f"{r['system']} ({r['compression']})")
    if front or design is not None:
        axes[1].set_xscale("log")
        axes[1].set_yscale("log")
        plotting.readable_log_ticks(axes[1])
        axes[1].set_xlabel(plotting.axis_label(f"{cq} (budget or achieved)", cu))
        axes[1].set_ylabel(plotting.axis_label(q, unit))
        axes[1].set_title("Pareto front and today's systems")
        plotting.legend_outside(axes[1])
    plotting.save(fig, path)


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
    extra = [m for m, _ in p.objective.weights] + [c.metric for c in p.constraints]
    if p.technology is not None:
        extra += ["memory_power_w", "logic_power_w", "power_demand_over_tdp", "memory_usd", "logic_usd"]
    shown = (
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
    )
    for k in dict.fromkeys((*shown, *extra)):
        if k in design.metrics:
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
            (
                "Each system at its own best feasible batch (the study frees the batch)."
                if comparison[0]["batch_freed"]
                else "Each system at the study's own batch and lengths (the study fixes them)."
            ),
            "",
            f"| system | compression | batch | {name} | TPOT | TTFT |",
            "|---|---|---|---|---|---|",
        ]
        for r in comparison:
            usd = f"infeasible ({r['why']})" if r["usd"] is None else f"{r['usd']:.4g}"
            lines.append(
                f"| {r['system']} | {r['compression']} | {r['batch']} | {usd} | {1e3 * r['tpot']:.3g} ms | "
                f"{r['ttft']:.3g} s |"
            )
        lines.append(
            f"| co-designed | | {format_value(design.values.get('workload.batch', np.nan))} | {design.objective:.4g} | "
            f"{1e3 * float(design.metrics['tpot_s']):.3g} ms | {float(design.metrics['ttft_s']):.3g} s |"
        )
        best = [r for r in comparison if r["usd"] is not None]
        if best and design.feasible:
            r = min(best, key=lambda r: r["usd"])
            verdict = (
                f"The co-designed design beats every system listed: the cheapest, {r['system']} "
                f"({r['compression']}), costs {r['usd'] / design.objective:.2f}x as much."
                if design.objective < r["usd"]
                else f"The co-designed design does NOT beat {r['system']} ({r['compression']}): "
                f"{design.objective:.4g} vs {r['usd']:.4g}."
            )
            lines += ["", verdict]
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
