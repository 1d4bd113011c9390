"""Preset catalogue: chips, models, memory technologies and economics from shipped data.

The CSV files in ``hwgrad/presets/data`` are copies of the project's curated data set
(each row keeps its ``source`` column; see ``data/README.md``). Presets are built from
them on demand; names are registry keys, never spec fields.

Blank cells are unknown, never zero. Two conventions from the data README fill them:
a blank bf16 or fp8 peak is derived from the nearest given dtype at 2x per halving of
operand width (bf16 = fp8/2, int8 = fp8); a blank capacity becomes ``inf`` (capacity
check skipped). A blank fp4 peak is the fp8 peak, not twice it: the parts whose fp4 cell
is blank (Ampere, Hopper, CDNA2/3, Gaudi, TPUs, ...) have no FP4 tensor units, so W4A4 runs
no faster than W8A8 on them. Every derived or skipped value is recorded in `chip_notes`.

Over 600 lines because the catalogue builds chips, fabrics, memory tiers and stacks from the CSV rows with one documented fill rule each; the fabric builders are the first candidate to move out.
"""

from __future__ import annotations

import csv
import dataclasses
import difflib
import functools
import math
from importlib import resources

from .. import units
from ..specs import Channel, Chip, Economics, MemoryTier, Model, Network, Stack, System

DATA = resources.files(__package__) / "data"

__all__ = [
    "tuned_name",
    "with_stack_traits",
    "table",
    "model",
    "chip",
    "memory_tier",
    "sram_tier",
    "channel",
    "idle_power_fraction",
    "network",
    "network_notes",
    "scaleout",
    "system",
    "default_economics",
    "economics_value",
    "chip_notes",
    "names",
    "source",
    "stack",
    "stack_names",
    "hardware_family",
    "hardware_line",
    "HARDWARE_FAMILIES",
]


@functools.cache
def table(name: str) -> dict[str, dict[str, str]]:
    """Rows of ``data/<name>.csv`` keyed by their first column."""
    with (DATA / f"{name}.csv").open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    key = next(iter(rows[0]))
    return {r[key]: r for r in rows}


def names(kind: str) -> list[str]:
    """Preset names of one kind: ``"hardware"``, ``"models"`` or ``"memory_tech"``."""
    return sorted(table(kind))


def _lookup(kind: str, name: str) -> dict[str, str]:
    rows = table(kind)
    if name in rows:
        return rows[name]
    close = difflib.get_close_matches(name, rows, n=3, cutoff=0.4)
    hint = f"did you mean {', '.join(close)}?" if close else f"run `hwgrad presets {kind}`"
    label = {"hardware": "hardware", "models": "model", "memory_tech": "memory technology"}[kind]
    raise ValueError(f"unknown {label} {name!r}: {hint}")


def source(kind: str, name: str) -> str:
    """The cited source of a preset row."""
    return _lookup(kind, name).get("source", "")


def _num(row: dict, col: str, default=math.nan) -> float:
    cell = (row.get(col) or "").strip()
    return float(cell) if cell else default


# ----------------------------------------------------------------------------- models


@functools.cache
def model(name: str) -> Model:
    """Model architecture preset from ``models.csv``."""
    r = _lookup("models", name)
    # every numeric Model field is a column of models.csv (blank -> 0: not applicable)
    numeric = [f.name for f in dataclasses.fields(Model) if not f.metadata.get("static")]
    values = {f: _num(r, f, default=0.0) for f in numeric}
    if values["n_experts"] == 0:
        values["n_dense_layers"] = values["n_layers"]
    return Model(
        **values,
        attention=r["attention"],
        gated_ffn=r["gated_ffn"] == "1",
        tied_embeddings=r["tied_embeddings"] == "1",
    )


#: Context window of each model, tokens: ``max_position_embeddings`` of its Hugging Face
#: ``config.json`` (the ``hf_id`` of models.csv). An engine that sizes its buffers for the
#: longest sequence it may see (vLLM without chunked prefill, `hwgrad.stacks.token_budget`)
#: reads it.
CONTEXT_TOKENS: dict[str, float] = {
    "llama-2-7b": 4096.0,
    "llama-2-13b": 4096.0,
    "llama-2-70b": 4096.0,
    "llama-3-8b": 8192.0,
    "llama-3-70b": 8192.0,
    "llama-3.1-8b": 131072.0,
    "llama-3.1-70b": 131072.0,
    "llama-3.1-405b": 131072.0,
    "llama-3.3-70b": 131072.0,
    "mixtral-8x7b": 32768.0,
    "mixtral-8x22b": 65536.0,
    "deepseek-v3": 163840.0,
    "deepseek-r1": 163840.0,
    "qwen3-235b-a22b": 40960.0,
    "qwen3-30b-a3b": 40960.0,
    "qwen2.5-coder-7b": 32768.0,
    "gpt-oss-20b": 131072.0,
    "gpt-oss-120b": 131072.0,
    "gemma-7b": 8192.0,
    "mistral-7b": 32768.0,
}


