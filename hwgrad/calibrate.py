"""Calibration and validation of the cost model against measured decode performance.

``validate`` predicts every row of a measurement file (:mod:`hwgrad.measurements`) with a set
of :class:`~hwgrad.specs.Efficiency` parameters and reports absolute percentage errors;
``fit`` finds the few shared, physical parameters (achieved fraction of peak bandwidth and
FLOPS, fixed cost per kernel and per collective, static power) by gradient descent (Adam)
through the jit-compiled, ``vmap``-ped model; ``cross_validate`` refits with each hardware
left out in turn and predicts it (leave-one-hardware-out, LOHO).

How a row is modelled (interpretations made here, at the edge, and reported per row):

* ``tpot_ms`` is the mean decode step over the output (:attr:`Result.tpot_s`);
  ``e2e_latency_s`` is prefill + ``output_len`` decode steps; ``output_tok_s`` is
  ``batch x output_len / e2e`` (static batch, prefill included); ``energy_j_per_token`` is
  the energy of all chips of a replica over the request / (``batch x output_len``).
* A static batch whose KV cache does not fit runs in *waves*: the serving stack admits as
  many sequences as fit (weights + each sequence's final KV cache and activation workspace
  within the chip's memory) and runs the rest afterwards, so the request takes
  ``ceil(batch / fit)`` back-to-back runs. Memory capacities printed as a whole number of
  "GB" are read as binary GiB (HBM/GDDR parts are sized in powers of two; NVIDIA's "80 GB"
  parts expose 80 GiB, see ``presets/data/README.md``). A row where not even one sequence
  fits is skipped with the reason.
* ``tp x pp`` larger than ``n_chips`` by a whole factor ``k`` means each listed device is a
  ``k``-die module (e.g. ``mi250`` = 2 GCDs): each die gets ``1/k`` of the module's
  bandwidth, FLOPS, capacity and TDP. ``n_chips`` a multiple ``k`` of ``tp x pp`` means ``k``
  data-parallel replicas sharing ``batch``.
* Energy rows need the chip's TDP (static power = ``static_power_fraction x TDP``); chips
  without a published TDP (Apple M-series) have their energy rows skipped.

Parameters are fitted in unconstrained space (logit for fractions, log for times) on a
pseudo-Huber loss of ``log(predicted / measured)``, so a few rows the model cannot explain
(e.g. capacity-driven queuing) do not drag the shared parameters.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import math
import re
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from . import cost, dtypes, presets
from .measurements import METRICS, Measurement, MeasurementSet, read_measurements
from .specs import Compression, Efficiency, Model, Options, System, Workload, replace
from .validate import validate as validate_design

__all__ = [
    "FIT_FIELDS",
    "Calibration",
    "Case",
    "Prepared",
    "Report",
    "ape",
    "ape_summary",
    "prepare",
    "predict",
    "validate",
    "fit",
    "cross_validate",
    "software_family",
    "load_calibration",
    "write_calibration",
    "register_cli",
]

GIB_PER_GB = 2.0**30 / 1e9

#: Efficiency fields and how each is mapped to an unconstrained variable for the fit:
#: ``("logit", lo, hi)`` -> ``lo + (hi - lo) sigmoid(u)``; ``("log", lo, hi)`` ->
#: ``exp(u)`` clipped softly to ``[lo, hi]`` by the initial value and the optimiser.
TRANSFORMS: dict[str, tuple[str, float, float]] = {
    "bandwidth_efficiency": ("logit", 0.05, 1.0),
    "flops_efficiency": ("logit", 0.02, 1.0),
    "op_overhead_s": ("log", 1e-8, 1e-3),
    "collective_overhead_s": ("log", 1e-8, 1e-3),
    "comm_overlap": ("logit", 0.0, 1.0),
    "static_power_fraction": ("logit", 0.0, 1.0),
}

#: Fields fitted to latency/throughput rows (then ``static_power_fraction`` to energy rows).
FIT_FIELDS = ("bandwidth_efficiency", "flops_efficiency", "op_overhead_s", "collective_overhead_s")
ENERGY_FIELDS = ("static_power_fraction",)

#: Starting point of the fit (a plausible GPU, not speed of light: logit(1) is infinite).
INITIAL = Efficiency(
    bandwidth_efficiency=0.8,
    flops_efficiency=0.6,
    op_overhead_s=2e-5,
    collective_overhead_s=5e-6,
    comm_overlap=0.0,
    static_power_fraction=0.3,
)

#: Serving-stack families recognised in the ``software`` column (case-insensitive
#: substrings). Only used when a calibration carries per-stack profiles.
SOFTWARE_FAMILIES: dict[str, tuple[str, ...]] = {
    "llama.cpp": ("llama.cpp", "llama-bench", "llama-batched-bench", "ggml"),
    "gpt-fast": ("gpt-fast",),
    "tensorrt-llm": ("tensorrt-llm", "tensorrt llm", "trt-llm", "trtllm"),
    "vllm": ("vllm",),
    "deepspeed-mii": ("deepspeed", "mii"),
    "sglang": ("sglang",),
    "mlc-llm": ("mlc-llm", "mlc llm"),
}

_ECONOMICS = None


#: Compute backends named in a ``software`` cell; dispatch costs differ between them
#: (Metal command buffers, CUDA graphs, ROCm/HIP launches), so a stack's profile is split
#: by backend when the cell names one (``llama.cpp/metal``, ``gpt-fast/rocm``...).
BACKENDS: dict[str, tuple[str, ...]] = {
    "metal": ("metal",),
    "cuda": ("cuda",),
    "rocm": ("rocm", "hip"),
    "vulkan": ("vulkan",),
    "sycl": ("sycl",),
}


def software_family(software: str) -> str:
    """The serving-stack family of a ``software`` cell (``""`` if not recognised).

    A family is a stack of :data:`SOFTWARE_FAMILIES`, suffixed with ``/backend`` when the
    cell names one of :data:`BACKENDS`.
    """
    text = software.lower()
    for family, needles in SOFTWARE_FAMILIES.items():
        if any(n in text for n in needles):
            for backend, words in BACKENDS.items():
                if any(re.search(rf"\b{w}\b", text) for w in words):
                    return f"{family}/{backend}"
            return family
    return ""


def known_families() -> list[str]:
    """Every family name :func:`software_family` can return."""
    return [f"{f}{b}" for f in SOFTWARE_FAMILIES for b in ("", *(f"/{k}" for k in BACKENDS))]


# ----------------------------------------------------------------------------- parameters


@dataclasses.dataclass(frozen=True)
class Calibration:
    """A fitted parameter set: shared efficiency plus optional per-stack overrides.

    Attributes:
      efficiency: the shared parameters (used for any stack without a profile, and by
        ``hwgrad eval --params``).
      profiles: serving-stack family -> {field: value} overriding ``efficiency`` for rows
        whose ``software`` belongs to that family (see :data:`SOFTWARE_FAMILIES`).
    """

    efficiency: Efficiency
    profiles: dict[str, dict[str, float]] = dataclasses.field(default_factory=dict)

    def for_software(self, software: str) -> Efficiency:
        overrides = self.profiles.get(software_family(software), {})
        return replace(self.efficiency, **overrides) if overrides else self.efficiency

    @staticmethod
    def speed_of_light() -> Calibration:
        return Calibration(Efficiency.speed_of_light())


def _to_unconstrained(field: str, value: float) -> float:
    kind, lo, hi = TRANSFORMS[field]
    if kind == "log":
        return math.log(min(max(value, lo), hi))
    frac = (value - lo) / (hi - lo)
    frac = min(max(frac, 1e-6), 1 - 1e-6)
    return math.log(frac / (1 - frac))


def _from_unconstrained(field: str, u):
    kind, lo, hi = TRANSFORMS[field]
    if kind == "log":
        return jnp.exp(u)
    return lo + (hi - lo) * jax.nn.sigmoid(u)


# ----------------------------------------------------------------------------- preparing rows


@dataclasses.dataclass(frozen=True)
class Case:
    """One measured row turned into specs the model can evaluate.

    Attributes:
      row: the measurement.
      system, model, compression: specs (one replica: ``tp x pp`` chips).
      segments: ``(workload, count)`` pairs: the request runs ``count`` back-to-back
        static batches of ``workload.batch`` sequences (one pair unless it runs in waves).
      batch: sequences per replica.
      family: serving-stack family of ``row.software``.
      notes: interpretations applied to this row (waves, derived values, defaults).
    """

    row: Measurement
    system: System
    model: Model
    compression: Compression
    segments: tuple[tuple[Workload, int], ...]
    batch: int
    family: str
    notes: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class Prepared:
    """Rows that can be modelled (``cases``) and those that cannot (``skipped``, with why)."""

    cases: tuple[Case, ...]
    skipped: tuple[tuple[Measurement, str], ...]
    path: str = ""


def _binary_capacity(hardware: str, capacity_bytes: float) -> tuple[float, str]:
    gb = capacity_bytes / 1e9
    if math.isfinite(gb) and gb == round(gb):
        return capacity_bytes * GIB_PER_GB, f"{hardware} capacity {gb:g} GB read as {gb:g} GiB"
    return capacity_bytes, ""


def _split_module(system: System, dies: int) -> System:
    chip = system.chip
    k = float(dies)
    tiers = tuple(
        replace(t, capacity_bytes=t.capacity_bytes / k, bandwidth_bytes_per_s=t.bandwidth_bytes_per_s / k)
        for t in chip.tiers
    )
    chip = replace(
        chip,
        tiers=tiers,
        peak_flops_bf16=chip.peak_flops_bf16 / k,
        peak_flops_fp8=chip.peak_flops_fp8 / k,
        peak_flops_fp4=chip.peak_flops_fp4 / k,
        sram_bytes=chip.sram_bytes / k,
        tdp_w=chip.tdp_w / k,
    )
    return replace(system, chip=chip)


def _capacity_per_sequence(system, model, compression, workload) -> tuple[float, float]:
    """(bytes of weights, bytes per sequence) held by one chip, from the model's own
    capacity accounting (weights + final KV cache + activation workspace)."""
    one = np.asarray(cost.capacity_used_bytes(system, model, replace(workload, batch=1.0), compression))[0]
    two = np.asarray(cost.capacity_used_bytes(system, model, replace(workload, batch=2.0), compression))[0]
    per_seq = float(two - one)
    return float(one - per_seq), per_seq


def _prepare_row(row: Measurement, waves: bool = True) -> Case | str:
    """A :class:`Case` for ``row``, or the reason it cannot be modelled."""
    notes: list[str] = []
    chips_needed = row.tp * row.pp
    if chips_needed > row.n_chips:
        dies = chips_needed // row.n_chips
        system = presets.system(row.hardware, chips_needed)
        system = _split_module(system, dies)
        notes.append(f"tp x pp = {chips_needed} on {row.n_chips} device(s): {dies} dies per device")
        dp = 1
    else:
        dp = row.n_chips // chips_needed
        system = presets.system(row.hardware, row.n_chips)
    for name in row.defaulted:
        notes.append(f"{name} not stated: default used")
    chip = system.chip
    if row.is_energy and not (math.isfinite(chip.tdp_w) and math.isfinite(chip.energy_j_per_flop_bf16)):
        return f"energy: TDP or FLOPS of {row.hardware} not published, energy not modelled"
    # unknown TDP / FLOP energy only feed energy, which is not used for these rows; zeros keep
    # gradients finite (a NaN in an unused output still poisons reverse-mode sums)
    if not math.isfinite(chip.tdp_w) or not math.isfinite(chip.energy_j_per_flop_bf16):
        chip = replace(chip, tdp_w=0.0, energy_j_per_flop_bf16=0.0)
        system = replace(system, chip=chip)
    model = presets.model(row.model)
    compression = dtypes.compression(row.weight_dtype, row.kv_dtype)
    batch = -(-row.batch // dp)
    if dp > 1:
        notes.append(f"{dp} data-parallel replicas, {batch} sequences each")
    workload = Workload(
        batch=float(batch),
        prompt_len=float(row.input_len),
        output_len=float(row.output_len),
        tp=float(row.tp),
        pp=float(row.pp),
        ep=float(row.ep),
        dp=float(dp),
    )
    try:
        validate_design(system, model, workload, compression)
    except ValueError as exc:
        return f"design: {exc}"

    capacity = float(chip.tiers[0].capacity_bytes)
    segments: tuple[tuple[Workload, int], ...] = ((workload, 1),)
    if math.isfinite(capacity):
        capacity, note = _binary_capacity(row.hardware, capacity)
        weights, per_seq = _capacity_per_sequence(system, model, compression, workload)
        fit_n = int((capacity - weights) // per_seq) if per_seq > 0 else batch
        if fit_n < 1:
            return (
                f"capacity: {weights / 1e9:.1f} GB of weights + {per_seq / 1e9:.2f} GB for one sequence "
                f"exceed {capacity / 1e9:.1f} GB per chip"
            )
        if fit_n < batch:
            if not waves:
                return f"capacity: only {fit_n} of {batch} sequences fit in {capacity / 1e9:.1f} GB per chip"
            full, rest = divmod(batch, fit_n)
            segments = ((replace(workload, batch=float(fit_n)), full),)
            if rest:
                segments += ((replace(workload, batch=float(rest)), 1),)
            plan = f"{full} x {fit_n}" + (f" + 1 x {rest}" if rest else "")
            notes.append(f"KV cache does not fit: runs in waves of {plan} sequences ({note})")
    return Case(
        row=row,
        system=system,
        model=model,
        compression=compression,
        segments=segments,
        batch=batch,
        family=software_family(row.software),
        notes=tuple(notes),
    )


def prepare(data: MeasurementSet | Iterable[Measurement], waves: bool = True) -> Prepared:
    """Turn measurements into evaluable :class:`Case` s; rows that cannot be modelled are
    kept in ``skipped`` with the reason (never dropped silently).

    Args:
      data: a :class:`MeasurementSet` (its ``unknown`` rows are carried into ``skipped``)
        or an iterable of :class:`Measurement`.
      waves: model static batches whose KV cache does not fit as waves (default); when
        ``False`` such rows are skipped.
    """
    if isinstance(data, MeasurementSet):
        rows, skipped, path = data.rows, list(data.unknown), data.path
    else:
        rows, skipped, path = tuple(data), [], ""
    cases = []
    for row in rows:
        out = _prepare_row(row, waves=waves)
        if isinstance(out, str):
            skipped.append((row, out))
        else:
            cases.append(out)
    return Prepared(cases=tuple(cases), skipped=tuple(skipped), path=path)


# ----------------------------------------------------------------------------- evaluation

_METRIC_INDEX = {name: i for i, name in enumerate(METRICS)}


def _economics():
    global _ECONOMICS
    if _ECONOMICS is None:
        _ECONOMICS = presets.default_economics()
    return _ECONOMICS


def _segment_outputs(system, model, workload, compression, efficiency):
    """``[tpot_s, e2e_latency_s, energy_j_per_token, static_j_per_token]`` of one static batch."""
    r = cost.evaluate(system, model, workload, compression, efficiency, _economics(), Options())
    static_j = r.prefill.energy_static_j + r.decode.energy_static_j * workload.output_len
    static_per_token = static_j / (workload.batch * workload.output_len)
    return jnp.stack([r.tpot_s, r.e2e_latency_s, r.energy_j_per_token, static_per_token])


def _stack(trees):
    return jax.tree_util.tree_map(
        lambda *xs: jnp.stack([jnp.asarray(x, dtype=jnp.float32) for x in xs]), *trees
    )


class Engine:
    """Evaluates every row of a :class:`Prepared` set in a few ``vmap`` calls.

    Segments (static batches) are grouped by static structure (attention kind, FFN kind,
    sparsity pattern, topology...) and stacked; one jit-compiled ``vmap`` per group. The
    efficiency parameters are given per segment, so per-stack profiles and fits batch too.
    """

    def __init__(self, cases: Sequence[Case]):
        self.cases = tuple(cases)
        seg_row, seg_count, seg_batch, specs = [], [], [], []
        first = []
        for i, case in enumerate(self.cases):
            first.append(len(seg_row))
            for workload, count in case.segments:
                seg_row.append(i)
                seg_count.append(count)
                seg_batch.append(float(workload.batch))
                specs.append((case.system, case.model, workload, case.compression))
        self.n_rows = len(self.cases)
        self.n_segments = len(specs)
        self.seg_row = np.asarray(seg_row, dtype=np.int32)
        self.seg_count = np.asarray(seg_count, dtype=np.float32)
        self.seg_batch = np.asarray(seg_batch, dtype=np.float32)
        self.first_segment = np.asarray(first, dtype=np.int32)
        self.row_batch = np.asarray([c.batch for c in self.cases], dtype=np.float32)
        self.row_total_batch = np.asarray([c.row.batch for c in self.cases], dtype=np.float32)
        self.row_output = np.asarray([c.row.output_len for c in self.cases], dtype=np.float32)
        self.metric = np.asarray([_METRIC_INDEX[c.row.metric] for c in self.cases], dtype=np.int32)
        self.measured = np.asarray([c.row.value for c in self.cases], dtype=np.float64)
        groups: dict = {}
        for j, spec in enumerate(specs):
            key = jax.tree_util.tree_structure(spec)
            groups.setdefault(key, []).append(j)
        self.groups = []
        for idx in groups.values():
            stacked = _stack([specs[j] for j in idx])
            self.groups.append((np.asarray(idx, dtype=np.int32), stacked))
        order = np.concatenate([idx for idx, _ in self.groups]) if self.groups else np.zeros(0, np.int32)
        self.unpermute = np.argsort(order).astype(np.int32)
        self._vmapped = jax.vmap(_segment_outputs)

    def segment_outputs(self, eff: Efficiency):
        """``(n_segments, 3)`` outputs; ``eff`` leaves have shape ``(n_segments,)``."""
        outs = []
        for idx, (system, model, workload, compression) in self.groups:
            e = jax.tree_util.tree_map(lambda v, idx=idx: v[idx], eff)
            outs.append(self._vmapped(system, model, workload, compression, e))
        return jnp.concatenate(outs, axis=0)[self.unpermute]

    def row_predictions(self, eff: Efficiency, with_static: bool = False):
        """Predicted value of every row in its metric's unit, shape ``(n_rows,)``.

        With ``with_static``, also the static (idle) share of each row's predicted energy.
        """
        seg = self.segment_outputs(eff)
        count = jnp.asarray(self.seg_count)
        e2e = jax.ops.segment_sum(count * seg[:, 1], self.seg_row, num_segments=self.n_rows)
        energy = jax.ops.segment_sum(
            count * seg[:, 2] * jnp.asarray(self.seg_batch), self.seg_row, num_segments=self.n_rows
        ) / jnp.asarray(self.row_batch)
        tpot = seg[self.first_segment, 0]
        throughput = jnp.asarray(self.row_total_batch * self.row_output) / e2e
        table = jnp.stack([tpot * 1e3, e2e, throughput, energy])  # order of METRICS
        values = jnp.take_along_axis(table, jnp.asarray(self.metric)[None, :], axis=0)[0]
        if not with_static:
            return values
        static = jax.ops.segment_sum(
            count * seg[:, 3] * jnp.asarray(self.seg_batch), self.seg_row, num_segments=self.n_rows
        ) / jnp.asarray(self.row_batch)
        return values, static / energy

    def efficiency_per_segment(self, calibration: Calibration) -> Efficiency:
        effs = [calibration.for_software(self.cases[r].row.software) for r in self.seg_row]
        if not effs:
            return jax.tree_util.tree_map(lambda x: jnp.zeros(0, jnp.float32), calibration.efficiency)
        return _stack(effs)

    @functools.cached_property
    def _predict_jit(self):
        return jax.jit(functools.partial(self.row_predictions, with_static=True))

    def predict_with_static(self, calibration: Calibration) -> tuple[np.ndarray, np.ndarray]:
        """Predictions and the static-power share of each row's predicted energy."""
        if self.n_rows == 0:
            return np.zeros(0), np.zeros(0)
        values, static = self._predict_jit(self.efficiency_per_segment(calibration))
        return np.asarray(values, dtype=np.float64), np.asarray(static, dtype=np.float64)

    def predict(self, calibration: Calibration) -> np.ndarray:
        return self.predict_with_static(calibration)[0]


