"""Sweeps over design leaves: grids and random samples, chunked, sharded, streamed, resumable.

A sweep varies a few numbers of a *design* (:mod:`hwgrad.design`: the mapping of
:func:`hwgrad.evaluate`'s arguments, every number named by a dotted :mod:`hwgrad.paths` path
such as ``system.chip.tiers.0.bandwidth_bytes_per_s``) over a :class:`Space` of
:class:`Axis` (a full grid or a seeded random sample; point ``i`` is a pure function of
``(space, i)``), evaluates every point with one jitted program per design structure
(``shard_map`` over all devices -> ``lax.map`` over cache-sized batches -> ``vmap`` of
:func:`hwgrad.evaluate`; bitwise the same on any device count), chunk by chunk so that
1e8-point sweeps run in bounded memory, and keeps all rows, the feasible ones or only the Pareto
set. :func:`run` returns columns in memory; :func:`run_to_file` streams CSV or Parquet with a
checksummed manifest and resumes after the last finished chunk.

The package, by concept:

* :mod:`hwgrad.sweep.spaces`: axes, spaces and the validation of every point before compiling;
* :mod:`hwgrad.sweep.evaluate`: the sharded evaluator, chunks, in-memory runs, CPU devices;
* :mod:`hwgrad.sweep.pareto`: rows of evaluated points, feasibility and Pareto filters;
* :mod:`hwgrad.sweep.files`: streaming to files, manifests and resume;
* :mod:`hwgrad.sweep.cli`: ``hwgrad sweep``.

Sweep files are parsed by the one config loader (:func:`hwgrad.config.load_sweep`,
re-exported here as ``load_config``); elasticities are :mod:`hwgrad.sensitivity` (re-exported
here as ``sensitivity``). Multi-host: call ``jax.distributed.initialize`` first
(``hwgrad sweep --coordinator``); the mesh then spans every process's devices, every process
generates the same points, process 0 writes the output. See ``docs/sweep.md``.
"""

from ..config import load_sweep as load_config
from ..design import DEFAULT_METRICS as DEFAULT_METRICS
from ..design import INTEGER_FIELDS as INTEGER_FIELDS
from ..design import MAXIMIZE_BY_DEFAULT as MAXIMIZE_BY_DEFAULT
from ..design import METRICS as METRICS
from ..design import ROOTS as ROOTS
from ..design import design as design
from ..design import get as get
from ..design import paths as paths
from ..design import with_value as with_value
from ..pareto import pareto_mask as pareto_mask
from ..sensitivity import Sensitivity as Sensitivity
from ..sensitivity import sensitivity as sensitivity
from .cli import register_cli as register_cli
from .evaluate import Chunk as Chunk
from .evaluate import Evaluator as Evaluator
from .evaluate import cached_evaluator as cached_evaluator
from .evaluate import iter_chunks as iter_chunks
from .evaluate import run as run
from .evaluate import set_cpu_devices as set_cpu_devices
from .evaluate import usable_cores as usable_cores
from .files import MANIFEST_SUFFIX as MANIFEST_SUFFIX
from .files import run_to_file as run_to_file
from .pareto import Pareto as Pareto
from .spaces import Axis as Axis
from .spaces import Space as Space
from .spaces import grid as grid
from .spaces import random as random
from .spaces import validate_space as validate_space

__all__ = [
    "ROOTS", "METRICS", "DEFAULT_METRICS", "MAXIMIZE_BY_DEFAULT", "INTEGER_FIELDS", "design", "paths", "get",
    "with_value", "Axis", "Space", "grid", "random", "Pareto", "pareto_mask", "Evaluator", "cached_evaluator",
    "Chunk", "iter_chunks", "run", "run_to_file", "MANIFEST_SUFFIX", "validate_space", "load_config",
    "Sensitivity", "sensitivity", "set_cpu_devices", "usable_cores", "register_cli",
]  # fmt: skip
