"""The designs Ma & Patterson (2026) argue for, built from the shipped data.

Each function returns a `System` (and documents where every number
comes from). Numbers the paper or the data set give are used as printed; where the paper
argues qualitatively, the scenario value is an explicit, named argument marked
*ASSUMPTION* so studies can sweep it.

* `hbm4_accelerator` - a B200-class die (hardware.csv ``b200``: 2250 bf16 TFLOPS,
  1000 W) with HBM4 stacks from Table 3 (48 GB, 1638 GB/s, 40 W, 3.05 pJ/bit each).
* `hbm4_hbf_accelerator` - half the stacks replaced by High Bandwidth Flash (Table 3:
  512 GB, 1638 GB/s, 4 KiB pages, ~3 us reads, low write endurance; 1.26 $/GB from
  economics.csv). Weights go to HBF, the KV cache stays in HBM.
* `base_die_compute` - logic on the HBM base die: same bandwidth, data-movement
  energy 2-3x lower (the paper; 2.5x used), within the stack's thermal budget.
* `custom_3d` - custom 3D memory-logic stack: more bandwidth per area than HBM's
  interface (``bandwidth_multiplier``), same thermal limit.
* `tree_network` - low-diameter switch tree with in-network reduction and multicast;
  per-hop latency at the low end (100 ns) of the cited 100-300 ns switch latency.
* `mobile_soc` - a phone SoC on LPDDR5X (4 x16 channels, 8533 MT/s, memory_tech.csv),
  optionally with processing-in-memory (Table 4: PIM 5-10x bandwidth/W, 32-64 MB bank
  shards; PNM 2-5x, 16-32 GB).
* `with_cxl_memory` - CXL DDR5 expanders behind the host's PCIe link (a shared
  `Channel`: the modules add up, the link bounds them).

Memory-side logic runs decode GEMV/attention and leaves prefill to the host by default
(``decode_policy`` / ``prefill_policy``: ``"memory"``, ``"host"`` or ``"auto"``). The board idle
fraction of the compute die (`hwgrad.presets.idle_power_fraction`) covers the board's own
main memory, so a design's tier 0 carries no separate idle power; added tiers (HBF, CXL) idle
at ``devices x W x`` `hwgrad.presets.MEMORY_IDLE_SHARE` (ASSUMPTION).
"""

from __future__ import annotations

import math

import numpy as np

from .. import units
from ..specs import Chip, MemoryTier, Network, Placement, System, replace
from . import channel as channel_preset
from . import chip as chip_preset
from . import economics_value, memory_tier, table
from . import network as network_preset

__all__ = [
    "hbm4_accelerator",
    "hbm4_hbf_accelerator",
    "base_die_compute",
    "custom_3d",
    "tree_network",
    "mobile_soc",
    "pim_tier",
    "pnm_tier",
    "with_cxl_memory",
    "gemv_flops_per_byte",
    "MEMORY_SIDE_ENERGY_J_PER_FLOP",
    "PIM_BANDWIDTH_PER_WATT",
    "PNM_BANDWIDTH_PER_WATT",
]

# Table 4 of the paper, ranges -> geometric means
PIM_BANDWIDTH_PER_WATT = math.sqrt(5 * 10)  # 5-10x standard
PNM_BANDWIDTH_PER_WATT = math.sqrt(2 * 5)  # 2-5x standard
PIM_SHARD_BYTES = math.sqrt(32e6 * 64e6)  # 32-64 MB bank shards
PNM_SHARD_BYTES = math.sqrt(16e9 * 32e9)  # 16-32 GB


def _b200_compute() -> Chip:
    return chip_preset("b200")


def _horowitz_pj(operation: str) -> float:
    return float(table("energy_ops")[operation]["energy_pJ"])


#: ASSUMPTION: energy per FLOP (16-bit) of memory-side logic (DRAM-process PIM logic or a
#: logic die of an older node): Horowitz's 45 nm figures, energy_ops.csv "16b fp mult" 1.1 pJ
#: + "16b fp add" 0.4 pJ per multiply-add = 0.75 pJ/FLOP. Pass your own per design.
MEMORY_SIDE_ENERGY_J_PER_FLOP = (_horowitz_pj("16b fp mult") + _horowitz_pj("16b fp add")) / 2.0 * 1e-12


