"""Sweep spaces: which points a sweep evaluates, as a pure function of the point's index.

An `Axis` is one swept number: a design path (`hwgrad.paths`) and its values, a
linear or log range or an explicit list, optionally rounded to whole numbers. A
`Space` combines axes as a full grid (point ``i`` is the C-order multi-index of ``i``)
or as a seeded random sample (point ``i`` is drawn by a counter-based SplitMix64 generator
from ``(seed, i)``). Either way point ``i`` depends only on ``(space, i)``, so a sweep can be
cut into chunks anywhere, sharded over devices and hosts, and resumed, always giving the same
points. `validate_space` checks, before anything compiles, that every point of a space
is a valid design (`hwgrad.validate`): the rules on one number are intervals, so the
ends of each axis decide, except for whole-number fields coupled by divisibility (``tp``
divides the heads...), whose every candidate is checked.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

import jax
import numpy as np

from ..design import INTEGER_FIELDS, ROOTS, as_design
from ..paths import Index

__all__ = ["Axis", "Space", "grid", "random", "validate_space"]

_SCALES = ("linear", "log")


@dataclasses.dataclass(frozen=True)
class Axis:
    """One swept number: a path and its values.

    Attributes:
      path: dotted path of a leaf (see `paths`).
      low, high: range ends (inclusive for grids); ``scale="log"`` needs ``low > 0``.
      num: grid points on ``[low, high]`` (grid sweeps only).
      scale: ``"linear"`` or ``"log"`` spacing (grids) / sampling density (random).
      values: an explicit list instead of ``low``/``high`` (grid: all of them; random:
        drawn uniformly).
      integer: round values to whole numbers (batch, chips, ...); grids drop duplicates.
    """

    path: str
    low: float | None = None
    high: float | None = None
    num: int | None = None
    scale: str = "linear"
    values: tuple | None = None
    integer: bool = False

    def __post_init__(self):
        w = f"axis {self.path!r}"
        if not isinstance(self.path, str) or not self.path:
            raise ValueError(f"axis path = {self.path!r}: give a dotted path such as workload.batch")
        if self.scale not in _SCALES:
            raise ValueError(f"{w}: scale = {self.scale!r}; use linear or log")
        if not isinstance(self.integer, bool | np.bool_):
            raise ValueError(f"{w}: integer = {self.integer!r}; expected true or false")
        for key in ("low", "high"):
            v = getattr(self, key)
            if v is not None and (isinstance(v, bool | str | bytes) or np.ndim(v) != 0):
                raise ValueError(f"{w}: {key} = {v!r:.60}; expected a number")
        if self.values is not None:
            if self.low is not None or self.high is not None:
                raise ValueError(f"{w}: give either values or low/high, not both")
            raw = list(self.values) if isinstance(self.values, list | tuple | np.ndarray) else [self.values]
            if any(isinstance(v, bool | str | bytes) or np.ndim(v) != 0 for v in raw):
                raise ValueError(
                    f"{w}: values = {self.values!r:.60}; give a non-empty list of finite numbers"
                )
            vals = tuple(float(v) for v in raw)
            if not vals or not all(math.isfinite(v) for v in vals):
                raise ValueError(
                    f"{w}: values = {list(self.values)!r}; give a non-empty list of finite numbers"
                )
            object.__setattr__(self, "values", vals)
            return
        if self.low is None or self.high is None:
            raise ValueError(f"{w}: needs low and high (or values = [...])")
        low, high = float(self.low), float(self.high)
        if not (math.isfinite(low) and math.isfinite(high)) or low > high:
            raise ValueError(f"{w}: low = {low:g}, high = {high:g}; need finite low <= high")
        if self.scale == "log" and low <= 0:
            raise ValueError(f"{w}: low = {low:g} with scale = log; use low > 0 or scale = linear")
        object.__setattr__(self, "low", low)
        object.__setattr__(self, "high", high)
        if self.num is not None and (
            isinstance(self.num, bool | str | bytes)
            or np.ndim(self.num) != 0
            or not math.isfinite(self.num)
            or int(self.num) != self.num
            or not 1 <= self.num <= 2**24
        ):
            raise ValueError(f"{w}: num = {self.num!r}; give a whole number >= 1 (at most {2**24})")

    def grid_values(self) -> np.ndarray:
        """The grid points of this axis (float64)."""
        if self.values is not None:
            vals = np.asarray(self.values)
        else:
            if self.num is None:
                raise ValueError(f"axis {self.path!r}: a grid axis needs num (or values = [...])")
            n = int(self.num)
            space = np.geomspace if self.scale == "log" else np.linspace
            vals = space(self.low, self.high, n) if n > 1 else np.array([self.low])
        if self.integer:
            vals = np.unique(np.rint(vals))
        return vals

    def from_unit(self, u: np.ndarray) -> np.ndarray:
        """Map uniform samples ``u`` in ``[0, 1)`` onto this axis."""
        if self.values is not None:
            vals = np.asarray(self.values)
            out = vals[np.minimum((u * len(vals)).astype(np.int64), len(vals) - 1)]
        elif self.scale == "log":
            lo, hi = math.log(self.low), math.log(self.high)
            out = np.exp(lo + u * (hi - lo))
        else:
            out = self.low + u * (self.high - self.low)
        return np.rint(out) if self.integer else out

    def describe(self) -> dict:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


_GAMMA = np.uint64(0x9E3779B97F4A7C15)


def _splitmix64(z: np.ndarray) -> np.ndarray:
    """SplitMix64's output mix (Steele, Lea & Flood, OOPSLA 2014); arrays wrap mod 2^64."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def _uniform(seed: int, start: int, stop: int, k: int) -> np.ndarray:
    """``(stop - start, k)`` uniforms in [0, 1); draw ``j`` of point ``i`` depends on
    ``(seed, i, j)`` only (a counter-based generator), so any chunking gives the same points."""
    key = _splitmix64(np.array([seed & 0xFFFFFFFFFFFFFFFF], dtype=np.uint64))
    counter = np.arange(start, stop, dtype=np.uint64)[:, None] * np.uint64(k) + np.arange(k, dtype=np.uint64)
    bits = _splitmix64(key + (counter + np.uint64(1)) * _GAMMA)
    return (bits >> np.uint64(11)).astype(np.float64) * 2.0**-53