# ----------------------------------------------------------------------------- statistics


def ape(predicted, measured) -> np.ndarray:
    """Absolute percentage error ``100 |predicted - measured| / measured``."""
    predicted = np.asarray(predicted, dtype=float)
    measured = np.asarray(measured, dtype=float)
    return 100.0 * np.abs(predicted - measured) / measured


def ape_summary(errors, skipped: int = 0) -> dict:
    """Median, 90th percentile (linear interpolation) and max of APEs, with counts."""
    e = np.asarray(errors, dtype=float)
    if e.size == 0:
        return {
            "median_ape": math.nan,
            "p90_ape": math.nan,
            "max_ape": math.nan,
            "rows": 0,
            "skipped": skipped,
        }
    return {
        "median_ape": float(np.median(e)),
        "p90_ape": float(np.percentile(e, 90)),
        "max_ape": float(np.max(e)),
        "rows": int(e.size),
        "skipped": int(skipped),
    }


def format_summary(summary: dict, prefix: str = "") -> str:
    """``median APE 12.3% | p90 APE 30.1% | max APE 80.2% | rows 86 | skipped 0``."""

    def pct(x):
        return "n/a" if not math.isfinite(x) else f"{x:.1f}%"

    return (
        f"{prefix}median APE {pct(summary['median_ape'])} | p90 APE {pct(summary['p90_ape'])} | "
        f"max APE {pct(summary['max_ape'])} | rows {summary['rows']} | skipped {summary['skipped']}"
    )


