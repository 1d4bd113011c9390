"""Pareto dominance: the one non-dominated filter of hwgrad (used by sweeps and co-design).

A point ``a`` dominates ``b`` when ``a_k <= b_k`` in every (minimised) objective ``k`` and
``a_k < b_k`` in at least one; the Pareto set is the set of points no other point dominates.
Objectives to maximise are negated by the caller. Exact duplicates: the first row survives.
Sweeps keep their Pareto set with it chunk by chunk (cost ``O(n x front size)``, so streaming a
1e8-point sweep keeps the front, not the points, in memory); co-design fronts use it too.

References:
  Deb, *Multi-Objective Optimization using Evolutionary Algorithms* (Wiley 2001), sec. 2.4.
"""

from __future__ import annotations

import numpy as np

__all__ = ["pareto_mask"]


def pareto_mask(costs: np.ndarray) -> np.ndarray:
    """Boolean mask of the non-dominated rows of ``costs`` (``(n, d)``, all minimised).

    A row is dropped when another row is <= in every column (exact duplicates: the first
    row survives). Rows are visited in order of the first column, so good rows eliminate
    most others early; cost O(n x front size). Rows with a non-finite cost are never on the
    front.

    Example:
      >>> pareto_mask(np.array([[1.0, 3.0], [2.0, 2.0], [2.0, 4.0], [3.0, 1.0]])).tolist()
      [True, True, False, True]
    """
    costs = np.asarray(costs, dtype=float)
    if costs.ndim != 2:
        raise ValueError(f"pareto_mask: costs must be (n, d), got shape {costs.shape}")
    finite = np.all(np.isfinite(costs), axis=1)
    idx = np.nonzero(finite)[0]
    c = costs[idx]
    n = len(c)
    order = np.lexsort((np.arange(n), c[:, 0])) if n else np.arange(0)
    c = c[order]
    alive = np.arange(n)
    i = 0
    while i < len(c):
        keep = np.any(c < c[i], axis=1)
        keep[i] = True
        alive, c = alive[keep], c[keep]
        i = int(np.count_nonzero(keep[:i])) + 1
    mask = np.zeros(len(costs), dtype=bool)
    mask[idx[order[alive]]] = True
    return mask
