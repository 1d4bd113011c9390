"""Gradient co-design of hardware and compression under service-level and accuracy budgets.

A :class:`Problem` picks any subset of numeric spec leaves as design variables (dotted paths
such as ``system.chip.tiers.0.bandwidth_bytes_per_s``), each with box bounds, and optimises
them in a transformed space: ``log x`` for positive quantities, ``logit x`` for fractions,
``x`` otherwise. Box bounds are enforced by projection (clipping in the transformed space)
after every optimiser step.

The optimiser minimises an augmented Lagrangian (Powell-Hestenes-Rockafellar form) of the
scalarised objective ``J`` and normalised inequality constraints ``g_i <= 0``::

    L(z; lam, mu) = J(z) + sum_i (max(0, lam_i + mu g_i(z))^2 - lam_i^2) / (2 mu)

with Adam (cosine-decayed learning rate) on ``z`` for ``inner_steps`` steps at fixed
``(lam, mu)``, then ``lam_i <- max(0, lam_i + mu g_i)`` and ``mu <- min(rho mu, mu_max)``
whenever the worst violation did not fall below ``1/4`` of its previous value.
``J = log(objective / objective at the start)`` and ``g = (value - limit) / |limit|`` (upper
limits; mirrored for lower limits), so every term is dimensionless and of order one.

Discrete variables (a set of values such as bits in {2, 3, 4, 6, 8, 16}, integers, TP degrees
dividing the head count) are relaxed to their interval during descent, then rounded to the
nearest allowed value and repaired by a greedy one-step neighbourhood search, and the final
design is re-evaluated with the hard roofline (``Options(roofline="hard")``).

Per-layer mixed precision: a variable with ``per_layer=True`` holds one value per layer. The
accuracy model (:mod:`hwgrad.accuracy`) sees the whole vector with a layer-sensitivity
profile; the cost model, which has scalar bits, sees the parameter-weighted mean stored bits
(exact for bytes moved and held, since every layer is read once per token).

Starts run in parallel under ``vmap``; Pareto fronts are a ``vmap`` over budgets. Random
search and CMA-ES on the same problem (:func:`random_search`, :func:`cma_es`) count model
evaluations for comparison.

Example:
  >>> import hwgrad as hg, hwgrad.codesign as cd
  >>> problem = cd.default_study().problem               # doctest: +SKIP
  >>> run = cd.optimize(problem, steps=300, starts=4)    # doctest: +SKIP
  >>> final = cd.round_and_repair(problem, run.best_values)  # doctest: +SKIP

References:
  Nocedal & Wright, *Numerical Optimization*, 2nd ed., sec. 17.4 (bound-constrained
  augmented Lagrangian). Hansen, "The CMA Evolution Strategy: A Tutorial", arXiv:1604.00772.
"""

from __future__ import annotations

import csv
import dataclasses
import difflib
import hashlib
import math
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from . import accuracy, counts, presets, units
from . import accuracy as accuracy_module
from . import paths as _paths
from .cost import evaluate
from .specs import Compression, Options, Workload

__all__ = [
    "Variable",
    "Constraint",
    "Objective",
    "PriceModel",
    "Problem",
    "RunResult",
    "Design",
    "Study",
    "leaf_paths",
    "optimize",
    "round_and_repair",
    "pareto",
    "random_search",
    "cma_es",
    "default_study",
    "load_study",
    "run_study",
    "register_cli",
]

