"""Sweep evaluation: one jitted, sharded program per design structure, chunk by chunk.

Points are evaluated by one jitted program per design structure (the swept leaves are
arguments, so new values never recompile):

    shard_map over the "sweep" mesh axis (all devices, all hosts)
      -> lax.map over batches of ``batch_size`` points  (cache-sized working set)
        -> vmap of hwgrad.evaluate over one batch (`hwgrad.design.evaluate_design`: with
           the service metrics of a served design)

Each device runs the same per-batch program on the same batch shape whatever the device
count, so results are identical (bitwise) to a single-device run. Chunks of ``chunk_size``
points bound the memory of arbitrarily long (1e8-point) sweeps; the next chunk is dispatched
before the current one is consumed, so host work (formatting, writing) overlaps device work.
`run` collects a whole space in memory (optionally only the feasible rows or the Pareto
set); `hwgrad.sweep.files` streams it to disk. `set_cpu_devices` splits the CPU
into one jax device per core, so that a CPU sweep uses every core.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from ..design import (
    DEFAULT_METRICS,
    as_design,
    design_digest,
    evaluate_design,
    float_dtype,
    result_index,
    set_leaves,
)
from ..paths import Index
from ..specs import Options
from .pareto import Block, Pareto, feasible_rows, pareto_filter
from .spaces import Space, validate_space

__all__ = [
    "sharded_map", "Evaluator", "cached_evaluator", "Chunk", "iter_chunks", "run", "usable_cores", "set_cpu_devices",
    "check_metrics", "chunk_count", "block_of", "columns_of", "progress_bar",
]  # fmt: skip


def sharded_map(fn, mesh: Mesh, batch_size: int):
    """``jit`` of ``fn`` mapped over the leading axis of its arguments, sharded over ``mesh``'s
    ``"sweep"`` axis: ``shard_map`` over the devices -> ``lax.map`` over batches of
    ``batch_size`` -> ``vmap`` over one batch. The one sharding layout of every sweep, forward
    or gradient (``benchmarks/bench_eval.py`` times both with it); the leading size must be a
    multiple of ``mesh.size * batch_size``."""

    def local(*xs):
        return jax.lax.map(lambda p: fn(*p), xs, batch_size=batch_size)

    return jax.jit(jax.shard_map(local, mesh=mesh, in_specs=P("sweep"), out_specs=P("sweep")))


class Evaluator:
    """One jitted, sharded program evaluating points that change a few leaves of a design.

    Args:
      design: the base design (see `design`).
      paths: the swept leaves, one column of ``values`` each.
      metrics: result paths to return (``tpot_s``, ``decode.weights_s``,
        ``capacity_margin_bytes.0``...).
      options: static `Options`.
      devices: devices of the ``"sweep"`` mesh axis (default: ``jax.devices()``, every
        device of every process).
      batch_size: points per ``vmap`` batch inside ``lax.map`` (512 keeps the working
        set in cache on CPU; the same on every device count, so results do not depend on
        it).

      gradient: also differentiate (a *gradient sweep*): each point then gives a
        ``(len(metrics), 1 + len(paths))`` block, column 0 the metric and column ``1 + j``
        ``d metric / d paths[j]`` (forward mode, ``jax.jacfwd`` over the swept values: an
        undefined metric cannot poison the others' derivatives), sharded and batched exactly
        like the forward sweep.

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
        gradient: bool = False,
    ):
        self.design = as_design(design)
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
        out_index = result_index(self.design, options)
        out_targets = [out_index.resolve(m, "metric") for m in self.metrics]
        self.dtype = float_dtype()
        base = [np.asarray(v, dtype=self.dtype) for v in index.leaves]
        treedef = index.treedef

        def point(x):
            d = jax.tree_util.tree_unflatten(treedef, set_leaves(base, targets, x))
            res = jax.tree_util.tree_leaves(evaluate_design(d, options))
            return jnp.stack([jnp.asarray(res[i], self.dtype)[e] for i, e in out_targets])

        self.gradient = bool(gradient)
        if self.gradient:
            jac = jax.jacfwd(lambda x: (point(x), point(x)), has_aux=True)  # one pass: CSE'd

            def fn(x):
                j, m = jac(x)  # (n_metrics, n_paths), (n_metrics,)
                return jnp.concatenate([m[:, None], j.astype(m.dtype)], axis=1)

        else:
            fn = point
        self.devices = list(jax.devices() if devices is None else devices)
        self.mesh = Mesh(np.asarray(self.devices), ("sweep",))
        self._sharding = NamedSharding(self.mesh, P("sweep"))
        self._fn = sharded_map(fn, self.mesh, self.batch_size)

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
    gradient: bool = False,
) -> Evaluator:
    """An `Evaluator`, reused when the same design, paths, metrics, options, devices
    batch size and ``gradient`` come again (its compiled programs with it)."""
    d = as_design(design)
    devs = tuple(jax.devices() if devices is None else devices)
    key = (
        design_digest(d), tuple(paths), tuple(metrics), options, tuple(dv.id for dv in devs), int(batch_size),
        str(np.dtype(float_dtype())), bool(gradient),
    )  # fmt: skip
    ev = _EVALUATORS.pop(key, None)
    if ev is None:
        ev = Evaluator(d, paths, metrics, options=options, devices=devs, batch_size=batch_size, gradient=gradient)
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