# ----------------------------------------------------------------------------- validation


@dataclasses.dataclass(frozen=True)
class Report:
    """Predictions for every modelled row, the skipped rows, and summaries.

    ``latency`` summarises tpot / e2e / throughput rows, ``energy`` the energy rows; the
    ``skipped`` counts split the skipped rows the same way.
    """

    label: str
    cases: tuple[Case, ...]
    predicted: np.ndarray
    measured: np.ndarray
    skipped: tuple[tuple[Measurement, str], ...]
    static_share: np.ndarray | None = None

    def static_share_of(self, i: int) -> float | None:
        """Static (idle) power's share of the predicted energy of energy row ``i``."""
        if self.static_share is None or not self.cases[i].row.is_energy:
            return None
        return float(self.static_share[i])

    @property
    def errors(self) -> np.ndarray:
        return ape(self.predicted, self.measured)

    def _mask(self, energy: bool) -> np.ndarray:
        return np.asarray([c.row.is_energy == energy for c in self.cases], dtype=bool)

    def summary(self, energy: bool = False) -> dict:
        skipped = sum(1 for row, _ in self.skipped if row.is_energy == energy)
        return ape_summary(self.errors[self._mask(energy)], skipped)

    def rows(self) -> list[dict]:
        out = []
        for i, (case, p, m, e) in enumerate(
            zip(self.cases, self.predicted, self.measured, self.errors, strict=True)
        ):
            r = case.row
            out.append(
                {
                    "id": r.id,
                    "line": r.line,
                    "model": r.model,
                    "hardware": r.hardware,
                    "n_chips": r.n_chips,
                    "tp": r.tp,
                    "batch": r.batch,
                    "input_len": r.input_len,
                    "output_len": r.output_len,
                    "weight_dtype": r.weight_dtype,
                    "metric": r.metric,
                    "software": r.software,
                    "measured": float(m),
                    "predicted": float(p),
                    "ape": float(e),
                    "signed_error_pct": float(100.0 * (p - m) / m),
                    "static_energy_share": self.static_share_of(i),
                    "notes": list(case.notes),
                }
            )
        return out