SPEC_ROOTS = ("system", "model", "workload", "compression", "efficiency", "economics")
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
}
_RESULT_SCALARS = (
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
_DERIVED = (
    "tokens_per_s_per_chip",
    "power_w_per_chip",
    "delta_ppl",
    "delta_loss",
    "chip_price_usd",
    "capex_usd",
    "die_area_mm2",
    "tier0_bandwidth_per_capacity_per_s",
    "capacity",
)
METRICS = _RESULT_SCALARS + _DERIVED


# ----------------------------------------------------------------------------- paths


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


# ----------------------------------------------------------------------------- problem pieces


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
      per_layer: one value per layer (``compression.weight_bits``, ``compression.kv_bits`` or
        ``compression.sparsity`` only).
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
        if self.per_layer and any(p not in _PER_LAYER for p in paths):
            raise ValueError(f"variable {self.name}: per_layer works for {', '.join(_PER_LAYER)} only")

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


_PER_LAYER = ("compression.weight_bits", "compression.kv_bits", "compression.sparsity")


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


@dataclasses.dataclass(frozen=True)
class PriceModel:
    """Chip price as a function of its main-memory capacity and bandwidth.

    ``price = markup * (logic_usd + capacity_GB * usd_per_gb + bandwidth_TB/s * usd_per_tb_per_s)``;
    ``logic_usd`` is solved so that the reference chip costs its catalogue price. Defaults:
    HBM3e 15.1 $/GB, 137 $ per TB/s of interface (B200 CoWoS-L ~$1,100 for 8 TB/s) and the H100
    list-price / manufacturing-cost ratio as markup (all from ``economics.csv``).
    """

    usd_per_gb: float = 15.1
    usd_per_tb_per_s: float = 137.0
    markup: float = 30000.0 / 3320.0
    logic_usd: float = float("nan")

    def calibrated(self, chip) -> PriceModel:
        if math.isfinite(self.logic_usd):
            return self
        t = chip.tiers[0]
        mem = (
            float(t.capacity_bytes) / units.GB * self.usd_per_gb
            + float(t.bandwidth_bytes_per_s) / 1e12 * self.usd_per_tb_per_s
        )
        return dataclasses.replace(self, logic_usd=max(float(chip.price_usd) / self.markup - mem, 0.0))

    def price(self, chip):
        t = chip.tiers[0]
        mem = (
            t.capacity_bytes / units.GB * self.usd_per_gb
            + t.bandwidth_bytes_per_s / 1e12 * self.usd_per_tb_per_s
        )
        return self.markup * (self.logic_usd + mem)


def _layer_params(model) -> np.ndarray:
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
    family: str = "gptq"
    pruner: str = "sparsegpt"
    baseline_ppl: float | None = None
    layer_sensitivity: tuple[float, ...] | None = None


# ----------------------------------------------------------------------------- the problem


class Problem:
    """Design variables, objective and constraints over a base design (see module docstring).

    Args:
      specs: dict with ``system``, ``model``, ``workload``, ``compression`` and optionally
        ``efficiency`` and ``economics`` (defaults: calibrated efficiency, default economics).
      variables: sequence of :class:`Variable`.
      objective: an :class:`Objective` or a metric name.
      constraints: sequence of :class:`Constraint`.
      accuracy: :class:`AccuracySettings` for ``delta_ppl`` / ``delta_loss``.
      price_model: :class:`PriceModel` (chip price follows its memory) or ``None`` (fixed).
      metric_fn: optional ``f(metrics, values) -> metrics`` hook that adds or replaces metrics
        (custom area or price models; tests use it to inject analytic functions).
      model_metrics: ``False`` skips the hwgrad model and starts ``metric_fn`` from an empty
        dict (pure analytic problems).
    """

    def __init__(
        self,
        specs,
        variables,
        objective="usd_per_million_tokens",
        constraints=(),
        accuracy=AccuracySettings(),
        price_model=None,
        metric_fn=None,
        model_metrics=True,
    ):
        specs = dict(specs)
        if "efficiency" not in specs or specs["efficiency"] is None:
            from .calibrated import calibrated_efficiency

            specs["efficiency"] = calibrated_efficiency()
        if "economics" not in specs or specs["economics"] is None:
            specs["economics"] = presets.default_economics()
        self.specs = jax.tree_util.tree_map(lambda x: jnp.asarray(x, dtype=float), specs)
        self.variables = tuple(variables)
        if not self.variables:
            raise ValueError("codesign: no design variables; add at least one [[variables]] entry")
        for v in self.variables:
            for p in v.paths:
                get_path(self.specs, p)
        seen = [p for v in self.variables for p in v.paths]
        dup = {p for p in seen if seen.count(p) > 1}
        if dup:
            raise ValueError(
                f"codesign: path(s) {sorted(dup)} appear in more than one variable; tie them in one"
            )
        from .validate import check_bound

        for v in self.variables:
            for path in v.paths:
                for end, bound in (("lower", v.lower), ("upper", v.upper)):
                    try:
                        check_bound(path, bound)
                    except ValueError as exc:
                        raise ValueError(f"variable {v.name}: {end} bound {exc}") from None
        self.objective = Objective(((objective, 1.0),)) if isinstance(objective, str) else objective
        self.constraints = tuple(constraints)
        self.accuracy = accuracy
        # load the fitted constants outside any trace: accuracy.load_fit caches its result,
        # and a first call under jit would cache tracers
        self.accuracy_fit = accuracy_module.load_fit()
        model = self.specs["model"]
        self.n_layers = int(float(model.n_layers))
        self.params_b = float(counts.param_count(model)) / 1e9
        w = _layer_params(model)
        self.layer_weights = jnp.asarray(w / w.sum())
        prof = accuracy.layer_sensitivity or tuple(default_layer_sensitivity(self.n_layers))
        if len(prof) != self.n_layers:
            raise ValueError(
                f"accuracy.layer_sensitivity has {len(prof)} entries; the model has {self.n_layers} layers"
            )
        self.layer_sensitivity = jnp.asarray(prof, dtype=float)
        self.price_model = price_model.calibrated(self.specs["system"].chip) if price_model else None
        self.metric_fn = metric_fn
        self.model_metrics = model_metrics
        self._cache = {}
        self.sizes = tuple(self.n_layers if v.per_layer else 1 for v in self.variables)
        self.offsets = tuple(int(x) for x in np.cumsum((0,) + self.sizes))
        self.dim = self.offsets[-1]
        lo, hi = [], []
        for v, n in zip(self.variables, self.sizes, strict=True):
            a, b = v.z_bounds()
            lo += [a] * n
            hi += [b] * n
        self.z_lower, self.z_upper = jnp.asarray(lo), jnp.asarray(hi)
        self.constraint_names = tuple(self._constraint_names())
        self.start_values = self.values_from_specs()
        self.z0 = self.to_z(self.start_values)
        ref = self.batch_metrics(self.z0[None])
        self.reference = {m: float(v[0]) for m, v in ref.items() if m in OBJECTIVES}
        for m, _ in self.objective.weights:
            ref = self.reference[m]
            if not (math.isfinite(ref) and ref > 0):
                raise ValueError(
                    f"objective {m} = {ref:g} at the starting design: it must be finite and > 0 "
                    "(a chip price or TDP may be unknown; set them in the base design)"
                )

    # -- variables <-> z
    def values_from_specs(self) -> dict:
        out = {}
        for v in self.variables:
            x = jnp.asarray(get_path(self.specs, v.paths[0]), dtype=float)
            x = jnp.clip(x, v.lower, v.upper)
            out[v.name] = jnp.full((self.n_layers,), x) if v.per_layer else x
        return out

    def to_z(self, values: dict):
        return jnp.concatenate([jnp.ravel(v.to_z(values[v.name])) for v in self.variables])

    def from_z(self, z) -> dict:
        out = {}
        for v, a, b in zip(self.variables, self.offsets[:-1], self.offsets[1:], strict=True):
            x = v.from_z(z[a:b])
            out[v.name] = x if v.per_layer else x[0]
        return out

    def project(self, z):
        return jnp.clip(z, self.z_lower, self.z_upper)

    # -- values -> specs -> metrics
    def specs_at(self, values: dict):
        """Specs with the design values set; per-layer vectors become cost-model scalars."""
        specs = self.specs
        layer = {}
        for v in self.variables:
            for p in v.paths:
                if v.per_layer:
                    layer[p] = values[v.name]
                else:
                    specs = set_path(specs, p, values[v.name])
        if layer:
            c = specs["compression"]
            w = self.layer_weights
            bits = layer.get("compression.weight_bits", jnp.full(self.n_layers, c.weight_bits))
            sp = layer.get("compression.sparsity", jnp.full(self.n_layers, c.sparsity))
            kv = layer.get("compression.kv_bits", jnp.full(self.n_layers, c.kv_bits))
            o = c.weight_overhead_bits
            if c.pattern == "dense":
                mean_bits, mean_sp = jnp.sum(w * bits), jnp.asarray(0.0)
            else:
                mean_sp = jnp.sum(w * sp)
                mean_bits = jnp.sum(w * (1 - sp) * (bits + o)) / (1 - mean_sp) - o
            # every layer caches the same number of KV elements: the plain mean is exact
            c = dataclasses.replace(c, weight_bits=mean_bits, sparsity=mean_sp, kv_bits=jnp.mean(kv))
            specs = {**specs, "compression": c}
            layer = {"weight_bits": bits, "sparsity": sp, "kv_bits": kv}
        if self.price_model is not None:
            chip = specs["system"].chip
            chip = dataclasses.replace(chip, price_usd=self.price_model.price(chip))
            specs = set_path(specs, "system.chip", chip)
        return specs, layer

    def metrics(self, values: dict, options: Options = Options()) -> dict:
        if not self.model_metrics:
            return self.metric_fn({}, values)
        specs, layer = self.specs_at(values)
        s, c = specs["system"], specs["compression"]
        r = evaluate(
            s, specs["model"], specs["workload"], c, specs["efficiency"], specs["economics"], options
        )
        m = {k: getattr(r, k) for k in _RESULT_SCALARS}
        m["tokens_per_s_per_chip"] = r.tokens_per_s / s.n_chips
        m["power_w_per_chip"] = r.power_w / s.n_chips
        acc_kw = dict(
            params_b=self.params_b,
            family=self.accuracy.family,
            pruner=self.accuracy.pruner,
            fit=self.accuracy_fit,
            pattern=c.pattern if c.pattern != "dense" else "unstructured",
        )
        if layer:
            args = (layer["weight_bits"], layer["kv_bits"], c.act_bits, layer["sparsity"])
            acc_kw["layer_sensitivity"] = self.layer_sensitivity
        else:
            args = (c.weight_bits, c.kv_bits, c.act_bits, c.sparsity if c.pattern != "dense" else 0.0)
        m["delta_loss"] = accuracy.delta_loss(*args, **acc_kw)
        m["delta_ppl"] = accuracy.delta_ppl(*args, baseline_ppl=self.accuracy.baseline_ppl, **acc_kw)
        m["chip_price_usd"] = s.chip.price_usd
        m["capex_usd"] = s.n_chips * s.chip.price_usd
        m["die_area_mm2"] = s.chip.die_area_mm2
        t0 = s.chip.tiers[0]
        m["tier0_bandwidth_per_capacity_per_s"] = t0.bandwidth_bytes_per_s / t0.capacity_bytes
        caps = jnp.stack([t.capacity_bytes for t in s.chip.tiers])
        m["capacity"] = jnp.where(
            jnp.isfinite(caps), r.capacity_used_bytes / jnp.where(jnp.isfinite(caps), caps, 1.0), 0.0
        )
        for con in self.constraints:
            if con.metric.startswith(SPEC_ROOTS):
                m[con.metric] = get_path(specs, con.metric)
        if self.metric_fn is not None:
            m = self.metric_fn(m, values)
        return m

    def metrics_z(self, z, options: Options = Options()) -> dict:
        return self.metrics(self.from_z(z), options)

    def batch_metrics(self, z, options: Options = Options()) -> dict:
        """Metrics of a ``(N, D)`` batch of transformed points (one compile per problem and
        options, cached), as numpy arrays."""
        key = ("metrics", options)
        if key not in self._cache:
            self._cache[key] = jax.jit(
                lambda zb: jax.lax.map(lambda q: self.metrics_z(q, options), zb, batch_size=128)
            )
        return jax.tree_util.tree_map(np.asarray, self._cache[key](jnp.asarray(z)))

    # -- objective and constraints
    def objective_value(self, m: dict):
        """``J``: the scalarised log objective, 0 at the starting design."""
        obj = self.objective
        terms = jnp.stack(
            [
                w * OBJECTIVES[name] * (jnp.log(m[name]) - math.log(self.reference[name]))
                for name, w in obj.weights
            ]
        )
        if obj.kind == "chebyshev":
            t = obj.chebyshev_temperature
            return t * jax.nn.logsumexp(terms / t)
        return jnp.sum(terms)

    def _constraint_names(self):
        n_tiers = len(self.specs["system"].chip.tiers)
        for con in self.constraints:
            if con.metric == "capacity":
                yield from (f"capacity[tier {i}]" for i in range(n_tiers))
                continue
            if con.upper is not None:
                yield f"{con.metric} <= {con.upper:g}"
            if con.lower is not None:
                yield f"{con.metric} >= {con.lower:g}"

    def default_limits(self):
        lim = []
        for con in self.constraints:
            if con.metric == "capacity":
                lim += [1.0] * len(self.specs["system"].chip.tiers)
                continue
            lim += [x for x in (con.upper, con.lower) if x is not None]
        return jnp.asarray(lim, dtype=float)

    def constraint_values(self, m: dict, limits):
        """Normalised ``g`` (``<= 0`` is feasible), one entry per :attr:`constraint_names`."""
        g, i = [], 0
        for con in self.constraints:
            if con.metric == "capacity":
                n = len(self.specs["system"].chip.tiers)
                g.append(m["capacity"] / limits[i : i + n] - 1.0)
                i += n
                continue
            v = m[con.metric]
            if con.upper is not None:
                g.append(jnp.atleast_1d((v - limits[i]) / jnp.abs(limits[i])))
                i += 1
            if con.lower is not None:
                g.append(jnp.atleast_1d((limits[i] - v) / jnp.abs(limits[i])))
                i += 1
        return jnp.concatenate(g) if g else jnp.zeros(0)

    def fingerprint(self) -> str:
        desc = repr(
            (
                [dataclasses.astuple(v) for v in self.variables],
                self.objective,
                self.constraints,
                self.accuracy,
                self.price_model,
                [np.asarray(x).tolist() for x in jax.tree_util.tree_leaves(self.specs)],
                str(jax.tree_util.tree_structure(self.specs)),
            )
        )
        return hashlib.sha256(desc.encode()).hexdigest()[:16]


# ----------------------------------------------------------------------------- optimiser


@dataclasses.dataclass
class RunResult:
    """Outcome of :func:`optimize` (relaxed, continuous designs).

    Attributes:
      z: ``(S, D)`` final transformed variables, one row per start.
      objective: ``(S,)`` objective metric value (first objective metric) per start.
      violation: ``(S,)`` worst normalised constraint value ``max(0, g)``.
      best: index of the best start (feasible first, then lowest ``J``).
      best_values: design values of the best start.
      trajectory: rows ``(step, start, J, objective, violation, lagrangian)``.
      nan_steps: steps at which a start's loss or gradient was not finite (skipped).
      evaluations: gradient evaluations (one per start per step).
      wall_s: wall time of the descent (including compilation).
    """

    z: Any
    objective: Any
    violation: Any
    best: int
    best_values: dict
    trajectory: list
    nan_steps: int
    evaluations: int
    wall_s: float
    limits: Any = None


def _start_points(problem: Problem, starts: int, seed: int, spread: float):
    """Start 0 is the base design; others are uniform in the transformed box mixed with it."""
    rng = np.random.default_rng(seed)
    lo, hi = np.asarray(problem.z_lower), np.asarray(problem.z_upper)
    z0 = np.asarray(problem.project(problem.z0))
    u = lo + (hi - lo) * rng.uniform(size=(starts, problem.dim))
    z = (1 - spread) * z0 + spread * u
    z[0] = z0
    return jnp.asarray(z)


def _lr_at(t, lr, total, alpha=0.05):
    """Cosine decay from ``lr`` to ``alpha lr`` over ``total`` steps."""
    frac = jnp.minimum(t / jnp.maximum(total, 1.0), 1.0)
    return lr * (alpha + (1 - alpha) * 0.5 * (1 + jnp.cos(jnp.pi * frac)))


def _make_fns(problem: Problem, inner_steps: int):
    """Compiled chunk of ``inner_steps`` descent steps, cached on the problem so that runs with
    other step counts, learning rates, limits or penalties (but the same number of starts)
    reuse one compiled program."""
    key = ("chunk", inner_steps)
    if key in problem._cache:
        return problem._cache[key]
    adam = optax.scale_by_adam()

    def lagrangian(z, lam, mu, limits):
        m = problem.metrics_z(z)
        J = problem.objective_value(m)
        g = problem.constraint_values(m, limits)
        pen = jnp.sum(jnp.maximum(0.0, lam + mu * g) ** 2 - lam**2) / (2.0 * mu)
        first = problem.objective.weights[0][0]
        return J + pen, (J, m[first], g)

    vg = jax.vmap(jax.value_and_grad(lagrangian, has_aux=True))

    def step(carry, _):
        z, z_ok, opt_state, lam, mu, limits, nan_steps, t, lr, total = carry
        (loss, (J, obj, g)), grad = vg(z, lam, mu, limits)
        finite = jnp.isfinite(loss) & jnp.all(jnp.isfinite(grad), axis=-1)
        # the optimiser never sees a NaN: a start whose loss or gradient is not finite skips
        # the Adam update and steps halfway back to its last finite point
        grad = jnp.where(finite[:, None], grad, 0.0)
        updates, new_state = adam.update(grad, opt_state, z)
        f2 = finite[:, None]
        new_z = jnp.where(f2, problem.project(z - _lr_at(t, lr, total) * updates), 0.5 * (z + z_ok))
        z_ok = jnp.where(f2, z, z_ok)
        new_state = jax.tree_util.tree_map(
            lambda new, old: jnp.where(f2, new, old) if new.ndim == 2 else new, new_state, opt_state
        )
        g = jnp.where(jnp.isfinite(g), g, 0.0)
        viol = jnp.max(jnp.maximum(g, 0.0), axis=-1, initial=0.0)
        carry = (new_z, z_ok, new_state, lam, mu, limits, nan_steps + jnp.sum(~finite), t + 1.0, lr, total)
        return carry, (J, obj, viol, g)

    @jax.jit
    def chunk(carry, prev_viol, rho, mu_max):
        carry, (J, obj, viol, g) = jax.lax.scan(step, carry, None, length=inner_steps)
        z, z_ok, opt_state, lam, mu, limits, nan_steps, t, lr, total = carry
        # multiplier update from the constraints at the last inner step
        g_last = g[-1]
        new_lam = jnp.maximum(0.0, lam + mu[:, None] * g_last)
        grow = viol[-1] > 0.25 * prev_viol
        new_mu = jnp.where(grow, jnp.minimum(mu * rho, mu_max), mu)
        carry = (z, z_ok, opt_state, new_lam, new_mu, limits, nan_steps, t, lr, total)
        return carry, viol[-1], (J, obj, viol)

    problem._cache[key] = (adam, chunk)
    return adam, chunk


_CHECKPOINT_KEYS = (
    "z",
    "z_ok",
    "lam",
    "mu",
    "prev_viol",
    "limits",
    "nan_steps",
    "trajectory",
    "chunks_done",
    "fingerprint",
)


def _checkpoint_digest(arrays: dict) -> str:
    """SHA-256 over every array of a checkpoint (name, dtype, shape, bytes), the study
    fingerprint included."""
    import hashlib

    h = hashlib.sha256()
    for k in sorted(arrays):
        a = np.ascontiguousarray(arrays[k])
        h.update(f"{k}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _save_checkpoint(path: Path, state: dict) -> None:
    """Atomic and checked: a temporary file in the same directory (with the SHA-256 of its
    payload), fsync, ``os.replace``, directory fsync."""
    from .files import fsync_dir

    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {k: np.asarray(v) for k, v in state.items()}
    arrays["checksum"] = np.asarray(_checkpoint_digest(arrays))
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def _load_checkpoint(path: Path) -> dict:
    """A checkpoint written by :func:`_save_checkpoint`, or a one-line ``ValueError`` naming
    the file (truncated, empty, not a checkpoint, edited, or missing fields)."""
    fix = "delete it (or choose another --out) and rerun without --resume"
    try:
        with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except OSError as exc:
        raise ValueError(f"checkpoint {path}: cannot read ({exc.strerror or exc}); {fix}") from None
    except Exception as exc:  # noqa: BLE001 - zip / npy errors of a damaged file, pickled objects
        kind = "holds Python objects" if "pickle" in str(exc) else "is damaged or not an hwgrad checkpoint"
        raise ValueError(f"checkpoint {path} {kind} ({type(exc).__name__}); {fix}") from None
    missing = [k for k in (*_CHECKPOINT_KEYS, "checksum") if k not in arrays]
    if missing:
        raise ValueError(
            f"checkpoint {path} lacks {', '.join(missing)}: damaged or not an hwgrad checkpoint; {fix}"
        )
    digest = str(arrays.pop("checksum"))
    if _checkpoint_digest(arrays) != digest:
        raise ValueError(f"checkpoint {path} fails its checksum (edited or corrupted); {fix}")
    return arrays


def optimize(
    problem: Problem,
    steps: int = 400,
    starts: int = 4,
    *,
    lr: float = 0.05,
    seed: int = 0,
    spread: float = 0.5,
    inner_steps: int = 50,
    mu0: float = 10.0,
    rho: float = 3.0,
    mu_max: float = 1e4,
    limits=None,
    z_init=None,
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every: int = 100,
    resume: bool = False,
    progress: bool = False,
    feasibility_tol: float = 1e-3,
) -> RunResult:
    """Augmented-Lagrangian Adam descent from ``starts`` points in parallel (``vmap``).

    Args:
      problem: the :class:`Problem`.
      steps: optimiser steps (rounded up to a multiple of ``inner_steps``).
      starts: parallel starts; start 0 is the base design, the others random in the box.
      lr: peak Adam learning rate in transformed units (0.05 = 5 % per step in log space),
        cosine-decayed to 5 % of itself over ``steps``.
      inner_steps: steps between multiplier updates (the augmented-Lagrangian schedule).
      mu0, rho, mu_max: initial penalty, its growth factor and its cap.
      limits: ``(S, n_constraints)`` or ``(n_constraints,)`` constraint limits (default: the
        problem's); a batch of limits traces a Pareto front.
      z_init: ``(S, D)`` explicit start points (transformed).
      checkpoint: ``.npz`` path written atomically every ``checkpoint_every`` steps (rounded
        up to a multiple of ``inner_steps``) and on Ctrl-C; ``resume`` continues from it and
        reaches the same result as an uninterrupted run.
      progress: show a tqdm bar (step, objective, violation).
      feasibility_tol: violation below which a start counts as feasible.
    """
    t_start = time.perf_counter()
    n_chunks = max(1, math.ceil(steps / inner_steps))
    steps = n_chunks * inner_steps
    every = max(1, math.ceil(checkpoint_every / inner_steps))
    z = _start_points(problem, starts, seed, spread) if z_init is None else jnp.asarray(z_init)
    S = z.shape[0]
    limits = problem.default_limits() if limits is None else jnp.asarray(limits, dtype=float)
    limits = jnp.broadcast_to(limits, (S, limits.shape[-1]))
    adam, chunk = _make_fns(problem, inner_steps)
    opt_state = adam.init(z)
    n_con = len(problem.constraint_names)
    lam = jnp.zeros((S, n_con))
    mu = jnp.full((S,), float(mu0))
    prev_viol = jnp.full((S,), jnp.inf)
    nan_steps = jnp.asarray(0)
    z_ok = z
    traj = np.zeros((0, S, 3))
    done = 0
    fp = problem.fingerprint() + f"-{steps}-{S}-{lr}-{seed}-{spread}-{inner_steps}-{mu0}-{rho}-{mu_max}"
    ckpt = Path(checkpoint) if checkpoint is not None else None
    leaves, treedef = jax.tree_util.tree_flatten(opt_state)
    if resume and ckpt is not None and ckpt.exists():
        data = _load_checkpoint(ckpt)
        if str(data["fingerprint"]) != fp:
            raise ValueError(
                f"checkpoint {ckpt} was written by a different study or settings; "
                "rerun without --resume (or with the original --steps) to start over"
            )
        bad = [k for k in ("z", "z_ok") if data[k].shape != z.shape]
        bad += [
            f"opt_{i}" for i, x in enumerate(leaves) if data.get(f"opt_{i}", np.zeros(0)).shape != np.shape(x)
        ]
        done = int(data["chunks_done"]) if data["chunks_done"].shape == () else -1
        if not 0 <= done <= n_chunks:
            bad.append("chunks_done")
        elif data["trajectory"].shape != (done * inner_steps, S, 3):
            bad.append("trajectory")
        if bad:
            raise ValueError(
                f"checkpoint {ckpt}: {', '.join(bad)} do not fit this study (damaged); delete it and rerun "
                "without --resume"
            )
        z, z_ok, lam, mu, prev_viol = (jnp.asarray(data[k]) for k in ("z", "z_ok", "lam", "mu", "prev_viol"))
        limits = jnp.asarray(data["limits"])
        nan_steps = jnp.asarray(data["nan_steps"])
        opt_state = jax.tree_util.tree_unflatten(
            treedef, [jnp.asarray(data[f"opt_{i}"]) for i in range(len(leaves))]
        )
        traj = data["trajectory"]

    def state_dict():
        lv = jax.tree_util.tree_leaves(opt_state)
        return dict(
            z=z,
            z_ok=z_ok,
            lam=lam,
            mu=mu,
            prev_viol=prev_viol,
            limits=limits,
            nan_steps=nan_steps,
            trajectory=traj,
            chunks_done=done,
            fingerprint=np.asarray(fp),
            **{f"opt_{i}": x for i, x in enumerate(lv)},
        )

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=steps, initial=done * inner_steps, desc="codesign", unit="step", dynamic_ncols=True)
    try:
        while done < n_chunks:
            carry = (
                z,
                z_ok,
                opt_state,
                lam,
                mu,
                limits,
                nan_steps,
                jnp.asarray(float(done * inner_steps)),
                jnp.asarray(float(lr)),
                jnp.asarray(float(steps)),
            )
            carry, pv_n, (J, obj, viol) = chunk(carry, prev_viol, float(rho), float(mu_max))
            rows = np.stack([np.asarray(J), np.asarray(obj), np.asarray(viol)], axis=-1)
            # commit the chunk only once it is complete (Ctrl-C in between keeps the old state)
            z, z_ok, opt_state, lam, mu, _, nan_steps = carry[:7]
            prev_viol = pv_n
            traj = np.concatenate([traj, rows], axis=0)
            done += 1
            if bar is not None:
                last = rows[-1]
                k = int(np.argmin(np.where(last[:, 2] <= feasibility_tol, last[:, 0], 1e6 + last[:, 2])))
                bar.update(inner_steps)
                bar.set_postfix(objective=f"{last[k, 1]:.4g}", violation=f"{last[:, 2].min():.2e}")
            if ckpt is not None and (done % every == 0 or done == n_chunks):
                _save_checkpoint(ckpt, state_dict())
    except KeyboardInterrupt:
        if ckpt is not None:
            _save_checkpoint(ckpt, state_dict())
        raise
    finally:
        if bar is not None:
            bar.close()

    m = problem.batch_metrics(z)
    J = np.asarray(jax.vmap(problem.objective_value)(m))
    if not np.all(np.isfinite(J)):  # a start that ended on a non-finite point returns its last finite one
        z = jnp.where(jnp.asarray(np.isfinite(J))[:, None], z, z_ok)
        m = problem.batch_metrics(z)
        J = np.asarray(jax.vmap(problem.objective_value)(m))
    g = np.asarray(jax.vmap(problem.constraint_values)(m, limits))
    viol = np.max(np.maximum(np.where(np.isfinite(g), g, np.inf), 0.0), axis=-1, initial=0.0)
    key = np.where(viol <= feasibility_tol, J, 1e6 + viol)
    key = np.where(np.isfinite(key), key, np.inf)
    best = int(np.argmin(key))
    first = problem.objective.weights[0][0]
    trajectory = [
        (i, s, *map(float, traj[i, s, :3])) for i in range(traj.shape[0]) for s in range(traj.shape[1])
    ]
    return RunResult(
        z=z,
        objective=np.asarray(m[first]),
        violation=viol,
        best=best,
        best_values=problem.from_z(z[best]),
        trajectory=trajectory,
        nan_steps=int(nan_steps),
        evaluations=int(traj.shape[0] * S),
        wall_s=time.perf_counter() - t_start,
        limits=limits,
    )


# ----------------------------------------------------------------------------- rounding


@dataclasses.dataclass
class Design:
    """A rounded, repaired design re-evaluated with the hard roofline.

    Attributes:
      values: design values (natural units; per-layer variables are arrays).
      metrics: hard-roofline metrics (floats; ``capacity`` per tier).
      constraints: ``name -> (value, limit, g)`` for every constraint.
      feasible: every ``g <= tol``.
      binding: names of constraints that are violated, or active (``|g| <= 1 %``).
      report: one line: feasible, or the violated constraints and how far off they are.
    """

    values: dict
    metrics: dict
    constraints: dict
    feasible: bool
    binding: list
    report: str
    objective: float
    evaluations: int = 0


def _flat_discrete(problem: Problem):
    """``(index in z, allowed values in z space)`` for every discrete coordinate."""
    out = []
    for v, a, n in zip(problem.variables, problem.offsets[:-1], problem.sizes, strict=True):
        allowed = v.allowed()
        if allowed is None:
            continue
        zs = np.asarray(v.to_z(allowed))
        out += [(a + k, zs) for k in range(n)]
    return out


def _describe(problem: Problem, m: dict, g: np.ndarray, limits: np.ndarray) -> dict:
    out, i = {}, 0
    for con in problem.constraints:
        if con.metric == "capacity":
            for t, u in enumerate(np.atleast_1d(m["capacity"])):
                out[f"capacity[tier {t}]"] = (float(u), 1.0, float(g[i]))
                i += 1
            continue
        for side in (con.upper, con.lower):
            if side is not None:
                out[problem.constraint_names[i]] = (float(m[con.metric]), float(limits[i]), float(g[i]))
                i += 1
    return out


def infeasibility_report(problem: Problem, cons: dict, tol: float = 1e-3) -> str:
    bad = [(n, v, lim, g) for n, (v, lim, g) in cons.items() if g > tol]
    if not bad:
        return "feasible"
    parts = [
        f"{n.split(' ')[0]} = {v:.4g} vs limit {lim:.4g} ({100 * g:+.1f} % over)"
        for n, v, lim, g in sorted(bad, key=lambda b: -b[3])
    ]
    return (
        "infeasible after rounding and repair: "
        + "; ".join(parts)
        + ": relax these budgets or widen the bounds of the variables that sit at a bound"
    )


def round_and_repair(
    problem: Problem,
    values: dict,
    limits=None,
    *,
    max_passes: int = 60,
    tol: float = 0.0,
    batch: int = 256,
) -> Design:
    """Round discrete variables, repair greedily, and re-evaluate with the hard roofline.

    Rounding takes the nearest allowed value in the variable's transformed space. The repair
    then moves one discrete coordinate by one allowed level at a time: while infeasible, the
    move that most reduces the total violation ``sum max(0, g)``; once feasible, the move that
    most lowers the objective among moves that stay feasible; until no move helps.
    Continuous variables keep their relaxed values.
    """
    limits = problem.default_limits() if limits is None else jnp.asarray(limits, dtype=float)
    z = np.asarray(problem.to_z(values), dtype=float)
    disc = _flat_discrete(problem)
    for idx, zs in disc:
        z[idx] = zs[np.argmin(np.abs(zs - z[idx]))]

    key = ("score", tol, batch)
    if key not in problem._cache:

        def one(zz, lim):
            m = problem.metrics_z(zz, HARD)
            g = problem.constraint_values(m, lim)
            J = problem.objective_value(m)
            sv = jnp.sum(jnp.maximum(g - tol, 0.0))
            return jnp.where(jnp.isfinite(J), J, jnp.inf), jnp.where(jnp.isnan(sv), jnp.inf, sv)

        problem._cache[key] = jax.jit(
            lambda zb, lim: jax.lax.map(lambda q: one(q, lim), zb, batch_size=batch)
        )
    score_fn = problem._cache[key]

    def score(zb):
        return score_fn(zb, limits)

    evaluations = 1
    J, sv = (float(x[0]) for x in score(jnp.asarray(np.repeat(z[None], batch, 0))))
    for _ in range(max_passes if disc else 0):
        cands = []
        for idx, zs in disc:
            k = int(np.argmin(np.abs(zs - z[idx])))
            for j in (k - 1, k + 1):
                if 0 <= j < len(zs):
                    c = z.copy()
                    c[idx] = zs[j]
                    cands.append(c)
        if not cands:
            break
        cz = np.stack(cands)
        # pad to a fixed batch multiple so the compiled program is reused
        n = len(cz)
        pad = (-n) % batch
        cJ, cs = score(jnp.asarray(np.concatenate([cz, np.repeat(cz[-1:], pad, 0)])))
        cJ, cs = np.asarray(cJ)[:n], np.asarray(cs)[:n]
        evaluations += n
        if sv > 0:
            order = np.lexsort((cJ, cs))
            k = order[0]
            if cs[k] >= sv - 1e-12:
                break
        else:
            ok = np.where(cs <= 0, cJ, np.inf)
            k = int(np.argmin(ok))
            if not ok[k] < J - 1e-9:
                break
        z, J, sv = cz[k], float(cJ[k]), float(cs[k])
    vals = problem.from_z(jnp.asarray(z))
    m = jax.tree_util.tree_map(lambda a: a[0], problem.batch_metrics(z[None], HARD))
    g = np.asarray(problem.constraint_values(m, limits))
    cons = _describe(problem, m, g, np.asarray(limits))
    feasible = bool(np.all(g <= tol))
    binding = [n for n, (_, _, gi) in cons.items() if gi > -0.01]
    first = problem.objective.weights[0][0]
    return Design(
        values={k: np.asarray(v) for k, v in vals.items()},
        metrics=m,
        constraints=cons,
        feasible=feasible,
        binding=binding,
        report=infeasibility_report(problem, cons, tol),
        objective=float(m[first]),
        evaluations=evaluations,
    )


def fix_discrete(problem: Problem, design: Design) -> Problem | None:
    """A problem over the continuous variables only, with the discrete ones fixed at ``design``."""
    specs = problem.specs
    keep = []
    for v in problem.variables:
        if v.discrete and not v.per_layer:
            for p in v.paths:
                specs = set_path(specs, p, jnp.asarray(float(design.values[v.name])))
        elif not v.discrete:
            keep.append(v)
    if not keep or any(v.per_layer and v.discrete for v in problem.variables):
        return None
    for v in keep:
        specs = set_path(specs, v.paths[0], jnp.asarray(np.clip(design.values[v.name], v.lower, v.upper)))
    sub = Problem(
        specs, keep, problem.objective, problem.constraints, problem.accuracy, None, problem.metric_fn
    )
    sub.price_model = problem.price_model
    sub.reference = problem.reference
    return sub


# ----------------------------------------------------------------------------- Pareto


def pareto(problem: Problem, constraint: str, budgets: Sequence[float], steps: int = 300, **kw) -> list[dict]:
    """Sweep one constraint's limit over ``budgets`` (one ``vmap``-ed descent per budget).

    Returns one dict per budget: the budget, the relaxed optimum's objective and violation,
    and the rounded-and-repaired hard-roofline objective and feasibility.
    """
    names = problem.constraint_names
    idx = [i for i, n in enumerate(names) if n.startswith(constraint)]
    if not idx:
        raise ValueError(f"pareto: no constraint on {constraint!r}; constraints are {', '.join(names)}")
    base = np.asarray(problem.default_limits())
    limits = np.repeat(base[None], len(budgets), 0)
    limits[:, idx[0]] = budgets
    z = jnp.repeat(problem.z0[None], len(budgets), 0)
    run = optimize(problem, steps, limits=limits, z_init=z, **kw)
    out = []
    for s, b in enumerate(budgets):
        d = round_and_repair(problem, problem.from_z(run.z[s]), limits[s])
        out.append(
            dict(
                budget=float(b),
                relaxed_objective=float(run.objective[s]),
                relaxed_violation=float(run.violation[s]),
                objective=d.objective,
                feasible=d.feasible,
            )
        )
    return out


# ----------------------------------------------------------------------------- black-box baselines


def _merit_fn(problem: Problem, batch: int, tol: float, penalty: float):
    limits = problem.default_limits()

    def one(z):
        m = problem.metrics_z(z)
        J = problem.objective_value(m)
        g = problem.constraint_values(m, limits)
        v = jnp.max(jnp.maximum(g, 0.0), initial=0.0)
        obj = m[problem.objective.weights[0][0]]
        merit = J + penalty * jnp.sum(jnp.maximum(g, 0.0))
        ok = jnp.isfinite(merit)
        return jnp.where(ok, merit, jnp.inf), jnp.where(ok & (v <= tol), obj, jnp.inf)

    return jax.jit(lambda zb: jax.lax.map(one, zb, batch_size=batch))


def random_search(problem: Problem, evaluations: int, *, seed: int = 0, batch: int = 4096, tol: float = 1e-3):
    """Uniform random search in the transformed box.

    Returns ``(best_values, history)`` where ``history[k]`` is the best feasible objective
    after ``k + 1`` evaluations (``inf`` until a feasible point is found).
    """
    rng = np.random.default_rng(seed)
    f = _merit_fn(problem, min(batch, 512), tol, 100.0)
    lo, hi = np.asarray(problem.z_lower), np.asarray(problem.z_upper)
    hist, best, best_z = [], np.inf, np.asarray(problem.z0)
    done = 0
    while done < evaluations:
        n = min(batch, evaluations - done)
        zb = lo + (hi - lo) * rng.uniform(size=(batch, problem.dim))
        _, obj = f(jnp.asarray(zb))
        obj = np.asarray(obj)[:n]
        k = int(np.argmin(obj))
        if obj[k] < best:
            best, best_z = float(obj[k]), zb[k]
        hist.append(np.minimum.accumulate(np.minimum(obj, hist[-1][-1] if hist else np.inf)))
        done += n
    return problem.from_z(jnp.asarray(best_z)), np.concatenate(hist)


def cma_es(
    problem: Problem,
    evaluations: int,
    *,
    seed: int = 0,
    sigma0: float = 0.3,
    popsize: int | None = None,
    tol: float = 1e-3,
    penalty: float = 100.0,
    x0=None,
):
    """(mu/mu_w, lambda)-CMA-ES (Hansen's tutorial, default parameters) on the box rescaled to
    [0, 1]^D, minimising ``J + penalty * sum max(0, g)``; infeasible boundary samples are
    clipped. Returns ``(best_values, history)`` like :func:`random_search`.
    """
    rng = np.random.default_rng(seed)
    n = problem.dim
    lam = popsize or 4 + int(3 * math.log(n))
    mu = lam // 2
    w = np.log(mu + 0.5) - np.log(np.arange(1, mu + 1))
    w /= w.sum()
    mueff = 1 / np.sum(w**2)
    cc = (4 + mueff / n) / (n + 4 + 2 * mueff / n)
    cs = (mueff + 2) / (n + mueff + 5)
    c1 = 2 / ((n + 1.3) ** 2 + mueff)
    cmu = min(1 - c1, 2 * (mueff - 2 + 1 / mueff) / ((n + 2) ** 2 + mueff))
    damps = 1 + 2 * max(0, math.sqrt((mueff - 1) / (n + 1)) - 1) + cs
    chin = math.sqrt(n) * (1 - 1 / (4 * n) + 1 / (21 * n**2))
    lo, hi = np.asarray(problem.z_lower), np.asarray(problem.z_upper)
    start = np.asarray(problem.project(problem.z0)) if x0 is None else np.asarray(x0)
    mean = (start - lo) / (hi - lo)
    sigma, pc, ps = sigma0, np.zeros(n), np.zeros(n)
    B, D, C = np.eye(n), np.ones(n), np.eye(n)
    eigen_every = max(1, int(1 / (c1 + cmu) / n / 10))
    f = _merit_fn(problem, lam, tol, penalty)
    hist, best, best_z, gen, done = [], np.inf, start, 0, 0
    while done < evaluations:
        arz = rng.standard_normal((lam, n))
        ary = arz * D @ B.T
        x = np.clip(mean + sigma * ary, 0.0, 1.0)
        zb = lo + (hi - lo) * x
        merit, obj = (np.asarray(a) for a in f(jnp.asarray(zb)))
        take = min(lam, evaluations - done)
        k = int(np.argmin(obj))
        if obj[k] < best:
            best, best_z = float(obj[k]), zb[k]
        hist.append(np.minimum.accumulate(np.minimum(obj[:take], hist[-1][-1] if hist else np.inf)))
        done += take
        merit = np.where(np.isfinite(merit), merit, 1e30)
        order = np.argsort(merit)[:mu]
        y_sel = (x[order] - mean) / sigma
        old = mean
        mean = mean + sigma * (w @ y_sel)
        ymean = (mean - old) / sigma
        inv_sqrt_c_y = B @ ((B.T @ ymean) / D)
        ps = (1 - cs) * ps + math.sqrt(cs * (2 - cs) * mueff) * inv_sqrt_c_y
        gen += 1
        hsig = np.linalg.norm(ps) / math.sqrt(1 - (1 - cs) ** (2 * gen)) / chin < 1.4 + 2 / (n + 1)
        pc = (1 - cc) * pc + hsig * math.sqrt(cc * (2 - cc) * mueff) * ymean
        C = (
            (1 - c1 - cmu) * C
            + c1 * (np.outer(pc, pc) + (1 - hsig) * cc * (2 - cc) * C)
            + cmu * (y_sel.T * w) @ y_sel
        )
        sigma *= math.exp((cs / damps) * (np.linalg.norm(ps) / chin - 1))
        sigma = min(sigma, 1.0)
        if gen % eigen_every == 0:
            C = np.triu(C) + np.triu(C, 1).T
            evals, B = np.linalg.eigh(C)
            D = np.sqrt(np.maximum(evals, 1e-20))
    return problem.from_z(jnp.asarray(best_z)), np.concatenate(hist)


# ----------------------------------------------------------------------------- studies


@dataclasses.dataclass
class Study:
    """A problem plus run settings, comparison presets and a Pareto sweep."""

    problem: Problem
    name: str = "study"
    steps: int = 400
    starts: int = 4
    lr: float = 0.05
    seed: int = 0
    inner_steps: int = 50
    checkpoint_every: int = 100
    polish_steps: int = 100
    pareto_constraint: str | None = None
    pareto_budgets: tuple[float, ...] = ()
    compare: tuple[str, ...] = ()
    compare_compression: tuple[str, str] = ("fp8", "fp8")


def _divisors(n: float, lo: float, hi: float) -> tuple[float, ...]:
    k = int(round(n))
    return tuple(float(d) for d in range(1, k + 1) if k % d == 0 and lo <= d <= hi)


def _base_specs(base: dict, where: str) -> dict:
    """Specs from a ``[base]`` table (a design file, or presets and a few workload numbers)."""
    from . import config, dtypes
    from .validate import validate

    known = {
        "design",
        "hardware",
        "model",
        "chips",
        "batch",
        "prompt_len",
        "output_len",
        "weight_dtype",
        "kv_dtype",
        "act_dtype",
        "sparsity",
        "pattern",
        "efficiency",
    }
    for key in base:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=2)
            raise ValueError(
                f"{where}: [base] unknown field {key!r}; "
                + (f"did you mean {', '.join(close)}?" if close else f"known: {', '.join(sorted(known))}")
            )
    loaded = config.load(base["design"]) if "design" in base else {}
    model = (
        presets.model(base["model"])
        if "model" in base
        else loaded.get("model") or presets.model("llama-3.1-70b")
    )
    chips = float(base.get("chips", 8))
    system = (
        presets.system(base["hardware"], int(chips))
        if "hardware" in base
        else loaded.get("system") or presets.system("h100-sxm", int(chips))
    )
    wl = loaded.get("workload") or Workload(batch=32.0, prompt_len=2048.0, output_len=512.0, tp=chips)
    wl = dataclasses.replace(
        wl, **{k: float(base[k]) for k in ("batch", "prompt_len", "output_len") if k in base}
    )
    if "chips" in base:
        wl = dataclasses.replace(wl, tp=chips / float(wl.pp * wl.dp))
    comp = loaded.get("compression") or Compression()
    if any(k in base for k in ("weight_dtype", "kv_dtype", "act_dtype", "sparsity", "pattern")):
        comp = dtypes.compression(
            base.get("weight_dtype", "bf16"),
            base.get("kv_dtype"),
            base.get("act_dtype"),
            float(base.get("sparsity", 0.0)),
            base.get("pattern", "dense"),
        )
    eff = loaded.get("efficiency")
    if base.get("efficiency") == "speed_of_light":
        from .specs import Efficiency

        eff = Efficiency.speed_of_light()
    validate(system, model, wl, comp)
    return dict(
        system=system,
        model=model,
        workload=wl,
        compression=comp,
        efficiency=eff,
        economics=loaded.get("economics"),
    )


