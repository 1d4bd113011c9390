"""Design variables, constraints and objectives of a co-design problem, and the design-path wrappers."""

from __future__ import annotations

import dataclasses
import difflib
import math

import jax
import jax.numpy as jnp
import numpy as np

from .. import counts
from .. import paths as _paths
from ..service import DISAGGREGATED_METRICS, SERVICE_METRICS
from ..specs import Options

SPEC_ROOTS = (
    "system", "model", "workload", "compression", "efficiency", "economics", "technology",
    # a served design (hwgrad.service): its request stream, engine and disaggregated prefill pool
    "service", "engine", "prefill",
)  # fmt: skip
SCALES = ("log", "logit", "linear")
LOGIT_EPS = 1e-4
HARD = Options(roofline="hard")

# metric -> +1 (minimise) or -1 (maximise) when used as an objective
OBJECTIVES = {
    "usd_per_million_tokens": 1.0,
    "energy_j_per_token": 1.0,
    "tco_usd": 1.0,
    "tpot_s": 1.0,
    "ttft_s": 1.0,
    "gco2e_per_token": 1.0,
    "tokens_per_s_per_chip": -1.0,
    "tokens_per_s": -1.0,
    # a served design ([service] in a study; hwgrad.service.SERVICE_METRICS)
    "goodput_rps": -1.0,
    "usd_per_million_good_requests": 1.0,
    "ttft_pct_s": 1.0,
    "tpot_pct_s": 1.0,
    "ttft_p90_s": 1.0,
    "tpot_p90_s": 1.0,
    "capacity_rps": -1.0,
    "output_tokens_per_s": -1.0,
    "serving_usd_per_s": 1.0,
}
RESULT_SCALARS = (
    "tpot_s",
    "ttft_s",
    "e2e_latency_s",
    "tokens_per_s",
    "tokens_per_s_per_user",
    "decode_tokens_per_s",
    "energy_j_per_token",
    "power_w",
    "usd_per_million_tokens",
    "tco_usd",
    "gco2e_per_token",
    "kv_on_low_endurance",
)
DERIVED = (
    "tokens_per_s_per_chip",
    "power_w_per_chip",
    "delta_ppl",
    "delta_loss",
    "chip_price_usd",
    "capex_usd",
    "die_area_mm2",
    "tier0_bandwidth_per_capacity_per_s",
    "capacity",
    # with a Technology (hwgrad.codesign.technology), per chip
    "memory_power_w",
    "logic_power_w",
    "power_demand_over_tdp",
    "memory_usd",
    "logic_usd",
)
METRICS = RESULT_SCALARS + DERIVED + SERVICE_METRICS + DISAGGREGATED_METRICS


def leaf_paths(specs: dict) -> list[str]:
    """Every numeric leaf of ``specs`` as a dotted path (``system.chip.tiers.0.capacity_bytes``)."""
    return _paths.leaf_paths({k: specs[k] for k in SPEC_ROOTS if k in specs})


def get_path(specs: dict, path: str):
    """The value at a dotted path (``ValueError`` with suggestions if it does not exist)."""
    return _paths.Index({k: specs[k] for k in SPEC_ROOTS if k in specs}).get(path, "design-variable path")


def set_path(specs: dict, path: str, value) -> dict:
    """A copy of ``specs`` with the leaf at ``path`` replaced (works on traced values)."""
    root, _, rest = path.partition(".")
    if root not in specs or root not in SPEC_ROOTS:
        get_path(specs, path)  # raises with suggestions
    if not rest:
        return {**specs, root: value}
    return {**specs, root: _paths.replace(specs[root], rest, value)}