def gemv_flops_per_byte(weight_bits: float) -> float:
    """FLOP per weight byte of a batch-1 GEMV on ``weight_bits``-bit weights: one
    multiply-add (2 FLOP) per weight, dequantisation in the weight-decode stage counted
    with it: ``2 x 8 / weight_bits`` (int4: 4, int8/fp8: 2, bf16: 1)."""
    return 2.0 * 8.0 / weight_bits


def _hbm4_stacks(n: int) -> MemoryTier:
    tier = memory_tier("hbm4", devices=float(n))
    return replace(
        tier,
        idle_power_w=0.0,  # the main memory: covered by the board idle fraction
        cost_usd_per_gb=economics_value("hbm3e_price"),  # newest cited HBM $/GB (ASSUMPTION for HBM4)
    )


def hbm4_accelerator(n_chips: int = 8, hbm_stacks: int = 8) -> System:
    """B200-class compute with ``hbm_stacks`` HBM4 stacks, on an NVLink-5 switch."""
    compute = _b200_compute()
    chip = replace(compute, tiers=(_hbm4_stacks(hbm_stacks),))
    return System(chip=chip, n_chips=float(n_chips), network=network_preset("b200"))


def hbm4_hbf_accelerator(
    n_chips: int = 8, hbm_stacks: int = 4, hbf_stacks: int = 4, weights_on_hbf: float = 1.0
) -> System:
    """HBM4 + HBF: ``weights_on_hbf`` of the weights (and the read-mostly context) in flash,
    the KV cache and activations in HBM (flash endurance forbids per-token writes)."""
    base = hbm4_accelerator(n_chips, hbm_stacks)
    hbf = memory_tier("hbf", devices=float(hbf_stacks))
    chip = replace(base.chip, tiers=(base.chip.tiers[0], hbf))
    w = np.array([1.0 - weights_on_hbf, weights_on_hbf])
    dram = np.array([1.0, 0.0])
    placement = Placement(weights=w, kv_cache=dram, activations=dram, context=w)
    return replace(base, chip=chip, placement=placement)


def base_die_compute(
    n_chips: int = 8,
    hbm_stacks: int = 8,
    energy_reduction: float = 2.5,
    power_cap_w_per_stack: float = 40.0,
    ops: tuple = ("gemv", "attention"),
    logic_flops: float | None = None,
    decode_policy: str = "memory",
    prefill_policy: str = "host",
) -> System:
    """Compute on the HBM base die: decode GEMV and attention run in the stacks.

    Args:
      energy_reduction: data-movement energy saving (paper: 2-3x).
      power_cap_w_per_stack: thermal budget of the base-die logic; ASSUMPTION: equal to the
        stack's own 40 W (Table 3), i.e. the stack may dissipate twice its DRAM power.
      logic_flops: peak FLOP/s of all base-die logic at full clock; ASSUMPTION default: the
        host die's bf16 peak moved into the stacks. The thermal cap, not this peak, then
        limits it once decode's arithmetic intensity rises with batch.
      decode_policy / prefill_policy: where the stack logic's ops run in each phase.

    The logic's energy per FLOP is the host die's (same process, ASSUMPTION); one shard is
    one stack (``capacity / hbm_stacks``).
    """
    base = hbm4_accelerator(n_chips, hbm_stacks)
    tier = base.chip.tiers[0]
    e_flop = base.chip.energy_j_per_flop_bf16
    cap = power_cap_w_per_stack * hbm_stacks
    tier = replace(
        tier,
        nmc_flops=base.chip.peak_flops_bf16 if logic_flops is None else logic_flops,
        nmc_bandwidth_multiplier=1.0,
        nmc_energy_j_per_byte=tier.energy_j_per_byte / energy_reduction,
        nmc_energy_j_per_flop=e_flop,
        nmc_shard_bytes=tier.capacity_bytes / hbm_stacks,
        nmc_power_cap_w=cap,
        nmc_ops=tuple(ops),
        nmc_decode=decode_policy,
        nmc_prefill=prefill_policy,
    )
    return replace(base, chip=replace(base.chip, tiers=(tier,)))