def predict(
    prepared: Prepared, calibration: Calibration | Efficiency, engine: Engine | None = None
) -> np.ndarray:
    """Predicted value of every case of ``prepared`` (metric units)."""
    if isinstance(calibration, Efficiency):
        calibration = Calibration(calibration)
    engine = engine or Engine(prepared.cases)
    return engine.predict(calibration)


def validate(
    prepared: Prepared, calibration: Calibration | Efficiency, label: str = "", engine: Engine | None = None
) -> Report:
    """Predict every row and compare with the measurements (see :class:`Report`)."""
    if isinstance(calibration, Efficiency):
        calibration = Calibration(calibration)
    engine = engine or Engine(prepared.cases)
    pred, static = engine.predict_with_static(calibration)
    return Report(
        label=label,
        cases=prepared.cases,
        predicted=pred,
        measured=engine.measured,
        skipped=prepared.skipped,
        static_share=static,
    )


# ----------------------------------------------------------------------------- fitting


@dataclasses.dataclass(frozen=True)
class FitSettings:
    """Knobs of :func:`fit` (defaults are the ones used for the shipped parameters).

    Attributes:
      fields: efficiency fields fitted to latency/throughput rows.
      energy_fields: fields fitted afterwards to the energy rows (latency fields frozen).
      profile_fields: fields that may differ per serving-stack family (empty: one shared set).
      profile_prior: standard deviation (in unconstrained units) of a profile's offset from
        the shared value; the offsets are shrunk towards zero by a Gaussian prior.
      priors: ``(field, centre, sd)``: a Gaussian prior on a shared field in unconstrained
        units (logit/log), for fields the data barely identify.
      loss: ``"cauchy"`` (bounded influence of rows the model cannot explain) or
        ``"huber"`` (pseudo-Huber) on ``log(pred / measured)``.
      huber_delta: scale ``d`` of the loss: residuals below ``d`` count quadratically.
      steps, learning_rate: Adam iterations and step size.
      balance: weight rows so each hardware contributes equally (``"hardware"``), or
        every row counts once (``"row"``).
    """

    fields: tuple[str, ...] = FIT_FIELDS
    energy_fields: tuple[str, ...] = ENERGY_FIELDS
    profile_fields: tuple[str, ...] = ("op_overhead_s",)
    profile_prior: float = 0.5
    priors: tuple[tuple[str, float, float], ...] = (("flops_efficiency", 0.6, 0.5),)
    huber_delta: float = 0.1
    loss: str = "cauchy"
    steps: int = 600
    learning_rate: float = 0.05
    balance: str = "row"