def chunk_count(space: Space, chunk_size: int) -> tuple[int, int]:
    size = min(int(chunk_size), space.size)
    return size, -(-space.size // size)


def check_metrics(metrics, pareto: Pareto | None, feasible_only: bool) -> tuple[str, ...]:
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
    metrics = check_metrics(metrics, pareto, feasible_only)
    validate_space(design, space)
    blocks, front = [], None
    bar = progress_bar(space.size, 0, progress)
    for ch in iter_chunks(
        design, space, metrics, chunk_size=chunk_size, options=options, devices=devices, batch_size=batch_size
    ):
        block = block_of(ch)
        if feasible_only:
            block = feasible_rows(block, metrics)
        if pareto is not None:
            if pareto.feasible_only:
                block = feasible_rows(block, metrics)
            front = pareto_filter(block if front is None else Block.concat(front, block), pareto, metrics)
        else:
            blocks.append(block)
        bar.update(len(ch.values))
    bar.close()
    if pareto is not None:
        out = front
    else:
        out = Block(*(np.concatenate(parts) for parts in zip(*blocks, strict=True)))
    return columns_of(out, space.paths, metrics)


def block_of(ch: Chunk) -> Block:
    return Block(np.arange(ch.start, ch.start + len(ch.values), dtype=np.int64), ch.values, ch.metrics)


def columns_of(block: Block, paths: Sequence[str], metrics: Sequence[str]) -> dict[str, np.ndarray]:
    cols = {"point": block.point}
    cols.update({p: block.values[:, j] for j, p in enumerate(paths)})
    cols.update({m: block.metrics[:, j] for j, m in enumerate(metrics)})
    return cols


class _NoBar:
    def update(self, n):
        pass

    def close(self):
        pass


def progress_bar(total: int, initial: int, enabled: bool):
    if not enabled or jax.process_index() != 0:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="pt", unit_scale=True, desc="sweep", dynamic_ncols=True)


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
        # asking for the count jax already runs with is fine (an API caller that evaluated
        # something first); any other count can no longer be set
        if n is not None and int(n) != (running := len(jax.devices("cpu"))):
            raise ValueError(
                f"--cpu-devices {n}: jax has already started with {running} CPU device(s); "
                "set it before any computation"
            )
        return None
    if n is None:
        if "xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", ""):
            return None
        n = usable_cores()
    jax.config.update("jax_num_cpu_devices", int(n))
    return int(n)