# ----------------------------------------------------------------------------- memory

# Map a chip's ``memory_type`` text to the memory_tech row whose energy/latency it uses
# when the chip row does not say. HBM generations without a cited pJ/bit borrow the nearest
# cited generation (noted in chip_notes).
_MEMORY_FAMILY = {
    "hbm2": ("hbm2", "hbm2"),
    "hbm2e": ("hbm2e", "hbm2"),
    "hbm3": ("hbm3", "hbm3e"),
    "hbm3e": ("hbm3e", "hbm3e"),
    "hbm": ("hbm", "hbm2"),
    "hbm4": ("hbm4", "hbm4"),
    "lpddr5": ("lpddr5", "lpddr5"),
    "lpddr5x": ("lpddr5x", "lpddr5"),
    "lpddr4x": ("lpddr5", "lpddr5"),
    "ddr5": ("ddr5", "ddr5"),
    "gddr6x": ("gddr7", "hbm3e"),
    "gddr7": ("gddr7", "hbm3e"),
    "sram": ("sram", "sram"),
}

_PRICE_KEYS = {"hbm3": "hbm3_price", "hbm3e": "hbm3e_price", "ddr5": "ddr5_price", "hbf": "hbf_price"}


def _memory_family(memory_type: str) -> tuple[str, str]:
    token = memory_type.lower().split()[0] if memory_type else ""
    return _MEMORY_FAMILY.get(token, ("hbm3e", "hbm3e"))


#: ASSUMPTION: background (refresh + standby) power of an idle memory device as a share of
#: its ``power_per_device_W`` in memory_tech.csv. The data set has no idle figure (the
#: "model parking tax" row only says VRAM occupancy adds < 0.02 W/GB); pass your own.
MEMORY_IDLE_SHARE = 0.1

#: ASSUMPTION: program/erase cycles of a low-endurance (NAND flash) tier. memory_tech.csv
#: marks HBF and flash cards ``write_endurance = low`` without a number; 3000 is the usual
#: TLC NAND rating. Enough to report KV-on-flash wear-out (``Result.tier_lifetime_years``).
FLASH_ENDURANCE_CYCLES = 3000.0

#: CXL adds 170-250 ns to a local DRAM access (memory_tech.csv ``cxl-ddr5`` notes, Tom's
#: Hardware); the midpoint is added to the DDR5 row's latency.
CXL_ADDED_LATENCY_S = 210e-9

# on-chip SRAM bandwidths quoted in the source column of memory_tech.csv ``sram`` (per-device
# bandwidth is design-specific, so the row's own cell is blank)
_SRAM_BANDWIDTH = {"gaudi3": 12.8e12, "groq-lpu": 80e12, "cerebras-wse3": 21e15}


