"""Design points from TOML files: custom chips, memory tiers, networks, models, workloads.

Every table may start from a preset and override fields (SI units, field names as in
`hwgrad.specs`):

    [system]
    hardware = "h100-sxm"          # base chip + network preset
    chips = 8

    [chip]                         # overrides of Chip fields
    tdp_w = 650.0

    [[chip.tiers]]                 # replaces the tier list when present
    technology = "hbm4"            # base row of memory_tech.csv
    capacity_bytes = 192e9
    bandwidth_bytes_per_s = 6.5e12

    [network]
    topology = "switch"
    hop_latency_s = 2.5e-7

    [model]
    preset = "llama-3.1-70b"       # or every Model field

    [workload]
    batch = 32
    tp = 8

    [compression]
    weight_dtype = "fp8"           # or weight_bits = 8.0 ...

Sweep files (``[design]`` as ``hwgrad eval`` flags, ``[sweep]``, ``[[axis]]``) are read here
too, by `load_sweep`: one loader for every file hwgrad reads. Errors name the file, the
table and the field.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import os
import tomllib
from pathlib import Path

import numpy as np

from . import dtypes, presets
from .calibrated import efficiency_from_mapping
from .specs import Chip, Compression, Economics, MemoryTier, Model, Network, Placement, System, Workload

_STATIC_TEXT = {"attention", "pattern", "topology"}
_STATIC_BOOL = {"gated_ffn", "tied_embeddings", "in_network_reduction", "low_write_endurance"}
_STATIC_INT = {"torus_dims", "kv_offload_tier"}


def read_toml(path: str | Path, what: str = "") -> dict:
    """A TOML file as a dict; every failure (missing, unreadable, not UTF-8, not TOML, nested
    too deeply) is a one-line ``ValueError`` naming the file."""
    path = Path(path)
    label = f"{what} {path}".strip()
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"{label}: cannot read ({exc.strerror or exc})") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{label}: not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{label}: not valid TOML ({exc})") from None
    except RecursionError:
        raise ValueError(f"{label}: arrays or inline tables nested too deeply; flatten the file") from None


def table(doc: dict, key: str, where: str) -> dict:
    """``doc[key]`` if it is a table (``{}`` when absent), else a one-line ``ValueError``."""
    value = doc.get(key, {})
    if not isinstance(value, dict):
        raise ValueError(f"{where}: {key} = {value!r:.60} must be a table ([{key}] with fields), not a value")
    return dict(value)


def _fields(cls) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(cls)}


def _override(base, cls, values: dict, where: str, skip: tuple[str, ...] = ()):
    """``base`` (or a new ``cls``) with the numeric / static fields of ``values``."""
    fields = _fields(cls)
    changes = {}
    for key, val in values.items():
        if key in skip:
            continue
        if key not in fields:
            close = difflib.get_close_matches(key, fields, n=3, cutoff=0.5)
            hint = f"did you mean {', '.join(close)}?" if close else f"known fields: {', '.join(fields)}"
            raise ValueError(f"{where}: unknown field {key!r}; {hint}")
        if key in _STATIC_TEXT:
            if not isinstance(val, str):
                raise ValueError(f"{where}.{key} = {val!r}: expected text")
        elif key in _STATIC_BOOL:
            if not isinstance(val, bool):
                raise ValueError(f"{where}.{key} = {val!r}: expected true or false")
        elif key in _STATIC_INT:
            if not isinstance(val, int) or isinstance(val, bool):
                raise ValueError(f"{where}.{key} = {val!r}: expected a whole number")
        elif key == "nmc_ops":
            if not isinstance(val, list) or not all(isinstance(v, str) for v in val):
                raise ValueError(f'{where}.{key} = {val!r}: expected a list of names such as ["gemv"]')
            val = tuple(val)
        else:
            if isinstance(val, list):
                if not val or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in val):
                    raise ValueError(f"{where}.{key} = {val!r:.60}: expected a number or a list of numbers")
                val = np.asarray(val, dtype=float)
            elif isinstance(val, bool) or not isinstance(val, int | float):
                raise ValueError(f"{where}.{key} = {val!r:.60}: expected a number")
            else:
                try:
                    val = float(val)
                except OverflowError:
                    raise ValueError(f"{where}.{key} = {val}: too large; give a number below 1e30") from None
        changes[key] = val
    if base is None:
        missing = [n for n, f in fields.items() if n not in changes and f.default is dataclasses.MISSING]
        if missing:
            raise ValueError(
                f"{where}: missing field(s) {', '.join(missing)} (or name a preset to start from)"
            )
        return cls(**changes)
    return dataclasses.replace(base, **changes)


def _tier(values: dict, where: str) -> MemoryTier:
    if not isinstance(values, dict):
        raise ValueError(f"{where} = {values!r:.60}: each tier must be a table ([[chip.tiers]] with fields)")
    tech = values.get("technology")
    if tech is not None and not isinstance(tech, str):
        raise ValueError(f'{where}.technology = {tech!r}: expected a memory technology name such as "hbm3e"')
    # sized from the file's capacity/bandwidth, so that the idle power and the queue depth
    # (prefetch = latency x bandwidth) follow the device count
    sizes = {
        k: float(values[k])
        for k in ("capacity_bytes", "bandwidth_bytes_per_s")
        # only physical sizes scale the device count; bad values reach validation unchanged
        if _is_number(values.get(k)) and 0 < float(values[k]) <= 1e30
    }
    base = presets.memory_tier(tech, **sizes) if tech else None
    return _override(base, MemoryTier, values, where, skip=("technology",))


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def empty() -> dict:
    """What `load` returns for a file that sets nothing."""
    return {
        **dict.fromkeys(("system", "model", "workload", "compression", "economics", "efficiency")),
        "workload_fields": frozenset(),
        "service_fields": {},
        "engine_fields": {},
    }


def load(path: str | Path) -> dict:
    """Parse a design file into specs.

    Returns:
      dict with keys ``system``, ``model``, ``workload``, ``compression``, ``economics``,
      ``efficiency``; each a spec or ``None`` when the file does not set it; and
      ``workload_fields``, the workload fields the file sets explicitly; ``service_fields`` /
      ``engine_fields``, the ``[service]`` / ``[engine]`` tables (a served design:
      `hwgrad.service.Service` / `hwgrad.service.Engine` fields, checked here, built with the
      flags by `hwgrad.service.service_specs`).
    """
    path = Path(path)
    doc = read_toml(path)
    known = {
        "system",
        "chip",
        "network",
        "placement",
        "model",
        "workload",
        "compression",
        "economics",
        "efficiency",
        "service",
        "engine",
    }
    for key in doc:
        if key not in known:
            raise ValueError(f"{path}: unknown table [{key}]; known: {', '.join(sorted(known))}")
    out = empty()
    w = str(path)

    for key in known:
        table(doc, key, w)  # every top-level entry is a table
    sys_t = table(doc, "system", w)
    hardware = sys_t.pop("hardware", None)
    chips = sys_t.pop("chips", None)
    if sys_t:
        raise ValueError(f"{w}: [system] unknown field(s) {sorted(sys_t)}; use hardware, chips")
    if hardware is not None and not isinstance(hardware, str):
        raise ValueError(f'{w}: [system].hardware = {hardware!r}: expected a preset name such as "h100-sxm"')
    if chips is not None:
        from .validate import whole_number

        chips = whole_number(chips, f"{w}: [system].chips")
    chip_t = table(doc, "chip", w)
    if hardware or chip_t or "network" in doc:
        chip = presets.chip(hardware) if hardware else None
        tiers_t = chip_t.pop("tiers", None)
        if tiers_t is not None and (not isinstance(tiers_t, list) or not tiers_t):
            raise ValueError(f"{w}: [chip].tiers = {tiers_t!r:.60}: give one or more [[chip.tiers]] tables")
        if tiers_t is not None:
            tiers = tuple(_tier(t, f"{w}: [chip.tiers][{i}]") for i, t in enumerate(tiers_t))
            chip = dataclasses.replace(chip, tiers=tiers) if chip else None
            if chip is None:
                chip_t["tiers"] = tiers
        if chip is None:
            if "tiers" not in chip_t or "peak_flops_bf16" not in chip_t:
                raise ValueError(
                    f"{w}: [chip] needs peak_flops_bf16 and [[chip.tiers]], or [system] hardware = <preset>"
                )
            # narrower dtypes default to 2x per halving of width (data README convention)
            bf16 = chip_t["peak_flops_bf16"]
            if isinstance(bf16, bool) or not isinstance(bf16, int | float):
                raise ValueError(f"{w}: [chip].peak_flops_bf16 = {bf16!r}: expected a number")
            base = Chip(
                tiers=chip_t.pop("tiers"),
                peak_flops_bf16=bf16,
                peak_flops_fp8=2 * bf16,
                peak_flops_fp4=4 * bf16,
            )
            chip = _override(base, Chip, chip_t, f"{w}: [chip]")
            if "energy_j_per_flop_bf16" not in chip_t:
                main = chip.tiers[0]
                chip = dataclasses.replace(
                    chip,
                    energy_j_per_flop_bf16=presets.energy_j_per_flop_from_tdp(
                        float(chip.tdp_w),
                        float(chip.peak_flops_bf16),
                        float(main.bandwidth_bytes_per_s),
                        float(main.energy_j_per_byte),
                    ),
                )
        else:
            chip = _override(chip, Chip, chip_t, f"{w}: [chip]")
        net_base = presets.network(hardware) if hardware else None
        net = _override(net_base, Network, table(doc, "network", w), f"{w}: [network]")
        placement = None
        if "placement" in doc:
            placement = _override(None, Placement, table(doc, "placement", w), f"{w}: [placement]")
        out["system"] = System(
            chip=chip, n_chips=float(1 if chips is None else chips), network=net, placement=placement
        )

    if "model" in doc:
        model_t = table(doc, "model", w)
        name = model_t.pop("preset", None)
        if name is not None and not isinstance(name, str):
            raise ValueError(f"{w}: [model].preset = {name!r}: expected a model preset name")
        out["model"] = _override(presets.model(name) if name else None, Model, model_t, f"{w}: [model]")
    if "workload" in doc:
        out["workload"] = _override(Workload(), Workload, table(doc, "workload", w), f"{w}: [workload]")
        out["workload_fields"] = frozenset(doc["workload"])
    if "compression" in doc:
        comp_t = table(doc, "compression", w)
        names = {k: comp_t.pop(k) for k in dtypes.NAMED_FIELDS if k in comp_t}
        try:
            base = dtypes.compression(**names) if names else Compression()
        except ValueError as exc:
            raise ValueError(f"{w}: [compression].{exc}") from None
        out["compression"] = _override(base, Compression, comp_t, f"{w}: [compression]")
    if "economics" in doc:
        out["economics"] = _override(
            presets.default_economics(), Economics, table(doc, "economics", w), f"{w}: [economics]"
        )
    if "efficiency" in doc:
        out["efficiency"] = efficiency_from_mapping(table(doc, "efficiency", w), where=f"{w}: [efficiency]")
    from .service import Engine, Service

    for key, cls in (("service", Service), ("engine", Engine)):
        if key in doc:
            t = table(doc, key, w)
            _override(cls(), cls, t, f"{w}: [{key}]")  # names and types checked here
            out[f"{key}_fields"] = dict(t)
    return out


# ----------------------------------------------------------------------------- sweep files


class _RaisingParser(argparse.ArgumentParser):
    def error(self, message):
        raise ValueError(message)


def _design_parser() -> argparse.ArgumentParser:
    from .cli import add_design_arguments
    from .service import add_service_arguments

    p = _RaisingParser(prog="[design]", add_help=False, exit_on_error=False)
    add_design_arguments(p)
    add_service_arguments(p)
    return p


def _design_from_table(entries: dict, where: str, base_dir: Path) -> dict:
    """``[design]`` keys are the ``hwgrad eval`` flags (``prompt_len`` = ``--prompt-len``) and
    the service flags of ``hwgrad serve`` (``rate = 5`` makes it a served design)."""
    from .cli import design_from_args

    parser = _design_parser()
    flags = {a.dest: a for a in parser._actions if a.option_strings}
    argv = []
    for key, val in entries.items():
        dest = key.replace("-", "_")
        if dest not in flags:
            close = difflib.get_close_matches(dest, list(flags), n=3, cutoff=0.5)
            hint = f"did you mean {', '.join(close)}?" if close else f"known: {', '.join(sorted(flags))}"
            raise ValueError(f"{where} [design].{key}: unknown field; {hint}")
        action = flags[dest]
        opt = action.option_strings[0]
        if action.nargs == 0:  # store_true
            if not isinstance(val, bool):
                raise ValueError(f"{where} [design].{key} = {val!r}: expected true or false")
            if val:
                argv.append(opt)
            continue
        if isinstance(val, bool) or not isinstance(val, str | int | float):
            raise ValueError(f"{where} [design].{key} = {val!r}: expected a number or text")
        if dest in ("config", "params"):
            val = str((base_dir / str(val)).resolve()) if not os.path.isabs(str(val)) else str(val)
        argv += [opt, str(val)]
    try:
        args = parser.parse_args(argv)
    except (ValueError, argparse.ArgumentError) as exc:
        raise ValueError(f"{where} [design]: {exc}") from None
    return design_from_args(args)


_SWEEP_KEYS = {
    "mode", "points", "seed", "chunk_size", "batch_size", "metrics", "out", "feasible_only", "pareto", "roofline",
}  # fmt: skip


def load_sweep(path: str | os.PathLike) -> dict:
    """Parse a sweep file (TOML):

        [design]                      # the design point: `hwgrad eval` flags
        model = "llama-3.1-70b"
        hardware = "h100-sxm"
        chips = 8
        weight_dtype = "fp8"
        # config = "design.toml"      # or a design file (custom chips, tiers, networks)

        [sweep]
        mode = "grid"                 # or "random" (with points = N, seed = 0)
        metrics = ["tpot_s", "usd_per_million_tokens", "fits"]
        chunk_size = 65536
        out = "sweep.csv"             # default for --out

        [sweep.pareto]                # optional: keep only the Pareto set
        minimize = ["tpot_s", "usd_per_million_tokens"]

        [[axis]]
        path = "system.chip.tiers.0.bandwidth_bytes_per_s"
        low = 1e12
        high = 1e13
        num = 10
        scale = "log"

        [[axis]]
        path = "workload.batch"
        values = [1, 8, 32, 128]

    Returns:
      dict with ``design``, ``space``, ``metrics``, ``chunk_size``, ``batch_size``,
      ``out``, ``pareto``, ``feasible_only``, ``options``.
    """
    from .design import default_metrics
    from .specs import ROOFLINE_MODES, Options
    from .sweep.pareto import Pareto
    from .sweep.spaces import Axis, Space

    axis_keys = {f.name for f in dataclasses.fields(Axis)}
    path = Path(path)
    w = str(path)
    doc = read_toml(path, "--config")
    for key in doc:
        if key not in ("design", "sweep", "axis"):
            raise ValueError(f"{w}: unknown table [{key}]; use [design], [sweep] and [[axis]]")
    d = _design_from_table(table(doc, "design", w), w, path.parent)
    sw = table(doc, "sweep", w)
    for key in sw:
        if key not in _SWEEP_KEYS:
            close = difflib.get_close_matches(key, list(_SWEEP_KEYS), n=2, cutoff=0.5)
            hint = (
                f"did you mean {', '.join(close)}?" if close else f"known: {', '.join(sorted(_SWEEP_KEYS))}"
            )
            raise ValueError(f"{w} [sweep].{key}: unknown field; {hint}")

    def whole(key, default, minimum=1):
        v = sw.get(key, default)
        if v is None:
            return None
        if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
            raise ValueError(f"{w} [sweep].{key} = {v!r}: expected a whole number >= {minimum}")
        return v

    axes_t = doc.get("axis", [])
    if not isinstance(axes_t, list) or not axes_t:
        raise ValueError(f"{w}: no [[axis]] tables; add one with path, low, high (num for grids) or values")
    axes = []
    for n, t in enumerate(axes_t, 1):
        aw = f"{w} [[axis]] {n}"
        if not isinstance(t, dict):
            raise ValueError(
                f"{aw} = {t!r:.60}: each axis must be a table ([[axis]] with path, low, high...)"
            )
        for key in t:
            if key not in axis_keys:
                close = difflib.get_close_matches(key, list(axis_keys), n=2, cutoff=0.5)
                hint = (
                    f"did you mean {', '.join(close)}?" if close else f"known: {', '.join(sorted(axis_keys))}"
                )
                raise ValueError(f"{aw}.{key}: unknown field; {hint}")
        try:
            axes.append(Axis(**t))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{aw}: {exc}") from None
    mode = sw.get("mode", "grid")
    try:
        space = Space(axes=tuple(axes), mode=mode, n_points=whole("points", None), seed=whole("seed", 0, 0))
    except ValueError as exc:
        raise ValueError(f"{w} [sweep]: {exc}") from None
    metrics = sw.get("metrics", list(default_metrics(d)))
    if not isinstance(metrics, list) or not metrics or not all(isinstance(m, str) for m in metrics):
        raise ValueError(f'{w} [sweep].metrics = {metrics!r}: expected a list of names such as ["tpot_s"]')
    pareto = None
    if "pareto" in sw:
        pt = table(sw, "pareto", f"{w} [sweep]")
        unknown = set(pt) - {"minimize", "maximize", "feasible_only"}
        if unknown:
            raise ValueError(
                f"{w} [sweep.pareto].{sorted(unknown)[0]}: unknown field; use minimize, maximize, feasible_only"
            )
        try:
            pareto = Pareto(**pt)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{w} [sweep.pareto]: {exc}") from None
    feasible_only = sw.get("feasible_only", False)
    if not isinstance(feasible_only, bool):
        raise ValueError(f"{w} [sweep].feasible_only = {feasible_only!r}: expected true or false")
    roofline = sw.get("roofline", Options().roofline)
    if roofline not in ROOFLINE_MODES:
        raise ValueError(f"{w} [sweep].roofline = {roofline!r}: use one of {', '.join(ROOFLINE_MODES)}")
    out = sw.get("out")
    out_inside = True
    if out is not None:
        if not isinstance(out, str) or not out.strip():
            raise ValueError(f'{w} [sweep].out = {out!r:.60}: expected a file name such as "sweep.csv"')
        base_dir = path.parent.resolve()
        resolved = (base_dir / out).resolve()  # relative to the config, never to the working directory
        out_inside = resolved.is_relative_to(base_dir)
        out = str(resolved)
    return dict(
        design=d, space=space, metrics=tuple(metrics), chunk_size=whole("chunk_size", 65536),
        batch_size=whole("batch_size", 512), out=out, out_inside=out_inside, pareto=pareto,
        feasible_only=feasible_only, options=Options(roofline=roofline),
    )  # fmt: skip