def custom_3d(
    n_chips: int = 8,
    hbm_stacks: int = 8,
    bandwidth_multiplier: float = 4.0,
    energy_reduction: float = 3.0,
    power_cap_w_per_stack: float = 40.0,
) -> System:
    """Custom 3D memory-logic stacking: logic bonded under the DRAM sees
    ``bandwidth_multiplier`` x the HBM interface bandwidth (ASSUMPTION, the paper says only
    "higher bandwidth per area") at ``energy_reduction`` lower energy per byte."""
    s = base_die_compute(n_chips, hbm_stacks, energy_reduction, power_cap_w_per_stack)
    tier = replace(s.chip.tiers[0], nmc_bandwidth_multiplier=bandwidth_multiplier)
    return replace(s, chip=replace(s.chip, tiers=(tier,)))


def tree_network(
    link_bandwidth_bytes_per_s: float = 900e9,
    hop_latency_s: float = 100e-9,
    endpoint_overhead_s: float = 0.1e-6,
    switch_radix: float = 64.0,
) -> Network:
    """A switch tree with in-network reduction and multicast, for latency-bound decode.

    Defaults: NVLink-5 per-direction bandwidth (hardware.csv ``b200``); 100 ns per hop, the
    low end of the cited switch latency; ``endpoint_overhead_s`` 0.1 us - ASSUMPTION for
    packets landing directly in on-chip SRAM (vs 0.3 us derived for today's NVLink path).
    """
    return Network(
        link_bandwidth_bytes_per_s=link_bandwidth_bytes_per_s,
        hop_latency_s=hop_latency_s,
        endpoint_overhead_s=endpoint_overhead_s,
        switch_radix=switch_radix,
        topology="tree",
        in_network_reduction=True,
    )


def _near_memory(
    tier: MemoryTier,
    gain: float,
    shard_bytes: float,
    flops_per_byte: float,
    energy_j_per_flop: float,
    decode_policy: str,
    prefill_policy: str,
) -> MemoryTier:
    """``tier`` with logic that sees ``gain`` x its interface bandwidth at the same power
    (energy/byte / gain) and ``flops_per_byte`` FLOPs (16-bit activations) per internal byte."""
    return replace(
        tier,
        nmc_flops=flops_per_byte * tier.bandwidth_bytes_per_s * gain,
        nmc_bandwidth_multiplier=gain,
        nmc_energy_j_per_byte=tier.energy_j_per_byte / gain,
        nmc_energy_j_per_flop=energy_j_per_flop,
        nmc_shard_bytes=min(shard_bytes, float(tier.capacity_bytes)),
        nmc_ops=("gemv", "attention"),
        nmc_decode=decode_policy,
        nmc_prefill=prefill_policy,
    )


def pim_tier(
    tier: MemoryTier,
    nmc_flops_per_byte: float | None = None,
    weight_bits: float = 4.0,
    energy_j_per_flop: float = MEMORY_SIDE_ENERGY_J_PER_FLOP,
    decode_policy: str = "memory",
    prefill_policy: str = "host",
) -> MemoryTier:
    """Processing-in-memory on ``tier``: bank-level logic with Table 4's bandwidth/W gain
    (sqrt(5 x 10) = 7.07x), 45 MB shards (sqrt(32 x 64) MB) and weak logic sized for
    batch-1 GEMV: ``nmc_flops_per_byte`` FLOP per internal byte, default
    `gemv_flops_per_byte` of ``weight_bits`` (int4: 4; logic sized at 2 is
    compute-bound on int4 weights)."""
    fpb = gemv_flops_per_byte(weight_bits) if nmc_flops_per_byte is None else nmc_flops_per_byte
    return _near_memory(
        tier, PIM_BANDWIDTH_PER_WATT, PIM_SHARD_BYTES, fpb, energy_j_per_flop, decode_policy, prefill_policy
    )


def pnm_tier(
    tier: MemoryTier,
    nmc_flops_per_byte: float = 16.0,
    energy_j_per_flop: float = MEMORY_SIDE_ENERGY_J_PER_FLOP,
    decode_policy: str = "memory",
    prefill_policy: str = "host",
) -> MemoryTier:
    """Processing-near-memory: a logic die beside the memory with Table 4's 2-5x
    bandwidth/W (sqrt(10) = 3.16x), 22.6 GB shards (sqrt(16 x 32) GB) and stronger logic
    (``nmc_flops_per_byte``, ASSUMPTION 16: batch 8 on int4 weights)."""
    return _near_memory(
        tier,
        PNM_BANDWIDTH_PER_WATT,
        PNM_SHARD_BYTES,
        nmc_flops_per_byte,
        energy_j_per_flop,
        decode_policy,
        prefill_policy,
    )


