"""Pareto fronts of a co-design problem over the budget of one constraint.

For budgets ``b_1, ..., b_K`` of one constraint (``tpot_s <= b``), the front is built so that
it is one:

1. **independent descents**, one per budget, all from the base design, in one ``vmap``;
2. **warm-started neighbours**: each budget restarts from the best relaxed solution of any
   budget that is feasible at its own limits (a solution of a tighter budget is feasible at
   a looser one), for ``warm_steps`` more steps;
3. **rounding and repair per budget** at that budget's limits (hard roofline);
4. **cross-evaluation**: every rounded design is checked against every budget with the one
   feasibility rule (:mod:`hwgrad.codesign.feasibility`); each budget keeps the cheapest
   design feasible at it. Since a design feasible at a tighter budget is feasible at a looser
   one, a looser budget is never worse (the front is monotone by construction);
5. **dominance filter**: ``on_front`` marks the points not dominated in (achieved constraint
   value, objective) by another point (:func:`hwgrad.pareto.pareto_mask`, the one dominance
   filter of hwgrad); a budget whose best design is that of a tighter one is not on the front.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ..pareto import pareto_mask
from .feasibility import is_feasible, worst_violation
from .optimize import optimize
from .problem import Problem
from .rounding import round_and_repair
from .variables import OBJECTIVES


def _constraint_index(problem: Problem, constraint: str) -> int:
    names = problem.constraint_names
    idx = [i for i, n in enumerate(names) if n == constraint or n.split(" ")[0] == constraint]
    if not idx:
        raise ValueError(f"pareto: no constraint on {constraint!r}; constraints are {', '.join(names)}")
    return idx[0]


def pareto(
    problem: Problem,
    constraint: str,
    budgets: Sequence[float],
    steps: int = 300,
    *,
    warm_steps: int | None = None,
    **kw,
) -> list[dict]:
    """Sweep one constraint's limit over ``budgets`` (see the module docstring for the method).

    Args:
      problem: the :class:`Problem`; ``constraint`` must be one of its constraints (a metric
        name such as ``tpot_s`` or a full constraint name such as ``tpot_s <= 0.03``).
      budgets: limits of that constraint (its unit), in any order.
      steps: descent steps of the independent pass.
      warm_steps: steps of the warm-started pass (default ``steps // 2``; 0 skips it).
      **kw: passed to :func:`optimize` (``lr``, ``inner_steps``, ...).

    Returns:
      One dict per budget, in the order given: ``budget``; ``relaxed_objective`` and
      ``relaxed_violation`` of the best relaxed solution at that budget; ``objective``,
      ``feasible``, ``achieved`` (the constrained metric of the design) and ``on_front`` of
      the chosen rounded, hard-roofline design; ``source`` (index of the budget whose descent
      produced it; ``violation``, its worst normalised violation). :func:`pareto_designs`
      also returns the chosen :class:`Design` objects.
    """
    return [r for r, _ in pareto_designs(problem, constraint, budgets, steps, warm_steps=warm_steps, **kw)]


def pareto_designs(
    problem: Problem,
    constraint: str,
    budgets: Sequence[float],
    steps: int = 300,
    *,
    warm_steps: int | None = None,
    **kw,
) -> list[tuple[dict, object]]:
    """Like :func:`pareto`, returning ``(row, Design)`` pairs."""
    budgets = [float(b) for b in budgets]
    if not budgets:
        raise ValueError("pareto: no budgets; give at least one")
    i_con = _constraint_index(problem, constraint)
    name = problem.constraint_names[i_con]
    metric = name.split(" ")[0]
    upper = " <= " in name
    K = len(budgets)
    base = np.asarray(problem.default_limits())
    limits = np.repeat(base[None], K, 0)
    limits[:, i_con] = budgets
    warm_steps = steps // 2 if warm_steps is None else int(warm_steps)
    tol = problem.feasibility_rtol

    run = optimize(problem, steps, limits=limits, z_init=jnp.repeat(problem.z0[None], K, 0), **kw)
    z = np.asarray(run.z)
    if warm_steps > 0:
        m = problem.batch_metrics(z)
        J = np.asarray(jax.vmap(problem.objective_value)(m))
        g_all = np.stack(
            [np.asarray(jax.vmap(problem.constraint_values, (0, None))(m, limits[i])) for i in range(K)]
        )
        ok = is_feasible(g_all, tol)  # (budget i, solution j)
        key = np.where(ok, J[None, :], np.inf)
        pick = np.where(np.isfinite(key.min(axis=1)), np.argmin(key, axis=1), np.arange(K))
        run2 = optimize(problem, warm_steps, limits=limits, z_init=jnp.asarray(z[pick]), **kw)
        # keep the better of the two passes per budget: feasible first, then lower J
        z2 = np.asarray(run2.z)
        J2 = np.asarray(jax.vmap(problem.objective_value)(problem.batch_metrics(z2)))
        v1, v2 = np.asarray(run.violation), np.asarray(run2.violation)
        f1, f2 = v1 <= tol, v2 <= tol
        better = (f2 & (~f1 | (J2 <= J))) | (~f1 & ~f2 & (v2 < v1))
        z = np.where(better[:, None], z2, z)
        relaxed_obj = np.where(better, run2.objective, run.objective)
        relaxed_viol = np.where(better, v2, v1)
    else:
        relaxed_obj, relaxed_viol = np.asarray(run.objective), np.asarray(run.violation)

    rounded = [round_and_repair(problem, problem.from_z(jnp.asarray(z[i])), limits[i]) for i in range(K)]
    sign = OBJECTIVES[problem.objective.weights[0][0]]
    obj = np.array([sign * d.objective for d in rounded])
    g_cross = np.stack(
        [
            np.stack([np.asarray(problem.constraint_values(d.metrics, limits[i])) for d in rounded])
            for i in range(K)
        ]
    )
    ok = is_feasible(g_cross, tol) & np.isfinite(obj)[None, :]
    out = []
    for i in range(K):
        cand = np.where(ok[i], obj, np.inf)
        j = int(np.argmin(cand)) if np.isfinite(cand).any() else i
        d = rounded[j] if j == i else round_and_repair(problem, rounded[j].values, limits[i], max_passes=0)
        out.append(
            (
                dict(
                    budget=budgets[i],
                    relaxed_objective=float(relaxed_obj[i]),
                    relaxed_violation=float(relaxed_viol[i]),
                    objective=d.objective,
                    feasible=d.feasible,
                    achieved=float(np.asarray(d.metrics[metric])),
                    on_front=False,
                    source=j,
                    violation=float(worst_violation(g_cross[i, j])),
                ),
                d,
            )
        )
    feas = np.array([r["feasible"] for r, _ in out])
    costs = np.array([[(1 if upper else -1) * r["achieved"], sign * r["objective"]] for r, _ in out])
    costs[~feas] = np.inf
    for (r, _), on in zip(out, pareto_mask(costs), strict=True):
        r["on_front"] = bool(on)
    return out
