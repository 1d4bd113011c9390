"""The ``hwgrad`` command line: ``eval`` and ``presets`` (more subcommands register themselves).

Every subcommand that takes a design point accepts ``--set PATH=VALUE`` for any number of the
design (the dotted paths of [`hwgrad.paths`][hwgrad.paths], e.g.
``--set system.chip.tiers.0.bandwidth_bytes_per_s=4.8e12``) and named flags for the common
hardware knobs (``--hbm-bandwidth 4.8`` in TB/s, ``--hop-latency 0.5`` in us, ...; see
[`KNOB_FLAGS`][hwgrad.cli.KNOB_FLAGS]). Every error a user can cause ends in one line on stderr
naming the field, the value and the fix, and exit code 2; never a traceback.

Over 600 lines because it holds the one design-argument layer every subcommand shares (flags, ``--set``, units, the capacity check, JSON output) beside the ``eval`` and ``presets`` handlers; the next split is that layer into its own module.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys

EXIT_USAGE = 2

DEFAULTS = dict(
    model="llama-3.1-70b", hardware="h100-sxm", chips=8, batch=32, prompt_len=2048, output_len=512
)


class UsageError(ValueError):
    """A user-caused error (exit code 2)."""


class OneLineParser(argparse.ArgumentParser):
    """argparse with usage errors on one line (``hwgrad eval: error: ...; see --help``)."""

    def error(self, message):
        flat = " ".join(str(message).split())
        self.exit(EXIT_USAGE, f"{self.prog}: error: {flat} (see {self.prog} --help)\n")


def _parse(text: str, convert, kind: str, ok, requirement: str):
    """An argparse value: ``convert(text)`` that satisfies ``ok``, else a one-line error."""
    try:
        x = convert(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a {kind}") from None
    if not ok(x):
        raise argparse.ArgumentTypeError(f"{text!r} must {requirement}")
    return x


def _positive_float(text: str) -> float:
    return _parse(text, float, "number", lambda x: math.isfinite(x) and x > 0, "be a finite number > 0")


def _nonneg_int(text: str) -> int:
    return _parse(text, int, "whole number", lambda x: x >= 0, "be >= 0")


def positive_int(text: str) -> int:
    """The argparse type of every whole-number >= 1 flag of every subcommand."""
    return _parse(text, int, "whole number", lambda x: x >= 1, "be >= 1")


_positive_int = positive_int


def _fraction(text: str) -> float:
    return _parse(text, float, "number", lambda x: 0 <= x < 1, "lie in [0, 1)")


# ----------------------------------------------------------------------------- --set PATH=VALUE

#: SI prefixes accepted in a value's unit (``4.8TB/s``, ``500ns``, ``0.5us``)
_PREFIX = {"": 1.0, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15,
           "m": 1e-3, "u": 1e-6, "\u00b5": 1e-6, "n": 1e-9, "p": 1e-12}  # fmt: skip

#: the unit of a design path, from its name's suffix (paths carry their units)
_PATH_UNITS = (("_bytes_per_s", "B/s"), ("_bytes", "B"), ("_s", "s"), ("_w", "W"), ("flops", "FLOP/s"))

#: named flags for the common hardware knobs: flag -> (design path, unit of the value, help)
KNOB_FLAGS: dict[str, tuple[str, str, str]] = {
    "hbm-bandwidth": ("system.chip.tiers.0.bandwidth_bytes_per_s", "TB/s", "main-memory (tier 0) read bandwidth per chip"),
    "hbm-capacity": ("system.chip.tiers.0.capacity_bytes", "GB", "main-memory (tier 0) capacity per chip"),
    "link-bandwidth": ("system.network.link_bandwidth_bytes_per_s", "GB/s", "scale-up link bandwidth per chip, per direction"),
    "hop-latency": ("system.network.hop_latency_s", "us", "scale-up network latency per hop"),
    "flops": ("system.chip.peak_flops_bf16", "TFLOP/s", "dense bf16 tensor peak per chip"),
    "fp8-flops": ("system.chip.peak_flops_fp8", "TFLOP/s", "dense fp8 tensor peak per chip"),
    "tdp": ("system.chip.tdp_w", "W", "chip power limit"),
    "pue": ("economics.pue", "", "facility power usage effectiveness (>= 1)"),
}  # fmt: skip


def parse_quantity(text: str, unit: str, what: str) -> float:
    """A number in ``unit`` (``"4.8"``), or with its own unit (``"4.8TB/s"``, ``"3.35e12B/s"``).

    Args:
      text: the value as typed.
      unit: the unit a bare number is in (``"TB/s"``, ``"us"``, ``""`` for dimensionless).
      what: the flag or path, for the error message.

    Returns:
      The value in SI base units (bytes/s, bytes, s, W, FLOP/s).

    Raises:
      ValueError: one line naming ``what``, the value and the units accepted.
    """
    m = re.fullmatch(r"\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|[-+]?inf|nan)\s*(\S*)\s*", str(text))
    base = _base_unit(unit)
    if m is None:
        raise ValueError(f"{what} {text!r}: not a number (e.g. 4.8{unit.replace(' ', '')})")
    number, suffix = float(m.group(1)), m.group(2)
    scale = _unit_scale(suffix or unit, base)
    if scale is None:
        accepted = f"{base} with an SI prefix (k M G T, m u n)" if base else "no unit"
        raise ValueError(f"{what} {text!r}: unit {suffix!r} is not {unit or 'dimensionless'}; use {accepted}")
    return number * scale


def _base_unit(unit: str) -> str:
    for base in ("FLOP/s", "B/s", "B", "s", "W"):
        if unit.endswith(base) and unit[: -len(base)] in _PREFIX:
            return base
    return unit


def _unit_scale(unit: str, base: str) -> float | None:
    unit = {"TFLOPS": "TFLOP/s", "PFLOPS": "PFLOP/s", "GFLOPS": "GFLOP/s", "FLOPS": "FLOP/s"}.get(unit, unit)
    if not base:
        return 1.0 if unit == "" else None
    if not unit.endswith(base) or unit[: -len(base)] not in _PREFIX:
        return None
    return _PREFIX[unit[: -len(base)]]


def path_unit(path: str) -> str:
    """The SI unit of a design path from its name (``..._bytes_per_s`` -> ``B/s``; ``""`` if none)."""
    last = path.rsplit(".", 1)[-1]
    for suffix, unit in _PATH_UNITS:
        if last.endswith(suffix):
            return unit
    return ""


def parse_assignment(text: str, what: str = "--set") -> tuple[str, float]:
    """``"PATH=VALUE"`` -> ``(path, value)``; the value may carry the path's unit (``=4.8TB/s``).

    Raises:
      ValueError: one line naming the assignment and the fix.
    """
    path, sep, value = str(text).partition("=")
    path, value = path.strip(), value.strip()
    if not sep or not path or not value:
        raise ValueError(f"{what} {text!r}: expected PATH=VALUE, e.g. {what} workload.batch=16")
    unit = path_unit(path)
    return path, parse_quantity(value, unit, f"{what} {path}=")


_SPEC_KEYS = ("system", "model", "workload", "compression", "efficiency", "economics")
#: the roots of a served design (hwgrad.service.DESIGN_ROOTS)
_SERVED_KEYS = ("service", "engine", "prefill")


def apply_assignments(design: dict, assignments, what: str = "--set") -> dict:
    """A copy of ``design`` with each ``(path, value)`` set through [`hwgrad.paths`][hwgrad.paths].

    The one implementation of ``--set`` for every subcommand (eval, sensitivity, sweep, codesign).

    Args:
      design: a mapping with the spec keys (``system``, ``model``, ``workload``, ...); other keys
        (names, labels) pass through.
      assignments: ``(path, value)`` pairs or ``"PATH=VALUE"`` strings, applied in order.
      what: the flag named in errors.

    Returns:
      The updated mapping (the specs are new objects; ``design`` is not changed).

    Raises:
      ValueError: an unknown path (with the closest paths suggested), a static switch or a
        group named as a number.
    """
    from . import paths

    pairs = [parse_assignment(a, what) if isinstance(a, str) else a for a in assignments]
    if not pairs:
        return dict(design)
    specs = {k: design[k] for k in _SPEC_KEYS + _SERVED_KEYS if design.get(k) is not None}
    index = paths.Index(specs)
    for path, _ in pairs:
        index.resolve(path, what)
    updated = index.replace({p: float(v) for p, v in pairs}, what)
    return {**design, **updated}


def expand_knobs(design: dict, patterns) -> list[str]:
    """The knob paths that ``--knob`` patterns select: a path, a group or a glob.

    A group (``system.chip``) or glob (``**.bandwidth_bytes_per_s``, ``system.chip.*``) keeps
    only the numbers an elasticity is defined for (finite and > 0); a single path is kept as
    named, so a zero or unknown value gets its own error.

    Raises:
      ValueError: a pattern that matches no number (with suggestions).
    """
    from . import paths

    specs = {k: design[k] for k in _SPEC_KEYS + _SERVED_KEYS if design.get(k) is not None}
    index = paths.Index(specs)
    values = paths.numbers(specs)
    out: list[str] = []
    for pattern in patterns:
        hits = paths.expand(specs, pattern)
        if hits == [pattern]:
            index.resolve(pattern, "--knob")
            out.append(pattern)
            continue
        kept = [h for h in hits if math.isfinite(values[h]) and values[h] > 0]
        if not kept:
            raise ValueError(
                f"--knob {pattern!r}: matches {len(hits)} numbers, none finite and > 0 (elasticities need "
                f"a positive value): e.g. {hits[0]} = {values[hits[0]]:g}"
            )
        out += kept
    return list(dict.fromkeys(out))


#: whole-number fields (a swept axis over them is rounded)
_WHOLE_FIELDS = {"batch", "tp", "pp", "ep", "dp", "microbatches", "attention_dp", "n_chips", "n_layers"}


def parse_axis(text: str, what: str = "--space") -> dict:
    """``"PATH=LO:HI:N[:log]"`` or ``"PATH=V1,V2,..."`` -> the keywords of a sweep ``Axis``.

    ``PATH`` is a design path (values in its SI unit, or with a unit: ``=2TB/s:10TB/s:5``) or
    the name of a knob flag without ``--`` (``hbm-bandwidth=2:10:5`` in TB/s,
    ``hop-latency=0.5:5:4`` in us). Whole-number fields (batch, tp, ...) are rounded.

    Raises:
      ValueError: one line naming the axis and the expected form.
    """
    name, sep, spec = str(text).partition("=")
    name, spec = name.strip(), spec.strip()
    form = f"expected PATH=LO:HI:N[:log] or PATH=V1,V2,... (e.g. {what} hbm-bandwidth=2:10:5)"
    if not sep or not name or not spec:
        raise ValueError(f"{what} {text!r}: {form}")
    if name in KNOB_FLAGS:
        path, unit, _ = KNOB_FLAGS[name]
    else:
        path, unit = name, path_unit(name)
    label = f"{what} {name}="
    integer = path.rsplit(".", 1)[-1] in _WHOLE_FIELDS
    if ":" in spec:
        parts = spec.split(":")
        scale = "linear"
        if parts[-1] in ("log", "linear"):
            scale = parts.pop()
        if len(parts) != 3:
            raise ValueError(f"{what} {text!r}: {form}")
        low, high = (parse_quantity(v, unit, label) for v in parts[:2])
        try:
            num = int(parts[2])
        except ValueError:
            raise ValueError(f"{what} {text!r}: N = {parts[2]!r} must be a whole number of points") from None
        if num < 1:
            raise ValueError(f"{what} {text!r}: N = {num} must be >= 1")
        return dict(path=path, low=low, high=high, num=num, scale=scale, integer=integer)
    values = tuple(parse_quantity(v, unit, label) for v in spec.split(","))
    return dict(path=path, values=values, integer=integer)


def knob_assignments(args) -> list[tuple[str, float]]:
    """``(path, value)`` of the named knob flags (``--hbm-bandwidth`` ...) then of ``--set``."""
    out = []
    for flag, (path, unit, _) in KNOB_FLAGS.items():
        text = getattr(args, flag.replace("-", "_"), None)
        if text is not None:
            out.append((path, parse_quantity(text, unit, f"--{flag}")))
    for text in getattr(args, "set", None) or ():
        out.append(parse_assignment(text))
    return out


# ----------------------------------------------------------------------------- design point


def add_design_arguments(p: argparse.ArgumentParser, config: bool = True) -> None:
    """Flags that define one design point (shared by eval and other subcommands).

    Args:
      p: the subcommand's parser.
      config: also add ``--config FILE`` (a design TOML file); a subcommand whose own
        ``--config`` means something else (``sweep``) passes ``False``.
    """
    g = p.add_argument_group("design point")
    if config:
        g.add_argument(
            "--config", metavar="FILE", help="TOML design file (docs/reference/schema.md); flags override it"
        )
    g.add_argument("--model", help=f"model preset (default {DEFAULTS['model']}); see `hwgrad presets models`")
    g.add_argument(
        "--model-config", metavar="CONFIG_JSON", help="a Hugging Face config.json on disk instead of --model"
    )
    g.add_argument(
        "--hardware", help=f"chip preset (default {DEFAULTS['hardware']}); see `hwgrad presets hardware`"
    )
    g.add_argument(
        "--design",
        help="one of the paper's designs instead of --hardware: hbm4, hbm4-hbf, hbm4-base-die, custom-3d, "
        "hbm4-tree, mobile-lpddr5x, mobile-lpddr5x-pim (see hwgrad.presets.designs)",
    )
    g.add_argument("--chips", type=_positive_int, help="chips in the system (default tp x pp x dp, or 8)")
    g.add_argument("--tp", type=_positive_int, help="tensor-parallel degree (default chips / (pp dp))")
    g.add_argument("--pp", type=_positive_int, help="pipeline stages (default 1)")
    g.add_argument("--ep", type=_positive_int, help="expert-parallel degree, divides tp (default 1)")
    g.add_argument("--dp", type=_positive_int, help="data-parallel replicas (default 1)")
    g.add_argument("--microbatches", type=_positive_int, help="pipeline micro-batches (default 1)")
    g.add_argument("--batch", type=_positive_int, help=f"sequences per batch (default {DEFAULTS['batch']})")
    g.add_argument("--prompt-len", type=_nonneg_int, help=f"prompt tokens (default {DEFAULTS['prompt_len']})")
    g.add_argument(
        "--output-len", type=_positive_int, help=f"output tokens (default {DEFAULTS['output_len']})"
    )
    g.add_argument(
        "--weight-dtype",
        help="bf16, fp16, fp8, int8, int4, q8_0, q4_0, mxfp4, fp4 (default bf16, as hwgrad.compression(); "
        "the README's demo passes fp8)",
    )
    g.add_argument("--kv-dtype", help="KV-cache format (default bf16, whatever the weight format)")
    g.add_argument(
        "--act-dtype", help="activation / compute format (default: the weight format's usual: fp8 -> fp8, else 16-bit)"
    )
    g.add_argument("--sparsity", type=_fraction, help="pruned fraction of weights (unstructured)")
    g.add_argument("--sparsity-pattern", choices=("dense", "unstructured", "2:4"), help="sparse format")
    g.add_argument("--chip-price-usd", type=_positive_float, help="chip price when the preset has none")
    g.add_argument(
        "--stack",
        help="serving stack: tuned (default: the best stack in the data), ideal, or a fitted family "
        "(vllm, vllm-0.13, tensorrt-llm, sglang/rocm, llama.cpp/metal, ...; `hwgrad presets stacks`)",
    )
    g.add_argument(
        "--batching",
        choices=("static", "continuous", "disaggregated"),
        help="serving mode: static batch (default), continuous batching at --batch concurrency, or "
        "the decode pool of a disaggregated deployment",
    )
    g.add_argument("--attention-dp", type=_positive_int, help="attention data-parallel groups (MoE with --ep)")
    g.add_argument("--params", metavar="FILE", help="stack parameters (TOML from `hwgrad calibrate`)")
    g.add_argument(
        "--speed-of-light",
        action="store_true",
        help="ideal roofline: datasheet peaks (no fitted fractions) and no software cost",
    )
    add_knob_arguments(p)


def add_knob_arguments(p: argparse.ArgumentParser) -> None:
    """The named hardware-knob flags (`KNOB_FLAGS`) and ``--set PATH=VALUE``.

    Part of `add_design_arguments`; a subcommand whose design point comes from elsewhere
    (``codesign``: the study's base design) adds only these. Read them back with
    `knob_assignments` and apply them with `apply_assignments`.
    """
    k = p.add_argument_group(
        "hardware knobs",
        "override one number of the design; a bare number is in the unit shown, or give the unit "
        "(--hbm-bandwidth 4800GB/s, --hop-latency 500ns). Applied after the presets, before --set.",
    )
    for flag, (path, unit, text) in KNOB_FLAGS.items():
        k.add_argument(f"--{flag}", metavar=unit.replace("/", "_").upper() or "X", help=f"{text}, {unit or 'dimensionless'} (= --set {path})")
    k.add_argument(
        "--set",
        action="append",
        metavar="PATH=VALUE",
        help="set any number of the design by its dotted path, in SI units or with the path's unit "
        "(--set workload.kv_block_tokens=32, --set system.chip.tiers.0.bandwidth_bytes_per_s=4.8TB/s); "
        "repeatable; the paths are listed by hwgrad.paths.numbers(design) and docs/reference/schema.md",
    )


def design_from_args(args) -> dict:
    """Build validated specs from CLI flags (+ optional ``--config``)."""
    from . import config, dtypes, presets
    from .calibrated import calibrated_efficiency, load_efficiency
    from .specs import Efficiency, Workload, replace
    from .validate import validate

    design_file = getattr(args, "config", None) if getattr(args, "config_is_design", True) else None
    base = config.load(design_file) if design_file else config.empty()
    if args.model_config:
        from .hf import model_from_config

        if args.model:
            raise UsageError("--model and --model-config both name the model: give one of them")
        model_name, model = args.model_config, model_from_config(args.model_config)
    else:
        model_name = args.model or (None if base["model"] is not None else DEFAULTS["model"])
        model = presets.model(model_name) if model_name else base["model"]

    if args.design:
        from .presets.designs import DESIGNS

        if args.design not in DESIGNS:
            raise UsageError(f"--design {args.design!r} unknown: use one of {', '.join(DESIGNS)}")
        if args.hardware:
            raise UsageError("--design and --hardware both name the system: give one of them")
        hw_name = None
        system = DESIGNS[args.design](1)
    else:
        hw_name = args.hardware or (None if base["system"] is not None else DEFAULTS["hardware"])
        system = presets.system(hw_name, fitted=not args.speed_of_light) if hw_name else base["system"]
    if args.speed_of_light:
        system = replace(
            system,
            chip=replace(system.chip, bandwidth_efficiency=1.0, flops_efficiency=1.0, kernel_memory_latency_s=0.0),
        )

    wl = base["workload"] or Workload(
        batch=float(DEFAULTS["batch"]),
        prompt_len=float(DEFAULTS["prompt_len"]),
        output_len=float(DEFAULTS["output_len"]),
    )
    changes = {
        k: float(v)
        for k, v in dict(
            batch=args.batch,
            prompt_len=args.prompt_len,
            output_len=args.output_len,
            pp=args.pp,
            ep=args.ep,
            dp=args.dp,
            microbatches=args.microbatches,
            attention_dp=args.attention_dp,
        ).items()
        if v is not None
    }
    wl = replace(wl, **changes)
    if args.batching:
        wl = replace(wl, batching=args.batching)
    from .validate import whole_number

    chips = args.chips
    if chips is None and design_file and base["system"] is not None and not args.hardware:
        chips = whole_number(base["system"].n_chips, f"{design_file}: [system].chips")
    tp = args.tp
    if tp is None and "tp" in base["workload_fields"]:
        tp = whole_number(wl.tp, "workload.tp")
    pp_dp = whole_number(wl.pp, "workload.pp") * whole_number(wl.dp, "workload.dp")
    if tp is None and chips is None:
        chips = DEFAULTS["chips"]
    if tp is None:
        if chips % pp_dp:
            raise UsageError(f"--chips {chips} is not divisible by pp x dp = {pp_dp}: pass --tp explicitly")
        tp = chips // pp_dp
    if chips is None:
        chips = tp * pp_dp
    wl = replace(wl, tp=float(tp))
    system = replace(system, n_chips=float(chips))
    if args.chip_price_usd:
        system = replace(system, chip=replace(system.chip, price_usd=args.chip_price_usd))

    if (
        args.weight_dtype is not None
        or args.kv_dtype is not None
        or args.act_dtype is not None
        or args.sparsity is not None
        or args.sparsity_pattern
    ):
        pattern = args.sparsity_pattern or ("unstructured" if args.sparsity else "dense")
        if pattern == "2:4" and args.sparsity not in (None, 0.5):
            raise UsageError(
                f"--sparsity {args.sparsity:g} with --sparsity-pattern 2:4: 2:4 sparsity is 0.5 exactly; "
                "drop --sparsity or use --sparsity-pattern unstructured"
            )
        comp = dtypes.compression(
            "bf16" if args.weight_dtype is None else args.weight_dtype,
            args.kv_dtype,
            args.act_dtype,
            args.sparsity or 0.0,
            pattern,
        )
    else:
        comp = base["compression"] or dtypes.compression("bf16")

    if args.speed_of_light:
        eff, eff_label = Efficiency.speed_of_light(), "speed of light"
    elif args.params:
        eff = presets.with_stack_traits(load_efficiency(args.params, args.stack or "tuned", hw_name), args.stack or "", hw_name)
        eff_label = f"from {args.params}"
    elif args.stack:
        shown = presets.stack_table(args.stack, hw_name)
        if args.stack not in ("tuned", shown):
            shown = f"{shown} ({args.stack} runs as {shown} on {hw_name})"
        eff, eff_label = presets.stack(args.stack, hw_name), f"stack {shown}"
    elif base["efficiency"] is not None:
        eff, eff_label = base["efficiency"], f"from {design_file}"
    else:
        eff = calibrated_efficiency(hw_name)
        eff_label = f"calibrated (shipped): stack {presets.tuned_name(hw_name)}"
    econ = base["economics"] or presets.default_economics()

    specs = dict(system=system, model=model, workload=wl, compression=comp, efficiency=eff, economics=econ)
    from .service import service_specs, validate_design_service

    # a served design (--rate, a [service] table; hwgrad serve always): its roots join the specs
    # before --set, so --set service.arrival_rate_rps=5 works
    specs.update(service_specs(args, base, system, wl, force=getattr(args, "serve_command", False)))
    settings = knob_assignments(args)
    specs = apply_assignments(specs, settings)
    validate(**{k: specs[k] for k in _SPEC_KEYS})
    validate_design_service(specs)
    notes = list(presets.chip_notes(hw_name)) if hw_name else []
    if settings:
        notes.append("set: " + ", ".join(f"{p} = {v:g}" for p, v in settings))
    return dict(
        **specs,
        model_name=model_name or "custom",
        hardware_name=hw_name or args.design or "custom",
        efficiency_label=eff_label,
        notes=notes,
    )


# ----------------------------------------------------------------------------- eval


def _fmt_time(s: float) -> str:
    if not math.isfinite(s):
        return "n/a"
    if s >= 1:
        return f"{s:.3g} s"
    if s >= 1e-3:
        return f"{s * 1e3:.3g} ms"
    return f"{s * 1e6:.3g} us"


def _fmt_bytes(b: float) -> str:
    if not math.isfinite(b):
        return "unknown"
    return f"{b / 1e9:,.1f} GB"


def _num(x) -> float | None:
    v = float(x)
    return v if math.isfinite(v) else None


def as_number(x) -> int | float | None:
    """A JSON number: whole values as ``int`` (batch 32, not 32.0), non-finite as ``None``."""
    v = float(x)
    if not math.isfinite(v):
        return None
    return int(v) if v.is_integer() and abs(v) < 2**53 else v


def _json_value(text):
    """A preset table cell as JSON: numbers as numbers, words as text."""
    if not isinstance(text, str):
        return text
    try:
        return as_number(float(text)) if text.strip().lower() not in ("nan", "inf", "-inf") else text
    except ValueError:
        return text


def report_dict(design: dict, result) -> dict:
    """The stable JSON object of ``hwgrad eval --json``."""
    from .cost import COMPONENTS

    def pass_dict(pc):
        comps = dict(zip(COMPONENTS, (float(v) for v in pc.component_times()), strict=True))
        return {
            "time_s": float(pc.time_s),
            "component_time_s": comps,
            "bound": max(comps, key=comps.get),
            "flops": float(pc.flops),
            "bytes_per_tier": [float(b) for b in pc.bytes_per_tier],
            "energy_j": {
                "memory": _num(pc.energy_memory_j),
                "compute": _num(pc.energy_compute_j),
                "network": _num(pc.energy_network_j),
                "static": _num(pc.energy_static_j),
            },
        }

    decode = pass_dict(result.decode)
    tiers = design["system"].chip.tiers
    share = float(design["efficiency"].memory_fraction)
    capacity = [
        {
            "tier": i,
            "capacity_bytes": _num(t.capacity_bytes),
            "usable_bytes": _num(t.capacity_bytes * share),
            "used_bytes": float(result.capacity_used_bytes[i]),
            "margin_bytes": _num(result.capacity_margin_bytes[i]),
        }
        for i, t in enumerate(tiers)
    ]
    wl, comp = design["workload"], design["compression"]
    return {
        "model": design["model_name"],
        "hardware": design["hardware_name"],
        "chips": int(design["system"].n_chips),
        "workload": {
            k: as_number(getattr(wl, k))
            for k in ("batch", "prompt_len", "output_len", "tp", "pp", "ep", "dp", "microbatches")
        },
        "compression": {
            "weight_bits": as_number(comp.weight_bits + comp.weight_overhead_bits),
            "kv_bits": as_number(comp.kv_bits + comp.kv_overhead_bits),
            "act_bits": as_number(comp.act_bits),
            "sparsity": as_number(comp.sparsity),
            "pattern": comp.pattern,
        },
        "efficiency": design["efficiency_label"],
        "tpot_s": float(result.tpot_s),
        "ttft_s": float(result.ttft_s),
        "e2e_latency_s": float(result.e2e_latency_s),
        "tokens_per_s": float(result.tokens_per_s),
        "tokens_per_s_per_user": float(result.tokens_per_s_per_user),
        "decode_tokens_per_s": float(result.decode_tokens_per_s),
        "energy_j_per_token": _num(result.energy_j_per_token),
        "energy_j_per_token_with_pue": _num(result.energy_j_per_token * design["economics"].pue),
        "energy_includes_pue": False,
        "pue": _num(design["economics"].pue),
        "power_w": _num(result.power_w),
        "usd_per_million_tokens": _num(result.usd_per_million_tokens),
        "tco_usd": _num(result.tco_usd),
        "gco2e_per_token": _num(result.gco2e_per_token),
        "fits": bool(result.fits > 0),
        "waves": float(result.waves),
        "bottleneck": decode["bound"],
        "breakdown": {
            "decode_step": decode,
            "prefill": pass_dict(result.prefill),
            "capacity": capacity,
            "gco2e_per_token": {
                "operational": _num(result.gco2e_operational_per_token),
                "embodied": _num(result.gco2e_embodied_per_token),
            },
        },
        "notes": design["notes"],
    }


def _capacity_error(design: dict, rep: dict) -> str:
    """Why the design does not fit, in one line (never empty)."""
    for tier in rep["breakdown"]["capacity"]:
        used = tier["used_bytes"]
        if not math.isfinite(used) or (tier["capacity_bytes"] is not None and tier["margin_bytes"] is None):
            wl = rep["workload"]
            return (
                f"tier {tier['tier']}: the memory needed per chip is not a finite number ({used:g} bytes) at "
                f"batch {wl['batch']:g}, context {wl['prompt_len'] + wl['output_len']:g}: the inputs overflow "
                "the model's float32 arithmetic; lower batch or context"
            )
    for tier in rep["breakdown"]["capacity"]:
        if tier["margin_bytes"] is not None and tier["margin_bytes"] < 0:
            wl, comp = rep["workload"], rep["compression"]
            cap = _fmt_bytes(tier["capacity_bytes"])
            if tier["usable_bytes"] != tier["capacity_bytes"]:
                cap = f"{_fmt_bytes(tier['usable_bytes'])} the engine may use (of {cap})"
            return (
                f"tier {tier['tier']} capacity {cap} < {_fmt_bytes(tier['used_bytes'])} "
                f"needed per chip for weights + KV + activations ({rep['model']}, {comp['weight_bits']:g}-bit weights, "
                f"batch {wl['batch']:g}, context {wl['prompt_len'] + wl['output_len']:g}, tp {wl['tp']:g}): "
                "raise tp/pp, lower bits or batch, or add a memory tier" + _sequences_that_fit_note(design)
            )
    return "the design does not fit in memory (see --allow-overflow to report it anyway)"


def _sequences_that_fit_note(design: dict) -> str:
    """How many of the batch's sequences the KV cache holds at once, when that is what does
    not fit (``""`` when not even the weights fit or the batch does)."""
    import jax

    from .cost import sequences_that_fit

    wl, stack = design["workload"], design["efficiency"]
    context = wl.prompt_len + wl.output_len
    n = float(jax.device_get(sequences_that_fit(design["system"], design["model"], wl, design["compression"], stack)))
    if not (math.isfinite(n) and 1 <= n < wl.batch):  # inf: the overflowing tier holds no KV cache
        return ""
    n = int(n)
    mode = "concurrency" if wl.batching in ("continuous", "disaggregated") else "static batch"
    return (
        f"; {n} of the {wl.batch:g} sequences of {context:g} tokens fit in the KV cache at once "
        f"({stack.memory_fraction:g} of memory for the engine): a {mode} of at most {n}"
        + (", or --allow-overflow to run this batch in waves" if mode == "static batch" else "")
    )


def require_fits(design: dict, result=None) -> None:
    """Refuse a design whose weights + KV + activations do not fit: the check of every subcommand.

    Args:
      design: the mapping of [`design_from_args`][hwgrad.cli.design_from_args].
      result: its [`Result`][hwgrad.cost.Result] if already evaluated (else it is evaluated here).

    Raises:
      UsageError: one line naming the tier, the bytes needed and the fix.
    """
    if result is None:
        import jax

        from .cost import evaluate_jit

        keys = ("system", "model", "workload", "compression", "efficiency", "economics")
        result = jax.device_get(evaluate_jit(*(design[k] for k in keys)))
    rep = report_dict(design, result)
    if not rep["fits"]:
        raise UsageError(_capacity_error(design, rep))


#: metrics that are defined at every valid design point (the unknown-able ones are None)
_ALWAYS_DEFINED = (
    "tpot_s",
    "ttft_s",
    "e2e_latency_s",
    "tokens_per_s",
    "tokens_per_s_per_user",
    "decode_tokens_per_s",
)


def _require_finite(rep: dict) -> None:
    """A NaN or inf where a number must be is never printed: one line naming the metric."""
    for key in _ALWAYS_DEFINED:
        v = rep[key]
        if not math.isfinite(v):
            wl = rep["workload"]
            raise UsageError(
                f"{key} = {v}: not a finite number at batch {wl['batch']:g}, prompt {wl['prompt_len']:g}, output "
                f"{wl['output_len']:g} (the inputs overflow float32 arithmetic?); use smaller values, or report "
                "it if they are realistic"
            )
    for name, dec in (
        ("decode_step", rep["breakdown"]["decode_step"]),
        ("prefill", rep["breakdown"]["prefill"]),
    ):
        bad = [k for k, v in dec["component_time_s"].items() if not math.isfinite(v)]
        if bad or not math.isfinite(dec["time_s"]):
            raise UsageError(
                f"{name} time of {', '.join(bad) or 'the step'} is not finite: use smaller values"
            )


def print_report(rep: dict) -> None:
    wl, comp = rep["workload"], rep["compression"]
    print(
        f"{rep['model']} on {rep['chips']} x {rep['hardware']} (tp {wl['tp']:g}, pp {wl['pp']:g}, ep {wl['ep']:g}, "
        f"dp {wl['dp']:g}); batch {wl['batch']:g}, prompt {wl['prompt_len']:g}, output {wl['output_len']:g} tokens"
    )
    print(
        f"weights {comp['weight_bits']:g} bits, KV {comp['kv_bits']:g} bits, activations {comp['act_bits']:g} bits"
        + (f", {comp['pattern']} sparsity {comp['sparsity']:g}" if comp["pattern"] != "dense" else "")
        + f"; efficiency: {rep['efficiency']}"
    )
    print()
    print("latency")
    print(f"  time to first token     {_fmt_time(rep['ttft_s'])}")
    print(f"  time per output token   {_fmt_time(rep['tpot_s'])}")
    print(f"  end-to-end (batch)      {_fmt_time(rep['e2e_latency_s'])}")
    print("throughput")
    print(f"  per user                {rep['tokens_per_s_per_user']:,.1f} tok/s")
    print(f"  system, decode only     {rep['decode_tokens_per_s']:,.0f} tok/s")
    print(f"  system, with prefill    {rep['tokens_per_s']:,.0f} tok/s")
    dec = rep["breakdown"]["decode_step"]
    print("decode step (mean over the output; components overlap, each shown alone)")
    total = dec["time_s"]
    for name, t in dec["component_time_s"].items():
        bar = "#" * int(round(20 * min(t / total, 1.0))) if total > 0 else ""
        print(f"  {name:<14} {_fmt_time(t):>10}  {bar}")
    print(f"  {'step':<14} {_fmt_time(total):>10}  bound by {rep['bottleneck']}")
    e = dec["energy_j"]
    print("energy")
    ej = rep["energy_j_per_token"]
    if ej is None:
        print("  energy per token        unknown (TDP or FLOPS of this chip not published)")
    else:
        known = {k: v for k, v in e.items() if v is not None}
        tot = sum(known.values()) or 1.0
        shares = ", ".join(f"{k} {100 * v / tot:.0f}%" for k, v in known.items())
        print(f"  energy per token        {ej:.3g} J at the chips, PUE excluded  (decode: {shares})")
        ef = rep["energy_j_per_token_with_pue"]
        if ef is not None:
            print(f"  with facility overhead  {ef:.3g} J  (PUE {rep['pue']:g}; energy_j_per_token_with_pue)")
        print(f"  power                   {rep['power_w']:,.0f} W at the chips, PUE excluded")
    print("cost and carbon")
    usd = rep["usd_per_million_tokens"]
    print(f"  $ per million tokens    {'unknown: pass --chip-price-usd' if usd is None else f'${usd:.3g}'}")
    g = rep["gco2e_per_token"]
    op = rep["breakdown"]["gco2e_per_token"]["operational"]
    print(
        "  gCO2e per token         "
        + ("unknown" if g is None else f"{g:.3g}")
        + ("" if op is None else f"  (operational {op:.3g})")
    )
    print("capacity per chip")
    for t in rep["breakdown"]["capacity"]:
        ok = "ok" if t["margin_bytes"] is None or t["margin_bytes"] >= 0 else "DOES NOT FIT"
        cap = (
            "capacity unknown, not checked"
            if t["capacity_bytes"] is None
            else f"of {_fmt_bytes(t['capacity_bytes'])}"
            if t["usable_bytes"] == t["capacity_bytes"]
            else f"of {_fmt_bytes(t['usable_bytes'])} the engine may use ({_fmt_bytes(t['capacity_bytes'])})"
        )
        print(f"  tier {t['tier']}: {_fmt_bytes(t['used_bytes'])} {cap}  {ok}")
    for note in rep["notes"]:
        print(f"note: {note}")


def enable_compile_cache() -> None:
    """Keep compiled XLA programs on disk so later CLI runs skip compilation.

    ``$HWGRAD_CACHE_DIR`` (default ``~/.cache/hwgrad/xla``); set it to an empty string to
    disable.
    """
    import os

    import jax

    path = os.environ.get(
        "HWGRAD_CACHE_DIR", os.path.join(os.path.expanduser("~"), ".cache", "hwgrad", "xla")
    )
    if not path:
        return
    try:
        os.makedirs(path, exist_ok=True)
    except OSError:
        return  # read-only home: just compile every time
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)


def cmd_eval(args) -> int:
    import jax

    from .cost import evaluate_jit

    enable_compile_cache()

    design = design_from_args(args)
    result = evaluate_jit(
        design["system"],
        design["model"],
        design["workload"],
        design["compression"],
        design["efficiency"],
        design["economics"],
    )
    result = jax.device_get(result)
    rep = report_dict(design, result)
    if not args.allow_overflow:
        require_fits(design, result)
    _require_finite(rep)
    if args.plot:
        from .roofline import plot

        written = plot(design, path=args.plot)
        print(f"wrote {', '.join(str(w) for w in written)}", file=sys.stderr)
    if args.json:
        print(json.dumps(rep, indent=2, allow_nan=False))
    else:
        print_report(rep)
    return 0


# ----------------------------------------------------------------------------- presets


def cmd_presets(args) -> int:
    from . import presets

    kinds = {"hardware": "hardware", "models": "models", "memory": "memory_tech"}
    if args.kind == "stacks":
        import dataclasses

        from .stacks import KERNEL_TRAITS

        stacks = {n: dataclasses.asdict(presets.stack(n)) for n in presets.stack_names()}
        traits = [
            {"stack": fam, "software": needle, "hardware_lines": list(lines), "fields": fields}
            for fam, needle, lines, fields in KERNEL_TRAITS
        ]
        if args.json:
            print(json.dumps({"stacks": stacks, "kernel_traits": traits}, indent=2))
            return 0
        fields = (
            "op_overhead_s",
            "step_overhead_s",
            "collective_overhead_s",
            "flops_efficiency",
            "memory_fraction",
            "kv_on_demand",
        )
        print(f"stacks ({len(stacks)} presets; fitted by `hwgrad calibrate`, see docs/calibration.md)")
        width = max(18, *(len(n) + 2 for n in stacks))
        print("  " + f"{'name':<{width}}" + "".join(f"{c:>{len(c) + 2}}" for c in fields))
        for name, st in stacks.items():
            print(f"  {name:<{width}}" + "".join(f"{st[c]:>{len(c) + 2}.4g}" for c in fields))
        print("kernel traits of stack versions and builds (not fitted; hwgrad.stacks.KERNEL_TRAITS):")
        for t in traits:
            version = f"software '{t['software']}'" if t["software"] else "every version"
            where = ", ".join(t["hardware_lines"]) or "every vendor line"
            values = ", ".join(f"{k} = {v:g}" for k, v in t["fields"].items())
            print(f"  {t['stack']:<18}{version:<32}{where:<22}{values}")
        return 0
    chosen = [args.kind] if args.kind != "all" else list(kinds)
    out = {}
    for kind in chosen:
        rows = presets.table(kinds[kind])
        out[kind] = {name: {k: v for k, v in row.items() if v} for name, row in rows.items()}
    if args.json:
        typed = {
            kind: {name: {k: _json_value(v) for k, v in row.items()} for name, row in rows.items()}
            for kind, rows in out.items()
        }
        print(json.dumps(typed, indent=2))
        return 0
    cols = {
        "hardware": ("memory_capacity_GB", "memory_bandwidth_GBps", "bf16_dense_TFLOPS", "tdp_W"),
        "models": ("params_total_B", "params_active_B", "attention", "n_layers"),
        "memory": (
            "capacity_per_device_GB",
            "bandwidth_per_device_GBps",
            "energy_pJ_per_bit",
            "bytes_per_read",
        ),
    }
    for kind in chosen:
        print(f"{kind} ({len(out[kind])} presets)")
        print("  " + f"{'name':<18}" + "".join(f"{c:>26}" for c in cols[kind]) + "  source")
        for name, row in presets.table(kinds[kind]).items():
            vals = "".join(f"{row.get(c) or '-':>26}" for c in cols[kind])
            src = (row.get("source") or "")[:60]
            print(f"  {name:<18}{vals}  {src}")
        print()
    return 0


# ----------------------------------------------------------------------------- entry point


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="hwgrad",
        description="Differentiable LLM-inference hardware model.",
        epilog="--debug (anywhere on the line) shows the traceback of an internal error.",
    )
    from . import __version__

    parser.add_argument("--version", action="version", version=f"hwgrad {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p_eval = sub.add_parser(
        "eval",
        help="evaluate one design point",
        description="Latency, energy, cost and capacity of one design point.",
    )
    add_design_arguments(p_eval)
    p_eval.add_argument("--json", action="store_true", help="print one JSON object")
    p_eval.add_argument(
        "--allow-overflow", action="store_true", help="report designs that do not fit instead of failing"
    )
    p_eval.add_argument(
        "--plot",
        metavar="FILE",
        help="also draw the per-op roofline of the decode step and the prefill and the time/energy "
        "breakdown; the extension picks the format (.png, .pdf, .svg)",
    )
    p_eval.set_defaults(func=cmd_eval)

    p_pre = sub.add_parser("presets", help="list presets and their sources")
    p_pre.add_argument(
        "kind", nargs="?", default="all", choices=("all", "hardware", "models", "memory", "stacks")
    )
    p_pre.add_argument("--json", action="store_true")
    p_pre.set_defaults(func=cmd_presets)

    for register in _extra_commands(argv):
        register(sub)
    return parser


#: subcommands defined in other modules (each has ``register_cli(subparsers)``)
COMMAND_MODULES = {
    "validate": "hwgrad.calibrate",
    "calibrate": "hwgrad.calibrate",
    "sweep": "hwgrad.sweep",
    "sensitivity": "hwgrad.sweep",
    "codesign": "hwgrad.codesign",
    "serve": "hwgrad.service",
}


def _extra_commands(argv: list[str] | None):
    """``register_cli`` of the modules the command line needs: only the chosen command's
    module (keeps ``hwgrad eval`` start-up free of optax & co.), or all of them for help
    and unknown commands."""
    import importlib

    first = argv[0] if argv else None
    if first in ("eval", "presets"):
        names: list[str] = []
    elif first in COMMAND_MODULES:
        names = [COMMAND_MODULES[first]]
    else:
        names = list(dict.fromkeys(COMMAND_MODULES.values()))
    for name in names:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        yield module.register_cli


REPORT_URL = "https://github.com/hwgrad/hwgrad/issues"


def _one_line(text: str, limit: int = 400) -> str:
    """A message on one line (newlines folded, long ones cut)."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def main(argv: list[str] | None = None) -> int:
    """Run the command line; every failure is one line on stderr and a non-zero exit.

    User-caused errors (``ValueError``, bad files, unwritable outputs) exit 2; anything else
    is a bug in hwgrad: one line with a pointer to report it (exit 1), or the traceback with
    ``--debug`` (or ``HWGRAD_DEBUG=1``).
    """
    import os

    argv = sys.argv[1:] if argv is None else list(argv)
    debug = "--debug" in argv or os.environ.get("HWGRAD_DEBUG", "") not in ("", "0")
    argv = [a for a in argv if a != "--debug"]
    command = argv[0] if argv and not argv[0].startswith("-") else "hwgrad"
    prefix = "hwgrad" if command == "hwgrad" else f"hwgrad {command}"
    try:
        parser = build_parser(argv)
        args = parser.parse_args(argv)
        prefix = f"hwgrad {args.command}"
        return args.func(args)
    except SystemExit as exc:  # argparse: usage errors (2) and --help (0)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    except KeyboardInterrupt:
        print(f"{prefix}: interrupted", file=sys.stderr)
        return 130
    except ValueError as exc:  # includes UsageError: user-caused, one line, exit 2
        if debug:
            raise
        print(f"{prefix}: error: {_one_line(exc) or type(exc).__name__}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # the reader went away (`hwgrad ... | head`): not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no flush error at exit
        return 141  # 128 + SIGPIPE, what a program killed by the signal reports
    except OSError as exc:  # a file or directory the user named: unreadable, unwritable, full disk
        if debug:
            raise
        where = f" {exc.filename}:" if getattr(exc, "filename", None) else ""
        print(f"{prefix}: error:{where} {exc.strerror or _one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except RecursionError:
        if debug:
            raise
        print(f"{prefix}: error: input nested too deeply (recursion limit); flatten it", file=sys.stderr)
        return EXIT_USAGE
    except Exception as exc:  # noqa: BLE001 - the last line of defence: never a traceback
        if debug:
            raise
        print(
            f"{prefix}: internal error: {type(exc).__name__}: {_one_line(exc)} "
            f"(a bug in hwgrad: please report it at {REPORT_URL} with the command line; "
            "rerun with --debug for the traceback)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