def _row_weights(cases: Sequence[Case], balance: str) -> np.ndarray:
    if balance == "row":
        return np.ones(len(cases))
    if balance == "hardware":
        keys = [c.row.hardware for c in cases]
    elif balance == "software":
        keys = [c.family or c.row.software for c in cases]
    else:
        raise ValueError(f"balance = {balance!r}: use 'row', 'hardware' or 'software'")
    counts: dict[str, int] = {}
    for k in keys:
        counts[k] = counts.get(k, 0) + 1
    return np.asarray([1.0 / counts[k] for k in keys])


class _Fitter:
    """Compiled loss and Adam loop for one :class:`Engine` (reused across CV folds)."""

    def __init__(self, engine: Engine, base: Efficiency, settings: FitSettings, families: Sequence[str]):
        self.engine = engine
        self.base = base
        self.settings = settings
        self.fields = tuple(dict.fromkeys(settings.fields + settings.energy_fields))
        self.families = tuple(families)
        fam_index = {f: i for i, f in enumerate(self.families)}
        # profile index of each segment (last row of the delta table = no profile)
        n_prof = len(self.families)
        self.seg_profile = np.asarray(
            [fam_index.get(engine.cases[r].family, n_prof) for r in engine.seg_row], dtype=np.int32
        )
        self.profile_mask = np.asarray(
            [1.0 if f in settings.profile_fields else 0.0 for f in self.fields], dtype=np.float32
        )
        self.log_measured = np.log(engine.measured).astype(np.float32)
        self._run = jax.jit(self._adam)

    def efficiency(self, theta, delta) -> Efficiency:
        """Per-segment efficiency from shared ``theta`` (n_fields,) and profile offsets."""
        full = jnp.concatenate([delta, jnp.zeros((1, delta.shape[1]), delta.dtype)], axis=0)
        u = theta[None, :] + full[self.seg_profile] * self.profile_mask[None, :]
        values = {f: _from_unconstrained(f, u[:, i]) for i, f in enumerate(self.fields)}
        n = self.engine.n_segments
        fixed = {
            f: jnp.full((n,), getattr(self.base, f), jnp.float32)
            for f in Efficiency.__dataclass_fields__
            if f not in values
        }
        return Efficiency(**values, **fixed)

    def loss(self, params, weights):
        theta, delta = params
        pred = self.engine.row_predictions(self.efficiency(theta, delta))
        r = jnp.log(pred) - self.log_measured
        d = self.settings.huber_delta
        if self.settings.loss == "cauchy":
            rho = 0.5 * d * d * jnp.log1p((r / d) ** 2)
        else:
            rho = d * d * (jnp.sqrt(1.0 + (r / d) ** 2) - 1.0)
        data = jnp.sum(weights * rho) / jnp.maximum(jnp.sum(weights), 1e-12)
        # Gaussian prior on profile offsets, on the scale of the data term: the mean
        # pseudo-Huber loss is ~ d^2 / n x (sum of squared residuals / 2 d^2)
        prior = 0.5 * jnp.sum((delta * self.profile_mask[None, :]) ** 2) / self.settings.profile_prior**2
        for field, centre, sd in self.settings.priors:
            if field in self.fields:
                j = self.fields.index(field)
                prior = prior + 0.5 * ((theta[j] - _to_unconstrained(field, centre)) / sd) ** 2
        return data + d * d * prior / jnp.maximum(jnp.sum(weights > 0), 1.0)

    def _adam(self, params, weights, train_mask, profile_train):
        opt = optax.adam(self.settings.learning_rate)
        state = opt.init(params)
        grad_fn = jax.value_and_grad(self.loss)

        def step(carry, _):
            params, state = carry
            value, (g_theta, g_delta) = grad_fn(params, weights)
            g = (g_theta * train_mask, g_delta * train_mask[None, :] * profile_train[:, None])
            g = jax.tree_util.tree_map(lambda x: jnp.where(jnp.isfinite(x), x, 0.0), g)
            updates, state = opt.update(g, state, params)
            return (optax.apply_updates(params, updates), state), value

        (params, _), losses = jax.lax.scan(step, (params, state), None, length=self.settings.steps)
        return params, losses

    def run(self, init: Calibration, weights: np.ndarray) -> tuple[Calibration, dict]:
        """Two stages: latency fields on latency rows, then energy fields on energy rows."""
        theta = jnp.asarray(
            [_to_unconstrained(f, getattr(init.efficiency, f)) for f in self.fields], jnp.float32
        )
        delta = np.zeros((len(self.families), len(self.fields)), np.float32)
        for i, fam in enumerate(self.families):
            for j, f in enumerate(self.fields):
                if fam in init.profiles and f in init.profiles[fam]:
                    delta[i, j] = _to_unconstrained(f, init.profiles[fam][f]) - float(theta[j])
        params = (theta, jnp.asarray(delta))
        is_energy = np.asarray([c.row.is_energy for c in self.engine.cases])
        seen = np.zeros(len(self.families), np.float32)
        for i, fam in enumerate(self.families):
            seen[i] = float(
                any(w > 0 and c.family == fam for w, c in zip(weights, self.engine.cases, strict=True))
            )
        history = {}
        for stage, fields, rows in (
            ("latency", self.settings.fields, ~is_energy),
            ("energy", self.settings.energy_fields, is_energy),
        ):
            w = np.where(rows, weights, 0.0).astype(np.float32)
            if not fields or w.sum() == 0:
                continue
            mask = np.asarray([1.0 if f in fields else 0.0 for f in self.fields], np.float32)
            params, losses = self._run(params, jnp.asarray(w), jnp.asarray(mask), jnp.asarray(seen))
            history[stage] = np.asarray(losses)
        theta, delta = (np.asarray(p, dtype=np.float64) for p in params)
        shared = {f: float(_from_unconstrained(f, theta[j])) for j, f in enumerate(self.fields)}
        efficiency = replace(self.base, **shared)
        profiles = {}
        for i, fam in enumerate(self.families):
            if not seen[i]:
                continue
            over = {
                f: float(_from_unconstrained(f, theta[j] + delta[i, j]))
                for j, f in enumerate(self.fields)
                if f in self.settings.profile_fields
            }
            if over:
                profiles[fam] = over
        return Calibration(efficiency, profiles), history


