"""Rows of evaluated sweep points and the filters that keep some of them.

A :class:`Block` holds evaluated points as three aligned arrays (point index in the space,
swept values, metrics). A sweep can keep only the feasible rows (``fits > 0``:
:func:`feasible_rows`) and/or only its Pareto set over chosen metrics (:class:`Pareto`,
:func:`pareto_filter`, using the one non-dominated filter :func:`hwgrad.pareto.pareto_mask`;
rows with a non-finite objective are dropped first). Because the Pareto set of a union is the
Pareto set of the union of the parts' Pareto sets, a streamed sweep keeps only the running
front, chunk by chunk.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from ..pareto import pareto_mask

__all__ = ["Pareto", "Block", "pareto_filter", "feasible_rows"]


@dataclasses.dataclass(frozen=True)
class Pareto:
    """Keep only points no other point beats in every objective.

    Attributes:
      minimize / maximize: metric names (columns of the sweep).
      feasible_only: drop designs that do not fit in memory (``fits == 0``) first.
    """

    minimize: tuple = ()
    maximize: tuple = ()
    feasible_only: bool = True

    def __post_init__(self):
        object.__setattr__(self, "minimize", tuple(self.minimize))
        object.__setattr__(self, "maximize", tuple(self.maximize))
        if not self.minimize and not self.maximize:
            raise ValueError("pareto has no objectives: set minimize = [...] and/or maximize = [...]")

    @property
    def objectives(self) -> tuple[str, ...]:
        return self.minimize + self.maximize

    def describe(self) -> dict:
        return dataclasses.asdict(self)


class Block(NamedTuple):
    point: np.ndarray  # (n,) int64
    values: np.ndarray  # (n, k)
    metrics: np.ndarray  # (n, m)

    def take(self, sel) -> Block:
        return Block(self.point[sel], self.values[sel], self.metrics[sel])

    @staticmethod
    def concat(a: Block, b: Block) -> Block:
        return Block(*(np.concatenate([x, y]) for x, y in zip(a, b, strict=True)))


def pareto_filter(block: Block, pareto: Pareto, metrics: Sequence[str]) -> Block:
    cols = [metrics.index(m) for m in pareto.objectives]
    sense = np.array([1.0] * len(pareto.minimize) + [-1.0] * len(pareto.maximize))
    costs = block.metrics[:, cols].astype(float) * sense
    ok = np.all(np.isfinite(costs), axis=1)
    block, costs = block.take(ok), costs[ok]
    block = block.take(pareto_mask(costs))
    return block.take(np.argsort(block.point, kind="stable"))


def feasible_rows(block: Block, metrics: Sequence[str]) -> Block:
    return block.take(block.metrics[:, list(metrics).index("fits")] > 0)