def with_cxl_memory(
    system: System,
    modules: int = 4,
    capacity_gb_per_module: float = 128.0,
    link: str = "pcie5-x16",
) -> System:
    """``system`` with ``modules`` CXL DDR5 expanders (memory_tech.csv ``cxl-ddr5``: 36 GB/s
    each) behind one shared host link (interconnect.csv ``link``, PCIe 5 x16: 64 GB/s per
    direction): the modules add up and the link bounds them (4 x 36 = 144 GB/s of modules
    read at 64 GB/s). ``capacity_gb_per_module``: ASSUMPTION (the row says 96-512 GB; 128 GB
    = Samsung CMM-D). Placement: everything stays in tier 0 until you move it."""
    chip = system.chip
    k = len(chip.channels)
    cxl = memory_tier(
        "cxl-ddr5", capacity_bytes=modules * capacity_gb_per_module * units.GB, devices=float(modules)
    )
    cxl = replace(cxl, channel=k)
    chip = replace(chip, tiers=chip.tiers + (cxl,), channels=chip.channels + (channel_preset(link),))
    pl = system.placement
    if pl is not None:
        pad = lambda f: np.concatenate([np.asarray(f, dtype=float), np.zeros(1)])  # noqa: E731
        pl = Placement(
            weights=pad(pl.weights),
            kv_cache=pad(pl.kv_cache),
            activations=pad(pl.activations),
            context=pad(pl.context),
        )
    return replace(system, chip=chip, placement=pl)


def mobile_soc(pim: bool = False, channels: int = 4, capacity_gb: float = 16.0) -> System:
    """A phone SoC: ``channels`` x16 LPDDR5X channels (17.07 GB/s each, memory_tech.csv),
    ``capacity_gb`` of DRAM (the LPDDR5 package of Table 3: 16 GB, 3 W), LPDDR5 energy 7.35
    pJ/bit; the DRAM idles at 3 W per 16 GB x ``MEMORY_IDLE_SHARE`` (ASSUMPTION). The NPU's FLOPS are not in the data set: compute is left unmodelled (decode on a
    phone is bandwidth-bound), as for the Apple rows, and energy counts memory traffic only.
    ``pim=True`` adds PIM to the DRAM."""
    lp = memory_tier("lpddr5x", capacity_bytes=capacity_gb * units.GB, devices=float(channels))
    lp5 = memory_tier("lpddr5", capacity_bytes=capacity_gb * units.GB)  # 16 GB packages, 3 W each
    tier = replace(lp, energy_j_per_byte=lp5.energy_j_per_byte, idle_power_w=lp5.idle_power_w)
    if pim:
        tier = pim_tier(tier, weight_bits=4.0)
    chip = Chip(
        tiers=(tier,),
        peak_flops_bf16=math.inf,
        peak_flops_fp8=math.inf,
        peak_flops_fp4=math.inf,
        tdp_w=0.0,  # SoC power not in the data: energy counts memory traffic only
        energy_j_per_flop_bf16=0.0,
    )
    return System(chip=chip, n_chips=1.0, network=Network(link_bandwidth_bytes_per_s=1e9))


#: CLI names of the paper's designs (``hwgrad eval --design NAME``): n_chips -> System
DESIGNS = {
    "hbm4": lambda n: hbm4_accelerator(n),
    "hbm4-hbf": lambda n: hbm4_hbf_accelerator(n),
    "hbm4-base-die": lambda n: base_die_compute(n),
    "custom-3d": lambda n: custom_3d(n),
    "hbm4-tree": lambda n: replace(hbm4_accelerator(n), network=tree_network()),
    "mobile-lpddr5x": lambda n: replace(mobile_soc(), n_chips=float(n)),
    "mobile-lpddr5x-pim": lambda n: replace(mobile_soc(pim=True), n_chips=float(n)),
}