def fit(
    prepared: Prepared,
    settings: FitSettings = FitSettings(),
    init: Calibration | None = None,
    engine: Engine | None = None,
) -> tuple[Calibration, dict]:
    """Fit efficiency parameters to the rows of ``prepared`` by gradient descent.

    Minimises ``sum_i w_i rho(log(pred_i / measured_i)) / sum_i w_i`` (pseudo-Huber
    ``rho``) over the :attr:`FitSettings.fields` in logit/log space with Adam, through the
    jit-compiled model; then fits :attr:`FitSettings.energy_fields` to the energy rows.

    Returns:
      ``(calibration, history)``: the fitted :class:`Calibration` and the loss per step of
      each stage.
    """
    engine = engine or Engine(prepared.cases)
    families = sorted({c.family for c in prepared.cases if c.family}) if settings.profile_fields else []
    fitter = _Fitter(engine, (init or Calibration(INITIAL)).efficiency, settings, families)
    weights = _row_weights(prepared.cases, settings.balance)
    return fitter.run(init or Calibration(INITIAL), weights)


def cross_validate(
    prepared: Prepared,
    settings: FitSettings = FitSettings(),
    group: str = "hardware",
    engine: Engine | None = None,
) -> tuple[Report, dict[str, Calibration]]:
    """Leave-one-group-out cross-validation (default: leave one hardware out).

    For each hardware slug, refit on the other rows and predict the left-out ones; the
    returned :class:`Report` holds these out-of-sample predictions for every row.

    Args:
      group: ``"hardware"`` (each slug is a fold) or ``"vendor"`` (the ``vendor`` column of
        ``hardware.csv``).
    """
    engine = engine or Engine(prepared.cases)
    families = sorted({c.family for c in prepared.cases if c.family}) if settings.profile_fields else []
    init = Calibration(INITIAL)
    fitter = _Fitter(engine, init.efficiency, settings, families)
    base_weights = _row_weights(prepared.cases, settings.balance)
    keys = [_group_key(c.row.hardware, group) for c in prepared.cases]
    predicted = np.full(engine.n_rows, np.nan)
    fits = {}
    for key in dict.fromkeys(keys):
        held = np.asarray([k == key for k in keys])
        if held.all():
            continue
        calib, _ = fitter.run(init, np.where(held, 0.0, base_weights))
        fits[key] = calib
        predicted[held] = engine.predict(calib)[held]
    ok = np.isfinite(predicted)
    cases = tuple(c for c, k in zip(prepared.cases, ok, strict=True) if k)
    report = Report(
        label=f"leave-one-{group}-out",
        cases=cases,
        predicted=predicted[ok],
        measured=engine.measured[ok],
        skipped=prepared.skipped,
    )
    return report, fits


def _group_key(hardware: str, group: str) -> str:
    if group == "hardware":
        return hardware
    if group == "vendor":
        return presets.table("hardware")[hardware].get("vendor", hardware)
    raise ValueError(f"group = {group!r}: use 'hardware' or 'vendor'")


# ----------------------------------------------------------------------------- files