@dataclasses.dataclass(frozen=True)
class Space:
    """Points to evaluate: a full grid over the axes or a seeded random sample.

    Grid point ``i`` is the C-order (last axis fastest) multi-index of ``i``; random point
    ``i`` is drawn by a counter-based generator from ``(seed, i)``. Both are independent of
    how the sweep is chunked, sharded or resumed.
    """

    axes: tuple
    mode: str = "grid"
    n_points: int | None = None
    seed: int = 0

    def __post_init__(self):
        axes = tuple(self.axes)
        object.__setattr__(self, "axes", axes)
        if not axes:
            raise ValueError("sweep has no axes: add at least one [[axis]] with a path")
        if len({a.path for a in axes}) != len(axes):
            dup = sorted({a.path for a in axes if sum(b.path == a.path for b in axes) > 1})
            raise ValueError(f"axis path {dup[0]!r} appears twice: merge them into one axis")
        if self.mode == "grid":
            if self.n_points is not None:
                raise ValueError(f"points = {self.n_points}: only random sweeps take a point count; drop it")
            self._grids()  # validates num
        elif self.mode == "random":
            n = self.n_points
            if n is None or isinstance(n, bool) or int(n) != n or n < 1:
                raise ValueError(f"points = {n!r}: a random sweep needs a whole number of points >= 1")
            for a in axes:
                if a.num is not None:
                    raise ValueError(f"axis {a.path!r}: num = {a.num} is for grid sweeps; drop it")
        else:
            raise ValueError(f"mode = {self.mode!r}: use grid or random")

    def _grids(self) -> list[np.ndarray]:
        return [a.grid_values() for a in self.axes]

    @property
    def paths(self) -> tuple[str, ...]:
        return tuple(a.path for a in self.axes)

    @property
    def shape(self) -> tuple[int, ...]:
        """Grid shape (random: ``(n_points,)``)."""
        if self.mode == "random":
            return (int(self.n_points),)
        return tuple(len(g) for g in self._grids())

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    def values(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """``(stop - start, n_axes)`` float64 values of points ``start .. stop - 1``."""
        stop = self.size if stop is None else min(stop, self.size)
        if self.mode == "random":
            u = _uniform(int(self.seed), start, stop, len(self.axes))
            return np.stack([a.from_unit(u[:, j]) for j, a in enumerate(self.axes)], axis=1)
        grids = self._grids()
        multi = np.unravel_index(np.arange(start, stop, dtype=np.int64), self.shape)
        return np.stack([g[m] for g, m in zip(grids, multi, strict=True)], axis=1)

    def describe(self) -> dict:
        return dict(
            mode=self.mode, n_points=self.n_points, seed=self.seed, axes=[a.describe() for a in self.axes]
        )


def grid(*axes: Axis) -> Space:
    """A full grid over ``axes`` (``Axis(..., num=...)`` or ``values=[...]``)."""
    return Space(axes=axes, mode="grid")


def random(*axes: Axis, n_points: int, seed: int = 0) -> Space:
    """``n_points`` seeded random points (uniform in linear or log space per axis)."""
    return Space(axes=axes, mode="random", n_points=n_points, seed=seed)


# ----------------------------------------------------------------------------- validation of points

#: whole-number fields whose divisibility couples them to other fields (tp | heads, ...):
#: every integer in their range is checked, not only the ends
_DIVISIBILITY_FIELDS = frozenset(
    {"tp", "pp", "ep", "dp", "n_chips", "n_heads", "n_kv_heads", "n_layers", "n_experts", "n_dense_layers"}
)
#: leaves that take part in a combination rule (checked on the product of their candidates)
_COMBINATION_FIELDS = _DIVISIBILITY_FIELDS | {
    "batch", "microbatches", "sparsity", "weights", "kv_cache", "activations", "context", "capacity_bytes",
    "nmc_shard_bytes", "n_experts_active", "n_sliding_layers",
}  # fmt: skip
_MAX_CHECKS = 2048


def _field_of(path: str) -> str:
    parts = path.split(".")
    while parts and parts[-1].isdigit():
        parts.pop()
    return parts[-1] if parts else path


def _candidates(axis: Axis, mode: str) -> np.ndarray:
    """Values of ``axis`` that stand for all its points: every value of a list or a small grid,
    every integer of a divisibility field, otherwise the two ends (the rules on one number
    are intervals, so the ends decide)."""
    field = _field_of(axis.path)
    if axis.values is not None:
        vals = np.asarray(axis.values)
        return np.unique(np.rint(vals)) if axis.integer else np.unique(vals)
    if mode == "grid":
        vals = axis.grid_values()
        if field in _DIVISIBILITY_FIELDS or len(vals) <= 16:
            return vals
        return np.array([vals[0], vals[-1]])
    lo, hi = float(axis.low), float(axis.high)
    if axis.integer:
        lo, hi = float(np.rint(lo)), float(np.rint(hi))
        if field in _DIVISIBILITY_FIELDS and hi - lo < 4096:
            return np.arange(lo, hi + 1.0)
    return np.unique([lo, hi])


def validate_space(d: Mapping, space: Space) -> None:
    """Check that every point of ``space`` is a valid design (`hwgrad.validate`), before
    anything is evaluated; a ``ValueError`` naming the point's swept values and the rule.

    Each axis is checked over its candidates (`_candidates`); the axes that take part in
    combination rules (parallel degrees, batch and micro-batches, shapes, placement,
    sparsity) are checked over the product of their candidates. Whole-number fields must be
    swept with ``integer = true`` (or whole values): a sweep never truncates.
    """
    from ..service import validate_design_service
    from ..validate import validate

    d = as_design(d)
    index = Index(d)
    targets = [index.resolve(a.path, "axis path") for a in space.axes]
    base = [np.asarray(v, dtype=float) if np.ndim(v) else v for v in index.leaves]
    cands = []
    for a in space.axes:
        field = _field_of(a.path)
        c = _candidates(a, space.mode)
        if field in INTEGER_FIELDS and not a.integer and np.any(c != np.rint(c)):
            raise ValueError(
                f"axis {a.path!r}: {field} is a whole number but the axis takes non-whole values "
                f"(e.g. {c[c != np.rint(c)][0]:g}); set integer = true or give whole values"
            )
        cands.append(c)

    def check(assign: dict[int, float]) -> None:
        leaves = list(base)
        for j, v in assign.items():
            i, elem = targets[j]
            if elem == ():
                leaves[i] = float(v)
            else:
                arr = np.array(leaves[i], dtype=float)
                arr[elem] = v
                leaves[i] = arr
        point = jax.tree_util.tree_unflatten(index.treedef, leaves)
        try:
            validate(*(point[r] for r in ROOTS))
            validate_design_service(point)
        except ValueError as exc:
            where = ", ".join(f"{space.axes[j].path} = {v:g}" for j, v in assign.items())
            raise ValueError(f"sweep point with {where}: {exc}") from None

    def product(axes_ix: list[int]) -> None:
        for combo in (
            np.array(np.meshgrid(*[cands[j] for j in axes_ix], indexing="ij")).reshape(len(axes_ix), -1).T
        ):
            check(dict(zip(axes_ix, combo, strict=True)))

    every = list(range(len(space.axes)))
    if math.prod(len(c) for c in cands) <= _MAX_CHECKS:
        product(every)
        return
    for j in every:
        product([j])
    combo = [j for j in every if _field_of(space.axes[j].path) in _COMBINATION_FIELDS]
    if len(combo) > 1:
        n = math.prod(len(cands[j]) for j in combo)
        if n > _MAX_CHECKS:
            names = ", ".join(space.axes[j].path for j in combo)
            raise ValueError(
                f"axes {names}: {n:,} combinations of coupled fields to validate (limit {_MAX_CHECKS:,}); "
                "give values = [...] lists or narrower ranges"
            )
        product(combo)
