"""Measured rows -> cases: the specs the model evaluates for each row, and a batched evaluator.

How a row is modelled (interpretations made here, at the edge, and reported per row):

* ``tpot_ms`` is the mean decode step (`Result.tpot_s`); ``e2e_latency_s`` the
  request latency; ``output_tok_s`` `Result.tokens_per_s` (static: ``B O / e2e``;
  continuous: Little's law); ``energy_j_per_token`` the energy of a replica per output
  token. The row's ``batching`` column selects the serving mode
  (`hwgrad.cost.serve`); static batches whose KV cache does not fit run in waves
  (`hwgrad.cost.static_waves`). Continuous rows use 0.9 x the nominal lengths when
  the row's source draws lengths from ``[0.8 L, L]`` (InferenceMAX).
* Memory capacities printed as a whole number of "GB" are read as binary GiB (HBM/GDDR
  parts are sized in powers of two; NVIDIA's "80 GB" parts expose 80 GiB). A row where not
  even one sequence fits is skipped with the reason.
* ``tp x pp`` larger than ``n_chips`` by a whole factor ``k`` means each listed device is a
  ``k``-die module (e.g. ``mi250`` = 2 GCDs): each die gets ``1/k`` of the module's
  bandwidth, FLOPS, capacity and TDP. ``n_chips`` a multiple ``k`` of ``tp x pp`` means
  ``k`` data-parallel replicas sharing ``batch``.

A row that cannot be modelled is kept with its reason (never dropped silently). An
`Engine` evaluates every case in a few ``vmap`` calls, one per static structure.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Iterable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from .. import cost, dtypes, presets
from ..measurements import METRICS, Measurement, MeasurementSet
from ..specs import Compression, Model, Options, Stack, System, Workload, replace
from ..stacks import default_kv_dtype, kernel_traits, kv_on_demand, stack_family, token_budget
from ..validate import validate as validate_design
from .parameters import BASE_STACK, PARAM_BY_KEY, Calibration

#: bytes of a binary GiB per decimal GB (capacities printed as whole "GB" are GiB)
GIB_PER_GB = 2.0**30 / 1e9


@dataclasses.dataclass(frozen=True)
class Case:
    """One measured row turned into specs the model can evaluate.

    Attributes:
      row: the measurement.
      system, model, compression, workload: specs of one replica (raw, unfitted chip).
      family: serving-stack family of ``row.software`` (``""``: not recognised).
      hw_family, hw_line: the hardware's architecture family and vendor line.
      traits: ``(Stack field, value)`` pairs of the row's stack version that differ from
        its family's (`hwgrad.stacks.kernel_traits`; not fitted).
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
    traits: tuple[tuple[str, float], ...] = ()

    def stack(self, family_stack: Stack) -> Stack:
        """The row's stack: its family's ``family_stack`` with the version's `traits`."""
        return replace(family_stack, **dict(self.traits)) if self.traits else family_stack


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
_fit_jit = jax.jit(cost.sequences_per_tier)


def _capacity(system, model, compression, workload, budget) -> tuple[float, float]:
    """(bytes of weights on one chip, sequences of ``prompt + output`` tokens that fit in
    the capacity the engine leaves for the KV cache), as `hwgrad.cost.static_waves` counts."""
    weights = float(np.asarray(_capacity_jit(system, model, replace(workload, batch=0.0), compression))[0])
    ctx = workload.prompt_len + workload.output_len
    fit = np.asarray(_fit_jit(system, model, workload, compression, BASE_STACK.memory_fraction, budget, ctx))
    return weights, float(np.min(fit))


#: sources whose benchmark draws each request's lengths uniformly from [0.8 L, L]
_UNIFORM_LENGTH_SOURCES = ("inferencemax", "inferencex")


def _prepare_row(row: Measurement) -> Case | str:
    """A `Case` for ``row``, or the reason it cannot be modelled."""
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
    hw_family = presets.hardware_family(row.hardware)
    hw_line = presets.hardware_line(hw_family)
    family = stack_family(row.software, hw_line)
    kv_dtype = row.kv_dtype
    for name in row.defaulted:
        if name == "kv_dtype":
            kv_dtype = default_kv_dtype(family, row.weight_dtype)
            if kv_dtype != row.kv_dtype:
                notes.append(f"kv_dtype not stated: {kv_dtype} (the {family} stack's {row.weight_dtype} recipe)")
                continue
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
    compression = dtypes.compression(row.weight_dtype, kv_dtype, checkpoint=row.checkpoint)
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
    traits = kernel_traits(row.software, hw_line)
    if traits:
        notes.append("stack version: " + ", ".join(f"{k} = {v:g}" for k, v in sorted(traits.items())))
    budget = token_budget(row.software, presets.CONTEXT_TOKENS.get(row.model, 0.0))
    if budget is None:
        budget = BASE_STACK.prefill_chunk_tokens
    else:
        traits["prefill_chunk_tokens"] = budget
        notes.append(f"engine token budget {budget:g} (vLLM benchmark_throughput, chunked prefill off)")
    if math.isfinite(capacity):
        weights, fit = _capacity(system, model, compression, workload, budget)
        usable = capacity * float(BASE_STACK.memory_fraction)
        fit_n = int(fit)
        if fit_n < 1:
            return (
                f"capacity: {weights / 1e9:.1f} GB of weights and a {budget:g}-token activation workspace "
                f"leave room for {max(fit, 0.0):.2f} sequences in {usable / 1e9:.1f} GB usable per chip"
            )
        if fit_n < batch:
            if row.batching == "static":
                on_demand = kv_on_demand(family)
                waves = float(cost.effective_waves(batch, fit_n, input_len, output_len, on_demand))
                how = f"{waves:.2f} waves of steps, KV on demand" if on_demand else f"{waves:g} waves"
                notes.append(f"KV cache does not fit: {fit_n} of {batch} sequences at once, {how} ({note})")
            else:
                notes.append(f"KV cache holds {fit_n} of {batch} concurrent sequences ({note})")
    return Case(
        row=row,
        system=system,
        model=model,
        compression=compression,
        workload=workload,
        family=family,
        hw_family=hw_family,
        hw_line=hw_line,
        notes=tuple(notes),
        traits=tuple(sorted(traits.items())),
    )


def prepare(data: MeasurementSet | Iterable[Measurement]) -> Prepared:
    """Turn measurements into evaluable `Case` s; rows that cannot be modelled are
    kept in ``skipped`` with the reason (never dropped silently).

    Args:
      data: a `MeasurementSet` (its ``unknown`` rows are carried into ``skipped``)
        or an iterable of `Measurement`.
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
    """Evaluates every row of a `Prepared` set in a few ``vmap`` calls.

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
        stacks = [c.stack(calibration.stack_for(c.family)) for c in self.cases]
        values = [calibration.chip_values(c.row.hardware) for c in self.cases]
        keys = sorted({k for v in values for k in v})
        chip_values = {
            k: jnp.asarray([v.get(k, _default_chip(k)) for v in values], jnp.float32) for k in keys
        }
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
    return 1.0 if PARAM_BY_KEY[f"chip.{field}"].kind == "fraction" else 0.0
