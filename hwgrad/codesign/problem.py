"""The co-design `Problem`: variables <-> transformed space, specs, metrics, objective and constraints."""

from __future__ import annotations

import dataclasses
import hashlib
import math
import warnings

import jax
import jax.numpy as jnp
import numpy as np

from .. import accuracy, counts, presets
from .. import accuracy as accuracy_module
from ..cost import evaluate
from ..specs import Options
from .feasibility import FEASIBILITY_RTOL
from .technology import TECHNOLOGY_METRICS
from .variables import (
    OBJECTIVES,
    RESULT_SCALARS,
    SPEC_ROOTS,
    AccuracySettings,
    Objective,
    default_layer_sensitivity,
    get_path,
    layer_params,
    set_path,
)

#: Compression leaves that change the model's shapes (structured pruning)
STRUCTURED_KNOBS = (
    "layers_kept_fraction",
    "layer_keep_gates",
    "hidden_kept_fraction",
    "ffn_kept_fraction",
    "heads_kept_fraction",
    "kv_heads_kept_fraction",
)


def _warn_uncoupled(variables, constraints) -> None:
    """Warn when a tier's bandwidth and capacity are both free without a coupling constraint:
    the optimiser can then propose memory no technology builds (e.g. 118 GB/s per GB of HBM,
    where an HBM3 stack gives 34)."""
    paths = {p for v in variables for p in v.paths}
    coupled = {c.metric for c in constraints}
    for i in range(16):
        bw, cap = f"system.chip.tiers.{i}.bandwidth_bytes_per_s", f"system.chip.tiers.{i}.capacity_bytes"
        if bw in paths and cap in paths and not (i == 0 and "tier0_bandwidth_per_capacity_per_s" in coupled):
            fix = (
                "add [[constraints]] metric = 'tier0_bandwidth_per_capacity_per_s' max = 34 "
                "(HBM3: 819 GB/s per 24 GB stack; HBM3e 26, HBM4 34, memory_tech.csv)"
                if i == 0
                else "tie them in one variable"
            )
            warnings.warn(
                f"codesign: tier {i} bandwidth and capacity are free and uncoupled, so the design may "
                f"not be buildable; {fix}, or use technology variables ([technology] memory = 'hbm3e', "
                "variable technology.memory_stacks)",
                UserWarning,
                stacklevel=3,
            )


def _weighted_mean(x, weights):
    """``sum(weights x) / sum(weights)`` over layers, exactly ``x`` when every layer has the
    same ``x``: summed as deviations from the first layer, since float32 normalised weights do
    not sum to one (3-bit layers would average to 3.000001 bits, and the hard roofline's
    access-granularity ceiling turns that into a 0.15 % slower decode step)."""
    x0 = x[0]
    return x0 + jnp.sum(weights * (x - x0)) / jnp.maximum(jnp.sum(weights), 1e-9)


