"""Memory tiers as the roofline sees them: effective bandwidth and compute inside a tier.

Effective bandwidth of tier ``t`` for reads of tensor class ``c`` (contiguous chunks of
``chunk_c`` bytes, :func:`hwgrad.counts.read_chunk_bytes`):

    bw_eff[c, t] = bw_t * eta_bw * chunk_c / (g_t * ceil(chunk_c / g_t))        (granularity)
                          * min(1, prefetch_t / (latency_t * bw_t))             (Little's law)

so a 4 KiB-page flash tier read 1 KiB at a time delivers a quarter of its bandwidth, and a
tier with microsecond latency needs ``latency x bandwidth`` bytes in flight to stream.

Near-memory compute (PIM on the DRAM die, PNM on a logic die beside it, logic on the HBM
base die or a custom 3D stack) is compute attached to a tier (``MemoryTier.nmc_*``). For an
op it offloads, the tier's share of the op's driving bytes (weights for GEMV, the KV cache
for decode attention) is read at the internal bandwidth, its FLOPs run on the tier's logic,
and the time is

    t_nmc = max(FLOPs / nmc_flops, bytes / (bw_eff * multiplier), energy / power_cap)
            + shards * out_bytes / bw_t

where the last term is the partial results of every ``nmc_shard_bytes`` shard crossing the
external interface to be reduced (small PIM shards pay many partials) and the power-cap
term is a thermal roofline for stacked logic. Host and tier work proceed concurrently.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from .smooth import ceil_st, roofline_max, safe_div, smooth_max, straight_through_min

CLASSES = ("weights", "kv_cache", "activations", "context")

# which class drives each op of counts.OP_NAMES, and the kind of near-memory kernel it is
_OP_DRIVER = ("weights", "kv_cache", "kv_cache", "weights", "weights", "weights", None)
_OP_KIND = ("gemv", "attention", "attention", "gemv", "gemv", "gemv", None)


def granularity_efficiency(chunk_bytes, granularity_bytes, mode: str = "straight_through"):
    """Useful fraction of transferred bytes when reading ``chunk_bytes`` contiguous bytes
    from a device that moves ``granularity_bytes`` at a time:
    ``chunk / (g * ceil(chunk / g))`` (1 when chunks are whole multiples of the unit).

    ``mode="smooth"`` drops the ceiling's ripple above one unit and uses
    ``chunk / smax(chunk, g)`` (continuous, so finite differences agree with gradients).
    """
    if mode == "smooth":
        return chunk_bytes / smooth_max(jnp.stack(jnp.broadcast_arrays(chunk_bytes, granularity_bytes), -1))
    units_read = ceil_st(chunk_bytes / granularity_bytes)
    return chunk_bytes / (granularity_bytes * units_read)


def latency_efficiency(tiers):
    """``min(1, prefetch / (latency x bandwidth))``: bandwidth a bounded number of
    outstanding bytes can sustain (per tier)."""
    in_flight_needed = tiers.read_latency_s * tiers.bandwidth_bytes_per_s
    bounded = jnp.isfinite(tiers.prefetch_bytes) & (in_flight_needed > 0)
    # double where: no inf/0 reaches the gradient of the unbounded case
    ratio = jnp.where(
        bounded,
        jnp.where(bounded, tiers.prefetch_bytes, 1.0) / jnp.where(bounded, in_flight_needed, 1.0),
        1e30,
    )
    return straight_through_min(jnp.stack(jnp.broadcast_arrays(1.0, ratio), axis=-1))


def effective_bandwidth(tiers, chunk_bytes, bandwidth_efficiency, mode: str = "straight_through"):
    """``(n_classes, n_tiers)`` achievable bandwidth, bytes/s (see module docstring)."""
    gran = granularity_efficiency(chunk_bytes[:, None], tiers.access_granularity_bytes[None, :], mode)
    lat = latency_efficiency(tiers)
    return tiers.bandwidth_bytes_per_s[None, :] * bandwidth_efficiency * gran * lat[None, :]


def offload_mask(chip) -> np.ndarray:
    """Static ``(n_tiers, n_ops)`` 0/1 mask: tier ``t`` runs op ``o`` in memory."""
    return np.array(
        [
            [1.0 if kind is not None and kind in tier.nmc_ops else 0.0 for kind in _OP_KIND]
            for tier in chip.tiers
        ]
    )


def driver_matrix() -> np.ndarray:
    """Static ``(n_classes, n_ops)`` one-hot of each op's driving class."""
    return np.array([[1.0 if d == c else 0.0 for d in _OP_DRIVER] for c in CLASSES])