def default_study_dict() -> dict:
    """The built-in study (see ``docs/codesign.md``) as the dict a study file parses to."""
    return {
        "study": {
            "name": "llama-3.1-70b decode: cheapest $/M tokens at TPOT <= 30 ms, delta ppl <= 0.1",
            "objective": "usd_per_million_tokens",
            "steps": 400,
            "starts": 6,
            "lr": 0.05,
            "seed": 0,
            "polish_steps": 0,
            "compare": ["h100-sxm", "h200-sxm", "b200"],
        },
        "base": {
            "hardware": "h100-sxm",
            "model": "llama-3.1-70b",
            "chips": 8,
            "batch": 32,
            "prompt_len": 2048,
            "output_len": 512,
            "weight_dtype": "fp8",
            "kv_dtype": "fp8",
            "act_dtype": "fp8",
            "sparsity": 0.05,
            "pattern": "unstructured",
        },
        "price_model": {},
        "variables": [
            {"path": "system.chip.tiers.0.capacity_bytes", "min": 24e9, "max": 512e9},
            {"path": "system.chip.tiers.0.bandwidth_bytes_per_s", "min": 1e12, "max": 16e12},
            {"path": "system.network.endpoint_overhead_s", "min": 0.5e-6, "max": 5e-6},
            {
                "path": ["system.n_chips", "workload.tp"],
                "name": "chips (= tp)",
                "min": 1,
                "max": 64,
                "divisor_of": "model.n_heads",
            },
            {"path": "workload.batch", "min": 1, "max": 1024, "integer": True},
            {"path": "compression.weight_bits", "min": 2, "max": 16, "values": [2, 3, 4, 6, 8, 16]},
            {"path": "compression.kv_bits", "min": 2, "max": 16, "values": [2, 3, 4, 6, 8, 16]},
            {"path": "compression.act_bits", "min": 4, "max": 16, "values": [4, 8, 16]},
            {"path": "compression.sparsity", "min": 0.0, "max": 0.6},
        ],
        "constraints": [
            {"metric": "tpot_s", "max": 0.030},
            {"metric": "delta_ppl", "max": 0.1},
            {"metric": "capacity"},
            {"metric": "tier0_bandwidth_per_capacity_per_s", "max": 60.0},
        ],
        "pareto": {"constraint": "tpot_s", "budgets": [0.010, 0.015, 0.020, 0.030, 0.050, 0.080]},
    }