def load_calibration(path: str | Path) -> Calibration:
    """Read an ``[efficiency]`` table and optional ``[profiles.<family>]`` tables."""
    import tomllib

    from .calibrated import efficiency_from_mapping

    path = Path(path)
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"{path}: cannot read efficiency parameters ({exc})") from None
    efficiency = efficiency_from_mapping(doc.get("efficiency", {}), where=str(path))
    profiles = {}
    for family, values in doc.get("profiles", {}).items():
        if family not in known_families():
            raise ValueError(
                f"{path}: [profiles.{family}] is not a known serving-stack family; "
                f"use one of {', '.join(known_families())}"
            )
        efficiency_from_mapping(values, where=f"{path} [profiles.{family}]")
        profiles[family] = {k: float(v) for k, v in values.items()}
    return Calibration(efficiency, profiles)


def default_calibration() -> Calibration:
    """The shipped parameters (``presets/data/efficiency.toml``)."""
    from importlib import resources

    return load_calibration(Path(str(resources.files("hwgrad.presets") / "data" / "efficiency.toml")))


def _fmt_value(x: float) -> str:
    return repr(float(f"{x:.6g}"))


def write_calibration(path: str | Path, calibration: Calibration, header: Sequence[str] = ()) -> None:
    """Write a TOML file readable by :func:`load_calibration` and ``--params``."""
    lines = [f"# {h}" if h else "#" for h in header]
    lines.append("[efficiency]")
    for field in Efficiency.__dataclass_fields__:
        lines.append(f"{field} = {_fmt_value(getattr(calibration.efficiency, field))}")
    for family, values in sorted(calibration.profiles.items()):
        lines.append("")
        lines.append(f'[profiles."{family}"]')
        for field, value in values.items():
            lines.append(f"{field} = {_fmt_value(value)}")
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")


# ----------------------------------------------------------------------------- CLI


def _fmt_measure(value: float, metric: str) -> str:
    return f"{value:.4g} {METRICS[metric]}"


def _print_table(report: Report, file=None) -> None:
    file = file or sys.stdout
    head = (
        f"{'id':>5} {'model':<14} {'hardware':<15} {'tp':>2} {'batch':>5} {'in':>5} {'out':>5} "
        f"{'dtype':<5} {'metric':<18} {'measured':>14} {'predicted':>14} {'error':>8}  notes"
    )
    print(head, file=file)
    for i, (case, p, m) in enumerate(zip(report.cases, report.predicted, report.measured, strict=True)):
        r = case.row
        err = 100.0 * (p - m) / m
        notes = list(case.notes)
        share = report.static_share_of(i)
        if share is not None:
            notes.insert(0, f"static power {100 * share:.0f}% of energy")
        notes = "; ".join(notes)
        print(
            f"{r.id:>5} {r.model[:14]:<14} {r.hardware[:15]:<15} {r.tp:>2} {r.batch:>5} {r.input_len:>5} "
            f"{r.output_len:>5} {r.weight_dtype:<5} {r.metric:<18} {_fmt_measure(m, r.metric):>14} "
            f"{_fmt_measure(p, r.metric):>14} {err:>+7.1f}%  {notes}",
            file=file,
        )


def _print_skipped(skipped, file=None) -> None:
    file = file or sys.stdout
    if not skipped:
        return
    print(f"skipped {len(skipped)} row(s) that cannot be modelled:", file=file)
    for row, reason in skipped:
        print(
            f"  id {row.id} (line {row.line}, {row.model} on {row.hardware}, {row.metric}): {reason}",
            file=file,
        )


def _write_csv(path: str, reports: Sequence[Report]) -> None:
    import csv

    fields = [
        "efficiency", "id", "line", "model", "hardware", "n_chips", "tp", "batch", "input_len", "output_len",
        "weight_dtype", "metric", "software", "measured", "predicted", "ape", "signed_error_pct",
        "static_energy_share", "notes",
    ]  # fmt: skip
    try:
        fh = open(path, "w", newline="", encoding="utf-8")  # noqa: SIM115
    except OSError as exc:
        raise ValueError(f"--csv {path}: cannot write ({exc.strerror or exc})") from None
    with fh:
        w = csv.DictWriter(fh, fieldnames=fields)
        w.writeheader()
        for rep in reports:
            for row in rep.rows():
                w.writerow({"efficiency": rep.label, **row, "notes": "; ".join(row["notes"])})
            for row, reason in rep.skipped:
                w.writerow(
                    {
                        "efficiency": rep.label, "id": row.id, "line": row.line, "model": row.model,
                        "hardware": row.hardware, "metric": row.metric, "measured": row.value,
                        "notes": f"skipped: {reason}",
                    }
                )  # fmt: skip


def _calibration_from_args(args) -> tuple[Calibration, str]:
    if getattr(args, "params", None):
        return load_calibration(args.params), f"from {args.params}"
    return default_calibration(), "calibrated (shipped)"


def cmd_validate(args) -> int:
    data = read_measurements(args.data, skip_unknown=args.skip_unknown)
    prepared = prepare(data)
    engine = Engine(prepared.cases)
    sol = validate(prepared, Calibration.speed_of_light(), "speed of light", engine)
    if args.speed_of_light:
        primary, reports = sol, [sol]
    else:
        calib, label = _calibration_from_args(args)
        primary = validate(prepared, calib, label, engine)
        reports = [primary, sol]
    if args.csv:
        _write_csv(args.csv, reports)
    if args.json:
        out = {
            "file": prepared.path,
            "efficiency": primary.label,
            "rows": primary.rows(),
            "skipped": [
                {
                    "id": r.id,
                    "line": r.line,
                    "model": r.model,
                    "hardware": r.hardware,
                    "metric": r.metric,
                    "reason": reason,
                }
                for r, reason in prepared.skipped
            ],  # fmt: skip
            "summary": {
                rep.label: {"latency": rep.summary(False), "energy": rep.summary(True)} for rep in reports
            },
        }
        print(json.dumps(out, indent=2))
        return 0
    print(f"{prepared.path}: {len(prepared.cases)} rows modelled; efficiency: {primary.label}")
    _print_table(primary)
    _print_skipped(prepared.skipped)
    if not args.speed_of_light:
        print(f"speed of light:    {format_summary(sol.summary(False))}")
        print(f"speed of light:    {format_summary(sol.summary(True), 'energy: ')}")
        print(f"{primary.label}:")
    print(format_summary(primary.summary(False)))
    print(format_summary(primary.summary(True), "energy: "))
    return 0