def memory_tier(
    name: str,
    capacity_bytes: float | None = None,
    bandwidth_bytes_per_s=None,
    devices: float | None = None,
    idle_share: float = MEMORY_IDLE_SHARE,
    write_endurance_cycles: float | None = None,
    prefetch_bytes: float | None = None,
) -> MemoryTier:
    """A memory tier of ``devices`` devices of a ``memory_tech.csv`` technology.

    Every number comes from the technology's row: bandwidth, capacity, latency, access
    granularity and energy per device; idle power = ``devices x power_per_device_W x
    idle_share``; the controller keeps ``latency x bandwidth`` bytes in flight
    (``prefetch_bytes``: exactly enough to stream at the rated bandwidth, so a longer latency
    or a higher bandwidth without a deeper queue is bounded by Little's law). Low-endurance
    (flash) rows get `FLASH_ENDURANCE_CYCLES`. ``cxl-ddr5``: DDR5 energy and latency +
    `CXL_ADDED_LATENCY_S` (the row gives neither); its link is a `channel`.

    Args:
      name: memory technology slug (``hbm4``, ``hbf``, ``ddr5``, ``cxl-ddr5``, ...).
      capacity_bytes: per-chip total; default ``devices`` devices.
      bandwidth_bytes_per_s: per-chip total; default ``devices`` devices.
      devices: device count (default: bandwidth / per-device bandwidth when a bandwidth is
        given, else capacity / per-device capacity, else 1).
      idle_share: idle power / device power (ASSUMPTION, `MEMORY_IDLE_SHARE`).
      write_endurance_cycles: override of the program/erase cycles.
      prefetch_bytes: override of the queue depth (``math.inf``: Little's law never binds,
        e.g. for co-design studies that scale bandwidth without modelling the queue).
    """
    r = _lookup("memory_tech", name)
    cap_dev = _num(r, "capacity_per_device_GB") * units.GB
    bw_dev = _num(r, "bandwidth_per_device_GBps") * units.GBPS
    if name == "sram" and bandwidth_bytes_per_s is None:
        raise ValueError(
            "memory_tier('sram'): memory_tech.csv gives no per-device SRAM bandwidth (design-specific; its "
            "source quotes Gaudi 3 96 MB at 12.8 TB/s, Groq 230 MB at 80 TB/s); pass bandwidth_bytes_per_s "
            "or use presets.sram_tier(chip)"
        )
    if devices is None:
        if bandwidth_bytes_per_s is not None and math.isfinite(bw_dev):
            devices = float(bandwidth_bytes_per_s) / bw_dev
        elif capacity_bytes is not None and math.isfinite(cap_dev):
            devices = float(capacity_bytes) / cap_dev
        else:
            devices = 1.0
    cap = capacity_bytes if capacity_bytes is not None else devices * cap_dev
    bw = bandwidth_bytes_per_s if bandwidth_bytes_per_s is not None else devices * bw_dev
    energy = _num(r, "energy_pJ_per_bit")
    latency = _num(r, "read_latency_ns") * units.NS
    granularity = _num(r, "bytes_per_read", 32.0)
    if name == "cxl-ddr5":
        ddr5 = table("memory_tech")["ddr5"]
        energy = _num(ddr5, "energy_pJ_per_bit")
        latency = _num(ddr5, "read_latency_ns") * units.NS + CXL_ADDED_LATENCY_S
        granularity = _num(ddr5, "bytes_per_read", 64.0)
    if math.isnan(energy):
        energy = _num(table("memory_tech")["hbm3e"], "energy_pJ_per_bit")
    if math.isnan(latency):
        latency = 32.0 * units.NS
    watts = _num(r, "power_per_device_W", 0.0)
    low = r["write_endurance"] == "low"
    if write_endurance_cycles is None:
        write_endurance_cycles = FLASH_ENDURANCE_CYCLES if low else math.inf
    price_key = _PRICE_KEYS.get(name)
    price = economics_value(price_key) if price_key else math.nan
    embodied = {"hbf": "embodied_nand_per_gb", "flash-card": "embodied_nand_per_gb"}.get(name)
    if embodied is None:
        embodied = "embodied_hbm_per_gb" if name.startswith("hbm") else "embodied_dram_per_gb"
    if prefetch_bytes is not None:
        prefetch = prefetch_bytes
    else:
        prefetch = latency * bw if name != "sram" else math.inf
    return MemoryTier(
        capacity_bytes=cap if not math.isnan(cap) else math.inf,
        bandwidth_bytes_per_s=bw,
        read_latency_s=latency,
        access_granularity_bytes=granularity,
        prefetch_bytes=prefetch,
        energy_j_per_byte=energy * units.PJ_PER_BIT,
        cost_usd_per_gb=price,
        embodied_kgco2e_per_gb=economics_value(embodied),
        write_endurance_cycles=write_endurance_cycles,
        idle_power_w=devices * watts * idle_share,
        low_write_endurance=low,
    )


def sram_tier(chip_name: str) -> MemoryTier:
    """The on-chip SRAM of ``chip_name`` as a tier: capacity ``sram_MB`` (hardware.csv),
    bandwidth as quoted in memory_tech.csv ``sram`` (Gaudi 3 12.8 TB/s, Groq LPU 80 TB/s,
    Cerebras WSE-3 21 PB/s), 0.16 pJ/bit (8 KB array, Horowitz 45 nm). No queue bound."""
    if chip_name not in _SRAM_BANDWIDTH:
        raise ValueError(
            f"sram_tier({chip_name!r}): no cited SRAM bandwidth; known: {', '.join(sorted(_SRAM_BANDWIDTH))} "
            "(or build memory_tier('sram', capacity_bytes, bandwidth_bytes_per_s))"
        )
    cap = _num(_lookup("hardware", chip_name), "sram_MB") * units.MB
    return memory_tier(
        "sram", capacity_bytes=cap, bandwidth_bytes_per_s=_SRAM_BANDWIDTH[chip_name], devices=1.0
    )


def channel(name: str = "pcie5-x16") -> Channel:
    """A shared link from interconnect.csv (per-direction bandwidth). Energy: the row's
    pJ/bit, else the 112G SerDes figure of energy_ops.csv (5.5 pJ/bit; ASSUMPTION for PCIe
    links, whose own energy the data set does not give)."""
    r = _lookup_interconnect(name)
    e = _num(r, "energy_pJ_per_bit")
    if math.isnan(e):
        e = _num(table("interconnect")["serdes-112g-pam4"], "energy_pJ_per_bit")
    return Channel(
        bandwidth_bytes_per_s=_num(r, "per_device_GBps_per_direction") * units.GBPS,
        energy_j_per_byte=e * units.PJ_PER_BIT,
    )