def default_study() -> Study:
    return study_from_dict(default_study_dict(), "<default study>")


def _line_of(text: str | None, needle: str, occurrence: int = 0) -> str:
    if not text:
        return ""
    count = 0
    for i, line in enumerate(text.splitlines(), 1):
        if line.strip().startswith(needle):
            if count == occurrence:
                return f" (line {i})"
            count += 1
    return ""


def study_from_dict(doc: dict, where: str, text: str | None = None, root: Path | None = None) -> Study:
    """Build a :class:`Study` from a parsed study file (errors name the table, field and line)."""
    known = {"study", "base", "variables", "constraints", "accuracy", "price_model", "pareto"}
    for key in doc:
        if key not in known:
            raise ValueError(
                f"{where}: unknown table [{key}]{_line_of(text, f'[{key}')}; known: {', '.join(sorted(known))}"
            )
    base = dict(doc.get("base", {}))
    if "design" in base and root is not None:
        base["design"] = str((root / base["design"]).resolve())
    specs = _base_specs(base, where)
    model = specs["model"]
    variables = []
    var_keys = {"path", "min", "max", "scale", "values", "integer", "per_layer", "name", "divisor_of"}
    for i, v in enumerate(doc.get("variables", [])):
        loc = f"{where}: [[variables]] #{i + 1}{_line_of(text, '[[variables]]', i)}"
        bad = set(v) - var_keys
        if bad:
            raise ValueError(f"{loc}: unknown field(s) {sorted(bad)}; known: {', '.join(sorted(var_keys))}")
        for req in ("path", "min", "max"):
            if req not in v:
                raise ValueError(f"{loc}: missing field {req!r}")
        values = v.get("values")
        if "divisor_of" in v:
            n = float(get_path({"model": model}, v["divisor_of"]))
            values = _divisors(n, float(v["min"]), float(v["max"]))
        try:
            for path in [v["path"]] if isinstance(v["path"], str) else v["path"]:
                get_path(specs, path)
            variables.append(
                Variable(
                    paths=v["path"],
                    lower=float(v["min"]),
                    upper=float(v["max"]),
                    scale=v.get("scale", ""),
                    values=values,
                    integer=bool(v.get("integer", False)),
                    per_layer=bool(v.get("per_layer", False)),
                    name=v.get("name", ""),
                )
            )
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{loc}: {exc}") from None
    constraints = []
    for i, c in enumerate(doc.get("constraints", [])):
        loc = f"{where}: [[constraints]] #{i + 1}{_line_of(text, '[[constraints]]', i)}"
        bad = set(c) - {"metric", "max", "min"}
        if bad or "metric" not in c:
            raise ValueError(f"{loc}: use fields metric, max, min (got {sorted(c)})")
        try:
            constraints.append(Constraint(c["metric"], c.get("max"), c.get("min")))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{loc}: {exc}") from None
    st = dict(doc.get("study", {}))
    obj = st.pop("objective", "usd_per_million_tokens")
    try:
        if isinstance(obj, str):
            objective = Objective(((obj, 1.0),))
        else:
            objective = Objective(
                tuple((k, float(w)) for k, w in obj.get("weights", {}).items()), obj.get("kind", "weighted")
            )
    except (TypeError, ValueError, AttributeError) as exc:
        raise ValueError(f"{where}: [study].objective{_line_of(text, 'objective')}: {exc}") from None
    acc_t = dict(doc.get("accuracy", {}))
    try:
        acc = AccuracySettings(
            family=acc_t.get("family", "gptq"),
            pruner=acc_t.get("pruner", "sparsegpt"),
            baseline_ppl=acc_t.get("baseline_ppl"),
            layer_sensitivity=tuple(acc_t["layer_sensitivity"]) if "layer_sensitivity" in acc_t else None,
        )
        accuracy.validate_inputs(
            8.0,
            params_b=float(counts.param_count(model)) / 1e9,
            family=acc.family,
            pruner=acc.pruner,
            baseline_ppl=acc.baseline_ppl,
        )
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where}: [accuracy]{_line_of(text, '[accuracy')}: {exc}") from None
    price = None
    if "price_model" in doc:
        try:
            price = PriceModel(**{k: float(x) for k, x in doc["price_model"].items()})
        except TypeError as exc:
            raise ValueError(
                f"{where}: [price_model]{_line_of(text, '[price_model')}: {exc}; fields: usd_per_gb, usd_per_tb_per_s, markup, logic_usd"
            ) from None
    try:
        problem = Problem(specs, variables, objective, constraints, acc, price)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None
    fields = {f.name: f for f in dataclasses.fields(Study)}
    kw = {}
    for k, val in st.items():
        if k == "name":
            kw["name"] = str(val)
        elif k == "compare":
            kw["compare"] = tuple(val)
        elif k in fields and k not in ("problem",):
            kw[k] = type(fields[k].default)(val)
        else:
            raise ValueError(
                f"{where}: [study] unknown field {k!r}{_line_of(text, k)}; known: {', '.join(n for n in fields if n != 'problem')}, objective"
            )
    par = doc.get("pareto", {})
    if par:
        kw["pareto_constraint"] = par.get("constraint")
        kw["pareto_budgets"] = tuple(float(b) for b in par.get("budgets", ()))
    for p in kw.get("compare", ()):
        presets.chip(p)
    return Study(problem=problem, **kw)


