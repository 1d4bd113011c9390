"""The design mapping that sweeps, sensitivities and calibration vary, and its result paths.

A *design* is the mapping ``{system, model, workload, compression, efficiency, economics}``
of `hwgrad.evaluate`'s arguments (`ROOTS`); `design` fills the defaults
(16-bit compression, the shipped calibration, the default economics). Every number in it is
addressed by a dotted path of `hwgrad.paths` (``system.chip.tiers.0.bandwidth_bytes_per_s``,
``workload.batch``, ``compression.weight_bits.3``), and so is every number of the
`Result` it evaluates to (``tpot_s``, ``decode.weights_s``,
``capacity_margin_bytes.0``: `result_index`). A point of a sweep or a sensitivity is
the base design with a few leaves replaced (`set_leaves` on the flattened leaves, so one
compiled program serves every value); `design_digest` hashes a design (structure and
every leaf's bytes) so compiled programs and resumable files can recognise it.

A *served* design adds the roots `SERVED_ROOTS` (``service``: a `hwgrad.service.Service`;
``engine``: a `hwgrad.service.Engine`; ``prefill``: a `hwgrad.service.Pool` for a
disaggregated deployment): `evaluate_design` then also reports the service metrics of
`hwgrad.service.design_metrics` (``goodput_rps``, ``ttft_pct_s``, ``tpot_p90_s``,
``utilisations.kv_memory``, ``rate_margin_rps``, ``usd_per_million_good_requests``, ...),
and ``service.arrival_rate_rps`` or ``engine.max_num_seqs`` are paths like any other.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from . import paths as _paths
from .paths import Index
from .specs import Compression, Options

__all__ = [
    "ROOTS", "METRICS", "DEFAULT_METRICS", "MAXIMIZE_BY_DEFAULT", "INTEGER_FIELDS", "design", "as_design",
    "paths", "get", "with_value", "set_leaves", "float_dtype", "design_digest", "result_index",
    "SERVED_ROOTS", "roots", "evaluate_design", "default_metrics",
]  # fmt: skip

ROOTS = ("system", "model", "workload", "compression", "efficiency", "economics")
SERVED_ROOTS = ("service", "engine", "prefill")
"""Optional roots of a served design (`hwgrad.service.DESIGN_ROOTS`)."""

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

MAXIMIZE_BY_DEFAULT = frozenset(
    {
        "tokens_per_s", "tokens_per_s_per_user", "decode_tokens_per_s", "fits",
        # served designs
        "goodput_rps", "throughput_rps", "capacity_rps", "rate_margin_rps", "slo_attainment",
        "ttft_ok_fraction", "tpot_ok_fraction", "output_tokens_per_s",
    }
)  # fmt: skip

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


# ----------------------------------------------------------------------------- designs and paths


def design(
    system, model, workload, compression=None, efficiency=None, economics=None, service=None, engine=None,
    prefill=None,
) -> dict:  # fmt: skip
    """The design mapping a sweep varies, with the defaults of `hwgrad.evaluate`.

    Args:
      system, model, workload, compression: specs (``compression`` default: 16-bit).
      efficiency: default `hwgrad.calibrated_efficiency`.
      economics: default `hwgrad.presets.default_economics`.
      service: a `hwgrad.service.Service` makes it a served design (default none).
      engine: its `hwgrad.service.Engine` (default `Engine()` when there is a service).
      prefill: a `hwgrad.service.Pool`: disaggregated prefill (``system`` / ``workload``
        are then the decode pool).

    Returns:
      ``{"system", "model", "workload", "compression", "efficiency", "economics"}``, plus
      ``"service"``, ``"engine"`` (and ``"prefill"``) for a served design.
    """
    if efficiency is None:
        from .calibrated import calibrated_efficiency

        efficiency = calibrated_efficiency()
    if economics is None:
        from .presets import default_economics

        economics = default_economics()
    out = dict(
        system=system,
        model=model,
        workload=workload,
        compression=Compression() if compression is None else compression,
        efficiency=efficiency,
        economics=economics,
    )
    if service is None:
        if engine is not None or prefill is not None:
            raise ValueError("design: an engine or a prefill pool without a service; give service=hg.Service(...)")
        return out
    from .service import Engine

    out.update(service=service, engine=Engine() if engine is None else engine)
    if prefill is not None:
        out["prefill"] = prefill
    return out


def as_design(d: Mapping) -> dict:
    """Complete a mapping (e.g. ``hwgrad.cli.design_from_args``'s, which has extra keys)."""
    if not isinstance(d, Mapping):
        raise ValueError(f"design = {type(d).__name__}: expected a mapping with keys {', '.join(ROOTS)}")
    missing = [r for r in ("system", "model", "workload") if d.get(r) is None]
    if missing:
        raise ValueError(f"design is missing {', '.join(missing)}: build it with hwgrad.sweep.design(...)")
    return design(*(d.get(r) for r in ROOTS), **{r: d.get(r) for r in SERVED_ROOTS})


def roots(d: Mapping) -> tuple[str, ...]:
    """The roots a (completed) design has: `ROOTS`, plus the `SERVED_ROOTS` it sets."""
    return ROOTS + tuple(r for r in SERVED_ROOTS if d.get(r) is not None)


def evaluate_design(d: Mapping, options: Options = Options()) -> dict:
    """Every result of a design, by metric path: `hwgrad.evaluate`'s `Result` fields
    (``tpot_s``, ``decode.weights_s``, ``capacity_margin_bytes.0``) and, for a served design,
    `hwgrad.service.design_metrics` (``goodput_rps``, ``ttft_pct_s``, ...). Traceable; the
    one evaluation behind sweeps and sensitivities (outputs not asked for are dropped by XLA).
    """
    from .cost import evaluate

    r = evaluate(**{k: d[k] for k in ROOTS}, options=options)
    out = {f.name: getattr(r, f.name) for f in dataclasses.fields(r) if not f.metadata.get("static")}
    if d.get("service") is not None:
        from .service import design_metrics

        out.update(design_metrics(d, options))
    return out


def default_metrics(d: Mapping) -> tuple[str, ...]:
    """The columns a sweep of ``d`` writes unless told otherwise: `DEFAULT_METRICS`, then
    `hwgrad.service.DEFAULT_SERVICE_METRICS` for a served design."""
    if d.get("service") is None:
        return DEFAULT_METRICS
    from .service import DEFAULT_SERVICE_METRICS

    return DEFAULT_SERVICE_METRICS + DEFAULT_METRICS


def paths(d: Mapping) -> dict[str, float]:
    """Every numeric leaf of a design (array elements too) by dotted path, with its value."""
    return _paths.numbers(as_design(d))


def get(d: Mapping, path: str) -> float:
    """The number at ``path`` in a design."""
    index = Index(as_design(d))
    return index.value(*index.resolve(path, "path"))


def with_value(d: Mapping, path: str, value) -> dict:
    """A copy of the design with the number at ``path`` replaced by ``value``."""
    index = Index(as_design(d))
    index.resolve(path, "path")  # one number, not a whole array
    return index.replace({path: value})


def set_leaves(leaves: list, targets: Sequence[tuple[int, tuple]], x) -> list:
    leaves = list(leaves)
    for j, (i, elem) in enumerate(targets):
        leaves[i] = x[j] if elem == () else jnp.asarray(leaves[i]).at[elem].set(x[j])
    return leaves


def float_dtype():
    return jnp.result_type(float)


def design_digest(d: Mapping) -> str:
    """A stable hash of a design: its structure (static fields included) and every leaf's bytes."""
    leaves, treedef = jax.tree_util.tree_flatten({r: d[r] for r in roots(d)})
    h = hashlib.sha256(str(treedef).encode())
    for leaf in leaves:
        arr = np.asarray(leaf)
        arr = arr.astype(np.float64) if arr.dtype.kind in "biuf" else arr
        h.update(str(arr.shape).encode())
        h.update(arr.tobytes())
    return h.hexdigest()


#: `result_index` by design structure (treedef, leaf shapes and dtypes) and options: the
#: results' paths depend on nothing else, and tracing the model for them costs ~0.3 s
_RESULT_INDEX: dict = {}


def result_index(d: dict, options: Options) -> Index:
    """The paths of `evaluate_design`'s results (shapes only: nothing is compiled; traced
    once per design structure and options)."""
    def trace():
        return Index(jax.eval_shape(lambda dd: evaluate_design(dd, options), d))

    leaves, treedef = jax.tree_util.tree_flatten(d)
    key = (treedef, tuple((np.shape(v), jnp.result_type(v), isinstance(v, (int, float))) for v in leaves), options)
    try:
        hit = _RESULT_INDEX.get(key)
    except TypeError:  # an unhashable static field: no cache
        return trace()
    if hit is None:
        if len(_RESULT_INDEX) >= 64:
            _RESULT_INDEX.clear()
        hit = _RESULT_INDEX[key] = trace()
    return hit