def _lookup_interconnect(name: str) -> dict:
    rows = table("interconnect")
    if name not in rows:
        close = difflib.get_close_matches(name, rows, n=3, cutoff=0.4)
        raise ValueError(f"unknown interconnect {name!r}: did you mean {', '.join(close) or 'pcie5-x16'}?")
    return rows[name]


#: V100-SXM2 power cap of the idle-power observation (its source: nvidia-smi "of 300 W")
_V100_SXM2_TDP_W = 300.0


def idle_power_fraction() -> float:
    """Board idle power with a model loaded / TDP: economics.csv
    ``gpu_idle_with_context_power_w_v100_sxm2`` (59.5 W) / 300 W = 0.198."""
    return economics_value("gpu_idle_with_context_power_w_v100_sxm2") / _V100_SXM2_TDP_W


# ----------------------------------------------------------------------------- economics


def economics_value(key: str) -> float:
    """A cited constant from ``economics.csv`` (``nan`` when blank)."""
    return _num(_lookup_economics(key), "value")


def _lookup_economics(key: str) -> dict:
    rows = table("economics")
    if key not in rows:
        raise KeyError(f"economics.csv has no key {key!r}")
    return rows[key]


def default_economics() -> Economics:
    """US industrial electricity, hyperscaler PUE, US-average grid, 5-year life."""
    return Economics(
        electricity_usd_per_kwh=economics_value("electricity_price_us_industrial"),
        pue=economics_value("pue_hyperscaler_typical"),
        grid_gco2e_per_kwh=economics_value("grid_ci_us_average"),
        lifetime_years=economics_value("server_lifetime_years"),
        server_cost_multiplier=economics_value("server_cost_overhead_multiplier"),
        utilization=1.0,
        embodied_kgco2e_per_cm2_logic=economics_value("embodied_logic_per_cm2_5nm"),
    )


_CHIP_ECONOMICS = {
    # chip slug: (price key, embodied key, die-area key)
    "a100-80gb-sxm": ("price_a100_80gb", None, "die_area_ga100"),
    "a100-40gb-sxm": (None, "embodied_a100_40gb", "die_area_ga100"),
    "h100-sxm": ("price_h100_sxm", "embodied_h100_per_gpu", "die_area_gh100"),
    "h800": (None, "embodied_h100_per_gpu", "die_area_gh100"),
    "h200-sxm": ("price_h200", None, "die_area_gh100"),
    "gh200": (None, None, "die_area_gh100"),
    "b200": ("price_b200", "embodied_b200_per_gpu", None),
    "mi300x": ("price_mi300x", None, None),
    "gaudi3": ("price_gaudi3", None, None),
    "tpu-v5e": ("price_tpu", None, None),
    "tpu-v6e": ("price_tpu", "embodied_tpu_v6e", None),
    "tpu-v5p": ("price_tpu", "embodied_tpu_v5p", None),
}


# ----------------------------------------------------------------------------- chips


