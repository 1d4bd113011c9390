"""Calibration and validation of the cost model against measured decode performance.

``validate`` predicts every row of a measurement file (:mod:`hwgrad.measurements`) and
reports absolute percentage errors; ``fit`` finds the few physical parameters the data
identify by gradient descent (Adam) through the jit-compiled, ``vmap``-ped model;
``cross_validate`` refits with a group of rows left out and predicts it (leave one
hardware out, LOHO; leave one architecture generation out, LOGO: the honest proxy for
predicting the next generation of hardware on the same stacks).

What is fitted is kept apart by what it belongs to:

* **Hardware** (fields of :class:`~hwgrad.specs.Chip`): the achievable fraction of peak
  memory bandwidth and of peak FLOPS, and the small-transfer ramp per kernel. Each value is
  ``shared + line offset + family offset`` (families are architecture generations, lines
  the vendor product lines, :data:`hwgrad.presets.HARDWARE_FAMILIES`); offsets carry a
  Gaussian prior (shrinkage), so a family with few rows stays near its line and a family
  without rows (the next generation) takes its line's value.
* **Software** (fields of :class:`~hwgrad.specs.Stack`): per-kernel launch gap, per-step
  engine cost and per-collective software latency, per stack family
  (:func:`hwgrad.stacks.stack_family`), each an offset from the shared value with a prior.

Every parameter is fitted in a bounded space: ``lo + (hi - lo) sigmoid(u)`` for fractions
and ``lo (hi / lo)^sigmoid(u)`` for times, so a fit can only choose values inside the
documented physical range (:data:`PARAMETERS`). The loss is a Cauchy loss of
``log(predicted / measured)`` (a few rows the model cannot explain do not drag the shared
parameters), each hardware's rows weighted equally.

How a row is modelled (interpretations made here, at the edge, and reported per row):

* ``tpot_ms`` is the mean decode step (:attr:`Result.tpot_s`); ``e2e_latency_s`` the
  request latency; ``output_tok_s`` :attr:`Result.tokens_per_s` (static: ``B O / e2e``;
  continuous: Little's law); ``energy_j_per_token`` the energy of a replica per output
  token. The row's ``batching`` column selects the serving mode
  (:func:`hwgrad.cost.serve`); static batches whose KV cache does not fit run in waves
  (:func:`hwgrad.cost.static_waves`). Continuous rows use 0.9 x the nominal lengths when
  the row's source draws lengths from ``[0.8 L, L]`` (InferenceMAX).
* Memory capacities printed as a whole number of "GB" are read as binary GiB (HBM/GDDR
  parts are sized in powers of two; NVIDIA's "80 GB" parts expose 80 GiB). A row where not
  even one sequence fits is skipped with the reason.
* ``tp x pp`` larger than ``n_chips`` by a whole factor ``k`` means each listed device is a
  ``k``-die module (e.g. ``mi250`` = 2 GCDs): each die gets ``1/k`` of the module's
  bandwidth, FLOPS, capacity and TDP. ``n_chips`` a multiple ``k`` of ``tp x pp`` means
  ``k`` data-parallel replicas sharing ``batch``.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import math
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from . import cost, dtypes, presets
from .measurements import METRICS, Measurement, MeasurementSet, read_measurements
from .specs import Compression, Model, Options, Stack, System, Workload, replace
from .stacks import stack_family
from .validate import validate as validate_design

__all__ = [
    "PARAMETERS",
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
    "default_calibration",
    "register_cli",
]

GIB_PER_GB = 2.0**30 / 1e9


@dataclasses.dataclass(frozen=True)
class Parameter:
    """A fitted quantity: where it lives, its unit, physical range, starting value, and the
    levels at which it may differ (``hw_line``, ``hw_family``, ``stack``).

    Attributes:
      target: ``"chip"`` (a :class:`Chip` field) or ``"stack"`` (a :class:`Stack` field).
      field: the field name.
      kind: ``"fraction"`` (linear in [lo, hi]) or ``"time"`` (logarithmic in [lo, hi]).
      lo, hi: the physical range (the fit cannot leave it).
      init: starting value and centre of the shared prior.
      prior_sd: sd of the shared value's prior around ``init`` in unconstrained units
        (``inf``: flat).
      levels: where offsets are fitted; ``offset_sd`` their prior sd (unconstrained units).
      why: the reason for the range (shown in the report and docs).
    """

    target: str
    field: str
    unit: str
    kind: str
    lo: float
    hi: float
    init: float
    prior_sd: float
    levels: tuple[str, ...]
    offset_sd: float
    why: str
    stage: str = "latency"

    @property
    def key(self) -> str:
        return f"{self.target}.{self.field}"

    def to_u(self, value: float) -> float:
        frac = (math.log(value) - math.log(self.lo)) / (math.log(self.hi) - math.log(self.lo)) if (
            self.kind == "time"
        ) else (value - self.lo) / (self.hi - self.lo)
        frac = min(max(frac, 1e-6), 1 - 1e-6)
        return math.log(frac / (1 - frac))

    def from_u(self, u):
        s = jax.nn.sigmoid(u)
        if self.kind == "time":
            return jnp.exp(math.log(self.lo) + (math.log(self.hi) - math.log(self.lo)) * s)
        return self.lo + (self.hi - self.lo) * s


#: The fitted parameters (at most ~40 numbers: shared values plus the offsets of the
#: families and stacks that have rows).
PARAMETERS: tuple[Parameter, ...] = (
    Parameter(
        "chip", "bandwidth_efficiency", "1", "fraction", 0.3, 1.0, 0.85, 1.0, ("hw_line", "hw_family"), 0.5,
        "sustained / peak DRAM read bandwidth: 0.85-0.93 in STREAM-like GPU microbenchmarks; "
        "LPDDR SoCs lower",
    ),
    Parameter(
        "chip", "flops_efficiency", "1", "fraction", 0.1, 1.0, 0.6, 0.5, ("hw_line",), 0.5,
        "achieved / peak dense tensor FLOP/s of large GEMMs (0.6-0.8 on A100/H100 in cuBLAS); "
        "few compute-bound rows identify it",
    ),
    Parameter(
        "chip", "kernel_memory_latency_s", "s", "time", 1e-8, 5e-6, 5e-7, 1.0, (), 1.0,
        "DRAM load latency + pipeline fill before a kernel streams at full bandwidth "
        "(GPU microbenchmarks: ~0.5-1 us)",
    ),
    Parameter(
        "stack", "op_overhead_s", "s", "time", 1e-8, 5e-5, 3e-6, 2.0, ("stack",), 1.5,
        "gap per kernel launch: ~1-3 us under CUDA graphs, ~5-10 us eager PyTorch, more for "
        "unfused engines",
    ),
    Parameter(
        "stack", "step_overhead_s", "s", "time", 1e-7, 2e-2, 1e-4, 3.0, ("stack",), 2.0,
        "engine cost per forward pass not hidden by the device (scheduler, sampling, inputs)",
    ),
    Parameter(
        "stack", "collective_overhead_s", "s", "time", 1e-8, 5e-5, 3e-6, 1.0, ("stack",), 1.0,
        "software latency per collective call: custom all-reduce implementations differ by "
        "~3.6 us on 8x H100 (interconnect.csv)",
    ),
    Parameter(
        "chip", "active_power_fraction", "1", "fraction", 0.0, 0.6, 0.3, 1.0, ("hw_line",), 0.5,
        "clock/stall power of a busy GPU beyond bytes and FLOPs, as a share of TDP above idle "
        "(energy rows: A100, H100); the rest of the power is physics (hwgrad.power)",
        "energy",
    ),
)

_PARAM_BY_KEY = {p.key: p for p in PARAMETERS}

#: the stack fields that are not fitted: ideal kernels, bf16 collectives, and the 0.9 memory
#: share that vLLM (``gpu_memory_utilization``) and TensorRT-LLM
#: (``kv_cache_free_gpu_mem_fraction``) default to
_BASE_STACK = Stack(memory_fraction=0.9)


def software_family(software: str) -> str:
    """The serving-stack family of a ``software`` cell (``""`` if not recognised)."""
    return stack_family(software)


# ----------------------------------------------------------------------------- parameters


@dataclasses.dataclass(frozen=True)
class Calibration:
    """A fitted parameter set.

    Attributes:
      hardware: ``{"shared" | line | family: {chip field: value}}``: resolved values
        (a family's entry already includes its line's and the shared values).
      stacks: ``{stack family: Stack}`` (``"default"``: the shared values, used for rows
        whose software is not recognised; ``"tuned"``: the best of the fitted stacks).
      ideal: speed of light (raw chips, no software cost), ignoring the tables.
    """

    hardware: dict[str, dict[str, float]] = dataclasses.field(default_factory=dict)
    stacks: dict[str, Stack] = dataclasses.field(default_factory=dict)
    ideal: bool = False

    def chip_values(self, hardware_slug: str) -> dict[str, float]:
        if self.ideal:
            return {
                p.field: (1.0 if p.kind == "fraction" else 0.0)
                for p in PARAMETERS
                if p.target == "chip" and p.stage == "latency"
            }
        family = presets.hardware_family(hardware_slug)
        out: dict[str, float] = {}
        for key in ("shared", presets.hardware_line(family), family):
            out.update(self.hardware.get(key, {}))
        return out

    def stack_for(self, family: str) -> Stack:
        if self.ideal:
            return Stack.ideal()
        if family in self.stacks:
            return self.stacks[family]
        return self.stacks.get("default", Stack.ideal())

    @staticmethod
    def speed_of_light() -> Calibration:
        return Calibration(ideal=True)


# ----------------------------------------------------------------------------- preparing rows


@dataclasses.dataclass(frozen=True)
class Case:
    """One measured row turned into specs the model can evaluate.

    Attributes:
      row: the measurement.
      system, model, compression, workload: specs of one replica (raw, unfitted chip).
      family: serving-stack family of ``row.software`` (``""``: not recognised).
      hw_family, hw_line: the hardware's architecture family and vendor line.
      notes: interpretations applied to this row (waves, derived values, defaults).
    """

    row: Measurement
    system: System
    model: Model
    compression: Compression
    workload: Workload
    family: str
    hw_family: str
    hw_line: str
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


# one compile per row structure instead of thousands of eager ops per row
_capacity_jit = jax.jit(cost.capacity_used_bytes)


def _capacity_per_sequence(system, model, compression, workload) -> tuple[float, float]:
    """(bytes of weights, bytes per sequence) held by one chip, from the model's own
    capacity accounting (weights + final KV cache + activation workspace)."""
    one = np.asarray(_capacity_jit(system, model, replace(workload, batch=1.0), compression))[0]
    two = np.asarray(_capacity_jit(system, model, replace(workload, batch=2.0), compression))[0]
    per_seq = float(two - one)
    return float(one - per_seq), per_seq


#: sources whose benchmark draws each request's lengths uniformly from [0.8 L, L]
_UNIFORM_LENGTH_SOURCES = ("inferencemax", "inferencex")


def _prepare_row(row: Measurement) -> Case | str:
    """A :class:`Case` for ``row``, or the reason it cannot be modelled."""
    notes: list[str] = []
    chips_needed = row.tp * row.pp
    if chips_needed > row.n_chips:
        dies = chips_needed // row.n_chips
        system = presets.system(row.hardware, chips_needed, fitted=False)
        system = _split_module(system, dies)
        notes.append(f"tp x pp = {chips_needed} on {row.n_chips} device(s): {dies} dies per device")
        dp = 1
    else:
        dp = row.n_chips // chips_needed
        system = presets.system(row.hardware, row.n_chips, fitted=False)
    for name in row.defaulted:
        notes.append(f"{name} not stated: default used")
    chip = system.chip
    if row.is_energy and not math.isfinite(chip.tdp_w):
        return f"energy: TDP of {row.hardware} not published, energy not modelled"
    # unknown TDP / FLOP energy only feed energy, which is not used for these rows; zeros keep
    # gradients finite (a NaN in an unused output still poisons reverse-mode sums)
    if not math.isfinite(chip.tdp_w) or not math.isfinite(chip.energy_j_per_flop_bf16):
        chip = replace(chip, tdp_w=0.0, energy_j_per_flop_bf16=0.0)
    capacity = float(chip.tiers[0].capacity_bytes)
    if math.isfinite(capacity):
        capacity, note = _binary_capacity(row.hardware, capacity)
        chip = replace(chip, tiers=(replace(chip.tiers[0], capacity_bytes=capacity), *chip.tiers[1:]))
    system = replace(system, chip=chip)
    model = presets.model(row.model)
    compression = dtypes.compression(row.weight_dtype, row.kv_dtype)
    batch = -(-row.batch // dp)
    if dp > 1:
        notes.append(f"{dp} data-parallel replicas, {batch} sequences each")
    input_len, output_len = float(row.input_len), float(row.output_len)
    source = (row.source or "").lower()
    if row.batching != "static" and any(s in source for s in _UNIFORM_LENGTH_SOURCES):
        input_len, output_len = float(round(0.9 * input_len)), float(round(0.9 * output_len))
        notes.append("lengths drawn from [0.8 L, L]: mean 0.9 L used")
    workload = Workload(
        batch=float(batch),
        prompt_len=input_len,
        output_len=max(output_len, 1.0),
        tp=float(row.tp),
        pp=float(row.pp),
        ep=float(row.ep),
        dp=float(dp),
        batching=row.batching,
    )
    try:
        validate_design(system, model, workload, compression)
    except ValueError as exc:
        return f"design: {exc}"
    if math.isfinite(capacity):
        weights, per_seq = _capacity_per_sequence(system, model, compression, workload)
        usable = capacity * float(_BASE_STACK.memory_fraction)
        fit_n = int((usable - weights) // per_seq) if per_seq > 0 else batch
        if fit_n < 1:
            return (
                f"capacity: {weights / 1e9:.1f} GB of weights + {per_seq / 1e9:.2f} GB for one sequence "
                f"exceed {usable / 1e9:.1f} GB usable per chip"
            )
        if fit_n < batch:
            if row.batching == "static":
                waves = -(-batch // fit_n)
                notes.append(f"KV cache does not fit: {fit_n} of {batch} sequences at once, {waves} waves ({note})")
            else:
                notes.append(f"KV cache holds {fit_n} of {batch} concurrent sequences ({note})")
    family = stack_family(row.software)
    hw_family = presets.hardware_family(row.hardware)
    return Case(
        row=row,
        system=system,
        model=model,
        compression=compression,
        workload=workload,
        family=family,
        hw_family=hw_family,
        hw_line=presets.hardware_line(hw_family),
        notes=tuple(notes),
    )


def prepare(data: MeasurementSet | Iterable[Measurement]) -> Prepared:
    """Turn measurements into evaluable :class:`Case` s; rows that cannot be modelled are
    kept in ``skipped`` with the reason (never dropped silently).

    Args:
      data: a :class:`MeasurementSet` (its ``unknown`` rows are carried into ``skipped``)
        or an iterable of :class:`Measurement`.
    """
    if isinstance(data, MeasurementSet):
        rows, skipped, path = data.rows, list(data.unknown), data.path
    else:
        rows, skipped, path = tuple(data), [], ""
    cases = []
    for row in rows:
        out = _prepare_row(row)
        if isinstance(out, str):
            skipped.append((row, out))
        else:
            cases.append(out)
    return Prepared(cases=tuple(cases), skipped=tuple(skipped), path=path)


# ----------------------------------------------------------------------------- evaluation

_METRIC_INDEX = {name: i for i, name in enumerate(METRICS)}


@functools.cache
def _economics():
    return presets.default_economics()


def _case_outputs(system, model, workload, compression, stack, chip_values):
    """``[tpot_ms, e2e_latency_s, output_tok_s, energy_j_per_token]`` of one row's design
    with the chip's fitted fields ``chip_values`` (a dict of arrays) put in."""
    system = replace(system, chip=replace(system.chip, **chip_values))
    r = cost.evaluate(system, model, workload, compression, stack, _economics(), Options())
    return jnp.stack([r.tpot_s * 1e3, r.e2e_latency_s, r.tokens_per_s, r.energy_j_per_token])


