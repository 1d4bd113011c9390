"""The fitted parameters of the calibration, their physical ranges, and calibration files.

What is fitted is kept apart by what it belongs to:

* **Hardware** (fields of `Chip`): the achievable fraction of peak
  memory bandwidth and of peak FLOPS, and the small-transfer ramp per kernel. Each value is
  ``shared + line offset`` (lines are the vendor product lines,
  `hwgrad.presets.HARDWARE_FAMILIES`); every architecture generation of a line, the next
  one included, takes its line's value. Offsets carry a Gaussian prior (shrinkage), and a
  parameter's ``members`` name the lines or stacks whose rows can move it.
* **Software** (fields of `Stack`): per-kernel launch gap and kernel FLOPS fraction per
  stack family (`hwgrad.stacks.stack_family`), each an offset from the shared value with a
  prior; per-step engine cost and per-collective software latency shared.

Every parameter is fitted in a bounded space: ``lo + (hi - lo) sigmoid(u)`` for fractions
and ``lo (hi / lo)^sigmoid(u)`` for times, so a fit can only choose values inside the
documented physical range (`PARAMETERS`). The loss is a Cauchy loss of
``log(predicted / measured)`` (a few rows the model cannot explain do not drag the shared
parameters), each hardware's rows weighted equally.

A `Calibration` holds resolved values (per hardware line / family, per stack family);
``write_calibration`` / ``load_calibration`` write and read it as TOML, and
``default_calibration`` reads the shipped ``presets/data/calibration.toml``. Each parameter is
named by its design path below the chip or the stack (``chip.bandwidth_efficiency``,
``stack.op_overhead_s``: `Parameter.key`), the names `hwgrad.paths` gives those
fields under ``system.chip`` and ``efficiency``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from .. import presets
from ..calibrated import efficiency_from_mapping
from ..network import COLLECTIVE_IMPLEMENTATIONS
from ..network import implementation as collective_implementation
from ..specs import Stack
from ..stacks import PRODUCTION_ENGINES, collective_for, kv_on_demand, stack_family, stack_parent


@dataclasses.dataclass(frozen=True)
class Parameter:
    """A fitted quantity: where it lives, its unit, physical range, starting value, and the
    levels at which it may differ (``hw_line``, ``hw_family``, ``stack``).

    Attributes:
      target: ``"chip"`` (a `Chip` field) or ``"stack"`` (a `Stack` field).
      field: the field name.
      kind: ``"fraction"`` (linear in [lo, hi]) or ``"time"`` (logarithmic in [lo, hi]).
      lo, hi: the physical range (the fit cannot leave it).
      init: starting value and centre of the shared prior.
      prior_sd: sd of the shared value's prior around ``init`` in unconstrained units
        (``inf``: flat).
      levels: where offsets are fitted; ``offset_sd`` their prior sd (unconstrained units).
      why: the reason for the range (shown in the report and docs).
      members: the members of ``levels`` that get an offset (``()``: every member with
        rows); the others take their parent's value (the data do not identify it there).
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
    members: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return f"{self.target}.{self.field}"

    def to_u(self, value: float) -> float:
        frac = (
            (math.log(value) - math.log(self.lo)) / (math.log(self.hi) - math.log(self.lo))
            if (self.kind == "time")
            else (value - self.lo) / (self.hi - self.lo)
        )
        frac = min(max(frac, 1e-6), 1 - 1e-6)
        return math.log(frac / (1 - frac))

    def from_u(self, u):
        s = jax.nn.sigmoid(u)
        if self.kind == "time":
            return jnp.exp(math.log(self.lo) + (math.log(self.hi) - math.log(self.lo)) * s)
        return self.lo + (self.hi - self.lo) * s