def near_memory_times(
    tiers,
    mask,
    driver_bytes,
    driver_frac,
    driver_bw,
    flops,
    out_bytes,
    resident_driver_bytes,
    flops_efficiency,
    p: float,
    mode: str,
):
    """Per-tier, per-op in-memory time and the quantities energy needs.

    Args:
      tiers: stacked :class:`MemoryTier` (leaves of shape ``(T,)``).
      mask: static ``(T, O)`` offload mask.
      driver_bytes: ``(O,)`` bytes of each op's driving class.
      driver_frac: ``(T, O)`` fraction of those bytes placed in each tier.
      driver_bw: ``(T, O)`` effective external bandwidth of each tier for that class.
      flops: ``(O,)`` FLOPs per op.
      out_bytes: ``(O,)`` output bytes per op.
      resident_driver_bytes: ``(T, O)`` resident bytes of the driving class in each tier
        (sets the shard count).

    Returns:
      ``(time (T, O), share (T, O), nmc_bytes (T, O), nmc_flops (T, O), reduction_bytes
      (T, O), shards (T, O))``.
    """
    share = driver_frac * mask
    nmc_bytes = driver_bytes[None, :] * share
    nmc_flops = flops[None, :] * share
    mult = tiers.nmc_bandwidth_multiplier[:, None]
    t_mem = safe_div(nmc_bytes, driver_bw * mult)
    t_flop = safe_div(nmc_flops, tiers.nmc_flops[:, None] * flops_efficiency)
    energy = (
        nmc_bytes * tiers.nmc_energy_j_per_byte[:, None] + nmc_flops * tiers.nmc_energy_j_per_flop[:, None]
    )
    cap = tiers.nmc_power_cap_w[:, None]
    t_therm = jnp.where(jnp.isfinite(cap), safe_div(energy, jnp.where(jnp.isfinite(cap), cap, 1.0)), 0.0)
    shards = jnp.maximum(safe_div(resident_driver_bytes, tiers.nmc_shard_bytes[:, None]), 1.0) * (share > 0)
    reduction_bytes = shards * out_bytes[None, :] * share
    t_red = safe_div(reduction_bytes, tiers.bandwidth_bytes_per_s[:, None])
    t = roofline_max(jnp.stack([t_mem, t_flop, t_therm], axis=-1), p=p, mode=mode) + t_red
    return t, share, nmc_bytes, nmc_flops, reduction_bytes, shards


def shard_counts(system, model, workload, compression):
    """``(n_tiers,)`` near-memory shards per chip: resident bytes of the classes a tier
    computes on (weights for ``gemv``, KV cache for ``attention``) / ``nmc_shard_bytes``
    (0 for tiers without near-memory compute)."""
    from .cost import _class_fractions, _resident_bytes

    resident = _resident_bytes(model, compression, workload) * _class_fractions(system).T  # (T, C)
    counted = np.array(
        [
            [
                1.0
                if ("gemv" in t.nmc_ops and c == "weights") or ("attention" in t.nmc_ops and c == "kv_cache")
                else 0.0
                for c in CLASSES
            ]
            for t in system.chip.tiers
        ]
    )
    shard = jnp.stack([jnp.asarray(t.nmc_shard_bytes, dtype=float) for t in system.chip.tiers])
    return safe_div(jnp.sum(resident * counted, axis=1), shard)