@dataclasses.dataclass(frozen=True)
class Variable:
    """One design variable (possibly tied to several leaves, possibly one value per layer).

    Attributes:
      paths: dotted leaf paths set to this value (a tie: e.g. ``system.n_chips`` and
        ``workload.tp`` move together).
      lower, upper: box bounds in natural units.
      scale: ``log`` (positive quantities), ``logit`` (fractions in [0, 1)) or ``linear``;
        default ``log`` when ``lower > 0``, else ``logit`` within [0, 1], else ``linear``.
      values: allowed values after rounding (bits, TP degrees); ``None`` = continuous.
      integer: round to whole numbers (when ``values`` is not given).
      per_layer: one value per layer (``compression.weight_bits``, ``compression.kv_bits``,
        ``compression.sparsity`` or ``compression.layer_keep_gates`` only; keep gates:
        bounds [0, 1], ``scale = "linear"``, ``values = (0, 1)``).
      name: label in reports (default: the first path).
    """

    paths: tuple[str, ...]
    lower: float
    upper: float
    scale: str = ""
    values: tuple[float, ...] | None = None
    integer: bool = False
    per_layer: bool = False
    name: str = ""

    def __post_init__(self):
        paths = (self.paths,) if isinstance(self.paths, str) else tuple(self.paths)
        object.__setattr__(self, "paths", paths)
        object.__setattr__(self, "name", self.name or paths[0])
        lo, hi = float(self.lower), float(self.upper)
        if not (math.isfinite(lo) and math.isfinite(hi)) or lo >= hi:
            raise ValueError(
                f"variable {self.name}: bounds [{lo:g}, {hi:g}] must be finite with lower < upper"
            )
        scale = self.scale or ("log" if lo > 0 else "logit" if 0 <= lo and hi <= 1 else "linear")
        if scale not in SCALES:
            raise ValueError(f"variable {self.name}: scale = {scale!r}; use one of {', '.join(SCALES)}")
        if scale == "log" and lo <= 0:
            raise ValueError(
                f"variable {self.name}: log scale needs lower > 0 (got {lo:g}); use scale = 'linear'"
            )
        if scale == "logit" and not (0 <= lo and hi <= 1):
            raise ValueError(
                f"variable {self.name}: logit scale needs bounds within [0, 1] (got [{lo:g}, {hi:g}])"
            )
        object.__setattr__(self, "scale", scale)
        if self.values is not None:
            vals = tuple(sorted(float(v) for v in self.values if lo - 1e-9 <= float(v) <= hi + 1e-9))
            if not vals:
                raise ValueError(f"variable {self.name}: no allowed value lies in [{lo:g}, {hi:g}]")
            object.__setattr__(self, "values", vals)
        if self.per_layer and any(p not in PER_LAYER for p in paths):
            raise ValueError(f"variable {self.name}: per_layer works for {', '.join(PER_LAYER)} only")

    @property
    def discrete(self) -> bool:
        return self.values is not None or self.integer

    def to_z(self, x):
        x = jnp.asarray(x, dtype=float)
        if self.scale == "log":
            return jnp.log(x)
        if self.scale == "logit":
            x = jnp.clip(x, LOGIT_EPS, 1 - LOGIT_EPS)
            return jnp.log(x) - jnp.log1p(-x)
        return x

    def from_z(self, z):
        if self.scale == "log":
            return jnp.exp(z)
        if self.scale == "logit":
            return jax.nn.sigmoid(z)
        return z

    def z_bounds(self) -> tuple[float, float]:
        return float(self.to_z(self.lower)), float(self.to_z(self.upper))

    def allowed(self) -> np.ndarray | None:
        if self.values is not None:
            return np.asarray(self.values)
        if self.integer:
            return np.arange(math.ceil(self.lower), math.floor(self.upper) + 1, dtype=float)
        return None


PER_LAYER = (
    "compression.weight_bits",
    "compression.kv_bits",
    "compression.sparsity",
    # structured pruning: keep gate of each layer in [0, 1] (1 = keep; rounded to {0, 1})
    "compression.layer_keep_gates",
)