def load_study(path: str | os.PathLike) -> Study:
    """Parse a TOML study file (see ``docs/codesign.md``)."""
    import tomllib

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: not valid TOML ({exc})") from None
    return study_from_dict(doc, str(path), text, path.parent)


def compare_presets(study: Study, design: Design) -> list[dict]:
    """Today's systems at the same model and workload: the best feasible batch (same SLO and
    capacity) at the study's chip count, with fp8 weights/KV and with the chosen compression."""
    from . import dtypes

    problem = study.problem
    specs = problem.specs
    wl = specs["workload"]
    chips = float(np.asarray(design.metrics["capex_usd"]) / np.asarray(design.metrics["chip_price_usd"]))
    tp = max(d for d in _divisors(float(specs["model"].n_heads), 1, 64) if d <= max(chips, 8))
    rows = []
    batches = jnp.arange(1.0, 1025.0)
    chosen = problem.specs_at({k: jnp.asarray(v) for k, v in design.values.items()})[0]["compression"]

    def at(b, system, comp):
        w = dataclasses.replace(wl, batch=b, tp=tp, pp=1.0, dp=1.0)
        r = evaluate(system, specs["model"], w, comp, specs["efficiency"], specs["economics"], HARD)
        return r.usd_per_million_tokens, r.tpot_s, r.fits

    grid = jax.jit(jax.vmap(at, in_axes=(0, None, None)))
    for name in study.compare:
        system = jax.tree_util.tree_map(lambda x: jnp.asarray(x, dtype=float), presets.system(name, int(tp)))
        for label, comp in (
            ("fp8/fp8", dtypes.compression(*study.compare_compression)),
            ("co-designed bits", chosen),
        ):
            comp = jax.tree_util.tree_map(lambda x: jnp.asarray(x, dtype=float), comp)
            usd, tpot, fits = (np.asarray(a) for a in grid(batches, system, comp))
            tlim = [c.upper for c in problem.constraints if c.metric == "tpot_s" and c.upper]
            ok = (fits > 0) & (tpot <= (tlim[0] if tlim else np.inf))
            if not ok.any():
                rows.append(
                    dict(system=f"{int(tp)} x {name}", compression=label, batch=None, usd=None, tpot=None)
                )
                continue
            k = int(np.argmin(np.where(ok, usd, np.inf)))
            rows.append(
                dict(
                    system=f"{int(tp)} x {name}",
                    compression=label,
                    batch=int(batches[k]),
                    usd=float(usd[k]),
                    tpot=float(tpot[k]),
                )
            )
    return rows