@functools.cache
def _chip_and_notes(name: str) -> tuple[Chip, tuple[str, ...]]:
    r = _lookup("hardware", name)
    notes: list[str] = []
    bf16 = _num(r, "bf16_dense_TFLOPS")
    fp8 = _num(r, "fp8_dense_TFLOPS")
    int8 = _num(r, "int8_dense_TOPS")
    fp4 = _num(r, "fp4_dense_TFLOPS")
    if math.isnan(fp8) and not math.isnan(int8):
        fp8 = int8
        notes.append("fp8 peak taken from the int8 peak (int8 = fp8 convention)")
    if math.isnan(bf16) and not math.isnan(fp8):
        bf16 = fp8 / 2
        notes.append("bf16 peak derived as fp8 / 2")
    if math.isnan(fp8) and not math.isnan(bf16):
        fp8 = 2 * bf16
        notes.append("fp8 peak derived as 2 x bf16")
    if math.isnan(fp4) and not math.isnan(fp8):
        # every part whose fp4 cell is blank predates FP4 tensor units (Blackwell, CDNA4):
        # 4-bit activations run no faster than 8-bit ones there
        fp4 = fp8
        notes.append("no fp4 peak published (no FP4 tensor units): fp4 runs at the fp8 rate")
    if math.isnan(bf16):
        bf16 = fp8 = fp4 = math.inf
        notes.append("no FLOPS published: compute time not modelled (memory-bound bound only)")

    cap = _num(r, "memory_capacity_GB") * units.GB
    if math.isnan(cap):
        cap = math.inf
        notes.append("memory capacity not published: capacity check skipped")
    bw = _num(r, "memory_bandwidth_GBps") * units.GBPS
    tech, energy_tech = _memory_family(r["memory_type"])
    tech_row = table("memory_tech").get(tech, {})
    if tech != energy_tech or math.isnan(_num(tech_row, "energy_pJ_per_bit")):
        notes.append(f"memory energy/bit of {r['memory_type']} taken from {energy_tech}")
    energy_row = table("memory_tech")[energy_tech]
    energy_j_per_byte = _num(energy_row, "energy_pJ_per_bit") * units.PJ_PER_BIT
    main = MemoryTier(
        capacity_bytes=cap,
        bandwidth_bytes_per_s=bw,
        read_latency_s=_num(energy_row, "read_latency_ns", 32.0) * units.NS,
        access_granularity_bytes=_num(energy_row, "bytes_per_read", 32.0),
        energy_j_per_byte=energy_j_per_byte,
        cost_usd_per_gb=math.nan,
        embodied_kgco2e_per_gb=economics_value(
            "embodied_hbm_per_gb" if tech.startswith("hbm") else "embodied_dram_per_gb"
        ),
    )
    tdp = _num(r, "tdp_W")
    idle = idle_power_fraction()
    e_flop = energy_j_per_flop_from_tdp(tdp, bf16 * units.TFLOPS, bw, energy_j_per_byte, idle)
    if math.isnan(e_flop):
        notes.append("TDP or FLOPS unknown: compute energy not modelled")
    price_key, embodied_key, area_key = _CHIP_ECONOMICS.get(name, (None, None, None))
    price = economics_value(price_key) if price_key else math.nan
    embodied = economics_value(embodied_key) if embodied_key else math.nan
    if math.isnan(price):
        notes.append("price not in economics.csv: $ metrics need --chip-price-usd")
    if math.isnan(embodied):
        notes.append("embodied carbon not in economics.csv: embodied CO2e not modelled")
    chip_ = Chip(
        tiers=(main,),
        peak_flops_bf16=bf16 * units.TFLOPS,
        peak_flops_fp8=fp8 * units.TFLOPS,
        peak_flops_fp4=fp4 * units.TFLOPS,
        sram_bytes=_num(r, "sram_MB", 0.0) * units.MB,
        tdp_w=tdp,
        energy_j_per_flop_bf16=e_flop,
        price_usd=price,
        embodied_kgco2e=embodied,
        die_area_mm2=economics_value(area_key) if area_key else math.nan,
        idle_power_fraction=idle,
    )
    return chip_, tuple(notes)


def energy_j_per_flop_from_tdp(
    tdp_w, peak_flops, bandwidth_bytes_per_s, energy_j_per_byte, idle_fraction=None
) -> float:
    """Dynamic energy per bf16 FLOP: the TDP less idle power (``idle_fraction x TDP``,
    default `idle_power_fraction`) and the memory power at peak bandwidth, spread over
    the bf16 peak (floored at 10 % of TDP): a chip at its peak FLOPs and bandwidth then
    draws exactly its TDP. An upper bound, like the "dense FLOP at TDP" rows of
    ``energy_ops.csv`` (Horowitz's 45 nm 0.75 pJ/FLOP for 16-bit fp does not transfer to
    4-5 nm); ``nan`` when TDP or the peak is unknown."""
    if math.isnan(tdp_w) or not math.isfinite(peak_flops):
        return math.nan
    idle = idle_power_fraction() if idle_fraction is None else idle_fraction
    dynamic = tdp_w * (1.0 - idle) - bandwidth_bytes_per_s * energy_j_per_byte
    return max(dynamic, 0.1 * tdp_w) / peak_flops


def chip(name: str, fitted: bool = True) -> Chip:
    """Chip preset from ``hardware.csv`` (main memory as tier 0).

    With ``fitted`` (default) the chip carries its family's achievable fractions of peak
    (``bandwidth_efficiency``, ``flops_efficiency``), small-transfer ramp and GEMM tile
    from ``calibration.toml`` (`hardware_family`); ``fitted=False`` gives the raw
    datasheet chip (speed of light).
    """
    c = _chip_and_notes(name)[0]
    if not fitted:
        return c
    return dataclasses.replace(c, **_hardware_fit(hardware_family(name)))


# ----------------------------------------------------------------------------- families

