"""The designs Ma & Patterson (2026) argue for, built from the shipped data.

Each function returns a :class:`~hwgrad.specs.System` (and documents where every number
comes from). Numbers the paper or the data set give are used as printed; where the paper
argues qualitatively, the scenario value is an explicit, named argument marked
*ASSUMPTION* so studies can sweep it.

* :func:`hbm4_accelerator` - a B200-class die (hardware.csv ``b200``: 2250 bf16 TFLOPS,
  1000 W) with HBM4 stacks from Table 3 (48 GB, 1638 GB/s, 40 W, 3.05 pJ/bit each).
* :func:`hbm4_hbf_accelerator` - half the stacks replaced by High Bandwidth Flash (Table 3:
  512 GB, 1638 GB/s, 4 KiB pages, ~3 us reads, low write endurance; 1.26 $/GB from
  economics.csv). Weights go to HBF, the KV cache stays in HBM.
* :func:`base_die_compute` - logic on the HBM base die: same bandwidth, data-movement
  energy 2-3x lower (the paper; 2.5x used), within the stack's thermal budget.
* :func:`custom_3d` - custom 3D memory-logic stack: more bandwidth per area than HBM's
  interface (``bandwidth_multiplier``), same thermal limit.
* :func:`tree_network` - low-diameter switch tree with in-network reduction and multicast;
  per-hop latency at the low end (100 ns) of the cited 100-300 ns switch latency.
* :func:`mobile_soc` - a phone SoC on LPDDR5X (4 x16 channels, 8533 MT/s, memory_tech.csv),
  optionally with processing-in-memory (Table 4: PIM 5-10x bandwidth/W, 32-64 MB bank
  shards; PNM 2-5x, 16-32 GB).
"""

from __future__ import annotations

import math

import numpy as np

from .. import units
from ..specs import Chip, MemoryTier, Network, Placement, System, replace
from . import chip as chip_preset
from . import economics_value, memory_tier
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


def _hbm4_stacks(n: int) -> MemoryTier:
    one = memory_tier("hbm4")
    return replace(
        one,
        capacity_bytes=n * one.capacity_bytes,
        bandwidth_bytes_per_s=n * one.bandwidth_bytes_per_s,
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
    hbf = memory_tier("hbf")
    hbf = replace(
        hbf,
        capacity_bytes=hbf_stacks * hbf.capacity_bytes,
        bandwidth_bytes_per_s=hbf_stacks * hbf.bandwidth_bytes_per_s,
    )
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
) -> System:
    """Compute on the HBM base die: decode GEMV and attention run in the stacks.

    Args:
      energy_reduction: data-movement energy saving (paper: 2-3x).
      power_cap_w_per_stack: thermal budget of the base-die logic; ASSUMPTION: equal to the
        stack's own 40 W (Table 3), i.e. the stack may dissipate twice its DRAM power.
      logic_flops: peak FLOP/s of all base-die logic at full clock; ASSUMPTION default: the
        host die's bf16 peak moved into the stacks. The thermal cap, not this peak, then
        limits it once decode's arithmetic intensity rises with batch.
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


def _near_memory(tier: MemoryTier, gain: float, shard_bytes: float, flops_per_byte: float) -> MemoryTier:
    """``tier`` with logic that sees ``gain`` x its interface bandwidth at the same power
    (energy/byte / gain) and ``flops_per_byte`` FLOPs per internal byte."""
    return replace(
        tier,
        nmc_flops=flops_per_byte * tier.bandwidth_bytes_per_s * gain,
        nmc_bandwidth_multiplier=gain,
        nmc_energy_j_per_byte=tier.energy_j_per_byte / gain,
        nmc_energy_j_per_flop=0.0,
        nmc_shard_bytes=min(shard_bytes, float(tier.capacity_bytes)),
        nmc_ops=("gemv", "attention"),
    )


def pim_tier(tier: MemoryTier, nmc_flops_per_byte: float = 2.0) -> MemoryTier:
    """Processing-in-memory on ``tier``: bank-level logic with Table 4's bandwidth/W gain,
    45 MB shards, and weak logic sized for batch-1 GEMV (2 FLOPs per internal byte)."""
    return _near_memory(tier, PIM_BANDWIDTH_PER_WATT, PIM_SHARD_BYTES, nmc_flops_per_byte)


def pnm_tier(tier: MemoryTier, nmc_flops_per_byte: float = 16.0) -> MemoryTier:
    """Processing-near-memory: a logic die beside the memory with Table 4's 2-5x
    bandwidth/W, 22.6 GB shards and stronger logic (``nmc_flops_per_byte``)."""
    return _near_memory(tier, PNM_BANDWIDTH_PER_WATT, PNM_SHARD_BYTES, nmc_flops_per_byte)


def mobile_soc(pim: bool = False, channels: int = 4, capacity_gb: float = 16.0) -> System:
    """A phone SoC: ``channels`` x16 LPDDR5X channels (17.07 GB/s each, memory_tech.csv),
    ``capacity_gb`` of DRAM (the LPDDR5 package of Table 3: 16 GB), LPDDR5 energy 7.35
    pJ/bit. The NPU's FLOPS are not in the data set: compute is left unmodelled (decode on a
    phone is bandwidth-bound), as for the Apple rows, and energy counts memory traffic only.
    ``pim=True`` adds PIM to the DRAM."""
    lp = memory_tier("lpddr5x")
    lp5 = memory_tier("lpddr5")
    tier = replace(
        lp,
        capacity_bytes=capacity_gb * units.GB,
        bandwidth_bytes_per_s=channels * lp.bandwidth_bytes_per_s,
        energy_j_per_byte=lp5.energy_j_per_byte,
    )
    if pim:
        tier = pim_tier(tier)
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