def _fmt(v) -> str:
    a = np.asarray(v, dtype=float)
    if a.ndim:
        return (
            f"mean {a.mean():.4g} (min {a.min():.4g}, max {a.max():.4g})"
            if a.size > 4
            else ", ".join(f"{x:.4g}" for x in a)
        )
    return f"{float(a):.4g}"


def run_study(
    study: Study,
    out: str | os.PathLike,
    *,
    resume: bool = False,
    steps: int | None = None,
    progress: bool = True,
    log=print,
) -> dict:
    """Run a study and write ``report.md``, ``trajectory.csv``, ``pareto.csv``, ``codesign.png``
    and ``checkpoint.npz`` into ``out``. Returns a summary dict."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    problem = study.problem
    steps = steps or study.steps
    t0 = time.perf_counter()
    run = optimize(
        problem,
        steps,
        study.starts,
        lr=study.lr,
        seed=study.seed,
        inner_steps=study.inner_steps,
        checkpoint=out / "checkpoint.npz",
        checkpoint_every=study.checkpoint_every,
        resume=resume,
        progress=progress,
    )
    design = round_and_repair(problem, run.best_values)
    if study.polish_steps and design.feasible:
        sub = fix_discrete(problem, design)
        if sub is not None:
            pol = optimize(
                sub, study.polish_steps, 1, lr=study.lr / 2, seed=study.seed, inner_steps=study.inner_steps
            )
            if pol.violation[0] <= 1e-3:
                d2 = round_and_repair(sub, pol.best_values)
                if d2.feasible and d2.objective < design.objective:
                    vals = dict(design.values)
                    vals.update(d2.values)
                    design = round_and_repair(problem, vals)
    start = round_and_repair(problem, problem.start_values, max_passes=0)
    front = []
    if study.pareto_constraint and study.pareto_budgets:
        front = pareto(
            problem,
            study.pareto_constraint,
            study.pareto_budgets,
            steps=min(steps, 300),
            lr=study.lr,
            inner_steps=study.inner_steps,
        )
    comparison = compare_presets(study, design) if study.compare else []
    wall = time.perf_counter() - t0

    with open(out / "trajectory.csv", "w", newline="") as fh:
        wr = csv.writer(fh)
        wr.writerow(
            ["step", "start", "log_objective_ratio", problem.objective.weights[0][0], "max_violation"]
        )
        wr.writerows((s + 1, k, f"{J:.6g}", f"{o:.6g}", f"{v:.6g}") for s, k, J, o, v in run.trajectory)
    with open(out / "pareto.csv", "w", newline="") as fh:
        wr = csv.writer(fh)
        wr.writerow(
            ["budget", "relaxed_objective", "relaxed_violation", "rounded_objective", "rounded_feasible"]
        )
        wr.writerows(
            (
                f["budget"],
                f"{f['relaxed_objective']:.6g}",
                f"{f['relaxed_violation']:.3g}",
                f"{f['objective']:.6g}",
                int(f["feasible"]),
            )
            for f in front
        )
    _figure(out / "codesign.png", run, front, problem, study)
    report = _report(study, run, design, start, comparison, front, wall)
    (out / "report.md").write_text(report, encoding="utf-8")
    return dict(
        design=design, start=start, run=run, comparison=comparison, pareto=front, wall_s=wall, report=report
    )


def _figure(path: Path, run: RunResult, front: list, problem: Problem, study: Study) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    traj = np.asarray([r[1:] for r in run.trajectory])
    name = problem.objective.weights[0][0]
    if len(traj):
        for s in np.unique(traj[:, 0]):
            sel = traj[traj[:, 0] == s]
            axes[0].plot(np.arange(1, len(sel) + 1), sel[:, 2], label=f"start {int(s)}")
        axes[0].set_yscale("log")
    axes[0].set_xlabel("step")
    axes[0].set_ylabel(name)
    axes[0].set_title("descent (augmented Lagrangian)")
    axes[0].legend(fontsize=7)
    if front:
        b = [f["budget"] for f in front]
        axes[1].plot(b, [f["relaxed_objective"] for f in front], "o-", label="relaxed")
        axes[1].plot(
            b, [f["objective"] if f["feasible"] else np.nan for f in front], "s--", label="rounded (hard)"
        )
        axes[1].set_xlabel(f"{study.pareto_constraint} budget")
        axes[1].set_ylabel(name)
        axes[1].set_title("Pareto front")
        axes[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _report(study, run, design, start, comparison, front, wall) -> str:
    p = study.problem
    name = p.objective.weights[0][0]
    lines = [
        f"# Co-design: {study.name}",
        "",
        f"Objective: minimise {p.objective.label}; {run.evaluations} gradient evaluations "
        f"({len(run.z)} starts), {run.nan_steps} non-finite steps skipped, {wall:.1f} s in all.",
        "",
        f"Result: **{'feasible' if design.feasible else 'INFEASIBLE'}** — {design.report}.",
        "",
        "## Chosen design",
        "",
        "| variable | start | chosen | bounds |",
        "|---|---|---|---|",
    ]
    for v in p.variables:
        lines.append(
            f"| {v.name} | {_fmt(start.values[v.name])} | {_fmt(design.values[v.name])} | "
            f"[{v.lower:g}, {v.upper:g}]{' ' + str(list(v.values)) if v.values else ''} |"
        )
    lines += ["", "## Metrics (hard roofline)", "", "| metric | start | chosen |", "|---|---|---|"]
    for k in (
        "usd_per_million_tokens",
        "tpot_s",
        "ttft_s",
        "tokens_per_s",
        "tokens_per_s_per_chip",
        "energy_j_per_token",
        "power_w",
        "tco_usd",
        "chip_price_usd",
        "capex_usd",
        "delta_ppl",
        "capacity",
    ):
        lines.append(f"| {k} | {_fmt(start.metrics[k])} | {_fmt(design.metrics[k])} |")
    lines += [
        "",
        "## Constraints",
        "",
        "| constraint | value | limit | g (<= 0 feasible) | status |",
        "|---|---|---|---|---|",
    ]
    for n, (v, lim, g) in design.constraints.items():
        status = "VIOLATED" if g > 1e-3 else "binding" if g > -0.01 else "slack"
        lines.append(f"| {n} | {v:.4g} | {lim:.4g} | {g:+.3g} | {status} |")
    lines += ["", f"Binding: {', '.join(design.binding) or 'none'}.", ""]
    if comparison:
        lines += [
            "## Today's systems at the same workload and service level",
            "",
            f"| system | compression | best batch | {name} | TPOT |",
            "|---|---|---|---|---|",
        ]
        for r in comparison:
            usd = "infeasible" if r["usd"] is None else f"{r['usd']:.4g}"
            tp = "-" if r["tpot"] is None else f"{1e3 * r['tpot']:.3g} ms"
            lines.append(f"| {r['system']} | {r['compression']} | {r['batch'] or '-'} | {usd} | {tp} |")
        lines.append(
            f"| co-designed | | {_fmt(design.values.get('workload.batch', np.nan))} | {design.objective:.4g} | "
            f"{1e3 * float(design.metrics['tpot_s']):.3g} ms |"
        )
        lines.append("")
    if front:
        lines += [
            "## Pareto front",
            "",
            "| budget | relaxed | rounded (hard) | feasible |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| {f['budget']:g} | {f['relaxed_objective']:.4g} | {f['objective']:.4g} | {f['feasible']} |"
            for f in front
        ]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- CLI


def register_cli(subparsers) -> None:
    p = subparsers.add_parser(
        "codesign",
        help="gradient co-design of hardware and compression",
        description="Co-optimise hardware knobs and compression under latency, accuracy and capacity budgets.",
    )
    p.add_argument(
        "--config", metavar="STUDY.toml", help="study file (default: the built-in Llama-3.1-70B study)"
    )
    p.add_argument("--out", default="out/codesign", help="output directory (default out/codesign)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.npz")
    p.add_argument("--steps", type=int, help="optimiser steps (default: the study's)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=cmd_codesign)


def cmd_codesign(args) -> int:
    from .cli import enable_compile_cache

    enable_compile_cache()
    if args.steps is not None and args.steps < 1:
        raise ValueError(f"--steps {args.steps}: must be >= 1")
    out = Path(args.out)
    blocked = next((p for p in (out, *out.parents) if p.exists() and not p.is_dir()), None)
    if blocked is not None:
        raise ValueError(f"--out {out}: {blocked} is a file, not a directory; choose another --out")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"--out {out}: cannot create the directory ({exc.strerror or exc})") from None
    if not os.access(out, os.W_OK):
        raise ValueError(f"--out {out}: the directory is not writable; choose another --out")
    study = load_study(args.config) if args.config else default_study()
    res = run_study(study, args.out, resume=args.resume, steps=args.steps, progress=not args.no_progress)
    d = res["design"]
    name = study.problem.objective.weights[0][0]
    print(f"{study.name}")
    for v in study.problem.variables:
        print(f"  {v.name:<44} {_fmt(res['start'].values[v.name]):>14} -> {_fmt(d.values[v.name])}")
    print(
        f"  {name}: {res['start'].objective:.4g} at the start -> {d.objective:.4g} "
        f"(TPOT {1e3 * float(d.metrics['tpot_s']):.3g} ms, delta ppl {float(d.metrics['delta_ppl']):.3g})"
    )
    for r in res["comparison"]:
        if r["usd"] is None:
            print(f"  {r['system']:<16} {r['compression']:<17} infeasible at this service level")
        else:
            print(
                f"  {r['system']:<16} {r['compression']:<17} {r['usd']:.4g} at batch {r['batch']} "
                f"({r['usd'] / d.objective:.2f}x the co-designed design)"
            )
    print(
        f"  binding: {', '.join(d.binding) or 'none'}; wrote {args.out}/report.md, trajectory.csv, pareto.csv, codesign.png"
    )
    if not d.feasible:
        raise ValueError(d.report)
    return 0