class Problem:
    """Design variables, objective and constraints over a base design (see module docstring).

    Args:
      specs: dict with ``system``, ``model``, ``workload``, ``compression`` and optionally
        ``efficiency`` and ``economics`` (defaults: calibrated efficiency, default economics).
      variables: sequence of `Variable`.
      objective: an `Objective` or a metric name.
      constraints: sequence of `Constraint`.
      accuracy: `AccuracySettings` for ``delta_ppl`` / ``delta_loss``.
      price_model: `PriceModel` (chip price follows its memory) or ``None`` (fixed).
      metric_fn: optional ``f(metrics, values) -> metrics`` hook that adds or replaces metrics
        (custom area or price models; tests use it to inject analytic functions).
      model_metrics: ``False`` skips the hwgrad model and starts ``metric_fn`` from an empty
        dict (pure analytic problems).
      technology: a `Technology`: the chip is built from
        memory stacks, a logic die area and links (variables ``technology.memory_stacks``,
        ``technology.logic_die_area_mm2``, ``technology.links``), and its tier capacity and
        bandwidth, FLOPS, price and link bandwidth are derived (replaces ``price_model``).
      feasibility_rtol: the relative tolerance of the one feasibility rule
        (`hwgrad.codesign.feasibility`; default 1e-3): ``g <= feasibility_rtol`` on every
        normalised constraint is feasible, for the optimiser, rounding, fronts and reports.
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
        feasibility_rtol=FEASIBILITY_RTOL,
        technology=None,
    ):
        specs = dict(specs)
        if "efficiency" not in specs or specs["efficiency"] is None:
            from ..calibrated import calibrated_efficiency

            specs["efficiency"] = calibrated_efficiency()
        if "economics" not in specs or specs["economics"] is None:
            specs["economics"] = presets.default_economics()
        if technology is not None:
            if price_model is not None:
                raise ValueError(
                    "codesign: give a technology or a price_model, not both (a technology prices the chip)"
                )
            start, self.technology_constants = technology.calibrate(specs)
            specs["technology"] = start
        self.technology = technology
        gates_path = "compression.layer_keep_gates"
        if any(gates_path in v.paths for v in variables) and specs["compression"].layer_keep_gates is None:
            # per-layer keep gates as design variables start from "keep every layer"
            n = int(float(specs["model"].n_layers))
            specs["compression"] = dataclasses.replace(specs["compression"], layer_keep_gates=np.ones(n))
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
        from ..validate import check_bound

        for v in self.variables:
            for path in v.paths:
                for end, bound in (("lower", v.lower), ("upper", v.upper)):
                    try:
                        check_bound(path, bound)
                    except ValueError as exc:
                        raise ValueError(f"variable {v.name}: {end} bound {exc}") from None
        self.objective = Objective(((objective, 1.0),)) if isinstance(objective, str) else objective
        self.constraints = tuple(constraints)
        tech_only = [c.metric for c in self.constraints if c.metric in TECHNOLOGY_METRICS]
        if tech_only and technology is None:
            raise ValueError(
                f"constraint {tech_only[0]} needs a technology (Problem(technology=...), [technology] in a study)"
            )
        _warn_uncoupled(self.variables, self.constraints)
        self.accuracy = accuracy
        self.feasibility_rtol = float(feasibility_rtol)
        if not 0.0 <= self.feasibility_rtol < 0.5:
            raise ValueError(
                f"feasibility_rtol = {feasibility_rtol!r}: use a relative tolerance in [0, 0.5), e.g. 1e-3"
            )
        # load the fitted constants outside any trace: accuracy.load_fit caches its result,
        # and a first call under jit would cache tracers
        self.accuracy_fit = accuracy_module.load_fit()
        model = self.specs["model"]
        self.n_layers = int(float(model.n_layers))
        self.params_b = float(counts.param_count(model)) / 1e9
        w = layer_params(model)
        self.layer_weights = jnp.asarray(w / w.sum())
        prof = accuracy.layer_sensitivity or tuple(default_layer_sensitivity(self.n_layers))
        if len(prof) != self.n_layers:
            raise ValueError(
                f"accuracy.layer_sensitivity has {len(prof)} entries; the model has {self.n_layers} layers"
            )
        self.layer_sensitivity = jnp.asarray(prof, dtype=float)
        # the structured-pruning loss enters when the design can change the model's shapes
        c0 = self.specs["compression"]
        knobs = tuple(f"compression.{k}" for k in STRUCTURED_KNOBS)
        self.structured = any(p.startswith(knobs) for v in self.variables for p in v.paths) or any(
            not np.all(np.asarray(getattr(c0, k)) == 1.0)
            for k in STRUCTURED_KNOBS
            if getattr(c0, k) is not None
        )
        self.structured_generation = accuracy.structured_generation or "llama-2"
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
            gates = layer.get("compression.layer_keep_gates")
            kv_w = jnp.ones(self.n_layers)
            if gates is not None:
                # the means run over the layers kept (a dropped layer stores no weights or KV)
                w, kv_w = w * gates, gates
                c = dataclasses.replace(c, layer_keep_gates=gates)
            if c.pattern == "dense":
                mean_bits, mean_sp = _weighted_mean(bits, w), jnp.asarray(0.0)
            else:
                # stored bits per parameter: the mean over the nonzeros, each layer weighted
                # by its parameters x (1 - sparsity) (the per-nonzero overhead bits cancel)
                mean_sp = _weighted_mean(sp, w)
                mean_bits = _weighted_mean(bits, w * (1 - sp))
            # every layer caches the same number of KV elements: the plain mean is exact
            c = dataclasses.replace(
                c, weight_bits=mean_bits, sparsity=mean_sp, kv_bits=_weighted_mean(kv, kv_w)
            )
            specs = {**specs, "compression": c}
            layer = {"weight_bits": bits, "sparsity": sp, "kv_bits": kv}
            if gates is not None:
                layer["gates"] = gates
        if self.technology is not None:
            specs = self.technology.apply(specs, self.technology_constants)
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
        m = {k: getattr(r, k) for k in RESULT_SCALARS}
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
            if "gates" in layer:
                # a dropped layer adds no quantisation or sparsity noise (its loss is the
                # structured term's): relaxed, exact at gates in {0, 1}
                g = layer["gates"]
                args = (g * args[0] + (1 - g) * 16.0, g * args[1] + (1 - g) * 16.0, args[2], g * args[3])
            acc_kw["layer_sensitivity"] = self.layer_sensitivity
        else:
            args = (c.weight_bits, c.kv_bits, c.act_bits, c.sparsity if c.pattern != "dense" else 0.0)
        if self.structured:
            # shape-changing pruning (layers, width, heads): its fitted loss adds to that of
            # quantisation and sparsity (hwgrad.accuracy.delta_loss(structured=...))
            # per-layer gates are weighed by the layer-importance profile (an assumption, see
            # Structured.from_compression): the same profile as the per-layer quantisation noise
            acc_kw["structured"] = accuracy.Structured.from_compression(
                specs["model"],
                c,
                finetuned=self.accuracy.structured_finetuned,
                generation=self.structured_generation,
                layer_importance=self.layer_sensitivity if "gates" in layer else None,
            )
        m["delta_loss"] = accuracy.delta_loss(*args, **acc_kw)
        m["delta_ppl"] = accuracy.delta_ppl(*args, baseline_ppl=self.accuracy.baseline_ppl, **acc_kw)
        m["chip_price_usd"] = s.chip.price_usd
        m["capex_usd"] = s.n_chips * s.chip.price_usd
        m["die_area_mm2"] = s.chip.die_area_mm2
        t0 = s.chip.tiers[0]
        m["tier0_bandwidth_per_capacity_per_s"] = t0.bandwidth_bytes_per_s / t0.capacity_bytes
        # used / the capacity the engine may use (used + margin: capacity x memory_fraction)
        usable = r.capacity_used_bytes + r.capacity_margin_bytes
        m["capacity"] = jnp.where(
            jnp.isfinite(usable), r.capacity_used_bytes / jnp.where(jnp.isfinite(usable), usable, 1.0), 0.0
        )
        if self.technology is not None:
            m.update(self.technology.metrics(specs, self.technology_constants))
        if specs.get("service") is not None:
            # a served design: goodput, TTFT/TPOT percentiles, ... (hwgrad.service.design_metrics)
            from ..service import design_metrics

            m.update(design_metrics(specs, options))
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
        """Normalised ``g`` (``<= 0`` is feasible), one entry per `constraint_names`."""
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
                self.feasibility_rtol,
                self.technology,
                [np.asarray(x).tolist() for x in jax.tree_util.tree_leaves(self.specs)],
                str(jax.tree_util.tree_structure(self.specs)),
            )
        )
        return hashlib.sha256(desc.encode()).hexdigest()[:16]
