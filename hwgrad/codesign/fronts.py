"""Pareto fronts of a co-design problem: one descent per budget of one constraint."""

from __future__ import annotations

from collections.abc import Sequence

import jax.numpy as jnp
import numpy as np

from .optimize import optimize
from .problem import Problem
from .rounding import round_and_repair


def pareto(problem: Problem, constraint: str, budgets: Sequence[float], steps: int = 300, **kw) -> list[dict]:
    """Sweep one constraint's limit over ``budgets`` (one ``vmap``-ed descent per budget).

    Returns one dict per budget: the budget, the relaxed optimum's objective and violation,
    and the rounded-and-repaired hard-roofline objective and feasibility.
    """
    names = problem.constraint_names
    idx = [i for i, n in enumerate(names) if n.startswith(constraint)]
    if not idx:
        raise ValueError(f"pareto: no constraint on {constraint!r}; constraints are {', '.join(names)}")
    base = np.asarray(problem.default_limits())
    limits = np.repeat(base[None], len(budgets), 0)
    limits[:, idx[0]] = budgets
    z = jnp.repeat(problem.z0[None], len(budgets), 0)
    run = optimize(problem, steps, limits=limits, z_init=z, **kw)
    out = []
    for s, b in enumerate(budgets):
        d = round_and_repair(problem, problem.from_z(run.z[s]), limits[s])
        out.append(
            dict(
                budget=float(b),
                relaxed_objective=float(run.objective[s]),
                relaxed_violation=float(run.violation[s]),
                objective=d.objective,
                feasible=d.feasible,
            )
        )
    return out