#: The fitted parameters: shared values plus the offsets of the vendor lines and stacks that
#: have rows (`fitted_numbers`; 38 in the shipped fit).
#: Hardware offsets are per vendor line, not per architecture generation: the rows of one
#: line run the same stacks, so a generation offset fitted on one generation's rows stood in
#: for the software of its stacks and did not carry to a held-out part (leave-one-hardware-out
#: median 31 % with generation offsets, 12 % without).
#: The FLOPS fractions have offsets only where some rows are compute-bound (batched serving,
#: long prompts): the batch-1 decode rows of llama.cpp, gpt-fast and the client parts do not
#: identify them.
_COMPUTE_BOUND_LINES = ("nvidia-datacenter", "amd-instinct", "intel-gaudi")
_BATCHED_STACKS = (*PRODUCTION_ENGINES, "deepspeed-mii", "gaudi")
PARAMETERS: tuple[Parameter, ...] = (
    Parameter(
        "chip",
        "bandwidth_efficiency",
        "1",
        "fraction",
        0.3,
        1.0,
        0.85,
        1.0,
        ("hw_line",),
        1.0,
        "sustained / peak DRAM read bandwidth: 0.85-0.93 in STREAM-like GPU microbenchmarks; "
        "LPDDR SoCs lower; per vendor line (with the line's stacks' memory-bound kernels)",
    ),
    Parameter(
        "chip",
        "flops_efficiency",
        "1",
        "fraction",
        0.4,
        0.9,
        0.65,
        0.5,
        ("hw_line",),
        1.0,
        "achieved / peak dense tensor FLOP/s of large GEMMs in the vendor's BLAS: ~0.7 on H100 "
        "(cuBLAS), ~0.45-0.55 on MI300X (hipBLASLt) in published GEMM microbenchmarks; the "
        "stack's kernel FLOPS fraction carries the rest (attention, small GEMMs, scheduling)",
        members=_COMPUTE_BOUND_LINES,
    ),
    Parameter(
        "chip",
        "kernel_memory_latency_s",
        "s",
        "time",
        1e-8,
        5e-6,
        5e-7,
        1.0,
        (),
        1.0,
        "DRAM load latency + pipeline fill before a kernel streams at full bandwidth "
        "(GPU microbenchmarks: ~0.5-1 us)",
    ),
    Parameter(
        "stack",
        "op_overhead_s",
        "s",
        "time",
        1e-8,
        5e-5,
        3e-6,
        2.0,
        ("stack", "stack_version"),
        1.5,
        "gap per kernel launch: ~1-3 us under CUDA graphs, ~5-10 us eager PyTorch, more for unfused engines; "
        "per stack version where the data show versions apart",
    ),
    Parameter(
        "stack",
        "step_overhead_s",
        "s",
        "time",
        1e-7,
        2e-2,
        1e-4,
        3.0,
        (),
        2.0,
        "engine cost per forward pass not hidden by the device (scheduler, sampling, inputs)",
    ),
    Parameter(
        "stack",
        "collective_overhead_s",
        "s",
        "time",
        1e-8,
        5e-5,
        3e-6,
        1.0,
        (),
        1.0,
        "software latency per collective call: custom all-reduce implementations differ by "
        "~3.6 us on 8x H100 (interconnect.csv)",
    ),
    Parameter(
        "stack",
        "flops_efficiency",
        "1",
        "fraction",
        0.1,
        1.0,
        0.9,
        0.1,
        ("stack",),
        2.0,
        "achieved / achievable GEMM and attention FLOP/s of the stack's kernels (prefill, chunks): "
        "engines differ several-fold on one chip (e.g. MLA prefill on ROCm vs CUDA builds)",
        members=_BATCHED_STACKS,
    ),
    Parameter(
        "chip",
        "active_power_fraction",
        "1",
        "fraction",
        0.0,
        0.6,
        0.3,
        1.0,
        (),
        0.5,
        "clock/stall power of a busy GPU beyond bytes and FLOPs, as a share of TDP above idle "
        "(energy rows: A100, H100 only, so one shared value); the rest of the power is physics "
        "(hwgrad.power)",
        "energy",
    ),
)

PARAM_BY_KEY = {p.key: p for p in PARAMETERS}

#: the stack fields that are not fitted: ideal kernels, bf16 collectives, and the 0.9 memory
#: share that vLLM (``gpu_memory_utilization``) and TensorRT-LLM
#: (``kv_cache_free_gpu_mem_fraction``) default to
BASE_STACK = Stack(memory_fraction=0.9)