#: hardware slug -> (family, vendor line). Families are generations of one vendor's
#: architecture (what achievable fractions of peak depend on: memory controller, clocks,
#: tensor-core issue); lines group the generations of one product line, so a generation
#: without measurements inherits its line's fitted values (Blackwell from Ampere + Hopper,
#: CDNA4 from CDNA2 + CDNA3). Slugs not listed fall back to the shared values.
HARDWARE_FAMILIES: dict[str, tuple[str, str]] = {
    **{s: ("nvidia-ampere", "nvidia-datacenter") for s in ("a100-40gb-sxm", "a100-80gb-sxm")},
    **{
        s: ("nvidia-hopper", "nvidia-datacenter")
        for s in ("h100-sxm", "h100-pcie", "h800", "h200-sxm", "gh200")
    },
    **{s: ("nvidia-blackwell", "nvidia-datacenter") for s in ("b200", "gb200")},
    **{s: ("amd-cdna2", "amd-instinct") for s in ("mi250", "mi250x-gcd")},
    **{s: ("amd-cdna3", "amd-instinct") for s in ("mi300x", "mi325x")},
    "mi355x": ("amd-cdna4", "amd-instinct"),
    "gaudi2": ("intel-gaudi2", "intel-gaudi"),
    "gaudi3": ("intel-gaudi3", "intel-gaudi"),
    **{s: ("google-tpu", "google-tpu") for s in ("tpu-v4", "tpu-v5e", "tpu-v5p", "tpu-v6e", "tpu-v7")},
    **{
        s: ("nvidia-geforce-ampere", "nvidia-client")
        for s in ("rtx-3070", "rtx-3080", "rtx-3090", "rtx-a6000")
    },
    **{
        s: ("nvidia-geforce-ada", "nvidia-client")
        for s in ("rtx-4070-ti", "rtx-4080", "rtx-4090", "rtx-4000-ada", "rtx-5000-ada", "rtx-6000-ada")
    },
    **{s: ("nvidia-geforce-blackwell", "nvidia-client") for s in ("rtx-5090", "dgx-spark-gb10")},
    **{s: ("apple-m1", "apple") for s in ("apple-m1", "apple-m1-pro", "apple-m1-max", "apple-m1-ultra")},
    **{s: ("apple-m2", "apple") for s in ("apple-m2", "apple-m2-pro", "apple-m2-max", "apple-m2-ultra")},
    **{s: ("apple-m3", "apple") for s in ("apple-m3-pro", "apple-m3-max", "apple-m3-ultra")},
    **{s: ("apple-m4", "apple") for s in ("apple-m4", "apple-m4-pro", "apple-m4-max")},
}


def hardware_family(name: str) -> str:
    """The architecture family of a hardware slug (``"shared"`` when not classified)."""
    return HARDWARE_FAMILIES.get(name, ("shared", "shared"))[0]


def hardware_line(family: str) -> str:
    """The vendor product line of a family (``"shared"`` when not classified)."""
    for fam, line in HARDWARE_FAMILIES.values():
        if fam == family:
            return line
    return "shared"


@functools.cache
def _fit_file() -> dict:
    import tomllib

    path = DATA / "calibration.toml"
    if not path.is_file():
        return {}
    return tomllib.loads(path.read_text(encoding="utf-8"))


def _hardware_fit(family: str) -> dict[str, float]:
    """Fitted chip fields of ``family``: the family's own values, else its line's, else
    the shared ones (``calibration.toml`` ``[hardware.*]``)."""
    hw = _fit_file().get("hardware", {})
    out: dict[str, float] = {}
    for key in ("shared", hardware_line(family), family):
        out.update({k: float(v) for k, v in hw.get(key, {}).items()})
    return out


def stack_names() -> list[str]:
    """Named serving-stack presets: ``ideal``, ``tuned`` and every fitted stack family."""
    return ["ideal", *sorted(_fit_file().get("stack", {}))]


def stack(name: str = "tuned", hardware: str | None = None) -> Stack:
    """A serving-stack preset (`Stack`).

    ``ideal`` has no software cost; ``tuned`` (the default serving stack) is what the best
    stack in the data achieves - on the vendor line of ``hardware`` (``tuned/<line>``,
    `hwgrad.calibrate.fit.tuned_stacks`) when one is named and the data have a stack there,
    else across vendors; the others are fitted to the measured rows of that stack family
    (``calibration.toml``, `hwgrad.calibrate`). With ``hardware`` (a chip preset name), the
    stack's kernel traits on that chip's vendor line are applied
    (`hwgrad.stacks.KERNEL_TRAITS`, e.g. the 2024 ROCm vLLM's per-query-head KV reads), and a
    family that runs as another's engine there takes that one's values
    (`hwgrad.stacks.STACK_ON_LINE`: DeepSpeed on Gaudi is the ``gaudi`` stack).
    """
    if hardware is not None:
        table = stack_table(name, hardware)
        return stack(table) if name == "tuned" else with_stack_traits(stack(table), table, hardware)
    if name == "ideal":
        return Stack.ideal()
    stacks = _fit_file().get("stack", {})
    if name not in stacks:
        known = stack_names()
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.4)
        hint = f"did you mean {', '.join(close)}?" if close else f"use one of {', '.join(known)}"
        raise ValueError(f"unknown stack {name!r}: {hint}")
    from ..calibrated import efficiency_from_mapping

    return efficiency_from_mapping(stacks[name], where=f"calibration.toml [stack.{name}]")


