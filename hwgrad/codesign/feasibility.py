"""The one feasibility rule of co-design, shared by the optimiser, rounding, Pareto fronts,
reports, baselines and benchmarks.

Every constraint is normalised to ``g = (value - limit) / |limit|`` (upper limits; mirrored,
``(limit - value) / |limit|``, for lower limits; ``used / usable - 1`` per memory tier, usable
= capacity x the stack's ``memory_fraction``), so ``g`` is the relative overshoot. A design
is **feasible** when every constraint satisfies:

    g_i <= rtol,    rtol = FEASIBILITY_RTOL = 1e-3 (0.1 % of the limit) by default

The tolerance absorbs float32 rounding of the model (a limit met to 2e-5 is met) and the
bias of the smooth surrogate during descent; it is a property of the `Problem`
(``Problem(..., feasibility_rtol=...)``, ``[study] feasibility_rtol`` in a study file) so
that every consumer applies the same number. A non-finite ``g`` is never feasible.

A constraint is **binding** (active) when its slack ``-g`` is below ``BINDING_RTOL`` (1 %);
a design variable is binding when it sits on one of its bounds (within ``rtol`` of the
transformed box, or on its first/last allowed value).
"""

from __future__ import annotations

import dataclasses

import numpy as np

#: relative tolerance on every normalised constraint (dimensionless; 1e-3 = 0.1 % of the limit)
FEASIBILITY_RTOL = 1e-3
#: a constraint with slack below this (relative to its limit) is reported as binding
BINDING_RTOL = 1e-2


def worst_violation(g) -> np.ndarray:
    """``max_i max(0, g_i)`` over the last axis (``inf`` where any ``g`` is not finite)."""
    g = np.asarray(g, dtype=float)
    g = np.where(np.isfinite(g), g, np.inf)
    return np.max(np.maximum(g, 0.0), axis=-1, initial=0.0)


def is_feasible(g, rtol: float = FEASIBILITY_RTOL):
    """``True`` where every normalised constraint ``g <= rtol`` (last axis)."""
    return worst_violation(g) <= rtol


@dataclasses.dataclass(frozen=True)
class ConstraintStatus:
    """One constraint of a design.

    Attributes:
      value: the metric (natural units; capacity: fraction of the tier used).
      limit: the limit (same unit).
      g: normalised constraint, ``<= rtol`` is feasible.
      slack: ``limit - value`` for an upper limit, ``value - limit`` for a lower one (same
        unit; negative = violated).
      status: ``violated``, ``binding`` or ``slack``.
    """

    value: float
    limit: float
    g: float
    slack: float
    status: str

    # the old ``(value, limit, g)`` tuple interface
    def __iter__(self):
        return iter((self.value, self.limit, self.g))

    def __getitem__(self, i):
        return (self.value, self.limit, self.g)[i]


def status_of(g: float, rtol: float = FEASIBILITY_RTOL) -> str:
    if not np.isfinite(g) or g > rtol:
        return "violated"
    return "binding" if g > -BINDING_RTOL else "slack"


def constraint_status(value: float, limit: float, g: float, upper: bool, rtol: float) -> ConstraintStatus:
    slack = (limit - value) if upper else (value - limit)
    return ConstraintStatus(float(value), float(limit), float(g), float(slack), status_of(g, rtol))


def variables_at_bound(problem, values: dict, rtol: float = FEASIBILITY_RTOL) -> list[str]:
    """Names of variables on a bound (``name (lower)`` / ``name (upper)``; per-layer: the
    number of layers there)."""
    out = []
    for v in problem.variables:
        x = np.atleast_1d(np.asarray(values[v.name], dtype=float))
        allowed = v.allowed()
        if allowed is not None:
            lo_at, hi_at = x <= allowed[0] + 1e-9, x >= allowed[-1] - 1e-9
        else:
            z = np.asarray(v.to_z(x))
            zl, zh = v.z_bounds()
            width = max(zh - zl, 1e-12)
            lo_at, hi_at = z <= zl + rtol * width, z >= zh - rtol * width
        for side, at in (("lower", lo_at), ("upper", hi_at)):
            n = int(np.count_nonzero(at))
            if n and v.per_layer:
                out.append(f"{v.name} ({side}, {n} of {x.size} layers)")
            elif n:
                out.append(f"{v.name} ({side})")
    return out


def infeasibility_report(problem, cons: dict, tol: float | None = None, prefix: str | None = None) -> str:
    """``feasible``, or one line naming each violated constraint, its value, limit and
    overshoot (worst first) and what to do."""
    tol = problem.feasibility_rtol if tol is None else tol
    bad = [(n, c) for n, c in cons.items() if not (np.isfinite(c[2]) and c[2] <= tol)]
    if not bad:
        return "feasible"
    parts = [
        f"{n.split(' ')[0]} = {c[0]:.4g} vs limit {c[1]:.4g} ({_pct(c[2])} over)"
        for n, c in sorted(bad, key=lambda b: -b[1][2])
    ]
    return (
        (prefix or "infeasible after rounding and repair")
        + ": "
        + "; ".join(parts)
        + ": relax these budgets or widen the bounds of the variables that sit at a bound"
    )


def _pct(g: float) -> str:
    p = 100 * g
    return f"+{p:.2g} %" if abs(p) < 0.1 else f"+{p:.1f} %"


def closest_miss_report(cons: dict, tol: float) -> str:
    """For a budget no start met: ``infeasible at every start: the closest design misses
    <constraint> by X % (value vs limit); ...``."""
    bad = sorted(
        ((n, c) for n, c in cons.items() if not (np.isfinite(c[2]) and c[2] <= tol)), key=lambda b: -b[1][2]
    )
    parts = [f"{n.split(' ')[0]} by {100 * c[2]:.3g} % ({c[0]:.4g} vs limit {c[1]:.4g})" for n, c in bad]
    return (
        "infeasible at every start: the closest design misses "
        + "; ".join(parts)
        + ": relax these budgets or widen the bounds of the variables that sit at a bound"
    )