def base_stack(family: str) -> Stack:
    """`BASE_STACK` with the collective library of the stack family ``family``
    (`hwgrad.stacks.COLLECTIVE_BY_STACK`; ``""``: an unrecognised stack, ``default``) and
    its scheduler's KV allocation (`hwgrad.stacks.kv_on_demand`)."""
    fractions = collective_implementation(collective_for(family)).fractions
    return dataclasses.replace(
        BASE_STACK, collective_bandwidth_fraction=fractions, kv_on_demand=kv_on_demand(family)
    )


def software_family(software: str, hw_line: str = "") -> str:
    """The serving-stack family of a ``software`` cell (``""`` if not recognised) on the
    vendor line ``hw_line`` (`hwgrad.stacks.stack_family`)."""
    return stack_family(software, hw_line)


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

    def has_profile(self, family: str) -> bool:
        """Whether `stack_for` gives ``family`` its own stack (or its family's, for a version
        without one; or the ideal one), not the ``default`` stack of unrecognised software
        and families without calibration rows."""
        return self.ideal or family in self.stacks or stack_parent(family) in self.stacks

    def stack_for(self, family: str) -> Stack:
        """The stack of a family's rows: its own (or its family's, for a version), else the
        ``default`` stack's fitted values with what the family's engine is known to do
        (its collective library and KV allocation, `base_stack`: not fitted)."""
        if self.ideal:
            return Stack.ideal()
        if self.has_profile(family):
            return self.stacks[family if family in self.stacks else stack_parent(family)]
        default = self.stacks.get("default", Stack.ideal())
        if not family:
            return default
        known = base_stack(family)
        return dataclasses.replace(
            default,
            collective_bandwidth_fraction=known.collective_bandwidth_fraction,
            kv_on_demand=known.kv_on_demand,
        )

    @staticmethod
    def speed_of_light() -> Calibration:
        return Calibration(ideal=True)


def _fmt_value(x: float) -> str:
    return repr(float(f"{x:.6g}"))


_STACK_FIELDS = tuple(
    f.name
    for f in dataclasses.fields(Stack)
    if f.name not in ("static_power_fraction", "collective_bandwidth_fraction")
)


def _collective_line(st: Stack) -> str:
    """The stack's collective library by name when it is a named one, else its fractions."""
    mine = np.asarray(st.collective_bandwidth_fraction, dtype=float)
    for name, impl in COLLECTIVE_IMPLEMENTATIONS.items():
        if np.allclose(impl.fractions, mine, rtol=0, atol=1e-9):
            return f'collective = "{name}"'
    return "collective_bandwidth_fraction = [" + ", ".join(_fmt_value(x) for x in mine) + "]"


def write_calibration(path: str | Path, calibration: Calibration, header: Sequence[str] = ()) -> None:
    """Write ``[hardware."<family>"]`` and ``[stack."<name>"]`` tables (TOML) that
    `load_calibration`, `hwgrad.presets.chip` and `hwgrad.presets.stack`
    read."""
    lines = [f"# {h}" if h else "#" for h in header]
    for key, values in calibration.hardware.items():
        lines += ["", f'[hardware."{key}"]'] + [f"{k} = {_fmt_value(v)}" for k, v in values.items()]
    for name, st in sorted(calibration.stacks.items()):
        lines += ["", f'[stack."{name}"]'] + [f"{f} = {_fmt_value(getattr(st, f))}" for f in _STACK_FIELDS]
        lines.append(_collective_line(st))
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")


def load_calibration(path: str | Path) -> Calibration:
    """Read a file written by `write_calibration`."""
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
            raise ValueError(
                f"{path}: [hardware.{key}] has unknown field(s) {bad}; known: {sorted(chip_fields)}"
            )
        hardware[key] = {k: _number(v, f"{path} [hardware.{key}] {k}") for k, v in values.items()}
    stacks = {}
    for name, values in doc.get("stack", {}).items():
        if not isinstance(values, dict):
            raise ValueError(f"{path}: [stack.{name}] must be a table of numbers")
        stacks[name] = efficiency_from_mapping(values, where=f"{path} [stack.{name}]")
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
