"""Pareto sets: the points that no other point beats in every objective.

A point ``a`` *dominates* ``b`` when ``a`` is no worse in every objective and better in at
least one; the Pareto set (front) is the set of points no other point dominates. Objectives
are all minimised here (negate the ones to maximise). :func:`pareto_mask` is the one
non-dominated filter of hwgrad: sweeps keep their Pareto set with it chunk by chunk, and
co-design fronts use it too. Cost ``O(n x front size)`` (rows visited in order of the first
objective, so good rows eliminate most others early), which is what streaming a 1e8-point
sweep needs: the front, not the points, stays in memory.
"""

from __future__ import annotations

import numpy as np

__all__ = ["pareto_mask"]


def pareto_mask(costs: np.ndarray) -> np.ndarray:
    """Boolean mask of the non-dominated rows of ``costs`` (``(n, d)``, all minimised).

    A row is dropped when another row is <= in every column (exact duplicates: the first
    row survives). Rows are visited in order of the first column, so good rows eliminate
    most others early; cost O(n x front size).
    """
    costs = np.asarray(costs, dtype=float)
    n = len(costs)
    order = np.lexsort((np.arange(n), costs[:, 0])) if n else np.arange(0)
    c = costs[order]
    alive = np.arange(n)
    i = 0
    while i < len(c):
        keep = np.any(c < c[i], axis=1)
        keep[i] = True
        alive, c = alive[keep], c[keep]
        i = int(np.count_nonzero(keep[:i])) + 1
    mask = np.zeros(n, dtype=bool)
    mask[order[alive]] = True
    return mask