def _stack(trees):
    return jax.tree_util.tree_map(
        lambda *xs: jnp.stack([jnp.asarray(x, dtype=jnp.float32) for x in xs]), *trees
    )


class Engine:
    """Evaluates every row of a :class:`Prepared` set in a few ``vmap`` calls.

    Rows are grouped by static structure (attention kind, FFN kind, sparsity pattern,
    topology, serving mode...) and stacked; one jit-compiled ``vmap`` per group. The fitted
    chip fields and the stack are given per row, so fits and per-family values batch too.
    """

    def __init__(self, cases: Sequence[Case]):
        self.cases = tuple(cases)
        self.n_rows = len(self.cases)
        self.metric = np.asarray([_METRIC_INDEX[c.row.metric] for c in self.cases], dtype=np.int32)
        self.measured = np.asarray([c.row.value for c in self.cases], dtype=np.float64)
        groups: dict = {}
        specs = [(c.system, c.model, c.workload, c.compression) for c in self.cases]
        for j, spec in enumerate(specs):
            groups.setdefault(jax.tree_util.tree_structure(spec), []).append(j)
        self.groups = [
            (np.asarray(idx, dtype=np.int32), _stack([specs[j] for j in idx])) for idx in groups.values()
        ]
        order = np.concatenate([idx for idx, _ in self.groups]) if self.groups else np.zeros(0, np.int32)
        self.unpermute = np.argsort(order).astype(np.int32)
        self._vmapped = jax.vmap(_case_outputs)

    @property
    def specs(self) -> tuple:
        """The stacked specs of every group: pass them to the jit-compiled functions as
        arguments (closing over them as constants lets XLA constant-fold the model with the
        presets' inf/NaN leaves, which gave wrong values on CPU)."""
        return tuple(stacked for _, stacked in self.groups)

    def outputs(self, stack: Stack, chip_values: dict, specs=None):
        """``(n_rows, 4)`` outputs; leaves of ``stack`` / ``chip_values`` have shape ``(n_rows,)``."""
        specs = self.specs if specs is None else specs
        outs = []
        for (idx, _), (system, model, workload, compression) in zip(self.groups, specs, strict=True):
            take = functools.partial(jax.tree_util.tree_map, lambda v, idx=idx: v[idx])
            outs.append(self._vmapped(system, model, workload, compression, take(stack), take(chip_values)))
        return jnp.concatenate(outs, axis=0)[self.unpermute]

    def row_predictions(self, stack: Stack, chip_values: dict, specs=None):
        """Predicted value of every row in its metric's unit, shape ``(n_rows,)``."""
        table = self.outputs(stack, chip_values, specs)
        return jnp.take_along_axis(table, jnp.asarray(self.metric)[:, None], axis=1)[:, 0]

    def per_row(self, calibration: Calibration) -> tuple[Stack, dict]:
        stacks = [calibration.stack_for(c.family) for c in self.cases]
        values = [calibration.chip_values(c.row.hardware) for c in self.cases]
        keys = sorted({k for v in values for k in v})
        chip_values = {k: jnp.asarray([v.get(k, _default_chip(k)) for v in values], jnp.float32) for k in keys}
        return _stack(stacks), chip_values

    @functools.cached_property
    def _predict_jit(self):
        return jax.jit(self.row_predictions)

    def predict(self, calibration: Calibration) -> np.ndarray:
        if self.n_rows == 0:
            return np.zeros(0)
        stack, chip_values = self.per_row(calibration)
        return np.asarray(self._predict_jit(stack, chip_values, self.specs), dtype=np.float64)