def cmd_calibrate(args) -> int:
    data = read_measurements(args.data, skip_unknown=args.skip_unknown)
    prepared = prepare(data)
    if not prepared.cases:
        raise ValueError(f"{args.data}: no row can be modelled, nothing to fit")
    settings = FitSettings(steps=args.steps)
    if args.no_priors:
        settings = dataclasses.replace(settings, priors=())
    if args.no_profiles:
        settings = dataclasses.replace(settings, profile_fields=())
    elif args.profile_fields is not None:
        settings = dataclasses.replace(settings, profile_fields=tuple(args.profile_fields))
    engine = Engine(prepared.cases)
    calib, _ = fit(prepared, settings, engine=engine)
    fitted = validate(prepared, calib, "fitted", engine)
    sol = validate(prepared, Calibration.speed_of_light(), "speed of light", engine)
    header = [
        "Efficiency parameters fitted by `hwgrad calibrate` (hwgrad.calibrate.fit).",
        f"command: hwgrad calibrate {args.data} -o {args.output}"
        + (" --no-priors" if args.no_priors else "")
        + (" --no-profiles" if args.no_profiles else "")
        + (f" --profile-fields {' '.join(args.profile_fields)}" if args.profile_fields is not None else ""),
        f"rows: {fitted.summary(False)['rows']} latency/throughput + {fitted.summary(True)['rows']} energy; "
        f"skipped {len(prepared.skipped)}",
        f"fitted: {', '.join(settings.fields)} on latency/throughput rows, then "
        f"{', '.join(settings.energy_fields)} on energy rows; {settings.loss} loss on log(pred/measured), "
        f"scale {settings.huber_delta:g}; Adam {settings.steps} steps per stage",
        "priors: "
        + (
            ", ".join(f"{f} centred at {c:g} (sd {sd:g} in logit/log units)" for f, c, sd in settings.priors)
            or "none"
        )
        + (
            f"; per-stack profiles of {', '.join(settings.profile_fields)} "
            f"(offsets shrunk to the shared value, sd {settings.profile_prior:g})"
            if settings.profile_fields
            else "; no per-stack profiles"
        ),
        '[efficiency] is the shared set (any stack; `hwgrad eval --params`); [profiles."<stack>"] '
        "override it for rows whose software column names that stack",
        "comm_overlap is not fitted (decode all-reduces sit on the critical path)",
        f"in-sample:      {format_summary(fitted.summary(False))}",
        f"in-sample:      {format_summary(fitted.summary(True), 'energy: ')}",
        f"speed of light: {format_summary(sol.summary(False))}",
    ]
    if not args.no_cv:
        cv, _ = cross_validate(prepared, settings, engine=engine)
        header += [
            f"LOHO CV:        {format_summary(cv.summary(False))}",
            f"LOHO CV:        {format_summary(cv.summary(True), 'energy: ')}",
            "(LOHO = refit without each hardware in turn, predict it; energy rows come from one "
            "hardware, so its energy fold uses the starting static_power_fraction "
            f"{INITIAL.static_power_fraction:g})",
        ]
    try:
        write_calibration(args.output, calib, header)
    except OSError as exc:
        raise ValueError(f"-o {args.output}: cannot write ({exc.strerror or exc})") from None
    for line in header[2:]:
        print(line)
    for field in Efficiency.__dataclass_fields__:
        print(f"  {field:<24} {getattr(calib.efficiency, field):.6g}")
    for family, values in calib.profiles.items():
        print(f"  profile {family}: " + ", ".join(f"{k} {v:.6g}" for k, v in values.items()))
    print(f"wrote {args.output}")
    return 0


def register_cli(subparsers) -> None:
    """Add ``hwgrad validate`` and ``hwgrad calibrate`` to the ``hwgrad`` parser."""
    p = subparsers.add_parser(
        "validate",
        help="predict measured rows and report errors",
        description="Predict every row of a measurement CSV (calibration schema) and report the "
        "absolute percentage error, with the calibrated and speed-of-light parameters.",
    )
    p.add_argument("data", metavar="DATA.csv", help="measurements in the calibration.csv schema")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--csv", metavar="OUT", help="also write per-row results to this CSV")
    p.add_argument(
        "--skip-unknown", action="store_true", help="leave out rows naming an unknown model/hardware"
    )
    p.add_argument("--params", metavar="FILE", help="efficiency parameters (TOML from `hwgrad calibrate`)")
    p.add_argument("--speed-of-light", action="store_true", help="report the ideal roofline only")
    p.set_defaults(func=cmd_validate)

    c = subparsers.add_parser(
        "calibrate",
        help="fit efficiency parameters to measurements",
        description="Fit the shared efficiency parameters to a measurement CSV by gradient descent "
        "through the model, with leave-one-hardware-out cross-validation.",
    )
    c.add_argument("data", metavar="DATA.csv", help="measurements in the calibration.csv schema")
    c.add_argument(
        "-o", "--output", required=True, metavar="params.toml", help="where to write the parameters"
    )
    c.add_argument(
        "--skip-unknown", action="store_true", help="leave out rows naming an unknown model/hardware"
    )
    c.add_argument("--steps", type=int, default=FitSettings.steps, help="Adam steps per stage")
    c.add_argument(
        "--profile-fields",
        nargs="*",
        choices=FIT_FIELDS,
        metavar="FIELD",
        help=f"fields that may differ per serving stack (default: {' '.join(FitSettings.profile_fields)})",
    )
    c.add_argument("--no-profiles", action="store_true", help="one shared parameter set for every stack")
    c.add_argument(
        "--no-priors",
        action="store_true",
        help=f"no prior on weakly identified fields (default: {', '.join(f for f, _, _ in FitSettings.priors)})",
    )
    c.add_argument("--no-cv", action="store_true", help="skip the cross-validation")
    c.set_defaults(func=cmd_calibrate)


def _main(argv=None):  # pragma: no cover - convenience for `python -m hwgrad.calibrate`
    parser = argparse.ArgumentParser(prog="hwgrad")
    register_cli(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(_main())
