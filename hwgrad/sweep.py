"""Sweeps over design leaves: grids and random samples, chunked, sharded, streamed, resumable.

A *design* is the mapping ``{system, model, workload, compression, efficiency, economics}``
of :func:`hwgrad.evaluate`'s arguments. Every number in it is addressed by a dotted path
through the pytree, e.g. ``system.chip.tiers.0.bandwidth_bytes_per_s``,
``workload.batch``, ``compression.weight_bits`` or ``system.placement.weights.1`` (one
element of an array leaf). A :class:`Space` is a set of :class:`Axis` (one path each,
values on a linear or log range, or an explicit list) sampled as a full grid or as a
seeded random sample; point ``i`` of a space is a pure function of ``(space, i)``, so a
sweep can be cut into chunks anywhere and resumed.

Points are evaluated by one jitted program per design structure::

    shard_map over the "sweep" mesh axis (all devices, all hosts)
      -> lax.map over batches of ``batch_size`` points  (cache-sized working set)
        -> vmap of hwgrad.evaluate over one batch

Each device runs the same per-batch program on the same batch shape whatever the device
count, so results are identical (bitwise) to a single-device run. Chunks of
``chunk_size`` points bound the memory of arbitrarily long (1e8-point) sweeps; the next
chunk is dispatched before the current one is written, so host formatting overlaps device
work. :func:`run_to_file` streams rows to CSV (or Parquet parts, when ``pyarrow`` is
installed), records each finished chunk in a manifest beside the output and, with
``resume=True``, continues after the last recorded chunk. An optional :class:`Pareto`
keeps only the non-dominated points of chosen objectives.

:func:`sensitivity` gives elasticities ``d log(metric) / d log(knob)`` of every metric
with respect to every continuous positive leaf at one design point, from one forward-mode
pass (``jax.jacfwd``; an undefined metric, NaN, stays NaN with its cause and cannot poison the
others).

Multi-host: call ``jax.distributed.initialize`` first (``hwgrad sweep --coordinator``);
the mesh then spans every process's devices, every process generates the same points,
process 0 writes the output. See ``docs/sweep.md``.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import functools
import hashlib
import json
import math
import os
import shutil
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from . import paths as _paths
from .pareto import pareto_mask  # the one dominance filter (re-exported)
from .paths import Index, suggest
from .specs import Compression, Options

__all__ = [
    "ROOTS",
    "METRICS",
    "DEFAULT_METRICS",
    "design",
    "paths",
    "get",
    "with_value",
    "Axis",
    "Space",
    "grid",
    "random",
    "Pareto",
    "pareto_mask",
    "Evaluator",
    "cached_evaluator",
    "Chunk",
    "iter_chunks",
    "run",
    "run_to_file",
    "validate_space",
    "load_config",
    "Sensitivity",
    "sensitivity",
    "set_cpu_devices",
    "register_cli",
]

ROOTS = ("system", "model", "workload", "compression", "efficiency", "economics")

METRICS = (
    "tpot_s",
    "ttft_s",
    "e2e_latency_s",
    "tokens_per_s",
    "energy_j_per_token",
    "usd_per_million_tokens",
    "gco2e_per_token",
)
"""The headline metrics (sensitivity reports all of them)."""

DEFAULT_METRICS = METRICS + ("fits",)
"""Columns a sweep writes unless told otherwise."""

MAXIMIZE_BY_DEFAULT = frozenset({"tokens_per_s", "tokens_per_s_per_user", "decode_tokens_per_s", "fits"})

# Fields documented as whole numbers (relaxed to reals only for gradients).
INTEGER_FIELDS = frozenset(
    {
        "n_layers", "d_model", "n_heads", "n_kv_heads", "head_dim", "vocab_size", "d_ff",
        "n_experts", "n_experts_active", "n_shared_experts", "moe_d_ff", "n_dense_layers",
        "kv_lora_rank", "q_lora_rank", "qk_rope_head_dim", "qk_nope_head_dim", "v_head_dim",
        "sliding_window", "n_sliding_layers", "batch", "prompt_len", "output_len", "tp", "pp",
        "ep", "dp", "microbatches", "kv_block_tokens", "n_chips", "switch_radix",
    }
)  # fmt: skip

MANIFEST_SUFFIX = ".manifest.json"
_MANIFEST_VERSION = 2  # 2: checksums of the manifest and the data


# ----------------------------------------------------------------------------- designs and paths


def design(system, model, workload, compression=None, efficiency=None, economics=None) -> dict:
    """The design mapping a sweep varies, with the defaults of :func:`hwgrad.evaluate`.

    Args:
      system, model, workload, compression: specs (``compression`` default: 16-bit).
      efficiency: default :func:`hwgrad.calibrated_efficiency`.
      economics: default :func:`hwgrad.presets.default_economics`.

    Returns:
      ``{"system", "model", "workload", "compression", "efficiency", "economics"}``.
    """
    if efficiency is None:
        from .calibrated import calibrated_efficiency

        efficiency = calibrated_efficiency()
    if economics is None:
        from .presets import default_economics

        economics = default_economics()
    return dict(
        system=system,
        model=model,
        workload=workload,
        compression=Compression() if compression is None else compression,
        efficiency=efficiency,
        economics=economics,
    )


def _as_design(d: Mapping) -> dict:
    """Complete a mapping (e.g. ``hwgrad.cli.design_from_args``'s, which has extra keys)."""
    if not isinstance(d, Mapping):
        raise ValueError(f"design = {type(d).__name__}: expected a mapping with keys {', '.join(ROOTS)}")
    missing = [r for r in ("system", "model", "workload") if d.get(r) is None]
    if missing:
        raise ValueError(f"design is missing {', '.join(missing)}: build it with hwgrad.sweep.design(...)")
    return design(*(d.get(r) for r in ROOTS))


def paths(d: Mapping) -> dict[str, float]:
    """Every numeric leaf of a design (array elements too) by dotted path, with its value."""
    return _paths.numbers(_as_design(d))


def get(d: Mapping, path: str) -> float:
    """The number at ``path`` in a design."""
    index = Index(_as_design(d))
    return index.value(*index.resolve(path, "path"))


def with_value(d: Mapping, path: str, value) -> dict:
    """A copy of the design with the number at ``path`` replaced by ``value``."""
    index = Index(_as_design(d))
    index.resolve(path, "path")  # one number, not a whole array
    return index.replace({path: value})


def _set_leaves(leaves: list, targets: Sequence[tuple[int, tuple]], x) -> list:
    leaves = list(leaves)
    for j, (i, elem) in enumerate(targets):
        leaves[i] = x[j] if elem == () else jnp.asarray(leaves[i]).at[elem].set(x[j])
    return leaves


def _float_dtype():
    return jnp.result_type(float)


def _design_digest(d: Mapping) -> str:
    """A stable hash of a design: its structure (static fields included) and every leaf's bytes."""
    leaves, treedef = jax.tree_util.tree_flatten({r: d[r] for r in ROOTS})
    h = hashlib.sha256(str(treedef).encode())
    for leaf in leaves:
        arr = np.asarray(leaf)
        arr = arr.astype(np.float64) if arr.dtype.kind in "biuf" else arr
        h.update(str(arr.shape).encode())
        h.update(arr.tobytes())
    return h.hexdigest()


def _result_index(d: dict, options: Options) -> Index:
    from .cost import evaluate

    shapes = jax.eval_shape(lambda dd: evaluate(**dd, options=options), d)
    return Index(shapes)


# ----------------------------------------------------------------------------- spaces

_SCALES = ("linear", "log")


@dataclasses.dataclass(frozen=True)
class Axis:
    """One swept number: a path and its values.

    Attributes:
      path: dotted path of a leaf (see :func:`paths`).
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
    """Check that every point of ``space`` is a valid design (:func:`hwgrad.validate`), before
    anything is evaluated; a ``ValueError`` naming the point's swept values and the rule.

    Each axis is checked over its candidates (:func:`_candidates`); the axes that take part in
    combination rules (parallel degrees, batch and micro-batches, shapes, placement,
    sparsity) are checked over the product of their candidates. Whole-number fields must be
    swept with ``integer = true`` (or whole values): a sweep never truncates.
    """
    from .validate import validate

    d = _as_design(d)
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


# ----------------------------------------------------------------------------- Pareto


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


class _Block(NamedTuple):
    point: np.ndarray  # (n,) int64
    values: np.ndarray  # (n, k)
    metrics: np.ndarray  # (n, m)

    def take(self, sel) -> _Block:
        return _Block(self.point[sel], self.values[sel], self.metrics[sel])

    @staticmethod
    def concat(a: _Block, b: _Block) -> _Block:
        return _Block(*(np.concatenate([x, y]) for x, y in zip(a, b, strict=True)))


def _pareto_filter(block: _Block, pareto: Pareto, metrics: Sequence[str]) -> _Block:
    cols = [metrics.index(m) for m in pareto.objectives]
    sense = np.array([1.0] * len(pareto.minimize) + [-1.0] * len(pareto.maximize))
    costs = block.metrics[:, cols].astype(float) * sense
    ok = np.all(np.isfinite(costs), axis=1)
    block, costs = block.take(ok), costs[ok]
    block = block.take(pareto_mask(costs))
    return block.take(np.argsort(block.point, kind="stable"))


def _feasible(block: _Block, metrics: Sequence[str]) -> _Block:
    return block.take(block.metrics[:, list(metrics).index("fits")] > 0)


# ----------------------------------------------------------------------------- evaluation


class Evaluator:
    """One jitted, sharded program evaluating points that change a few leaves of a design.

    Args:
      design: the base design (see :func:`design`).
      paths: the swept leaves, one column of ``values`` each.
      metrics: result paths to return (``tpot_s``, ``decode.weights_s``,
        ``capacity_margin_bytes.0``...).
      options: static :class:`~hwgrad.Options`.
      devices: devices of the ``"sweep"`` mesh axis (default: ``jax.devices()``, every
        device of every process).
      batch_size: points per ``vmap`` batch inside ``lax.map`` (512 keeps the working
        set in cache on CPU; the same on every device count, so results do not depend on
        it).

    Every call pads the points to a multiple of ``len(devices) * batch_size`` (repeating
    the last point) so one compiled program serves every chunk.
    """

    def __init__(
        self,
        design: Mapping,
        paths: Sequence[str],
        metrics: Sequence[str] = DEFAULT_METRICS,
        *,
        options: Options = Options(),
        devices: Sequence | None = None,
        batch_size: int = 512,
    ):
        from .cost import evaluate

        self.design = _as_design(design)
        self.paths = tuple(paths)
        self.metrics = tuple(metrics)
        if not self.metrics:
            raise ValueError("metrics = []: name at least one result field, e.g. tpot_s")
        if batch_size < 1:
            raise ValueError(f"batch_size = {batch_size}: must be >= 1")
        self.batch_size = int(batch_size)
        self.options = options
        index = Index(self.design)
        targets = [index.resolve(p, "sweep path") for p in self.paths]
        out_index = _result_index(self.design, options)
        out_targets = [out_index.resolve(m, "metric") for m in self.metrics]
        self.dtype = _float_dtype()
        base = [np.asarray(v, dtype=self.dtype) for v in index.leaves]
        treedef = index.treedef

        def point(x):
            d = jax.tree_util.tree_unflatten(treedef, _set_leaves(base, targets, x))
            res = jax.tree_util.tree_leaves(evaluate(**d, options=options))
            return jnp.stack([jnp.asarray(res[i], self.dtype)[e] for i, e in out_targets])

        def local(xs):
            return jax.lax.map(point, xs, batch_size=self.batch_size)

        self.devices = list(jax.devices() if devices is None else devices)
        self.mesh = Mesh(np.asarray(self.devices), ("sweep",))
        self._sharding = NamedSharding(self.mesh, P("sweep"))
        self._fn = jax.jit(jax.shard_map(local, mesh=self.mesh, in_specs=P("sweep"), out_specs=P("sweep")))

    @property
    def n_devices(self) -> int:
        return len(self.devices)

    def padded_size(self, n: int) -> int:
        step = self.n_devices * self.batch_size
        return max(1, -(-n // step)) * step

    def cast(self, values: np.ndarray) -> np.ndarray:
        """The values as the model sees them (the default float dtype)."""
        return np.asarray(values, dtype=self.dtype)

    def dispatch(self, values: np.ndarray, size: int | None = None) -> jax.Array:
        """Start evaluating ``values`` (``(n, len(paths))``) without waiting; pads to
        ``padded_size(size or n)``."""
        values = self.cast(values)
        n = len(values)
        if values.ndim != 2 or values.shape[1] != len(self.paths):
            raise ValueError(f"values have shape {values.shape}: expected (n, {len(self.paths)})")
        total = self.padded_size(max(n, size or 0))
        if n == 0:
            raise ValueError("no points to evaluate")
        padded = np.concatenate([values, np.repeat(values[-1:], total - n, axis=0)]) if total > n else values
        arr = jax.make_array_from_callback(padded.shape, self._sharding, lambda idx: padded[idx])
        return self._fn(arr)

    def gather(self, out: jax.Array, n: int) -> np.ndarray:
        """The first ``n`` rows of a dispatched result, on every process."""
        if jax.process_count() > 1:
            from jax.experimental import multihost_utils

            full = np.asarray(multihost_utils.process_allgather(out, tiled=True))
        else:
            full = np.asarray(out)
        return full[:n]

    def __call__(self, values: np.ndarray) -> np.ndarray:
        """``(n, len(metrics))`` results for ``(n, len(paths))`` values."""
        values = np.asarray(values)
        return self.gather(self.dispatch(values), len(values))


_EVALUATORS: dict = {}
_EVALUATOR_CACHE_SIZE = 8


def cached_evaluator(
    design: Mapping,
    paths: Sequence[str],
    metrics: Sequence[str] = DEFAULT_METRICS,
    *,
    options: Options = Options(),
    devices: Sequence | None = None,
    batch_size: int = 512,
) -> Evaluator:
    """An :class:`Evaluator`, reused when the same design, paths, metrics, options, devices
    and batch size come again (its compiled programs with it)."""
    d = _as_design(design)
    devs = tuple(jax.devices() if devices is None else devices)
    key = (
        _design_digest(d), tuple(paths), tuple(metrics), options, tuple(dv.id for dv in devs), int(batch_size),
        str(np.dtype(_float_dtype())),
    )  # fmt: skip
    ev = _EVALUATORS.pop(key, None)
    if ev is None:
        ev = Evaluator(d, paths, metrics, options=options, devices=devs, batch_size=batch_size)
    _EVALUATORS[key] = ev
    while len(_EVALUATORS) > _EVALUATOR_CACHE_SIZE:
        _EVALUATORS.pop(next(iter(_EVALUATORS)))
    return ev


class Chunk(NamedTuple):
    """Points ``start .. start + len(values) - 1`` of a sweep, evaluated."""

    index: int
    start: int
    values: np.ndarray  # (n, n_axes), as evaluated (default float dtype)
    metrics: np.ndarray  # (n, n_metrics)


def iter_chunks(
    design: Mapping,
    space: Space,
    metrics: Sequence[str] = DEFAULT_METRICS,
    *,
    chunk_size: int = 65536,
    first_chunk: int = 0,
    evaluator: Evaluator | None = None,
    options: Options = Options(),
    devices: Sequence | None = None,
    batch_size: int = 512,
) -> Iterator[Chunk]:
    """Evaluate a space chunk by chunk (bounded memory); chunk ``c`` holds points
    ``c * chunk_size ..``. The next chunk is dispatched before the current one is yielded,
    so consumers (writers) overlap device work."""
    if chunk_size < 1:
        raise ValueError(f"chunk_size = {chunk_size}: must be >= 1")
    ev = evaluator or cached_evaluator(
        design, space.paths, metrics, options=options, devices=devices, batch_size=batch_size
    )
    n = space.size
    chunk_size = min(int(chunk_size), n)
    n_chunks = -(-n // chunk_size)
    pending = None
    for c in range(first_chunk, n_chunks):
        start = c * chunk_size
        vals = ev.cast(space.values(start, start + chunk_size))
        out = ev.dispatch(vals, size=chunk_size)
        if pending is not None:
            yield _finish(ev, *pending)
        pending = (c, start, vals, out)
    if pending is not None:
        yield _finish(ev, *pending)


def _finish(ev: Evaluator, c: int, start: int, vals: np.ndarray, out) -> Chunk:
    return Chunk(c, start, vals, ev.gather(out, len(vals)))


def _n_chunks(space: Space, chunk_size: int) -> tuple[int, int]:
    size = min(int(chunk_size), space.size)
    return size, -(-space.size // size)


def _check_metrics(metrics, pareto: Pareto | None, feasible_only: bool) -> tuple[str, ...]:
    metrics = tuple(metrics)
    extra = []
    if pareto is not None:
        extra += [m for m in pareto.objectives if m not in metrics]
    if (feasible_only or (pareto is not None and pareto.feasible_only)) and "fits" not in metrics:
        extra.append("fits")
    return metrics + tuple(dict.fromkeys(extra))


def run(
    design: Mapping,
    space: Space,
    metrics: Sequence[str] = DEFAULT_METRICS,
    *,
    chunk_size: int = 65536,
    pareto: Pareto | None = None,
    feasible_only: bool = False,
    options: Options = Options(),
    devices: Sequence | None = None,
    batch_size: int = 512,
    progress: bool = False,
) -> dict[str, np.ndarray]:
    """Evaluate a whole space in memory.

    Returns:
      Columns ``point`` (index in the space), one per axis path and one per metric (the
      Pareto set only, sorted by point, when ``pareto`` is given).
    """
    metrics = _check_metrics(metrics, pareto, feasible_only)
    validate_space(design, space)
    blocks, front = [], None
    bar = _progress(space.size, 0, progress)
    for ch in iter_chunks(
        design, space, metrics, chunk_size=chunk_size, options=options, devices=devices, batch_size=batch_size
    ):
        block = _block(ch)
        if feasible_only:
            block = _feasible(block, metrics)
        if pareto is not None:
            if pareto.feasible_only:
                block = _feasible(block, metrics)
            front = _pareto_filter(block if front is None else _Block.concat(front, block), pareto, metrics)
        else:
            blocks.append(block)
        bar.update(len(ch.values))
    bar.close()
    if pareto is not None:
        out = front
    else:
        out = _Block(*(np.concatenate(parts) for parts in zip(*blocks, strict=True)))
    return _columns(out, space.paths, metrics)


def _block(ch: Chunk) -> _Block:
    return _Block(np.arange(ch.start, ch.start + len(ch.values), dtype=np.int64), ch.values, ch.metrics)


def _columns(block: _Block, paths: Sequence[str], metrics: Sequence[str]) -> dict[str, np.ndarray]:
    cols = {"point": block.point}
    cols.update({p: block.values[:, j] for j, p in enumerate(paths)})
    cols.update({m: block.metrics[:, j] for j, m in enumerate(metrics)})
    return cols


class _NoBar:
    def update(self, n):
        pass

    def close(self):
        pass


def _progress(total: int, initial: int, enabled: bool):
    if not enabled or jax.process_index() != 0:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="pt", unit_scale=True, desc="sweep", dynamic_ncols=True)


# ----------------------------------------------------------------------------- files


def _fingerprint(d: dict, space: Space, metrics, chunk_size, pareto, feasible_only, options, fmt) -> str:
    """What a resumed sweep must share with the run that wrote the file."""
    from . import __version__

    desc = dict(
        version=__version__,
        space=space.describe(),
        metrics=list(metrics),
        chunk_size=int(chunk_size),
        pareto=pareto.describe() if pareto else None,
        feasible_only=bool(feasible_only),
        options=repr(options),
        dtype=str(np.dtype(_float_dtype())),
        format=fmt,
        design=_design_digest(d),
    )
    text = json.dumps(desc, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def _atomic_write(path: Path, data: bytes) -> None:
    from .files import atomic_write

    atomic_write(path, data)


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def _check_manifest(state: dict, path: Path, expect: dict, fix: str) -> None:
    """The fields a resume relies on exist, have the right type and agree with this sweep."""
    ints = ("chunks_done", "rows", "bytes", "n_chunks", "chunk_size", "n_points")
    for key in ints:
        v = state.get(key)
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise ValueError(f"--resume: manifest {path} is damaged ({key} = {v!r:.40}); {fix}")
    for key, want in expect.items():
        if state.get(key) != want:
            raise ValueError(
                f"--resume: {path} records {key} = {state.get(key)!r:.60}, this sweep has {want!r:.60}; {fix}"
            )
    if state["chunks_done"] > state["n_chunks"]:
        raise ValueError(f"--resume: manifest {path} is damaged (chunks_done > n_chunks); {fix}")


def _verify_csv(out: Path, state: dict, manifest_path: Path, fix: str):
    """Check the CSV a manifest describes: at least its recorded length (a shorter file was
    truncated: refuse, never extend it), the same bytes (SHA-256) and the same row count.
    Returns the hasher of the verified prefix (writing continues from it)."""
    import hashlib

    n = int(state["bytes"])
    if not out.exists():
        raise ValueError(f"--resume: {out} is missing but its manifest {manifest_path.name} is not; {fix}")
    size = out.stat().st_size
    if size < n:
        raise ValueError(
            f"--resume: {out} has {size:,} bytes but its manifest records {n:,}: the file was truncated; {fix}"
        )
    h, newlines, left = hashlib.sha256(), 0, n
    with open(out, "rb") as fh:
        while left > 0:
            block = fh.read(min(1 << 20, left))
            if not block:
                break
            h.update(block)
            newlines += block.count(b"\n")
            left -= len(block)
    if h.hexdigest() != state.get("data_sha256"):
        raise ValueError(
            f"--resume: {out} does not match the checksum in {manifest_path.name} (edited or corrupted); {fix}"
        )
    if newlines != int(state["rows"]) + 1:
        raise ValueError(
            f"--resume: {out} holds {newlines - 1:,} rows but {manifest_path.name} records {state['rows']:,}; {fix}"
        )
    return h


def _manifest_bytes(state: dict) -> bytes:
    from .files import json_with_checksum

    return json_with_checksum(state)


def _format_of(out: Path) -> str:
    suffix = out.suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in (".parquet", ".pq"):
        return "parquet"
    raise ValueError(f"--out {out}: unknown format {suffix or '(none)'!r}; end the name in .csv or .parquet")


def _require_pyarrow():
    try:
        import pyarrow  # noqa: F401
        import pyarrow.parquet  # noqa: F401
    except ModuleNotFoundError:
        raise ValueError(
            "Parquet output needs pyarrow, which is not installed: pip install pyarrow, or write .csv"
        ) from None


def _csv_text(block: _Block, digits: int) -> str:
    n, k = block.values.shape
    m = block.metrics.shape[1]
    if n == 0:
        return ""
    flat = np.concatenate(
        [
            block.point[:, None].astype(np.float64),
            block.values.astype(np.float64),
            block.metrics.astype(np.float64),
        ],
        axis=1,
    )
    row = "%d" + f",%.{digits}g" * (k + m) + "\n"
    # one C-level format call per chunk: ~10x faster than a Python loop over rows
    return (row * n) % tuple(flat.ravel().tolist())


def _parquet_table(block: _Block, columns: Sequence[str]):
    import pyarrow as pa

    arrays = [pa.array(block.point)]
    arrays += [pa.array(block.values[:, j]) for j in range(block.values.shape[1])]
    arrays += [pa.array(block.metrics[:, j]) for j in range(block.metrics.shape[1])]
    return pa.table(arrays, names=list(columns))


def _write_whole(out: Path, fmt: str, block: _Block, columns, digits: int) -> None:
    if fmt == "csv":
        _atomic_write(out, (",".join(columns) + "\n" + _csv_text(block, digits)).encode())
    else:
        import pyarrow.parquet as pq

        tmp = out.with_name(out.name + ".tmp")
        pq.write_table(_parquet_table(block, columns), tmp)
        _fsync_file(tmp)
        os.replace(tmp, out)
        from .files import fsync_dir

        fsync_dir(out.parent)


def _block_from_manifest(front: dict, k: int, m: int, dtype) -> _Block:
    return _Block(
        np.asarray(front["point"], dtype=np.int64),
        np.asarray(front["values"], dtype=dtype).reshape(-1, k),
        np.asarray(front["metrics"], dtype=dtype).reshape(-1, m),
    )


def run_to_file(
    design: Mapping,
    space: Space,
    out: str | os.PathLike,
    metrics: Sequence[str] = DEFAULT_METRICS,
    *,
    chunk_size: int = 65536,
    pareto: Pareto | None = None,
    feasible_only: bool = False,
    resume: bool = False,
    overwrite: bool = False,
    options: Options = Options(),
    devices: Sequence | None = None,
    batch_size: int = 512,
    progress: bool = True,
    stop_after_chunks: int | None = None,
) -> dict:
    """Stream a sweep to ``out`` (``.csv``, or ``.parquet`` with pyarrow), resumably.

    CSV: one header, then rows appended chunk by chunk. Parquet: ``out`` is a directory
    of ``part-NNNNNN.parquet`` files, one per chunk (read it with
    ``pyarrow.parquet.read_table(out)``). With ``pareto`` the file holds the current
    Pareto set, rewritten after every chunk. After each chunk is on disk (``fsync``),
    ``out + ".manifest.json"`` records how many chunks are done (and, for CSV, the file
    length, so a row torn by a crash is cut on resume).

    Args:
      resume: continue a run of the *same* sweep (same design, space, metrics,
        chunk size, options: checked by a fingerprint) after its last finished chunk.
      overwrite: replace an existing output instead of refusing.
      stop_after_chunks: stop after this many new chunks (tests, time-boxed jobs).
      Others as in :func:`run`.

    Returns:
      A summary: points, rows written, chunks done / skipped / total, seconds, points/s.
    """
    out = Path(out)
    fmt = _format_of(out)
    if fmt == "parquet":
        _require_pyarrow()
    d = _as_design(design)
    metrics = _check_metrics(metrics, pareto, feasible_only)
    validate_space(d, space)
    chunk_size, n_chunks = _n_chunks(space, chunk_size)
    columns = ["point", *space.paths, *metrics]
    fingerprint = _fingerprint(d, space, metrics, chunk_size, pareto, feasible_only, options, fmt)
    manifest_path = out.with_name(out.name + MANIFEST_SUFFIX)
    writer = jax.process_index() == 0
    dtype = _float_dtype()
    digits = 9 if np.dtype(dtype).itemsize <= 4 else 17

    state = dict(
        version=_MANIFEST_VERSION, fingerprint=fingerprint, columns=columns, n_points=space.size,
        chunk_size=chunk_size, n_chunks=n_chunks, chunks_done=0, rows=0, bytes=0, complete=False,
        sweep=space.describe(), data_sha256=None, parts={},
    )  # fmt: skip
    from .files import read_checked_json, sha256_file

    fix = f"use another --out, or drop --resume and pass --force to start {out} again"
    front = None
    hasher = None
    exists = out.exists() or manifest_path.exists()
    if resume and exists:
        if not manifest_path.exists():
            raise ValueError(
                f"--resume: {out} has no {manifest_path.name}; it was not written by hwgrad sweep"
            )
        old = read_checked_json(manifest_path, "--resume: manifest", fix)
        if old.get("fingerprint") != fingerprint:
            raise ValueError(
                f"--resume: {out} was written by a different sweep (design, axes, metrics, chunk size or "
                "options changed); use another --out, or drop --resume and pass --force to overwrite"
            )
        _check_manifest(
            old, manifest_path, dict(version=_MANIFEST_VERSION, columns=columns, n_chunks=n_chunks), fix
        )
        state = old
        if pareto is not None:
            if state.get("front"):
                try:
                    front = _block_from_manifest(state["front"], len(space.paths), len(metrics), dtype)
                except (KeyError, TypeError, ValueError):
                    raise ValueError(
                        f"--resume: manifest {manifest_path} is damaged (front); {fix}"
                    ) from None
                if len(front.point) != state["rows"]:
                    raise ValueError(f"--resume: manifest {manifest_path} is damaged (front rows); {fix}")
        elif fmt == "csv":
            hasher = _verify_csv(out, state, manifest_path, fix)
        else:
            parts = state.get("parts")
            if not isinstance(parts, dict) or len(parts) != state["chunks_done"]:
                raise ValueError(f"--resume: manifest {manifest_path} is damaged (parts); {fix}")
            for name, digest in parts.items():
                part = out / str(name)
                if not part.is_file() or sha256_file(part).hexdigest() != digest:
                    raise ValueError(f"--resume: {part} is missing or fails its checksum; {fix}")
    elif exists and not overwrite:
        raise ValueError(f"--out {out} exists: pass --resume to continue it or --force to overwrite it")
    elif exists and writer:
        if not manifest_path.exists():
            raise ValueError(
                f"--force: {out} has no {manifest_path.name}, so hwgrad did not write it and will not delete it; "
                "remove it yourself or choose another --out"
            )
        if out.is_dir():
            shutil.rmtree(out)
        elif out.exists():
            out.unlink()
        if manifest_path.exists():
            manifest_path.unlink()

    first = int(state["chunks_done"])
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        first = int(multihost_utils.broadcast_one_to_all(np.int64(first)))
    skipped = first
    t0 = time.perf_counter()
    if writer:
        if out.parent.exists() and not out.parent.is_dir():
            raise ValueError(f"--out {out}: {out.parent} is a file, not a directory; choose another --out")
        out.parent.mkdir(parents=True, exist_ok=True)
        if fmt == "csv" and pareto is None:
            if first == 0:
                import hashlib

                header = (",".join(columns) + "\n").encode()
                with open(out, "wb") as fh:
                    fh.write(header)
                    fh.flush()
                    os.fsync(fh.fileno())
                hasher = hashlib.sha256(header)
                state["bytes"] = len(header)
                state["data_sha256"] = hasher.hexdigest()
            elif out.stat().st_size > int(state["bytes"]):
                with open(out, "r+b") as fh:  # cut the torn rows a crash left after the last chunk
                    fh.truncate(int(state["bytes"]))  # only ever shrinks: the length was verified
        elif fmt == "parquet" and pareto is None:
            out.mkdir(exist_ok=True)
        if first == 0:
            _atomic_write(manifest_path, _manifest_bytes(state))

    bar = _progress(space.size, min(first * chunk_size, space.size), progress)
    points = 0
    if first < n_chunks:
        ev = cached_evaluator(
            d, space.paths, metrics, options=options, devices=devices, batch_size=batch_size
        )
        for done, ch in enumerate(
            iter_chunks(d, space, metrics, chunk_size=chunk_size, first_chunk=first, evaluator=ev)
        ):
            block = _block(ch)
            if feasible_only:
                block = _feasible(block, metrics)
            if writer:
                if pareto is not None:
                    if pareto.feasible_only:
                        block = _feasible(block, metrics)
                    front = _pareto_filter(
                        block if front is None else _Block.concat(front, block), pareto, metrics
                    )
                    _write_whole(out, fmt, front, columns, digits)
                    state["front"] = dict(
                        point=front.point.tolist(), values=front.values.ravel().tolist(),
                        metrics=front.metrics.ravel().tolist(),
                    )  # fmt: skip
                    state["rows"] = len(front.point)
                    state["data_sha256"] = sha256_file(out).hexdigest()
                elif fmt == "csv":
                    text = _csv_text(block, digits).encode()
                    with open(out, "ab") as fh:
                        fh.write(text)
                        fh.flush()
                        os.fsync(fh.fileno())
                    hasher.update(text)
                    state["bytes"] = int(state["bytes"]) + len(text)
                    state["data_sha256"] = hasher.hexdigest()
                    state["rows"] += len(block.point)
                else:
                    import pyarrow.parquet as pq

                    from .files import fsync_dir

                    part = out / f"part-{ch.index:06d}.parquet"
                    tmp = out / f".part-{ch.index:06d}.tmp"
                    pq.write_table(_parquet_table(block, columns), tmp)
                    _fsync_file(tmp)
                    os.replace(tmp, part)
                    fsync_dir(out)
                    state.setdefault("parts", {})[part.name] = sha256_file(part).hexdigest()
                    state["rows"] += len(block.point)
                state["chunks_done"] = ch.index + 1
                state["complete"] = state["chunks_done"] == n_chunks
                _atomic_write(manifest_path, _manifest_bytes(state))
            points += len(ch.values)
            bar.update(len(ch.values))
            if stop_after_chunks is not None and done + 1 >= stop_after_chunks:
                break
    bar.close()
    seconds = time.perf_counter() - t0
    if writer and pareto is not None and first == 0 and points == 0:
        _write_whole(
            out,
            fmt,
            _Block(np.zeros(0, np.int64), np.zeros((0, len(space.paths))), np.zeros((0, len(metrics)))),
            columns,
            digits,
        )
    return dict(
        out=str(out),
        points=points,
        rows=int(state["rows"]),
        chunks_done=int(state["chunks_done"]),
        chunks_skipped=skipped,
        n_chunks=n_chunks,
        complete=bool(state["chunks_done"] == n_chunks),
        seconds=seconds,
        points_per_s=points / seconds if seconds > 0 else float("nan"),
    )


# ----------------------------------------------------------------------------- sensitivity


class Sensitivity(NamedTuple):
    """Elasticities ``d log(metric) / d log(knob)`` at one design point.

    ``elasticity[i, j]`` is the relative change of ``metrics[i]`` per relative change of
    ``knobs[j]`` (``+1``: proportional; ``-1``: inversely proportional; ``0``: no effect).
    A whole row is NaN where the metric is undefined (e.g. no TDP or chip price: its cause
    is in ``undefined``); a single NaN entry is a derivative that does not exist at this
    point. NaN is never shown as a number: tables print ``nan``, JSON ``null``.
    """

    metrics: tuple
    knobs: tuple
    knob_values: np.ndarray  # (k,)
    metric_values: np.ndarray  # (m,)
    elasticity: np.ndarray  # (m, k)
    integer_knobs: frozenset = frozenset()
    undefined: Mapping = {}  # metric -> why it is undefined (one line)

    def rows(self, metric: str | None = None, top: int | None = None) -> list[tuple[str, str, float]]:
        """``(metric, knob, elasticity)`` sorted by magnitude (largest first; NaN entries of
        a defined metric first, they need attention), exact zeros and undefined metrics
        dropped; one metric or all."""
        if metric is not None and metric not in self.metrics:
            raise ValueError(f"metric {metric!r}: {suggest(metric, self.metrics)}")
        chosen = [metric] if metric is not None else list(self.metrics)

        def key(r):
            return -math.inf if math.isnan(r[2]) else -abs(r[2])

        out = []
        for name in chosen:
            i = self.metrics.index(name)
            if name in self.undefined:
                continue
            row = [(name, k, float(e)) for k, e in zip(self.knobs, self.elasticity[i], strict=True) if e != 0]
            row.sort(key=key)
            out += row[:top] if top is not None else row
        if metric is None:
            out.sort(key=key)
            if top is not None:
                out = out[:top]
        return out

    def table(self, metric: str | None = None, top: int | None = 15) -> str:
        """A text table per metric, knobs sorted by |elasticity|."""
        lines = []
        width = max((len(k) for k in self.knobs), default=10)
        for i, name in enumerate(self.metrics):
            if metric is not None and name != metric:
                continue
            if name in self.undefined:
                lines.append(f"{name} = nan: {self.undefined[name]}")
                lines.append("")
                continue
            lines.append(f"{name} = {self.metric_values[i]:.4g}")
            lines.append(f"  {'knob':<{width}}  {'value':>11}  {'elasticity':>10}")
            rows = self.rows(name, top)
            for _, knob, e in rows:
                j = self.knobs.index(knob)
                mark = "  (whole number, relaxed)" if knob in self.integer_knobs else ""
                if math.isnan(e):
                    mark = "  (derivative undefined at this point)" + mark
                lines.append(f"  {knob:<{width}}  {self.knob_values[j]:>11.4g}  {e:>+10.4f}{mark}")
            n_zero = len(self.knobs) - len(self.rows(name))
            if n_zero:
                lines.append(f"  ({n_zero} other knobs: elasticity 0)")
            lines.append("")
        return "\n".join(lines).rstrip() + "\n"

    def to_dict(self) -> dict:
        """JSON-ready: ``{metric: {"value": v, "elasticity": {knob: e, ...}}}`` (sorted); an
        undefined metric has ``value`` null, an empty ``elasticity`` and ``undefined`` (why);
        a NaN elasticity is null."""
        out = {}
        for i, name in enumerate(self.metrics):
            v = float(self.metric_values[i])
            entry = {
                "value": v if math.isfinite(v) and name not in self.undefined else None,
                "elasticity": {k: (None if math.isnan(e) else e) for _, k, e in self.rows(name)},
            }
            if name in self.undefined:
                entry["undefined"] = self.undefined[name]
            out[name] = entry
        return out


@functools.lru_cache(maxsize=8)
def _jacobian_fn(
    treedef, targets: tuple, out_targets: tuple, probe_targets: tuple, options: Options, dtype: str
):
    """``jit`` of (forward-mode Jacobian of the log-metrics, metric values, metric values of
    the probe points) for one design structure; numbers are arguments, so a changed design
    point reuses the compiled program.

    Forward mode (``jax.jacfwd``) keeps an undefined metric from poisoning the others: a
    tangent only flows along the metric's own computation (and ``where`` selects tangents),
    whereas a reverse pass multiplies the zero cotangent of a NaN metric by NaN partials in
    every shared input.
    """
    from .cost import evaluate

    def metrics_at(leaves):
        r = jax.tree_util.tree_leaves(
            evaluate(**jax.tree_util.tree_unflatten(treedef, leaves), options=options)
        )
        return jnp.stack([jnp.asarray(r[i], dtype)[e] for i, e in out_targets])

    def log_metrics(log_scale, base, x0):
        # x = x0 * exp(s): at s = 0 the point is exactly the design (no exp(log x) rounding)
        m = metrics_at(_set_leaves(base, targets, x0 * jnp.exp(log_scale)))
        ok = jnp.isfinite(m) & (m > 0)
        return jnp.log(jnp.where(ok, m, 1.0)), m

    jac = jax.jacfwd(log_metrics, has_aux=True)

    def run(log_scale, base, x0, probes):
        j, m = jac(log_scale, base, x0)
        probed = (
            jax.vmap(lambda p: metrics_at(_set_leaves(base, probe_targets, p)))(probes)
            if probe_targets
            else jnp.zeros((0, len(out_targets)), dtype)
        )
        return j, m, probed

    return jax.jit(run)


def _why_undefined(
    value: float, nan_paths: Sequence[str], alone_nan: np.ndarray, fixed: np.ndarray, label: str = ""
) -> str:
    """One line on why a metric is undefined, from two probes per unknown (NaN) input:
    ``alone_nan[j]`` (the metric with only input j unknown) and ``fixed[j]`` (all unknown but
    input j); NaN means still undefined."""
    unknown = f"unknown (NaN){' for ' + label if label else ''}"
    if math.isfinite(value):
        return f"value {value:g} is not > 0, so its logarithm (and every elasticity) is undefined"
    needs = [p for p, v in zip(nan_paths, alone_nan, strict=True) if not math.isfinite(v)]
    either = [p for p, v in zip(nan_paths, fixed, strict=True) if math.isfinite(v)]
    if needs:
        return (
            f"{', '.join(needs)} {unknown}: give {'it' if len(needs) == 1 else 'them'} to define this metric"
        )
    if either:
        return f"{' or '.join(either)} {unknown}: give one of them to define this metric"
    if nan_paths:
        return f"{', '.join(nan_paths)} {unknown}: give them to define this metric"
    return "NaN inside the model at this design point (an overflow?): please report it"


def sensitivity(
    system,
    model,
    workload,
    compression=None,
    efficiency=None,
    economics=None,
    *,
    metrics: Sequence[str] = METRICS,
    knobs: Sequence[str] | None = None,
    include_integers: bool = False,
    options: Options = Options(),
    label: str = "",
) -> Sensitivity:
    """Elasticities of every metric with respect to every continuous positive knob.

    ``E[i, j] = d log m_i / d log x_j``, from ``jax.jacfwd`` of the log-metrics with
    respect to ``log x`` at the design point (one linearisation, one batched forward
    pass). With the default straight-through roofline the values are exact and the
    derivatives are those of the smooth surrogate (see :mod:`hwgrad.smooth`);
    ``Options(roofline="smooth")`` makes both smooth.

    A metric that is undefined (NaN: an unknown TDP, price or die area) gets a NaN row and a
    one-line cause in ``Sensitivity.undefined`` naming the unknown input(s); the metrics
    that are defined keep their exact derivatives.

    Args:
      system, model, workload, compression, efficiency, economics: the design point.
      metrics: result paths (default :data:`METRICS`).
      knobs: leaf paths; default every leaf that is finite and > 0, less whole-number
        structure (layers, heads, batch, tp...) unless ``include_integers``.
      options: static evaluation options.
      label: name of the design point in the causes of undefined metrics (e.g. ``"h800"``).

    Returns:
      A :class:`Sensitivity` (``.table()`` prints it sorted by magnitude).

    Example: ``elasticity ~ -1`` of ``tpot_s`` in ``system.chip.tiers.0.bandwidth_bytes_per_s``
    means decode is memory-bound: twice the bandwidth, half the time per token.
    """

    d = design(system, model, workload, compression, efficiency, economics)
    index = Index(d)
    integer = set()
    if knobs is None:
        knobs = []
        for p, i, e in index.items():
            v = index.value(i, e)
            field = p.split(".")[-1] if e == () else p.split(".")[-1 - len(e)]
            is_int = field in INTEGER_FIELDS
            if math.isfinite(v) and v > 0 and (include_integers or not is_int):
                knobs.append(p)
                if is_int:
                    integer.add(p)
    else:
        integer = {k for k in knobs if k.split(".")[-1] in INTEGER_FIELDS}
    knobs = tuple(knobs)
    if not knobs:
        raise ValueError("no knobs: name at least one leaf path with --knob (a finite value > 0)")
    targets = [index.resolve(k, "knob") for k in knobs]
    x0 = np.array([index.value(i, e) for i, e in targets], dtype=float)
    bad = [k for k, v in zip(knobs, x0, strict=True) if not (math.isfinite(v) and v > 0)]
    if bad:
        raise ValueError(f"knob {bad[0]} = {x0[knobs.index(bad[0])]:g}: elasticities need a finite value > 0")
    metrics = tuple(metrics)
    out_index = _result_index(d, options)
    out_targets = tuple(out_index.resolve(m, "metric") for m in metrics)
    dtype = _float_dtype()
    base = [np.asarray(v, dtype=dtype) for v in index.leaves]
    # unknown (NaN) inputs, probed two ways each to name the cause of an undefined metric
    nan_items = [(p, i, e) for p, i, e in index.items() if math.isnan(index.value(i, e))]
    nan_paths = [p for p, _, _ in nan_items]
    n = len(nan_items)
    probes = np.full((2 * n, n), np.nan)
    probes[:n] = np.where(np.eye(n, dtype=bool), np.nan, 1.0)  # only input j unknown
    probes[n:] = np.where(np.eye(n, dtype=bool), 1.0, np.nan)  # every input but j unknown
    probe_targets = tuple((i, e) for _, i, e in nan_items)
    jacobian = _jacobian_fn(
        index.treedef, tuple(targets), out_targets, probe_targets, options, str(np.dtype(dtype))
    )
    jac, values, probed = jacobian(
        np.zeros(len(knobs), dtype=dtype), base, np.asarray(x0, dtype=dtype), np.asarray(probes, dtype=dtype)
    )
    values = np.asarray(values, dtype=float)
    jac = np.asarray(jac, dtype=float)
    probed = np.asarray(probed, dtype=float)
    undefined = {}
    for k, name in enumerate(metrics):
        v = values[k]
        if not (math.isfinite(v) and v > 0):
            jac[k] = np.nan
            undefined[name] = _why_undefined(v, nan_paths, probed[:n, k], probed[n:, k], label)
    return Sensitivity(metrics, knobs, x0, values, jac, frozenset(integer), undefined)


# ----------------------------------------------------------------------------- config files


class _RaisingParser(argparse.ArgumentParser):
    def error(self, message):
        raise ValueError(message)


def _design_parser() -> argparse.ArgumentParser:
    from .cli import add_design_arguments

    p = _RaisingParser(prog="[design]", add_help=False, exit_on_error=False)
    add_design_arguments(p)
    return p


def _design_from_table(table: dict, where: str, base_dir: Path) -> dict:
    """``[design]`` keys are the ``hwgrad eval`` flags (``prompt_len`` = ``--prompt-len``)."""
    from .cli import design_from_args

    parser = _design_parser()
    flags = {a.dest: a for a in parser._actions if a.option_strings}
    argv = []
    for key, val in table.items():
        dest = key.replace("-", "_")
        if dest not in flags:
            close = difflib.get_close_matches(dest, list(flags), n=3, cutoff=0.5)
            hint = f"did you mean {', '.join(close)}?" if close else f"known: {', '.join(sorted(flags))}"
            raise ValueError(f"{where} [design].{key}: unknown field; {hint}")
        action = flags[dest]
        opt = action.option_strings[0]
        if action.nargs == 0:  # store_true
            if not isinstance(val, bool):
                raise ValueError(f"{where} [design].{key} = {val!r}: expected true or false")
            if val:
                argv.append(opt)
            continue
        if isinstance(val, bool) or not isinstance(val, str | int | float):
            raise ValueError(f"{where} [design].{key} = {val!r}: expected a number or text")
        if dest in ("config", "params"):
            val = str((base_dir / str(val)).resolve()) if not os.path.isabs(str(val)) else str(val)
        argv += [opt, str(val)]
    try:
        args = parser.parse_args(argv)
    except (ValueError, argparse.ArgumentError) as exc:
        raise ValueError(f"{where} [design]: {exc}") from None
    return design_from_args(args)


_SWEEP_KEYS = {
    "mode", "points", "seed", "chunk_size", "batch_size", "metrics", "out", "feasible_only", "pareto", "roofline",
}  # fmt: skip
_AXIS_KEYS = {f.name for f in dataclasses.fields(Axis)}


def load_config(path: str | os.PathLike) -> dict:
    """Parse a sweep file (TOML)::

        [design]                      # the design point: `hwgrad eval` flags
        model = "llama-3.1-70b"
        hardware = "h100-sxm"
        chips = 8
        weight_dtype = "fp8"
        # config = "design.toml"      # or a design file (custom chips, tiers, networks)

        [sweep]
        mode = "grid"                 # or "random" (with points = N, seed = 0)
        metrics = ["tpot_s", "usd_per_million_tokens", "fits"]
        chunk_size = 65536
        out = "sweep.csv"             # default for --out

        [sweep.pareto]                # optional: keep only the Pareto set
        minimize = ["tpot_s", "usd_per_million_tokens"]

        [[axis]]
        path = "system.chip.tiers.0.bandwidth_bytes_per_s"
        low = 1e12
        high = 1e13
        num = 10
        scale = "log"

        [[axis]]
        path = "workload.batch"
        values = [1, 8, 32, 128]

    Returns:
      dict with ``design``, ``space``, ``metrics``, ``chunk_size``, ``batch_size``,
      ``out``, ``pareto``, ``feasible_only``, ``options``.
    """
    from .config import read_toml, table

    path = Path(path)
    w = str(path)
    doc = read_toml(path, "--config")
    for key in doc:
        if key not in ("design", "sweep", "axis"):
            raise ValueError(f"{w}: unknown table [{key}]; use [design], [sweep] and [[axis]]")
    d = _design_from_table(table(doc, "design", w), w, path.parent)
    sw = table(doc, "sweep", w)
    for key in sw:
        if key not in _SWEEP_KEYS:
            close = difflib.get_close_matches(key, list(_SWEEP_KEYS), n=2, cutoff=0.5)
            hint = (
                f"did you mean {', '.join(close)}?" if close else f"known: {', '.join(sorted(_SWEEP_KEYS))}"
            )
            raise ValueError(f"{w} [sweep].{key}: unknown field; {hint}")

    def whole(key, default, minimum=1):
        v = sw.get(key, default)
        if v is None:
            return None
        if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
            raise ValueError(f"{w} [sweep].{key} = {v!r}: expected a whole number >= {minimum}")
        return v

    axes_t = doc.get("axis", [])
    if not isinstance(axes_t, list) or not axes_t:
        raise ValueError(f"{w}: no [[axis]] tables; add one with path, low, high (num for grids) or values")
    axes = []
    for n, t in enumerate(axes_t, 1):
        aw = f"{w} [[axis]] {n}"
        if not isinstance(t, dict):
            raise ValueError(
                f"{aw} = {t!r:.60}: each axis must be a table ([[axis]] with path, low, high...)"
            )
        for key in t:
            if key not in _AXIS_KEYS:
                close = difflib.get_close_matches(key, list(_AXIS_KEYS), n=2, cutoff=0.5)
                hint = (
                    f"did you mean {', '.join(close)}?"
                    if close
                    else f"known: {', '.join(sorted(_AXIS_KEYS))}"
                )
                raise ValueError(f"{aw}.{key}: unknown field; {hint}")
        try:
            axes.append(Axis(**t))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{aw}: {exc}") from None
    mode = sw.get("mode", "grid")
    try:
        space = Space(axes=tuple(axes), mode=mode, n_points=whole("points", None), seed=whole("seed", 0, 0))
    except ValueError as exc:
        raise ValueError(f"{w} [sweep]: {exc}") from None
    metrics = sw.get("metrics", list(DEFAULT_METRICS))
    if not isinstance(metrics, list) or not metrics or not all(isinstance(m, str) for m in metrics):
        raise ValueError(f'{w} [sweep].metrics = {metrics!r}: expected a list of names such as ["tpot_s"]')
    pareto = None
    if "pareto" in sw:
        pt = table(sw, "pareto", f"{w} [sweep]")
        unknown = set(pt) - {"minimize", "maximize", "feasible_only"}
        if unknown:
            raise ValueError(
                f"{w} [sweep.pareto].{sorted(unknown)[0]}: unknown field; use minimize, maximize, feasible_only"
            )
        try:
            pareto = Pareto(**pt)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{w} [sweep.pareto]: {exc}") from None
    feasible_only = sw.get("feasible_only", False)
    if not isinstance(feasible_only, bool):
        raise ValueError(f"{w} [sweep].feasible_only = {feasible_only!r}: expected true or false")
    roofline = sw.get("roofline", Options().roofline)
    from .specs import ROOFLINE_MODES

    if roofline not in ROOFLINE_MODES:
        raise ValueError(f"{w} [sweep].roofline = {roofline!r}: use one of {', '.join(ROOFLINE_MODES)}")
    out = sw.get("out")
    out_inside = True
    if out is not None:
        if not isinstance(out, str) or not out.strip():
            raise ValueError(f'{w} [sweep].out = {out!r:.60}: expected a file name such as "sweep.csv"')
        base_dir = path.parent.resolve()
        resolved = (base_dir / out).resolve()  # relative to the config, never to the working directory
        out_inside = resolved.is_relative_to(base_dir)
        out = str(resolved)
    return dict(
        design=d, space=space, metrics=tuple(metrics), chunk_size=whole("chunk_size", 65536),
        batch_size=whole("batch_size", 512), out=out, out_inside=out_inside, pareto=pareto,
        feasible_only=feasible_only, options=Options(roofline=roofline),
    )  # fmt: skip


def _validate_names(d: dict, cfg: dict, where: str) -> None:
    """Resolve every axis path and metric once, before any compile (clean errors)."""
    index = Index(_as_design(d))
    for a in cfg["space"].axes:
        try:
            index.resolve(a.path, "axis path")
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
    out_index = _result_index(_as_design(d), cfg["options"])
    metrics = list(cfg["metrics"]) + (list(cfg["pareto"].objectives) if cfg["pareto"] else [])
    for m in metrics:
        try:
            out_index.resolve(m, "metric")
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None


# ----------------------------------------------------------------------------- CLI


from .cli import _positive_int  # noqa: E402  (one argparse type for every subcommand)


def register_cli(subparsers) -> None:
    """Add ``hwgrad sweep`` and ``hwgrad sensitivity``."""
    from .cli import add_design_arguments

    p = subparsers.add_parser(
        "sweep",
        help="evaluate a grid or random sample of designs, streamed to CSV/Parquet",
        description="Evaluate a grid or a random sample over any design leaves (see docs/sweep.md), "
        "sharded over all devices, streamed chunk by chunk, resumable.",
    )
    p.add_argument(
        "--config", required=True, metavar="FILE", help="sweep file (TOML: [design], [sweep], [[axis]])"
    )
    p.add_argument("--out", metavar="FILE", help="output .csv or .parquet (default: [sweep].out)")
    p.add_argument(
        "--resume", action="store_true", help="continue an interrupted sweep (finished chunks are kept)"
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="overwrite an existing output (only one hwgrad wrote: with a manifest)",
    )
    p.add_argument(
        "--allow-out-anywhere", action="store_true",
        help="accept a [sweep].out that leaves the config's directory (.. or an absolute path)",
    )  # fmt: skip
    p.add_argument(
        "--chunk-size", type=_positive_int, help="points per chunk (default [sweep].chunk_size or 65536)"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument(
        "--cpu-devices", type=_positive_int, metavar="N",
        help="split the CPU into N jax devices (default: one per usable core, unless XLA_FLAGS sets a count); "
        "one CPU device runs the sweep on one core, and results do not depend on N",
    )  # fmt: skip
    g = p.add_argument_group("multi-host (jax.distributed)")
    g.add_argument(
        "--coordinator", metavar="HOST:PORT", help="address of process 0 (calls jax.distributed.initialize)"
    )
    g.add_argument("--num-processes", type=_positive_int, help="processes in the job")
    g.add_argument("--process-id", type=int, help="this process's rank, 0 .. num-processes - 1")
    g.add_argument(
        "--distributed", action="store_true", help="jax.distributed.initialize() with cluster auto-detection"
    )
    p.set_defaults(func=cmd_sweep)

    s = subparsers.add_parser(
        "sensitivity",
        help="elasticities d log(metric) / d log(knob) at one design point",
        description="Which knob matters most: elasticities of every metric with respect to every continuous "
        "positive leaf, from one forward-mode pass, sorted by magnitude; an undefined metric (unknown TDP, "
        "price...) is shown as nan with the unknown input named.",
    )
    add_design_arguments(s)
    s.add_argument(
        "--metric",
        action="append",
        metavar="NAME",
        help=f"metric(s) to report (default: {', '.join(METRICS)})",
    )
    s.add_argument("--knob", action="append", metavar="PATH", help="restrict to these leaf paths")
    s.add_argument(
        "--include-integers", action="store_true", help="also whole-number knobs (batch, tp, layers...)"
    )
    s.add_argument("--top", type=_positive_int, default=15, help="knobs shown per metric (default 15)")
    s.add_argument(
        "--roofline", choices=("straight_through", "smooth"), default="straight_through",
        help="straight_through (exact values, surrogate gradients; default) or smooth (both smooth)",
    )  # fmt: skip
    s.add_argument("--json", action="store_true", help="print one JSON object")
    s.set_defaults(func=cmd_sensitivity)


def usable_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def set_cpu_devices(n: int | None = None) -> int | None:
    """Expose the CPU as ``n`` jax devices (default: one per usable core) so a sweep
    shards over every core; a no-op once jax has started its backends, or when
    ``XLA_FLAGS`` already fixes the count. Returns the count set, or ``None``."""
    try:
        from jax._src import xla_bridge

        started = xla_bridge.backends_are_initialized()
    except (ImportError, AttributeError):
        started = True
    if started:
        if n is not None:
            raise ValueError(f"--cpu-devices {n}: jax has already started; set it before any computation")
        return None
    if n is None:
        if "xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", ""):
            return None
        n = usable_cores()
    jax.config.update("jax_num_cpu_devices", int(n))
    return int(n)


def _init_distributed(args) -> None:
    if args.coordinator or args.distributed:
        if args.coordinator and (args.num_processes is None or args.process_id is None):
            raise ValueError("--coordinator needs --num-processes and --process-id (e.g. 2 and 0)")
        if (
            args.process_id is not None
            and args.num_processes is not None
            and not 0 <= args.process_id < args.num_processes
        ):
            raise ValueError(f"--process-id {args.process_id}: must lie in 0 .. {args.num_processes - 1}")
        if args.coordinator:
            jax.distributed.initialize(
                coordinator_address=args.coordinator,
                num_processes=args.num_processes,
                process_id=args.process_id,
            )
        else:
            jax.distributed.initialize()


def cmd_sweep(args) -> int:
    from .cli import enable_compile_cache

    set_cpu_devices(args.cpu_devices)
    _init_distributed(args)
    enable_compile_cache()
    cfg = load_config(args.config)
    out = args.out or cfg["out"]
    if out is None:
        raise ValueError("no output file: pass --out FILE.csv or set [sweep].out in the config")
    if not args.out and not cfg["out_inside"] and not args.allow_out_anywhere:
        raise ValueError(
            f"{args.config} [sweep].out resolves to {out}, outside the config's directory: pass --out on the "
            "command line, or --allow-out-anywhere to accept the config's path"
        )
    validate_space(cfg["design"], cfg["space"])
    _validate_names(cfg["design"], cfg, args.config)
    try:
        summary = run_to_file(
            cfg["design"], cfg["space"], out, cfg["metrics"], chunk_size=args.chunk_size or cfg["chunk_size"],
            pareto=cfg["pareto"], feasible_only=cfg["feasible_only"], resume=args.resume, overwrite=args.force,
            options=cfg["options"], batch_size=cfg["batch_size"], progress=not args.no_progress,
        )  # fmt: skip
    except KeyboardInterrupt:
        print(
            f"hwgrad sweep: finished chunks are kept in {out}; rerun with --resume to continue",
            file=sys.stderr,
        )
        raise
    if jax.process_index() != 0:
        return 0
    if args.json:
        print(json.dumps(summary, indent=2))
    elif summary["points"] == 0:
        print(f"{summary['out']}: already complete ({summary['rows']:,} rows, {summary['n_chunks']} chunks)")
    else:
        print(
            f"{summary['rows']:,} rows in {summary['out']}: {summary['points']:,} points in {summary['seconds']:.1f} s "
            f"({summary['points_per_s']:.3g} points/s including compile, {jax.device_count()} device(s))"
            + (
                f"; {summary['chunks_skipped']} of {summary['n_chunks']} chunks were already done"
                if summary["chunks_skipped"]
                else ""
            )
        )
    return 0


def cmd_sensitivity(args) -> int:
    from .cli import design_from_args, enable_compile_cache

    enable_compile_cache()
    d = design_from_args(args)
    metrics = tuple(args.metric) if args.metric else METRICS
    dd = _as_design(d)
    options = Options(roofline=args.roofline)
    out_index = _result_index(dd, options)
    for m in metrics:
        out_index.resolve(m, "--metric")
    sens = sensitivity(
        dd["system"], dd["model"], dd["workload"], dd["compression"], dd["efficiency"], dd["economics"],
        metrics=metrics, knobs=args.knob, include_integers=args.include_integers, options=options,
        label=d.get("hardware_name", ""),
    )  # fmt: skip
    if args.json:
        print(
            json.dumps(
                {
                    "knob_values": dict(zip(sens.knobs, sens.knob_values.tolist(), strict=True)),
                    **sens.to_dict(),
                },
                indent=2,
            )
        )
        return 0
    wl = dd["workload"]
    print(
        f"{d.get('model_name', 'custom')} on {int(dd['system'].n_chips)} x {d.get('hardware_name', 'custom')}, "
        f"batch {float(wl.batch):g}, prompt {float(wl.prompt_len):g}, output {float(wl.output_len):g}; "
        f"efficiency: {d.get('efficiency_label', 'given')}"
    )
    print("elasticity = d log(metric) / d log(knob): -1 means doubling the knob halves the metric")
    print()
    print(sens.table(top=args.top), end="")
    return 0
