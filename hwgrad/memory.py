"""Memory tiers as the roofline sees them: parallel interfaces, effective bandwidth,
placement, and compute inside a tier.

**Effective bandwidth** of tier ``t`` for reads of tensor class ``c`` (contiguous chunks of
``chunk_c`` bytes, `hwgrad.counts.read_chunk_bytes`):

    bw_eff[c, t] = bw_t * eta_bw * chunk_c / (g_t * ceil(chunk_c / g_t))        (granularity)
                          * min(1, prefetch_t / (latency_t * bw_t))             (Little's law)

so a 4 KiB-page flash tier read 1 KiB at a time delivers a quarter of its bandwidth, and a
tier with microsecond latency needs ``latency x bandwidth`` bytes in flight to stream.

**Parallel tiers.** Tiers with their own interfaces (HBM stacks, HBF stacks, LPDDR over
C2C) are read concurrently, so the memory time of an op is the maximum over *groups*

    t_mem(op) = max_g max( sum_{t in g} sum_c bytes[c, t] / bw_eff[c, t],
                           sum_{t in g} bytes_t / (bw_link_g * eta_bw) )

where a group is one tier with its own interface (the second term is then absent), or all
tiers behind one shared `Channel` (CXL memory behind the PCIe link):
their times add up and the link bounds their combined bytes. The value is the exact
maximum; the gradient is that of the p-norm surrogate (`hwgrad.smooth.roofline_max`),
so an optimiser splitting data over two tiers of bandwidths ``b1, b2`` is driven towards
``f1 / f2 = (b1 / b2)^(p / (p - 1))`` (the surrogate's stationary point), which tends to the
bandwidth-proportional split ``b1 / b2`` of the exact model as ``p`` grows (p = 8: 2.21 for
b1 / b2 = 2).

**Near-memory compute** (PIM on the DRAM die, PNM on a logic die beside it, logic on the HBM
base die or a custom 3D stack) is compute attached to a tier (``MemoryTier.nmc_*``). In each
phase an op the tier supports runs where its policy says (``nmc_decode`` /
``nmc_prefill``: ``memory``, ``host`` or ``auto`` = the faster of the two, exact minimum,
smooth-minimum gradient). Default: decode GEMV and attention on the memory side, prefill on
the host (prefill GEMMs are compute-bound and memory-side logic is weak). Offloaded, the
tier's share of the op's driving bytes (weights for GEMV, the KV cache for attention) is
read at the internal bandwidth, its FLOPs run on the tier's logic, and

    t_nmc = max(FLOPs / (nmc_flops * 16 / act_bits * eta_flops),
                bytes / (bw_eff * multiplier), energy / power_cap)

concurrent with the host's work; the outputs cross the tier's interface once (GEMV split by
output rows: each shard owns whole rows and sends each output element once). Only where a
shard holds less than one row (``d_model`` weights) or one sequence-head of KV cache is the
reduction dimension split, and each output then leaves ``unit / shard`` times (partial sums).
Near-memory FLOP rate and energy per FLOP scale with the activation width like tensor cores
(``16 / act_bits`` and ``act_bits / 16``).

Sizing memory-side logic: a batch-1 GEMV on ``b``-bit weights does 2 FLOP (one MAC) per weight
and streams ``b / 8`` bytes per weight, i.e. ``2 x 8 / b`` FLOP per weight byte (4 for int4,
2 for int8); dequantising the weight (scale multiply) runs in the weight-decode stage ahead of
the MAC array at the weight rate and is counted inside that figure (the "~2 x 8 / bits FLOP per
weight byte for dequant + MAC" rule of issue 11). Logic sized at fewer FLOP per internal byte
is compute-bound at batch 1 (see `hwgrad.presets.designs.pim_tier`).
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from . import counts
from .smooth import ceil_st, roofline_max, safe_div, smooth_max, straight_through_min
from .specs import MemoryTier

__all__ = [
    "CLASSES",
    "stacked_tiers",
    "class_fractions",
    "resident_bytes",
    "granularity_efficiency",
    "latency_efficiency",
    "effective_bandwidth",
    "channel_groups",
    "group_link_bandwidth",
    "parallel_memory_time",
    "offload_masks",
    "driver_matrix",
    "nmc_unit_bytes",
    "near_memory_times",
    "OpCosts",
    "op_costs",
    "shard_counts",
]

CLASSES = ("weights", "kv_cache", "activations", "context")

# which class drives each op of counts.OP_NAMES, and the kind of near-memory kernel it is
_OP_DRIVER = ("weights", "kv_cache", "kv_cache", "weights", "weights", "weights", None)
_OP_KIND = ("gemv", "attention", "attention", "gemv", "gemv", "gemv", None)


# ----------------------------------------------------------------------------- placement


def stacked_tiers(system) -> MemoryTier:
    """The chip's tiers as one `MemoryTier` whose numeric leaves have shape ``(T,)``
    (static fields, which may differ per tier, are dropped)."""
    numeric = [f.name for f in dataclasses.fields(MemoryTier) if not f.metadata.get("static")]
    tiers = system.chip.tiers
    return MemoryTier(
        **{n: jnp.stack([jnp.asarray(getattr(t, n), dtype=float) for t in tiers]) for n in numeric}
    )


def class_fractions(system):
    """``(4, n_tiers)`` placement fractions for weights, KV cache, activations, context."""
    pl = system.resolved_placement()
    return jnp.stack(
        [jnp.asarray(x, dtype=float) for x in (pl.weights, pl.kv_cache, pl.activations, pl.context)]
    )


def resident_bytes(model, compression, workload, budget_tokens=None):
    """``(4,)`` bytes one chip holds of weights, KV cache, activations (a prefill of at most
    ``budget_tokens`` tokens at once; ``None``: the whole batch's prompts), context."""
    return jnp.stack(
        jnp.broadcast_arrays(
            counts.weight_bytes_resident(model, compression, workload),
            counts.kv_bytes_resident(model, compression, workload),
            counts.activation_bytes_resident(model, compression, workload, budget_tokens),
            workload.corpus_bytes,
        )
    )


# ----------------------------------------------------------------------------- bandwidth


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


# ----------------------------------------------------------------------------- parallel tiers


def channel_groups(chip) -> tuple[np.ndarray, tuple[int, ...]]:
    """Static grouping of tiers into independently read groups.

    Returns ``(groups, channel_of_group)``: ``groups`` is a ``(G, T)`` 0/1 matrix whose first
    rows are the tiers with their own interface (one row each) and whose last rows are the
    shared channels that have at least one tier; ``channel_of_group[g]`` is the index into
    ``chip.channels`` of group ``g`` or ``-1`` for an own-interface tier.
    """
    n = len(chip.tiers)
    rows, which = [], []
    for t, tier in enumerate(chip.tiers):
        if tier.channel < 0:
            rows.append([1.0 if u == t else 0.0 for u in range(n)])
            which.append(-1)
    for k in range(len(chip.channels)):
        members = [1.0 if tier.channel == k else 0.0 for tier in chip.tiers]
        if any(members):
            rows.append(members)
            which.append(k)
    return np.array(rows).reshape(len(rows), n), tuple(which)


def group_link_bandwidth(chip, bandwidth_efficiency):
    """``(K,)`` achievable bandwidth of the shared-channel groups of `channel_groups`
    (the link's bandwidth x ``bandwidth_efficiency``)."""
    _, which = channel_groups(chip)
    ks = [k for k in which if k >= 0]
    if not ks:
        return jnp.zeros((0,))
    return (
        jnp.stack([jnp.asarray(chip.channels[k].bandwidth_bytes_per_s, dtype=float) for k in ks])
        * bandwidth_efficiency
    )


def parallel_memory_time(tier_time, tier_bytes, groups, n_channel_groups: int, link_bw):
    """The candidate times whose maximum is the memory time (module docstring).

    Args:
      tier_time: ``(T, ...)`` time each tier's interface needs (its bytes / its bandwidth).
      tier_bytes: ``(T, ...)`` bytes crossing each tier's interface.
      groups: static ``(G, T)`` matrix of `channel_groups`.
      n_channel_groups: how many of the last rows of ``groups`` are shared channels.
      link_bw: ``(n_channel_groups,)`` achievable bandwidth of those channels.

    Returns:
      ``(G + n_channel_groups, ...)``: each group's summed tier time, then each channel's
      link time; the memory time is their maximum (exact or smooth, as the caller's roofline).
    """
    g = jnp.asarray(groups)
    group_time = jnp.tensordot(g, tier_time, axes=(1, 0))
    if n_channel_groups == 0:
        return group_time
    ch = g[-n_channel_groups:]
    ch_bytes = jnp.tensordot(ch, tier_bytes, axes=(1, 0))
    shape = (n_channel_groups,) + (1,) * (ch_bytes.ndim - 1)
    link_time = safe_div(ch_bytes, jnp.reshape(link_bw, shape))
    return jnp.concatenate([group_time, link_time], axis=0)


# ----------------------------------------------------------------------------- near-memory compute


def offload_masks(chip, phase: str) -> tuple[np.ndarray, np.ndarray]:
    """Static ``(T, O)`` 0/1 masks of the ops each tier runs in memory in ``phase``
    (``"decode"`` or ``"prefill"``): ``(fixed, auto)`` - ops the policy sends to the memory
    side, and ops whose policy is ``auto`` (run where faster)."""
    fixed, auto = [], []
    for tier in chip.tiers:
        policy = tier.nmc_decode if phase == "decode" else tier.nmc_prefill
        row = [1.0 if kind is not None and kind in tier.nmc_ops else 0.0 for kind in _OP_KIND]
        zero = [0.0] * len(_OP_KIND)
        fixed.append(row if policy == "memory" else zero)
        auto.append(row if policy == "auto" else zero)
    n_ops = len(_OP_KIND)
    return np.array(fixed).reshape(-1, n_ops), np.array(auto).reshape(-1, n_ops)


def driver_matrix() -> np.ndarray:
    """Static ``(n_classes, n_ops)`` one-hot of each op's driving class."""
    return np.array([[1.0 if d == c else 0.0 for d in _OP_DRIVER] for c in CLASSES])


def nmc_unit_bytes(model, compression, new_tokens, context_len):
    """``(O,)`` bytes of the smallest unit one near-memory shard must hold to emit finished
    outputs: a weight row (``d_model`` weights) for GEMV ops; one sequence's keys and values
    of one KV head (GQA) or of the shared latent (MLA) over the attended span for attention.
    A shard smaller than the unit splits the reduction dimension (partial sums)."""
    wbyte = counts.weight_bits_per_param(compression) / 8.0
    row = model.d_model * wbyte
    kv_bits = compression.kv_bits + compression.kv_overhead_bits
    per_head = counts.kv_elements_per_token_per_layer(model) / (
        1.0 if model.attention == "mla" else model.n_kv_heads
    )
    span = context_len + new_tokens
    window = jnp.where(model.n_sliding_layers > 0, model.sliding_window, 1.0)
    full = span * per_head * kv_bits / 8.0
    win = jnp.minimum(span, window) * per_head * kv_bits / 8.0
    zero = 0.0 * row
    return jnp.stack(jnp.broadcast_arrays(row, full, win, row, row, row, zero))


def near_memory_times(
    tiers,
    mask,
    driver_bytes,
    driver_frac,
    driver_bw,
    flops,
    out_bytes,
    unit_bytes,
    act_bits,
    flops_efficiency,
    p: float,
    mode: str,
):
    """Per-tier, per-op in-memory time and the quantities energy needs.

    Args:
      tiers: stacked `MemoryTier` (leaves of shape ``(T,)``).
      mask: static ``(T, O)`` offload mask.
      driver_bytes: ``(O,)`` bytes of each op's driving class.
      driver_frac: ``(T, O)`` fraction of those bytes placed in each tier.
      driver_bw: ``(T, O)`` effective external bandwidth of each tier for that class.
      flops: ``(O,)`` FLOPs per op.
      out_bytes: ``(O,)`` output bytes per op.
      unit_bytes: ``(O,)`` bytes of one output row's inputs (`nmc_unit_bytes`).
      act_bits: activation width (sets the logic's rate and energy per FLOP).
      flops_efficiency: achieved fraction of the logic's peak.

    Returns:
      ``(time (T, O), share (T, O), nmc_bytes (T, O), nmc_flops (T, O), reduction_bytes
      (T, O))``; ``reduction_bytes`` are the outputs crossing the tier's interface.
    """
    share = driver_frac * mask
    nmc_bytes = driver_bytes[None, :] * share
    nmc_flops = flops[None, :] * share
    mult = tiers.nmc_bandwidth_multiplier[:, None]
    t_mem = safe_div(nmc_bytes, driver_bw * mult)
    bits = jnp.clip(act_bits, 4.0, 16.0)
    rate = tiers.nmc_flops[:, None] * (16.0 / bits) * flops_efficiency
    t_flop = safe_div(nmc_flops, rate)
    e_flop = tiers.nmc_energy_j_per_flop[:, None] * bits / 16.0
    energy = nmc_bytes * tiers.nmc_energy_j_per_byte[:, None] + nmc_flops * e_flop
    cap = tiers.nmc_power_cap_w[:, None]
    t_therm = jnp.where(jnp.isfinite(cap), safe_div(energy, jnp.where(jnp.isfinite(cap), cap, 1.0)), 0.0)
    # output-row split: each output leaves once, unless a shard holds less than one unit
    shard = tiers.nmc_shard_bytes[:, None]
    k_split = jnp.maximum(
        jnp.where(
            jnp.isfinite(shard),
            safe_div(unit_bytes[None, :], jnp.where(jnp.isfinite(shard), shard, 1.0)),
            0.0,
        ),
        1.0,
    )
    reduction_bytes = out_bytes[None, :] * share * k_split
    t = roofline_max(jnp.stack([t_mem, t_flop, t_therm], axis=-1), p=p, mode=mode)
    return t, share, nmc_bytes, nmc_flops, reduction_bytes


class OpCosts(NamedTuple):
    """Per-op times and per-tier traffic of one pass on one chip (`op_costs`).

    Attributes:
      time: ``(O,)`` roofline time of each op (compute, memory groups, memory-side logic).
      compute: ``(O,)`` host compute time.
      class_time: ``(C, O)`` memory time each tensor class would take alone.
      host_flops: ``(O,)`` FLOPs on the host die.
      nmc_flops: ``(T,)`` FLOPs on each tier's logic.
      interface_bytes: ``(T,)`` bytes across each tier's interface (host reads + outputs
        of memory-side logic).
      internal_bytes: ``(T,)`` bytes read internally by each tier's logic.
      channel_bytes: ``(K,)`` bytes across each shared channel of ``chip.channels``.
      on_memory: ``(O,)`` fraction of each op's driving bytes run on memory-side logic.
    """

    time: jax.Array
    compute: jax.Array
    class_time: jax.Array
    host_flops: jax.Array
    nmc_flops: jax.Array
    interface_bytes: jax.Array
    internal_bytes: jax.Array
    channel_bytes: jax.Array
    on_memory: jax.Array


def _per_op(mask, a, mode, p):
    """Per-op arrays (before the sum over ops) for one static offload mask."""
    tiers, bw, bytes_cto = a["tiers"], a["bw"], a["bytes_cto"]
    n_tiers, n_ops = bw.shape[1], bytes_cto.shape[-1]
    if mask.any():
        drv = driver_matrix()
        t_nmc, share, nmc_bytes, nmc_flops, red = near_memory_times(
            tiers,
            mask,
            jnp.sum(a["class_bytes"] * drv, axis=0),
            jnp.einsum("co,ct->to", drv, a["frac"]),
            jnp.einsum("co,ct->to", drv, bw),
            a["flops"],
            a["out_bytes"],
            a["unit_bytes"],
            a["act_bits"],
            a["flops_efficiency"],
            p,
            mode,
        )
        host_cto = bytes_cto * (1.0 - drv[:, None, :] * mask[None, :, :])
        on_memory = jnp.sum(share, axis=0)
    else:
        t_nmc = jnp.zeros((0, n_ops))
        nmc_bytes = nmc_flops = red = jnp.zeros((n_tiers, n_ops))
        host_cto = bytes_cto
        on_memory = jnp.zeros(n_ops)
    host_flops = a["flops"] * (1.0 - on_memory)
    compute = host_flops * a["t_flop"]
    class_tier_time = host_cto / bw[:, :, None]  # (C, T, O)
    red_time = safe_div(red, tiers.bandwidth_bytes_per_s[:, None])
    tier_time = jnp.sum(class_tier_time, axis=0) + red_time
    tier_bytes = jnp.sum(host_cto, axis=0) + red
    groups, n_ch, link_bw = a["groups"], a["n_channel_groups"], a["link_bw"]
    candidates = parallel_memory_time(tier_time, tier_bytes, groups, n_ch, link_bw)
    roof = roofline_max(jnp.concatenate([compute[None, :], candidates, t_nmc], axis=0).T, p=p, mode=mode)
    class_cand = jax.vmap(lambda tt, tb: parallel_memory_time(tt, tb, groups, n_ch, link_bw))(
        class_tier_time, host_cto
    )
    class_time = jnp.max(class_cand, axis=1) if class_cand.shape[1] else jnp.zeros_like(compute)[None]
    return {
        "time": roof,
        "compute": compute,
        "class_time": class_time,
        "host_flops": host_flops,
        "nmc_flops": nmc_flops,
        "interface_bytes": tier_bytes,
        "internal_bytes": nmc_bytes,
        "on_memory": on_memory,
    }


def _phase_per_op(phase: str, a, mode, p):
    fixed, auto = offload_masks(a["chip"], phase)
    if not auto.any():
        return _per_op(fixed, a, mode, p)
    mem = _per_op(np.maximum(fixed, auto), a, mode, p)
    host = _per_op(fixed, a, mode, p)
    use_mem = mem["time"] <= host["time"]
    out = {k: jnp.where(use_mem, mem[k], host[k]) for k in mem if k != "time"}
    both = jnp.stack([mem["time"], host["time"]], axis=-1)
    positive = jnp.all(both > 0, axis=-1)
    # double where: an op with no work (zero time on both sides) must not reach 1 / 0
    smin = straight_through_min(jnp.where(positive[..., None], both, 1.0), p=p)
    out["time"] = jnp.where(positive, smin, jnp.min(both, axis=-1))
    return out


def op_costs(
    chip,
    tiers,
    bw,
    frac,
    class_bytes,
    flops,
    out_bytes,
    unit_bytes,
    t_flop,
    act_bits,
    flops_efficiency,
    bandwidth_efficiency,
    decode,
    p: float,
    mode: str,
) -> OpCosts:
    """Roofline time of every op of one pass on one chip, over parallel tiers and
    memory-side logic (module docstring).

    Args:
      chip: the `Chip` (static structure: channels, policies).
      tiers: `stacked_tiers` of it.
      bw: ``(C, T)`` `effective_bandwidth`.
      frac: ``(C, T)`` `class_fractions`.
      class_bytes: ``(C, O)`` bytes of each class each op moves.
      flops, out_bytes, unit_bytes: ``(O,)`` per op.
      t_flop: host seconds per FLOP (1 / achieved peak at the activation width).
      act_bits: activation width.
      flops_efficiency, bandwidth_efficiency: achieved fractions.
      decode: ``True`` / ``False`` (static phase) or a 0/1 array (both phases evaluated,
        selected per element).
      p, mode: smooth-max sharpness and roofline mode.
    """
    groups, which = channel_groups(chip)
    bytes_cto = class_bytes[:, None, :] * frac[:, :, None]
    a = {
        "chip": chip,
        "tiers": tiers,
        "bw": bw,
        "frac": frac,
        "class_bytes": class_bytes,
        "bytes_cto": bytes_cto,
        "flops": flops,
        "out_bytes": out_bytes,
        "unit_bytes": unit_bytes,
        "t_flop": t_flop,
        "act_bits": act_bits,
        "flops_efficiency": flops_efficiency,
        "groups": groups,
        "n_channel_groups": sum(1 for k in which if k >= 0),
        "link_bw": group_link_bandwidth(chip, bandwidth_efficiency),
    }
    has_nmc = any(t.nmc_ops for t in chip.tiers)
    if not has_nmc:
        per = _per_op(np.zeros((len(chip.tiers), len(_OP_KIND))), a, mode, p)
    elif isinstance(decode, bool | np.bool_):
        per = _phase_per_op("decode" if decode else "prefill", a, mode, p)
    else:
        dec = _phase_per_op("decode", a, mode, p)
        pre = _phase_per_op("prefill", a, mode, p)
        sel = jnp.asarray(decode) > 0
        per = {k: jnp.where(sel, dec[k], pre[k]) for k in dec}
    k_channels = len(chip.channels)
    interface = jnp.sum(per["interface_bytes"], axis=-1)
    member = np.array([[1.0 if t.channel == k else 0.0 for t in chip.tiers] for k in range(k_channels)])
    channel_bytes = (
        jnp.asarray(member.reshape(k_channels, len(chip.tiers))) @ interface
        if k_channels
        else jnp.zeros((0,))
    )
    return OpCosts(
        time=per["time"],
        compute=per["compute"],
        class_time=per["class_time"],
        host_flops=per["host_flops"],
        nmc_flops=jnp.sum(per["nmc_flops"], axis=-1),
        interface_bytes=interface,
        internal_bytes=jnp.sum(per["internal_bytes"], axis=-1),
        channel_bytes=channel_bytes,
        on_memory=per["on_memory"],
    )


def shard_counts(system, model, workload, compression):
    """``(n_tiers,)`` near-memory shards per chip: resident bytes of the classes a tier
    computes on (weights for ``gemv``, KV cache for ``attention``) / ``nmc_shard_bytes``
    (0 for tiers without near-memory compute)."""
    resident = resident_bytes(model, compression, workload) * class_fractions(system).T  # (T, C)
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