@dataclasses.dataclass(frozen=True)
class Constraint:
    """``metric <= upper`` and/or ``metric >= lower`` (``capacity``: every tier fits)."""

    metric: str
    upper: float | None = None
    lower: float | None = None

    def __post_init__(self):
        if self.metric not in METRICS and not self.metric.startswith(SPEC_ROOTS):
            close = difflib.get_close_matches(self.metric, METRICS, n=3)
            hint = f"did you mean {', '.join(close)}?" if close else f"known: {', '.join(METRICS)}"
            raise ValueError(f"constraint metric {self.metric!r} is unknown; {hint}")
        if self.metric == "capacity":
            return
        if self.upper is None and self.lower is None:
            raise ValueError(f"constraint {self.metric}: give max (upper) and/or min (lower)")
        for side in (self.upper, self.lower):
            if side is not None and (not math.isfinite(side) or side == 0):
                raise ValueError(f"constraint {self.metric}: limit {side!r} must be finite and non-zero")
        if self.upper is not None and self.lower is not None and self.lower > self.upper:
            raise ValueError(
                f"constraint {self.metric}: min {self.lower:g} > max {self.upper:g} is contradictory; "
                "widen the interval"
            )


@dataclasses.dataclass(frozen=True)
class Objective:
    """``single`` metric, or a ``weighted`` sum / ``chebyshev`` max of weighted log ratios.

    All kinds minimise ``log`` ratios to the starting design (metrics that are better when
    larger, such as tokens/s per chip, enter negated), so weights are dimensionless.
    """

    weights: tuple[tuple[str, float], ...] = (("usd_per_million_tokens", 1.0),)
    kind: str = "single"
    chebyshev_temperature: float = 0.02

    def __post_init__(self):
        if self.kind not in ("single", "weighted", "chebyshev"):
            raise ValueError(f"objective kind = {self.kind!r}: use single, weighted or chebyshev")
        for name, _ in self.weights:
            if name not in OBJECTIVES:
                close = difflib.get_close_matches(name, OBJECTIVES, n=3)
                hint = f"did you mean {', '.join(close)}?" if close else f"use one of {', '.join(OBJECTIVES)}"
                raise ValueError(f"objective metric {name!r} is unknown; {hint}")

    @property
    def label(self) -> str:
        if self.kind == "single":
            return self.weights[0][0]
        return f"{self.kind}(" + ", ".join(f"{w:g} {m}" for m, w in self.weights) + ")"


def layer_params(model) -> np.ndarray:
    n = int(float(model.n_layers))
    attn = float(counts.attention_params_per_layer(model))
    dense = float(counts.dense_ffn_params(model))
    moe = float(counts.moe_params_per_layer(model)) if float(model.n_experts) > 0 else dense
    n_dense = int(float(model.n_dense_layers))
    return np.array([attn + (dense if i < n_dense else moe) for i in range(n)])


def default_layer_sensitivity(n_layers: int) -> np.ndarray:
    """Assumed profile: first and last layers most sensitive (an assumption, not fitted).

    ``s_l = 1 + 3 exp(-l / 2) + 1.5 exp(-(L - 1 - l) / 2)``, as reported qualitatively by
    layer-wise quantisation studies (e.g. OWL, SqueezeLLM); pass your own profile otherwise.
    """
    layer = np.arange(n_layers, dtype=float)
    return 1.0 + 3.0 * np.exp(-layer / 2.0) + 1.5 * np.exp(-(n_layers - 1 - layer) / 2.0)


@dataclasses.dataclass(frozen=True)
class AccuracySettings:
    """Settings of the accuracy model (`hwgrad.accuracy`) for ``delta_ppl`` / ``delta_loss``.

    Attributes:
      family, pruner, baseline_ppl, layer_sensitivity: as `hwgrad.accuracy.delta_loss`.
      structured_finetuned: structured pruning followed by LoRA recovery fine-tuning (1) or
        not (0); used when the design prunes layers, width or heads
        (`hwgrad.accuracy.Structured.from_compression`).
      structured_generation: ``llama-2`` or ``llama-3`` (15T-token models tolerate pruning
        worse); ``None`` = ``llama-3`` for models named ``llama-3*``, else ``llama-2``.
    """

    family: str = "gptq"
    pruner: str = "sparsegpt"
    baseline_ppl: float | None = None
    layer_sensitivity: tuple[float, ...] | None = None
    structured_finetuned: float = 0.0
    structured_generation: str | None = None
