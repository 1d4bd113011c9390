"""Power = idle + active + dynamic, capped at the TDP (a power roofline).

Per chip and pass of wall time ``t`` (of which the chip executes a fraction ``beta``: the
pipeline occupancy ``m / slots``):

    E_dyn    = sum_t (ifc_bytes_t e_t + int_bytes_t e_nmc,t) + sum_k chan_bytes_k e_k     (memory)
             + FLOPs_host e_flop act_bits/16 + sum_t FLOPs_nmc,t e_flop,t act_bits/16     (compute)
             + link_bytes e_link                                                          (network)
    P_idle   = f_idle TDP + sum_t (P_idle,t + P_idle,nmc,t)
    P_active = a (1 - f_idle) TDP                          (clock/stall power while busy)
    t'       = max(t, E_dyn / (TDP - P_idle - beta P_active))                  (power roofline)
    E        = E_dyn + (P_idle + beta P_active) t'

so the average power ``E / t'`` never exceeds the TDP: when it would, the step slows (DVFS
under a power cap). The maximum is exact in value with the smooth gradient of
`hwgrad.smooth.roofline_max`, like the other rooflines.

Sources and choices:

* ``f_idle`` (``Chip.idle_power_fraction``): board idle with a model loaded, 0.198 of TDP
  (economics.csv ``gpu_idle_with_context_power_w_v100_sxm2``: 59.5 W of 300 W, 18-22 %;
  ``gpu_idle_context_power_increment_w_hbm``: a CUDA context alone adds 26-50 W over bare
  idle on HBM GPUs). It covers the board's own main memory (the measurement is board power).
* ``P_idle,t`` (``MemoryTier.idle_power_w``): added tiers (HBF, CXL, HBM4 stacks of a design)
  idle at ``devices x power_per_device_W (memory_tech.csv) x idle share``; the idle share is an
  ASSUMPTION argument of `hwgrad.presets.memory_tier` (the data set gives none).
* ``e_t``, ``e_nmc,t``: memory_tech.csv / energy_ops.csv pJ/bit (interface) and the
  near-memory designs' internal energies; ``e_k`` per shared channel (SerDes 5.5 pJ/bit).
* ``e_flop``: the host's dynamic energy per bf16 FLOP. energy_ops.csv has Horowitz's 45 nm
  arithmetic (16-bit fp multiply 1.1 pJ + add 0.4 pJ = 0.75 pJ/FLOP), which exceeds what a
  4-5 nm chip can draw at its peak (H100: 0.71 pJ/FLOP would be the whole 700 W); no scaled
  per-node figure is cited. Presets therefore take the upper bound left by the TDP at peak
  FLOPs once idle and peak memory power are paid (`hwgrad.presets.energy_j_per_flop_from_tdp`).
* ``a`` (``Chip.active_power_fraction``): power a busy GPU draws beyond idle that bytes and
  FLOPs do not explain (clocks up, SMs stalled on memory); range [0, 0.6], default 0 until it
  is fitted per vendor family on the energy rows of calibration.csv (A100, H100).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from .smooth import roofline_max, safe_div

__all__ = ["PassPower", "tdp_known", "idle_power_w", "active_power_w", "pass_power"]


class PassPower(NamedTuple):
    """Time and energy of one pass on one chip (`pass_power`).

    Attributes:
      time_s: wall time after the power roofline.
      power_s: time the power budget alone needs, ``E_dyn / (TDP - static power)``.
      compute_host_j / compute_nmc_j: FLOP energy on the host die / on memory-side logic.
      memory_tier_j: ``(T,)`` energy of each tier's traffic (interface + internal).
      channel_j: energy of the shared channels' traffic.
      network_j: energy of the bytes this chip sends over the network.
      idle_j: idle power x time.
      active_j: active (clock/stall) power x busy time.
    """

    time_s: jax.Array
    power_s: jax.Array
    compute_host_j: jax.Array
    compute_nmc_j: jax.Array
    memory_tier_j: jax.Array
    channel_j: jax.Array
    network_j: jax.Array
    idle_j: jax.Array
    active_j: jax.Array


def tdp_known(chip):
    """1 where the chip has a finite, positive TDP (the cap and host power apply)."""
    tdp = jnp.asarray(chip.tdp_w, dtype=float)
    return jnp.isfinite(tdp) & (tdp > 0)


def _tdp_safe(chip):
    ok = tdp_known(chip)
    return jnp.where(ok, jnp.asarray(chip.tdp_w, dtype=float), 0.0)


def _tdp_or_nan(chip):
    """The TDP for the power terms: 0 stays 0 (no host), unknown stays NaN (so is the energy)."""
    return jnp.asarray(chip.tdp_w, dtype=float)


def idle_power_w(chip, tiers):
    """Idle power of one chip: host board ``f_idle x TDP`` + every tier's and its
    near-memory logic's idle power (W). A chip with TDP 0 has no host idle; an unknown (NaN)
    TDP makes the idle power, and so the energy, unknown."""
    return _idle_power_w(chip, tiers, _tdp_or_nan(chip))


def _idle_power_w(chip, tiers, tdp):
    host = chip.idle_power_fraction * tdp
    return host + jnp.sum(tiers.idle_power_w) + jnp.sum(tiers.nmc_idle_power_w)


def active_power_w(chip):
    """Clock/stall power of a busy chip, ``a (1 - f_idle) TDP`` (W)."""
    return _active_power_w(chip, _tdp_or_nan(chip))


def _active_power_w(chip, tdp):
    return chip.active_power_fraction * (1.0 - chip.idle_power_fraction) * tdp


def _finite(x):
    x = jnp.asarray(x, dtype=float)
    return jnp.where(jnp.isfinite(x), x, 0.0)


def pass_power(
    chip,
    tiers,
    act_bits,
    host_flops,
    nmc_flops,
    interface_bytes,
    internal_bytes,
    channel_bytes,
    link_bytes,
    link_energy_j_per_byte,
    time_s,
    busy_fraction,
    p: float,
    mode: str,
    host_bits=None,
) -> PassPower:
    """Energy of one pass on one chip and its time under the TDP (module docstring).

    Args:
      chip: the `Chip`.
      tiers: stacked tiers (`hwgrad.memory.stacked_tiers`).
      act_bits: activation width (energy per FLOP scales with ``act_bits / 16``).
      host_flops: FLOPs on the host die (a number, or one per op with ``host_bits``).
      host_bits: operand width of each entry of ``host_flops`` (default ``act_bits``;
        `hwgrad.counts.op_compute_bits`: a bf16 weight's GEMM costs bf16 energy per FLOP).
      nmc_flops, interface_bytes, internal_bytes: ``(T,)`` per tier.
      channel_bytes: ``(K,)`` per shared channel.
      link_bytes: bytes this chip sends over the network.
      link_energy_j_per_byte: network transfer energy.
      time_s: wall time before the power roofline.
      busy_fraction: fraction of ``time_s`` the chip executes (pipeline occupancy).
      p, mode: smooth-max sharpness and roofline mode.
    """
    scale = jnp.clip(act_bits, 4.0, 16.0) / 16.0
    host_scale = scale if host_bits is None else jnp.clip(host_bits, 4.0, 16.0) / 16.0
    host_flops_bf16 = jnp.sum(host_flops * host_scale)  # bf16-equivalent FLOPs
    e_nmc = tiers.nmc_energy_j_per_flop * scale
    compute_host = host_flops_bf16 * chip.energy_j_per_flop_bf16
    compute_nmc = jnp.sum(nmc_flops * e_nmc)
    memory_tier = interface_bytes * tiers.energy_j_per_byte + internal_bytes * tiers.nmc_energy_j_per_byte
    if len(chip.channels):
        e_ch = jnp.stack([jnp.asarray(c.energy_j_per_byte, dtype=float) for c in chip.channels])
        channel = jnp.sum(channel_bytes * e_ch)
    else:
        channel = jnp.zeros(())
    network = link_bytes * link_energy_j_per_byte

    # the cap sees only finite energies (an unknown FLOP energy stays NaN in the report but
    # must not poison the time or its gradient)
    dyn_safe = (
        host_flops_bf16 * _finite(chip.energy_j_per_flop_bf16)
        + compute_nmc
        + jnp.sum(memory_tier)
        + channel
        + network
    )
    idle = idle_power_w(chip, tiers)
    active = active_power_w(chip)
    # the cap with an unknown TDP is off; its terms use the zeroed TDP so that no NaN reaches
    # the time's gradient through the unselected branch
    tdp_safe = _tdp_safe(chip)
    headroom = tdp_safe - _idle_power_w(chip, tiers, tdp_safe) - busy_fraction * _active_power_w(chip, tdp_safe)
    capped = tdp_known(chip) & (headroom > 0)
    power_s = jnp.where(capped, safe_div(_finite(dyn_safe), jnp.where(capped, headroom, 1.0)), 0.0)
    t = roofline_max(jnp.stack(jnp.broadcast_arrays(time_s, power_s), axis=-1), p=p, mode=mode)
    return PassPower(
        time_s=t,
        power_s=power_s,
        compute_host_j=compute_host,
        compute_nmc_j=compute_nmc,
        memory_tier_j=memory_tier,
        channel_j=channel,
        network_j=network,
        idle_j=idle * t,
        active_j=active * busy_fraction * t,
    )