def _default_chip(field: str) -> float:
    return 1.0 if _PARAM_BY_KEY[f"chip.{field}"].kind == "fraction" else 0.0


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

    ``summary(False)`` summarises tpot / e2e / throughput rows, ``summary(True)`` the
    energy rows; the ``skipped`` counts split the skipped rows the same way.
    """

    label: str
    cases: tuple[Case, ...]
    predicted: np.ndarray
    measured: np.ndarray
    skipped: tuple[tuple[Measurement, str], ...]

    @property
    def errors(self) -> np.ndarray:
        return ape(self.predicted, self.measured)

    @property
    def signed_errors(self) -> np.ndarray:
        return 100.0 * (np.asarray(self.predicted) - self.measured) / self.measured

    def _mask(self, energy: bool) -> np.ndarray:
        return np.asarray([c.row.is_energy == energy for c in self.cases], dtype=bool)

    def summary(self, energy: bool = False) -> dict:
        skipped = sum(1 for row, _ in self.skipped if row.is_energy == energy)
        return ape_summary(self.errors[self._mask(energy)], skipped)

    def by_group(self) -> list[dict]:
        """Median / p90 APE and median signed error per (stack family, hardware family)."""
        groups: dict[tuple[str, str], list[int]] = {}
        for i, c in enumerate(self.cases):
            groups.setdefault((c.family or "(unrecognised)", c.hw_family), []).append(i)
        out = []
        for (stack, hw), idx in sorted(groups.items()):
            e, s = self.errors[idx], self.signed_errors[idx]
            out.append(
                {
                    "stack": stack,
                    "hardware_family": hw,
                    "rows": len(idx),
                    "median_ape": float(np.median(e)),
                    "p90_ape": float(np.percentile(e, 90)),
                    "median_signed_pct": float(np.median(s)),
                }
            )
        return out

    def ratio_errors(self) -> list[dict]:
        """Matched groups: rows identical but for the hardware (same source, model, layout
        class, lengths, dtypes, metric); for each pair, the error of the predicted speed
        ratio against the measured one, ``100 |pred_a/pred_b / (meas_a/meas_b) - 1|``."""
        groups: dict[tuple, list[int]] = {}
        for i, c in enumerate(self.cases):
            r = c.row
            key = (
                r.source.split()[0] if r.source else "", r.model, r.batch, r.batching, r.input_len,
                r.output_len, r.weight_dtype, r.kv_dtype, r.metric,
            )  # fmt: skip
            groups.setdefault(key, []).append(i)
        out = []
        for idx in groups.values():
            hws = {self.cases[i].row.hardware for i in idx}
            if len(hws) < 2:
                continue
            for a in idx:
                for b in idx:
                    ra, rb = self.cases[a].row, self.cases[b].row
                    if ra.hardware >= rb.hardware:
                        continue
                    pred = self.predicted[a] / self.predicted[b]
                    meas = self.measured[a] / self.measured[b]
                    out.append(
                        {
                            "ids": (ra.id, rb.id),
                            "hardware": (ra.hardware, rb.hardware),
                            "model": ra.model,
                            "measured_ratio": float(meas),
                            "predicted_ratio": float(pred),
                            "error_pct": float(100.0 * abs(pred / meas - 1.0)),
                        }
                    )
        return out

    def rows(self) -> list[dict]:
        out = []
        for case, p, m, e in zip(self.cases, self.predicted, self.measured, self.errors, strict=True):
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
                    "batching": r.batching,
                    "input_len": r.input_len,
                    "output_len": r.output_len,
                    "weight_dtype": r.weight_dtype,
                    "metric": r.metric,
                    "software": r.software,
                    "stack": case.family,
                    "hardware_family": case.hw_family,
                    "measured": float(m),
                    "predicted": float(p),
                    "ape": float(e),
                    "signed_error_pct": float(100.0 * (p - m) / m),
                    "notes": list(case.notes),
                }
            )
        return out


def predict(prepared: Prepared, calibration: Calibration, engine: Engine | None = None) -> np.ndarray:
    """Predicted value of every case of ``prepared`` (metric units)."""
    engine = engine or Engine(prepared.cases)
    return engine.predict(calibration)


def validate(
    prepared: Prepared, calibration: Calibration, label: str = "", engine: Engine | None = None
) -> Report:
    """Predict every row and compare with the measurements (see :class:`Report`)."""
    engine = engine or Engine(prepared.cases)
    return Report(
        label=label,
        cases=prepared.cases,
        predicted=engine.predict(calibration),
        measured=engine.measured,
        skipped=prepared.skipped,
    )


# ----------------------------------------------------------------------------- fitting


@dataclasses.dataclass(frozen=True)
class FitSettings:
    """Knobs of :func:`fit` (defaults are the ones used for the shipped parameters).

    Attributes:
      parameters: keys (``"chip.<field>"`` / ``"stack.<field>"``) of :data:`PARAMETERS` to
        fit; the others stay at their starting value.
      levels: offset levels used (``hw_line``, ``hw_family``, ``stack``); an empty tuple
        fits one shared set.
      priors: use the priors of :data:`PARAMETERS` on the shared values (offsets always
        have theirs).
      loss_scale: scale ``d`` of the Cauchy loss on ``log(pred / measured)``.
      steps, learning_rate: Adam iterations and step size.
      balance: ``"hardware"`` (each hardware's rows weigh as much as another's) or
        ``"row"``.
    """

    parameters: tuple[str, ...] = tuple(p.key for p in PARAMETERS)
    levels: tuple[str, ...] = ("hw_line", "hw_family", "stack")
    priors: bool = True
    loss_scale: float = 0.1
    steps: int = 500
    learning_rate: float = 0.05
    balance: str = "hardware"


def _row_weights(cases: Sequence[Case], balance: str) -> np.ndarray:
    if balance == "row":
        return np.ones(len(cases))
    if balance != "hardware":
        raise ValueError(f"balance = {balance!r}: use 'row' or 'hardware'")
    keys = [c.row.hardware for c in cases]
    counts: dict[str, int] = {}
    for k in keys:
        counts[k] = counts.get(k, 0) + 1
    # sqrt: a hardware with many rows still counts more, but not in proportion
    return np.asarray([1.0 / math.sqrt(counts[k]) for k in keys])


_LEVEL_OF_CASE = {
    "hw_line": lambda c: c.hw_line,
    "hw_family": lambda c: c.hw_family,
    "stack": lambda c: c.family,
}


class _Fitter:
    """Compiled loss and Adam loop for one :class:`Engine` (reused across CV folds)."""

    def __init__(self, engine: Engine, settings: FitSettings):
        self.engine = engine
        self.settings = settings
        self.params = PARAMETERS
        self.active = np.asarray([p.key in settings.parameters for p in self.params], np.float32)
        self.stage_mask = {
            st: np.asarray([p.stage == st for p in self.params], np.float32) for st in ("latency", "energy")
        }
        self.init_u = np.asarray([p.to_u(p.init) for p in self.params], np.float32)
        self.members: dict[str, tuple[str, ...]] = {}
        self.index: dict[str, np.ndarray] = {}
        self.mask: dict[str, np.ndarray] = {}
        for level in settings.levels:
            names = tuple(sorted({_LEVEL_OF_CASE[level](c) for c in engine.cases} - {"", "shared"}))
            pos = {n: i for i, n in enumerate(names)}
            self.members[level] = names
            # rows of an unrecognised member use the extra zero row at the end
            self.index[level] = np.asarray(
                [pos.get(_LEVEL_OF_CASE[level](c), len(names)) for c in engine.cases], np.int32
            )
            self.mask[level] = np.asarray(
                [1.0 if level in p.levels and p.key in settings.parameters else 0.0 for p in self.params],
                np.float32,
            )
        self.offset_sd = np.asarray([p.offset_sd for p in self.params], np.float32)
        self.prior_sd = np.asarray([p.prior_sd for p in self.params], np.float32)
        self.log_measured = np.log(engine.measured).astype(np.float32)
        self._run = jax.jit(self._adam)

    def row_u(self, theta, deltas):
        u = jnp.broadcast_to(theta[None, :], (self.engine.n_rows, len(self.params)))
        for level, d in deltas.items():
            full = jnp.concatenate([d, jnp.zeros((1, d.shape[1]), d.dtype)], axis=0)
            u = u + full[self.index[level]] * self.mask[level][None, :]
        return u

    def specs(self, theta, deltas) -> tuple[Stack, dict]:
        u = self.row_u(theta, deltas)
        chip_values, stack_values = {}, {}
        for j, p in enumerate(self.params):
            (chip_values if p.target == "chip" else stack_values)[p.field] = p.from_u(u[:, j])
        n = self.engine.n_rows
        base = _BASE_STACK
        fixed = {
            f.name: jnp.full((n,), getattr(base, f.name), jnp.float32)
            for f in dataclasses.fields(Stack)
            if f.name not in stack_values
        }
        return Stack(**stack_values, **fixed), chip_values

    def loss(self, params, weights, specs):
        theta, deltas = params
        pred = self.engine.row_predictions(*self.specs(theta, deltas), specs)
        r = jnp.log(pred) - self.log_measured
        d = self.settings.loss_scale
        rho = 0.5 * d * d * jnp.log1p((r / d) ** 2)
        data = jnp.sum(weights * rho) / jnp.maximum(jnp.sum(weights), 1e-12)
        prior = 0.0
        for level, dl in deltas.items():
            prior = prior + 0.5 * jnp.sum((dl * self.mask[level][None, :] / self.offset_sd[None, :]) ** 2)
        if self.settings.priors:
            z = (theta - self.init_u) / self.prior_sd * self.active
            prior = prior + 0.5 * jnp.sum(z**2)
        return data + d * d * prior / jnp.maximum(jnp.sum(weights > 0), 1.0)

    def _adam(self, params, weights, seen, stage_mask, specs):
        opt = optax.adam(self.settings.learning_rate)
        state = opt.init(params)
        grad_fn = jax.value_and_grad(self.loss)

        def step(carry, _):
            params, state = carry
            value, (g_theta, g_deltas) = grad_fn(params, weights, specs)
            g_theta = g_theta * self.active * stage_mask
            g_deltas = {k: v * seen[k][:, None] * stage_mask[None, :] for k, v in g_deltas.items()}
            g = jax.tree_util.tree_map(lambda x: jnp.where(jnp.isfinite(x), x, 0.0), (g_theta, g_deltas))
            updates, state = opt.update(g, state, params)
            return (optax.apply_updates(params, updates), state), value

        (params, _), losses = jax.lax.scan(step, (params, state), None, length=self.settings.steps)
        return params, losses

    def run(self, weights: np.ndarray) -> tuple[Calibration, np.ndarray]:
        """Two stages: the latency parameters on the latency/throughput rows, then (those
        frozen) the energy parameters on the energy rows."""
        is_energy = np.asarray([c.row.is_energy for c in self.engine.cases])
        theta = jnp.asarray(self.init_u)
        deltas = {lv: jnp.zeros((len(m), len(self.params)), jnp.float32) for lv, m in self.members.items()}
        losses = []
        seen_all = {lv: np.zeros(len(m), np.float32) for lv, m in self.members.items()}
        lat_w = np.where(is_energy, 0.0, weights).astype(np.float32)
        for stage, rows in (("latency", ~is_energy), ("energy", is_energy)):
            w = np.where(rows, weights, 0.0).astype(np.float32)
            if w.sum() == 0:
                continue
            seen = {
                lv: np.asarray(
                    [float(np.any((w > 0) & (self.index[lv] == i))) for i in range(len(self.members[lv]))],
                    np.float32,
                )
                for lv in self.members
            }
            for lv in seen:
                seen_all[lv] = np.maximum(seen_all[lv], seen[lv] * (self.mask[lv] * self.stage_mask[stage]).max())
            (theta, deltas), loss = self._run(
                (theta, deltas), jnp.asarray(w), {k: jnp.asarray(v) for k, v in seen.items()},
                jnp.asarray(self.stage_mask[stage]), self.engine.specs,
            )  # fmt: skip
            losses.append(np.asarray(loss))
        calib = self._calibration(np.asarray(theta), {k: np.asarray(v) for k, v in deltas.items()}, seen_all, lat_w)
        return calib, np.concatenate(losses) if losses else np.zeros(0)

    def _calibration(self, theta, deltas, seen, weights) -> Calibration:
        def values(u, target):
            return {
                p.field: float(p.from_u(u[j])) for j, p in enumerate(self.params) if p.target == target
            }

        def offset(level, name):
            names = self.members.get(level, ())
            if name not in names or not float(seen[level][names.index(name)]):
                return np.zeros_like(theta)
            return deltas[level][names.index(name)] * self.mask[level]

        hardware = {"shared": values(theta, "chip")}
        families = {fam for fam, _ in presets.HARDWARE_FAMILIES.values()}
        lines = {line for _, line in presets.HARDWARE_FAMILIES.values()}
        for line in sorted(lines):
            hardware[line] = values(theta + offset("hw_line", line), "chip")
        for fam in sorted(families):
            line = presets.hardware_line(fam)
            hardware[fam] = values(theta + offset("hw_line", line) + offset("hw_family", fam), "chip")
        stacks = {"default": replace(_BASE_STACK, **values(theta, "stack"))}
        rows_per_stack: dict[str, int] = {}
        for c, w in zip(self.engine.cases, weights, strict=True):
            if w > 0 and c.family:
                rows_per_stack[c.family] = rows_per_stack.get(c.family, 0) + 1
        for name in self.members.get("stack", ()):
            if name in rows_per_stack:
                stacks[name] = replace(_BASE_STACK, **values(theta + offset("stack", name), "stack"))
        stacks["tuned"] = _tuned(stacks, rows_per_stack)
        return Calibration(hardware=hardware, stacks=stacks)


#: stacks eligible for "tuned": the production serving engines of datacenter parts
_TUNED_CANDIDATES = ("tensorrt-llm", "sglang", "sglang/rocm", "vllm-0.13", "vllm-0.6", "vllm", "vllm/rocm", "nim")


def _tuned(stacks: dict[str, Stack], rows: dict[str, int]) -> Stack:
    """The ``tuned`` stack: per software cost, the lowest value any production serving
    engine with >= 10 rows achieves in the data (what a well-tuned deployment reaches)."""
    pool = [stacks[n] for n in _TUNED_CANDIDATES if n in stacks and rows.get(n, 0) >= 10]
    if not pool:
        return stacks["default"]
    fields = ("op_overhead_s", "step_overhead_s", "collective_overhead_s")
    return replace(stacks["default"], **{f: min(float(getattr(s, f)) for s in pool) for f in fields})


def fit(
    prepared: Prepared, settings: FitSettings = FitSettings(), engine: Engine | None = None
) -> tuple[Calibration, np.ndarray]:
    """Fit the :data:`PARAMETERS` to the latency/throughput rows of ``prepared``.

    Minimises ``sum_i w_i rho(log(pred_i / measured_i)) / sum_i w_i`` (Cauchy ``rho``)
    plus Gaussian priors on the shared values and on every family/stack offset, with Adam
    in the bounded unconstrained space, through the jit-compiled model.

    Returns:
      ``(calibration, losses)``: the fitted :class:`Calibration` and the loss per step.
    """
    engine = engine or Engine(prepared.cases)
    fitter = _Fitter(engine, settings)
    return fitter.run(_row_weights(prepared.cases, settings.balance))


#: cross-validation groupings: what a fold holds out
CV_GROUPS = {
    "hardware": lambda c: c.row.hardware,
    "generation": lambda c: c.hw_family,
    "line": lambda c: c.hw_line,
}


def cross_validate(
    prepared: Prepared,
    settings: FitSettings = FitSettings(),
    group: str = "hardware",
    engine: Engine | None = None,
    only: Sequence[str] | None = None,
) -> tuple[Report, dict[str, Calibration]]:
    """Leave-one-group-out cross-validation.

    For each group (a hardware slug, an architecture generation, or a vendor line), refit
    on the other rows and predict the held-out ones; the returned :class:`Report` holds
    these out-of-sample predictions.

    Args:
      group: a key of :data:`CV_GROUPS`.
      only: hold out only these groups (e.g. ``["nvidia-hopper", "amd-cdna3"]``: predict
        H100 from the A100-era rows, MI300X from MI250).
    """
    if group not in CV_GROUPS:
        raise ValueError(f"group = {group!r}: use one of {', '.join(CV_GROUPS)}")
    engine = engine or Engine(prepared.cases)
    fitter = _Fitter(engine, settings)
    base = _row_weights(prepared.cases, settings.balance)
    keys = [CV_GROUPS[group](c) for c in prepared.cases]
    predicted = np.full(engine.n_rows, np.nan)
    fits = {}
    for key in dict.fromkeys(keys):
        if only is not None and key not in only:
            continue
        held = np.asarray([k == key for k in keys])
        if held.all():
            continue
        calib, _ = fitter.run(np.where(held, 0.0, base))
        fits[key] = calib
        predicted[held] = engine.predict(calib)[held]
    ok = np.isfinite(predicted)
    report = Report(
        label=f"leave-one-{group}-out",
        cases=tuple(c for c, k in zip(prepared.cases, ok, strict=True) if k),
        predicted=predicted[ok],
        measured=engine.measured[ok],
        skipped=prepared.skipped,
    )
    return report, fits


# ----------------------------------------------------------------------------- files


def _fmt_value(x: float) -> str:
    return repr(float(f"{x:.6g}"))


_STACK_FIELDS = tuple(f.name for f in dataclasses.fields(Stack) if f.name != "static_power_fraction")


def write_calibration(path: str | Path, calibration: Calibration, header: Sequence[str] = ()) -> None:
    """Write ``[hardware."<family>"]`` and ``[stack."<name>"]`` tables (TOML) that
    :func:`load_calibration`, :func:`hwgrad.presets.chip` and :func:`hwgrad.presets.stack`
    read."""
    lines = [f"# {h}" if h else "#" for h in header]
    for key, values in calibration.hardware.items():
        lines += ["", f'[hardware."{key}"]'] + [f"{k} = {_fmt_value(v)}" for k, v in values.items()]
    for name, st in sorted(calibration.stacks.items()):
        lines += ["", f'[stack."{name}"]'] + [f"{f} = {_fmt_value(getattr(st, f))}" for f in _STACK_FIELDS]
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")


def load_calibration(path: str | Path) -> Calibration:
    """Read a file written by :func:`write_calibration`."""
    import tomllib

    path = Path(path)
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"{path}: cannot read calibration parameters ({exc})") from None
    chip_fields = {p.field for p in PARAMETERS if p.target == "chip"}
    hardware = {}
    for key, values in doc.get("hardware", {}).items():
        if not isinstance(values, dict):
            raise ValueError(f"{path}: [hardware.{key}] must be a table of numbers")
        bad = sorted(set(values) - chip_fields)
        if bad:
            raise ValueError(f"{path}: [hardware.{key}] has unknown field(s) {bad}; known: {sorted(chip_fields)}")
        hardware[key] = {k: _number(v, f"{path} [hardware.{key}] {k}") for k, v in values.items()}
    stacks = {}
    for name, values in doc.get("stack", {}).items():
        if not isinstance(values, dict):
            raise ValueError(f"{path}: [stack.{name}] must be a table of numbers")
        bad = sorted(set(values) - set(_STACK_FIELDS) - {"static_power_fraction"})
        if bad:
            raise ValueError(f"{path}: [stack.{name}] has unknown field(s) {bad}; known: {list(_STACK_FIELDS)}")
        stacks[name] = Stack(**{k: _number(v, f"{path} [stack.{name}] {k}") for k, v in values.items()})
    if not hardware and not stacks:
        raise ValueError(f"{path}: no [hardware.*] or [stack.*] tables: not a calibration file")
    return Calibration(hardware=hardware, stacks=stacks)


def _number(value, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{where} = {value!r} is not a finite number")
    return float(value)


def default_calibration() -> Calibration:
    """The shipped parameters (``presets/data/calibration.toml``)."""
    from importlib import resources

    return load_calibration(Path(str(resources.files("hwgrad.presets") / "data" / "calibration.toml")))


# ----------------------------------------------------------------------------- CLI


def _fmt_measure(value: float, metric: str) -> str:
    return f"{value:.4g} {METRICS[metric]}"


def _print_table(report: Report, file=None) -> None:
    file = file or sys.stdout
    head = (
        f"{'id':>5} {'model':<14} {'hardware':<15} {'tp':>2} {'batch':>5} {'mode':<5} {'in':>5} {'out':>5} "
        f"{'dtype':<6} {'metric':<18} {'stack':<15} {'measured':>14} {'predicted':>14} {'error':>8}  notes"
    )
    print(head, file=file)
    for case, p, m in zip(report.cases, report.predicted, report.measured, strict=True):
        r = case.row
        err = 100.0 * (p - m) / m
        print(
            f"{r.id:>5} {r.model[:14]:<14} {r.hardware[:15]:<15} {r.tp:>2} {r.batch:>5} {r.batching[:5]:<5} "
            f"{r.input_len:>5} {r.output_len:>5} {r.weight_dtype:<6} {r.metric:<18} "
            f"{(case.family or '(default)')[:15]:<15} {_fmt_measure(m, r.metric):>14} "
            f"{_fmt_measure(p, r.metric):>14} {err:>+7.1f}%  {'; '.join(case.notes)}",
            file=file,
        )


def _print_groups(report: Report, file=None) -> None:
    file = file or sys.stdout
    print(f"by stack x hardware family ({report.label}):", file=file)
    print(f"  {'stack':<16} {'hardware family':<24} {'rows':>4} {'median':>7} {'p90':>7} {'bias':>7}", file=file)
    for g in report.by_group():
        print(
            f"  {g['stack']:<16} {g['hardware_family']:<24} {g['rows']:>4} {g['median_ape']:>6.1f}% "
            f"{g['p90_ape']:>6.1f}% {g['median_signed_pct']:>+6.1f}%",
            file=file,
        )
    ratios = report.ratio_errors()
    if ratios:
        e = np.asarray([r["error_pct"] for r in ratios])
        print(
            f"matched groups (same rows on other hardware): {len(ratios)} pairs; speed-ratio error "
            f"median {np.median(e):.1f}% | p90 {np.percentile(e, 90):.1f}%",
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
        "efficiency", "id", "line", "model", "hardware", "n_chips", "tp", "batch", "batching", "input_len",
        "output_len", "weight_dtype", "metric", "software", "stack", "hardware_family", "measured",
        "predicted", "ape", "signed_error_pct", "notes",
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
                {"id": r.id, "line": r.line, "model": r.model, "hardware": r.hardware, "metric": r.metric,
                 "reason": reason}
                for r, reason in prepared.skipped
            ],  # fmt: skip
            "summary": {
                rep.label: {"latency": rep.summary(False), "energy": rep.summary(True)} for rep in reports
            },
            "groups": primary.by_group(),
            "ratios": primary.ratio_errors(),
        }
        print(json.dumps(out, indent=2))
        return 0
    print(f"{prepared.path}: {len(prepared.cases)} rows modelled; efficiency: {primary.label}")
    _print_table(primary)
    _print_skipped(prepared.skipped)
    _print_groups(primary)
    if not args.speed_of_light:
        print(f"speed of light:    {format_summary(sol.summary(False))}")
        print(f"speed of light:    {format_summary(sol.summary(True), 'energy: ')}")
        print(f"{primary.label}:")
    print(format_summary(primary.summary(False)))
    print(format_summary(primary.summary(True), "energy: "))
    return 0


#: the leave-one-generation-out folds reported by ``hwgrad calibrate`` (proxies for the next
#: generation: H100 predicted from the A100-era rows, MI300X from MI250)
LOGO_FOLDS = ("nvidia-hopper", "amd-cdna3")


def cmd_calibrate(args) -> int:
    data = read_measurements(args.data, skip_unknown=args.skip_unknown)
    prepared = prepare(data)
    if not prepared.cases:
        raise ValueError(f"{args.data}: no row can be modelled, nothing to fit")
    settings = FitSettings(steps=args.steps)
    if args.no_priors:
        settings = dataclasses.replace(settings, priors=False)
    if args.shared_only:
        settings = dataclasses.replace(settings, levels=())
    engine = Engine(prepared.cases)
    calib, _ = fit(prepared, settings, engine=engine)
    fitted = validate(prepared, calib, "fitted", engine)
    sol = validate(prepared, Calibration.speed_of_light(), "speed of light", engine)
    header = [
        "Parameters fitted by `hwgrad calibrate` (hwgrad.calibrate.fit): hardware-family fractions",
        "([hardware.*], read by hwgrad.presets.chip) and serving-stack costs ([stack.*], hwgrad.presets.stack).",
        f"command: hwgrad calibrate {args.data} -o {args.output}"
        + (" --no-priors" if args.no_priors else "")
        + (" --shared-only" if args.shared_only else ""),
        f"rows: {fitted.summary(False)['rows']} latency/throughput (fitted) + {fitted.summary(True)['rows']} "
        f"energy (predicted from the power physics, not fitted); skipped {len(prepared.skipped)}",
        "fitted (range): "
        + "; ".join(f"{p.key} [{p.lo:g}, {p.hi:g}] {p.unit} at {','.join(p.levels) or 'shared'}" for p in PARAMETERS),
        f"loss: Cauchy on log(pred/measured), scale {settings.loss_scale:g}; rows weighted 1/sqrt(rows of their "
        f"hardware); Adam {settings.steps} steps; priors on offsets (shrinkage to the line / shared value)",
        f"in-sample:      {format_summary(fitted.summary(False))}",
        f"in-sample:      {format_summary(fitted.summary(True), 'energy: ')}",
        f"speed of light: {format_summary(sol.summary(False))}",
    ]
    ratios = fitted.ratio_errors()
    if ratios:
        e = np.asarray([r["error_pct"] for r in ratios])
        header.append(f"in-sample:      speed-ratio error median {np.median(e):.1f}% | p90 "
                      f"{np.percentile(e, 90):.1f}% | pairs {len(ratios)}")
    if not args.no_cv:
        cv_settings = dataclasses.replace(settings, steps=max(settings.steps // 2, 50))
        logo, _ = cross_validate(prepared, cv_settings, "generation", engine, only=LOGO_FOLDS)
        header.append(f"LOGO (hold out {', '.join(LOGO_FOLDS)}): {format_summary(logo.summary(False))}")
        for fold in LOGO_FOLDS:
            sub = _subset(logo, lambda c, fold=fold: c.hw_family == fold)
            header.append(f"  held out {fold}: {format_summary(sub.summary(False))}")
        ratios = logo.ratio_errors()
        if not args.fast_cv:
            loho, _ = cross_validate(prepared, cv_settings, "hardware", engine)
            header.append(f"LOHO CV:        {format_summary(loho.summary(False))}")
            r2 = loho.ratio_errors()
            if r2:
                e = np.asarray([r["error_pct"] for r in r2])
                header.append(f"LOHO CV:        speed-ratio error median {np.median(e):.1f}% | p90 "
                              f"{np.percentile(e, 90):.1f}% | pairs {len(r2)}")
        header.append(f"(CV refits use {cv_settings.steps} Adam steps)")
    try:
        write_calibration(args.output, calib, header)
    except OSError as exc:
        raise ValueError(f"-o {args.output}: cannot write ({exc.strerror or exc})") from None
    for line in header[3:]:
        print(line)
    _print_groups(fitted)
    print(f"wrote {args.output}")
    return 0


def _subset(report: Report, keep) -> Report:
    mask = np.asarray([bool(keep(c)) for c in report.cases])
    return Report(
        label=report.label,
        cases=tuple(c for c, k in zip(report.cases, mask, strict=True) if k),
        predicted=report.predicted[mask],
        measured=report.measured[mask],
        skipped=(),
    )


def register_cli(subparsers) -> None:
    """Add ``hwgrad validate`` and ``hwgrad calibrate`` to the ``hwgrad`` parser."""
    p = subparsers.add_parser(
        "validate",
        help="predict measured rows and report errors",
        description="Predict every row of a measurement CSV (calibration schema) and report the "
        "absolute percentage error per row, per stack x hardware family and for matched groups, "
        "with the calibrated and speed-of-light parameters.",
    )
    p.add_argument("data", metavar="DATA.csv", help="measurements in the calibration.csv schema")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--csv", metavar="OUT", help="also write per-row results to this CSV")
    p.add_argument(
        "--skip-unknown", action="store_true", help="leave out rows naming an unknown model/hardware"
    )
    p.add_argument("--params", metavar="FILE", help="calibration parameters (TOML from `hwgrad calibrate`)")
    p.add_argument("--speed-of-light", action="store_true", help="report the ideal roofline only")
    p.set_defaults(func=cmd_validate)

    c = subparsers.add_parser(
        "calibrate",
        help="fit hardware-family and serving-stack parameters to measurements",
        description="Fit hardware-family fractions and serving-stack costs to a measurement CSV by "
        "gradient descent through the model, with leave-one-generation-out and "
        "leave-one-hardware-out cross-validation.",
    )
    c.add_argument("data", metavar="DATA.csv", help="measurements in the calibration.csv schema")
    c.add_argument(
        "-o", "--output", required=True, metavar="params.toml", help="where to write the parameters"
    )
    c.add_argument(
        "--skip-unknown", action="store_true", help="leave out rows naming an unknown model/hardware"
    )
    c.add_argument("--steps", type=int, default=FitSettings.steps, help="Adam steps")
    c.add_argument("--shared-only", action="store_true", help="one shared set: no family/stack offsets")
    c.add_argument("--no-priors", action="store_true", help="no prior on the shared values")
    c.add_argument("--no-cv", action="store_true", help="skip the cross-validation")
    c.add_argument("--fast-cv", action="store_true", help="leave-one-generation-out folds only (no LOHO)")
    c.set_defaults(func=cmd_calibrate)


def _main(argv=None):  # pragma: no cover - convenience for `python -m hwgrad.calibrate`
    parser = argparse.ArgumentParser(prog="hwgrad")
    register_cli(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(_main())