def stack_table(name: str, hardware: str | None) -> str:
    """The stack table ``stack(name, hardware)`` reads: `tuned_name` for ``tuned``, the
    family a stack runs as on the chip's vendor line (`hwgrad.stacks.STACK_ON_LINE`), else
    ``name``."""
    from ..stacks import STACK_ON_LINE

    if name == "tuned":
        return tuned_name(hardware)
    if hardware is None:
        return name
    return STACK_ON_LINE.get((name, hardware_line(hardware_family(hardware))), name)


def tuned_name(hardware: str | None, names=None) -> str:
    """The stack table ``stack("tuned", hardware)`` reads: ``tuned/<vendor line>`` of the
    chip preset ``hardware`` when the calibration has one (``names``: the table names of a
    calibration file; default the shipped one), else ``tuned`` (across vendors)."""
    line = f"tuned/{hardware_line(hardware_family(hardware))}" if hardware else ""
    return line if line in (_fit_file().get("stack", {}) if names is None else names) else "tuned"


def with_stack_traits(st: Stack, name: str, hardware: str | None) -> Stack:
    """``st`` (the stack family ``name``'s values) with that family's kernel traits on the
    vendor line of the chip preset ``hardware`` (`hwgrad.stacks.KERNEL_TRAITS`)."""
    from ..stacks import stack_traits

    traits = stack_traits(name, hardware_line(hardware_family(hardware))) if hardware else {}
    return dataclasses.replace(st, **traits) if traits else st


def chip_notes(name: str) -> tuple[str, ...]:
    """What was derived or skipped while building the chip preset ``name``."""
    return _chip_and_notes(name)[1]


# Each chip's scale-up fabric: (interconnect.csv row, kind). Kinds: "nvls" = NVLink through
# NVSwitch with in-switch reduction (NVLink SHARP, Hopper and later), "nvswitch" = NVLink
# through NVSwitch without it (A100's gen-2 NVSwitch), "mesh" = direct links to every peer
# (AMD xGMI, Gaudi's integrated RoCE: each peer over a subset of the ports), "torus2"/"torus3"
# = TPU ICI. Chips not listed have no scale-up link: PCIe 5 x16 through the host.
_FABRICS = {
    "a100-40gb-sxm": ("nvlink3-a100", "nvswitch"),
    "a100-80gb-sxm": ("nvlink3-a100", "nvswitch"),
    "h100-sxm": ("nvlink4-h100", "nvls"),
    "h800": ("nvlink4-h800", "nvls"),
    "h200-sxm": ("nvlink4-h100", "nvls"),
    "gh200": ("nvlink4-h100", "nvls"),
    "b200": ("nvlink5-b200", "nvls"),
    "gb200": ("nvlink5-b200", "nvls"),
    "mi300x": ("xgmi-mi300x", "mesh"),
    "mi325x": ("xgmi-mi300x", "mesh"),
    "mi355x": ("xgmi-mi300x", "mesh"),
    "gaudi2": ("roce-gaudi2", "mesh"),
    "gaudi3": ("roce-gaudi3", "mesh"),
    "tpu-v4": ("tpu-ici-v4", "torus3"),
    "tpu-v5e": ("tpu-ici-v5e", "torus2"),
    "tpu-v5p": ("tpu-ici-v5p", "torus3"),
    "tpu-v6e": ("tpu-ici-v6e", "torus2"),
    "tpu-v7": ("tpu-ici-v7", "torus3"),
}

# NVLink SHARP reduction throughput per port: the NVLS all-reduce bus bandwidth on 8x H100
# (nccl-allreduce-8xh100-nvls, 480 GB/s) as algorithm bandwidth, busbw / (2 (p-1)/p).
_NVLS_HOPPER_GBPS = 480.0 / (2.0 * 7.0 / 8.0)


