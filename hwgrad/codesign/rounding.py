"""Rounding and greedy repair of discrete variables, re-evaluated with the hard roofline."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from .feasibility import (
    constraint_status,
    infeasibility_report,
    is_feasible,
    variables_at_bound,
)
from .problem import Problem
from .variables import HARD, set_path


@dataclasses.dataclass
class Design:
    """A rounded, repaired design re-evaluated with the hard roofline.

    Attributes:
      values: design values (natural units; per-layer variables are arrays).
      metrics: hard-roofline metrics (floats; ``capacity`` per tier).
      constraints: ``name ->`` `ConstraintStatus`
        (value, limit, g, slack, status; unpacks as ``(value, limit, g)``).
      feasible: every ``g <= problem.feasibility_rtol`` (the one feasibility rule).
      binding: names of constraints that are violated or active (slack below 1 % of the limit).
      at_bound: variables that sit on a bound (binding too: widening it may help).
      report: one line: feasible, or the violated constraints and how far off they are.
      objective: the first objective metric of the design (natural units).
      evaluations: hard-roofline model evaluations spent by rounding and repair.
      continuous_repair_steps: projected-gradient steps taken on the continuous variables to
        repair an infeasible rounding (0: none were needed or none helped).
    """

    values: dict
    metrics: dict
    constraints: dict
    feasible: bool
    binding: list
    report: str
    objective: float
    evaluations: int = 0
    at_bound: list = dataclasses.field(default_factory=list)
    continuous_repair_steps: int = 0


def _flat_discrete(problem: Problem):
    """``(index in z, allowed values in z space)`` for every discrete coordinate."""
    out = []
    for v, a, n in zip(problem.variables, problem.offsets[:-1], problem.sizes, strict=True):
        allowed = v.allowed()
        if allowed is None:
            continue
        zs = np.asarray(v.to_z(allowed))
        out += [(a + k, zs) for k in range(n)]
    return out


def describe_constraints(problem: Problem, m: dict, g: np.ndarray, limits: np.ndarray) -> dict:
    """``name -> ConstraintStatus`` (value, limit, g, slack, status) for every constraint."""
    out, i = {}, 0
    rtol = problem.feasibility_rtol
    for con in problem.constraints:
        if con.metric == "capacity":
            for t, u in enumerate(np.atleast_1d(m["capacity"])):
                out[f"capacity[tier {t}]"] = constraint_status(u, 1.0, g[i], True, rtol)
                i += 1
            continue
        for side, upper in ((con.upper, True), (con.lower, False)):
            if side is not None:
                out[problem.constraint_names[i]] = constraint_status(
                    float(m[con.metric]), float(limits[i]), g[i], upper, rtol
                )
                i += 1
    return out


def round_and_repair(
    problem: Problem,
    values: dict,
    limits=None,
    *,
    max_passes: int = 60,
    tol: float | None = None,
    batch: int = 256,
    continuous_steps: int = 20,
) -> Design:
    """Round discrete variables, repair greedily, and re-evaluate with the hard roofline.

    Rounding takes the nearest allowed value in the variable's transformed space. The repair
    then moves one discrete coordinate at a time (one allowed level, or for variables with more
    than 16 levels also 2, 4, 8, ... levels): while infeasible, the
    move that most reduces the total violation ``sum max(0, g)``; once feasible, the move that
    most lowers the objective among moves that stay feasible (ties on the objective, to 1e-6
    in its log units, go to the move with the largest total slack ``-sum g``, so that
    dropping one of several equally cheap layers drops the least important); until no move
    helps.

    Continuous variables keep their relaxed values unless the design is still infeasible
    after the discrete repair (rounding the integers moved it off the relaxed optimum): then
    up to ``continuous_steps`` projected-gradient steps on the continuous variables alone
    (integers fixed) minimise ``sum max(0, g)^2`` on the hard roofline, each step a parallel
    line search over step sizes scored by the same rule, until the design is feasible or no
    step helps; the discrete moves then run once more to lower the objective.
    ``continuous_steps = 0`` switches this off, and so does ``max_passes = 0`` (evaluate the
    rounded design as it is).

    ``tol``: the feasibility tolerance (default: the problem's ``feasibility_rtol``, the one
    rule of `hwgrad.codesign.feasibility`).
    """
    tol = problem.feasibility_rtol if tol is None else float(tol)
    limits = problem.default_limits() if limits is None else jnp.asarray(limits, dtype=float)
    z = np.asarray(problem.to_z(values), dtype=float)
    disc = _flat_discrete(problem)
    for idx, zs in disc:
        z[idx] = zs[np.argmin(np.abs(zs - z[idx]))]

    key = ("score-slack", tol, batch)
    if key not in problem._cache:

        def one(zz, lim):
            m = problem.metrics_z(zz, HARD)
            g = problem.constraint_values(m, lim)
            J = problem.objective_value(m)
            sv = jnp.sum(jnp.maximum(g - tol, 0.0))
            gs = jnp.sum(g)
            return (
                jnp.where(jnp.isfinite(J), J, jnp.inf),
                jnp.where(jnp.isnan(sv), jnp.inf, sv),
                jnp.where(jnp.isfinite(gs), gs, jnp.inf),
            )

        problem._cache[key] = jax.jit(
            lambda zb, lim: jax.lax.map(lambda q: one(q, lim), zb, batch_size=batch)
        )
    score_fn = problem._cache[key]

    def score(zb):
        return score_fn(zb, limits)

    evaluations = 1
    J, sv, _ = (float(x[0]) for x in score(jnp.asarray(np.repeat(z[None], batch, 0))))

    def discrete_passes(z, J, sv, evaluations):
        for _ in range(max_passes if disc else 0):
            cands = []
            for idx, zs in disc:
                k = int(np.argmin(np.abs(zs - z[idx])))
                # one level either way; a variable with many levels (a batch of 1-1024) also
                # tries jumps of 2, 4, 8, ... levels, so the search crosses its range in a few
                # passes instead of one level per pass
                jumps = [1] + ([2**i for i in range(1, int(np.log2(len(zs))) + 1)] if len(zs) > 16 else [])
                for j in (k + sgn * d for d in jumps for sgn in (-1, 1)):
                    if 0 <= j < len(zs):
                        c = z.copy()
                        c[idx] = zs[j]
                        cands.append(c)
            if not cands:
                break
            cz = np.stack(cands)
            cJ, cs, cg = _score_padded(score, cz, batch)
            evaluations += len(cz)
            if sv > 0:
                order = np.lexsort((cJ, cs))
                k = order[0]
                if cs[k] >= sv - 1e-12:
                    break
            else:
                # lowest objective among feasible moves; moves that tie on it (to 1e-6 in log
                # units: e.g. dropping any one of several equal layers) keep the most total slack
                ok = np.where(cs <= 0, cJ, np.inf)
                k = int(np.lexsort((cg, np.round(ok, 6)))[0])
                if not ok[k] < J - 1e-9:
                    break
            z, J, sv = cz[k], float(cJ[k]), float(cs[k])
        return z, J, sv, evaluations

    z, J, sv, evaluations = discrete_passes(z, J, sv, evaluations)
    repair_steps = 0
    if sv > 0 and continuous_steps > 0 and max_passes > 0:
        # the rounded integers moved the design off the relaxed optimum and out of the
        # feasible set: re-optimise the continuous variables with the integers fixed
        z2, J2, sv2, n_eval, repair_steps = _repair_continuous(
            problem, z, limits, tol, score, continuous_steps, batch
        )
        evaluations += n_eval
        if repair_steps:
            z, J, sv = z2, J2, sv2
            # the integers may now have room to lower the objective again
            z, J, sv, evaluations = discrete_passes(z, J, sv, evaluations)
    vals = problem.from_z(jnp.asarray(z))
    m = jax.tree_util.tree_map(lambda a: a[0], problem.batch_metrics(z[None], HARD))
    g = np.asarray(problem.constraint_values(m, limits))
    cons = describe_constraints(problem, m, g, np.asarray(limits))
    feasible = bool(is_feasible(g, tol))
    binding = [n for n, c in cons.items() if c.status != "slack"]
    first = problem.objective.weights[0][0]
    return Design(
        values={k: np.asarray(v) for k, v in vals.items()},
        metrics=m,
        constraints=cons,
        feasible=feasible,
        binding=binding,
        report=infeasibility_report(problem, cons, tol),
        objective=float(m[first]),
        evaluations=evaluations,
        continuous_repair_steps=repair_steps,
        at_bound=variables_at_bound(problem, vals, problem.feasibility_rtol),
    )


def _score_padded(score, cz: np.ndarray, batch: int):
    """Score ``(n, D)`` candidates, padded to a multiple of ``batch`` so that the compiled
    program is reused."""
    n = len(cz)
    pad = (-n) % batch
    out = score(jnp.asarray(np.concatenate([cz, np.repeat(cz[-1:], pad, 0)])))
    return tuple(np.asarray(a)[:n] for a in out)


#: step sizes of the continuous repair's line search (largest move of one coordinate, z units)
_REPAIR_STEPS_Z = np.geomspace(1e-4, 3.0, 48)


def _repair_continuous(problem: Problem, z, limits, tol: float, score, steps: int, batch: int):
    """Projected-gradient repair of the continuous coordinates of ``z`` (discrete ones fixed).

    Returns ``(z, J, sv, evaluations, steps taken)``; ``steps taken = 0`` when no step
    lowered the violation (``z`` unchanged).
    """
    mask = np.ones(problem.dim, dtype=bool)
    for idx, _ in _flat_discrete(problem):
        mask[idx] = False
    if not mask.any():
        return z, np.inf, np.inf, 0, 0
    key = ("repair-grad", tol)
    if key not in problem._cache:

        def pen(zz, lim):
            g = problem.constraint_values(problem.metrics_z(zz, HARD), lim)
            return jnp.sum(jnp.maximum(g, 0.0) ** 2)

        problem._cache[key] = jax.jit(jax.grad(pen))
    grad_fn = problem._cache[key]
    lo, hi = np.asarray(problem.z_lower), np.asarray(problem.z_upper)
    J, sv, _ = (float(x[0]) for x in score(jnp.asarray(np.repeat(z[None], batch, 0))))
    evaluations, taken = 1, 0
    for _ in range(steps):
        if sv <= 0:
            break
        d = np.where(mask, np.asarray(grad_fn(jnp.asarray(z), limits)), 0.0)
        scale = np.max(np.abs(d))
        if not (np.isfinite(scale) and scale > 0):
            break
        cz = np.clip(z[None] - _REPAIR_STEPS_Z[:, None] * (d / scale)[None], lo, hi)
        cJ, cs, _ = _score_padded(score, cz, batch)
        evaluations += len(cz)
        k = int(np.lexsort((cJ, cs))[0])
        if not cs[k] < sv - 1e-12:
            break
        z, J, sv = cz[k], float(cJ[k]), float(cs[k])
        taken += 1
    return z, J, sv, evaluations, taken


def fix_discrete(problem: Problem, design: Design) -> Problem | None:
    """A problem over the continuous variables only, with the discrete ones fixed at ``design``."""
    specs = problem.specs
    keep = []
    for v in problem.variables:
        if v.discrete and not v.per_layer:
            for p in v.paths:
                specs = set_path(specs, p, jnp.asarray(float(design.values[v.name])))
        elif not v.discrete:
            keep.append(v)
    if not keep or any(v.per_layer and v.discrete for v in problem.variables):
        return None
    for v in keep:
        specs = set_path(specs, v.paths[0], jnp.asarray(np.clip(design.values[v.name], v.lower, v.upper)))
    sub = Problem(
        specs,
        keep,
        problem.objective,
        problem.constraints,
        problem.accuracy,
        None,
        problem.metric_fn,
        feasibility_rtol=problem.feasibility_rtol,
    )
    # derive the chip the same way as the full problem (the technology values are in specs);
    # programs traced before this point did not, so drop them
    sub.price_model = problem.price_model
    sub.technology = problem.technology
    sub.technology_constants = getattr(problem, "technology_constants", None)
    sub.reference = problem.reference
    sub._cache.clear()
    return sub