@functools.cache
def _network_and_notes(name: str) -> tuple[Network, tuple[str, ...]]:
    r = _lookup("hardware", name)
    ic = table("interconnect")
    notes: list[str] = []
    row_name, kind = _FABRICS.get(name, ("pcie5-x16", "pcie"))
    link = ic[row_name]
    bw = _num(r, "scaleup_bw_GBps_per_direction")
    if math.isnan(bw):
        bw = _num(link, "per_device_GBps_per_direction")
        if not math.isnan(bw) and kind != "pcie":
            notes.append(f"scale-up bandwidth not in hardware.csv: {row_name} row used ({bw:g} GB/s)")
    if math.isnan(bw) and name == "tpu-v4":
        # Google's "all-reduce BW per pod" / chips equals the per-direction ICI figure on
        # v5e (51.2 TB/s / 256 = 200) and v6e (102.4 / 256 = 400); v4: 1.1 PB/s / 4096
        bw = 1.1e6 / 4096.0
        notes.append("ICI bandwidth DERIVED = all-reduce BW per pod 1.1 PB/s / 4096 chips (tpu-ici-v4 row)")
    if kind == "pcie":
        bw = _num(link, "per_device_GBps_per_direction")
        notes.append("no scale-up link: chips talk over PCIe 5 x16 (64 GB/s per direction) through a switch")
    domain = _num(r, "scaleup_domain_size")
    if math.isnan(domain):
        domain = _num(link, "domain_size", math.inf)
        if math.isfinite(domain):
            notes.append(f"scale-up domain not in hardware.csv: {row_name} row used ({domain:g} chips)")
        else:
            notes.append("scale-up domain size unknown: groups never cross a scale-out network")
    fields: dict = dict(link_bandwidth_bytes_per_s=bw * units.GBPS, domain_size=domain)
    if kind == "nvls":
        ratio = _NVLS_HOPPER_GBPS / _num(ic["nvlink4-h100"], "per_device_GBps_per_direction")
        fields.update(in_network_reduction=True, in_network_bandwidth_bytes_per_s=ratio * bw * units.GBPS)
        if row_name != "nvlink4-h100":
            notes.append(
                "NVLS reduction throughput ASSUMED at the H100 fraction of link bandwidth "
                f"({ratio:.3f}; measured only on 8x H100)"
            )
    elif kind == "mesh":
        fields.update(topology="fully_connected")
        notes.append(
            "full mesh: each peer over 1/(domain - 1) of the links; hop/endpoint latency ASSUMED as NVLink's"
        )
    elif kind.startswith("torus"):
        fields.update(topology="torus", torus_dims=int(kind[-1]))
        if name == "tpu-v7":
            notes.append("3-D torus ASSUMED (the tpu-ici-v7 row does not state the dimension)")
        notes.append("ICI hop/endpoint latency not in the data: NVLink-derived defaults ASSUMED")
    return Network(**fields), tuple(notes)


def network(name: str) -> Network:
    """The chip's scale-up fabric from ``hardware.csv`` + ``interconnect.csv``.

    NVLink switch with in-switch reduction (H100/H200/H800/GH200/B200/GB200; GB200's NVL72
    domain is 72 chips), NVLink switch without it (A100), full mesh (MI300X/MI325X/MI355X
    xGMI, Gaudi integrated RoCE), 2-D torus (TPU v5e/v6e) or 3-D torus (TPU v4/v5p/v7), and
    PCIe 5 x16 through a switch for parts without a scale-up link. Bandwidth per direction
    and ``domain_size`` (``scaleup_domain_size``) from the chip's row; what was derived or
    assumed is listed by `network_notes`.
    """
    return _network_and_notes(name)[0]


def network_notes(name: str) -> tuple[str, ...]:
    """What was derived or assumed while building the fabric of the chip preset ``name``."""
    return _network_and_notes(name)[1]


# scale-out rows: (interconnect.csv row, switch radix, its source)
_SCALEOUT = {"ib-ndr": 64.0, "ib-xdr": 144.0}


def scaleout(name: str = "ib-ndr", levels: int = 2) -> Network:
    """A scale-out network from ``interconnect.csv``: one port per chip at the row's
    per-direction bandwidth, a fat tree of ``levels`` levels of radix-``k`` switches
    (NDR: 64-port QM9700; XDR: 144-port Quantum-X800, secondary source) joining up to
    ``k^levels / 2^(levels - 1)`` chips; 300 ns per switch (top of the ``ib-ndr`` row's
    100-300 ns) and 0.83 us per message at an endpoint (that row's ib_send_lat, 32 B)."""
    if name not in _SCALEOUT:
        raise ValueError(f"unknown scale-out network {name!r}: use one of {', '.join(_SCALEOUT)}")
    radix = _SCALEOUT[name]
    bw = _num(table("interconnect")[name], "per_link_GBps_per_direction")
    return Network(
        link_bandwidth_bytes_per_s=bw * units.GBPS,
        hop_latency_s=300e-9,
        endpoint_overhead_s=0.83e-6,
        switch_radix=radix,
        domain_size=radix**levels / 2.0 ** (levels - 1),
        topology="fat_tree",
    )


def system(name: str, n_chips: int = 1, fitted: bool = True, scaleout_network: str = "ib-ndr") -> System:
    """``n_chips`` of the chip preset ``name`` on its scale-up fabric, domains joined by
    ``scaleout_network`` (``fitted``: see `chip`)."""
    return System(
        chip=chip(name, fitted),
        n_chips=float(n_chips),
        network=network(name),
        scaleout=scaleout(scaleout_network),
    )
