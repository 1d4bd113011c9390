"""The cost model: roofline per op over memory tiers, collectives, prefill and decode.

One forward pass on one chip of a tensor-parallel group (counts from :mod:`counts`):

    t_op   = rmax(flops_op / (peak(act_bits) * flops_eff),
                  sum_c bytes_op,c * sum_t f_c,t / (bw_t * bw_eff))  +  launches_op * op_overhead
    t_comm = sum_collectives calls * (alpha-beta time + collective_overhead)
    t_pass = overlap * rmax(sum t_op, t_comm) + (1 - overlap) * (sum t_op + t_comm)

where ``c`` ranges over tensor classes (weights, KV cache, activations), ``f_c,t`` is the
fraction of class ``c`` placed in tier ``t`` and ``rmax`` the roofline maximum of
:func:`hwgrad.smooth.roofline_max` (exact value, smooth gradient by default). A pipeline of
``pp`` stages and ``m`` micro-batches takes ``(m + pp - 1) t_pass(B/m) / pp`` for a
one-shot prefill (the ``(pp - 1)/(m + pp - 1)`` bubble of GPipe) and
``max(m, pp) t_pass(B/m) / pp`` per decode round (micro-batches circulate; stages idle when
``m < pp``), plus ``pp - 1`` stage-to-stage sends per micro-batch.

A request (static batch) costs one prefill of ``prompt_len`` tokens per sequence (its time
is the time to first token) and ``output_len`` decode steps whose context grows from
``prompt_len``; the sum over steps is integrated with Gauss-Legendre quadrature over the
context (exact for the linear growth of KV traffic; the kinks of the roofline add a small,
tested error).

Energy = sum_t bytes_t e_t + FLOPs e_flop(bits) + link bytes e_link + static power x time.
Roofline after Williams, Waterman & Patterson, CACM 2009; the decode accounting follows
"How To Scale Your Model" (jax-ml/scaling-book), inference chapter.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from . import counts, memory, network, pruning, units
from .smooth import roofline_max, safe_div
from .specs import (
    Compression,
    Economics,
    Efficiency,
    MemoryTier,
    Model,
    Options,
    System,
    Workload,
    replace,
    spec,
)

COMPONENTS = ("compute", "weights", "kv_cache", "activations", "communication", "overhead")


@spec
class PassCost:
    """Time and energy of one forward pass (a decode step or a prefill) of one replica.

    Component times are what each would take alone (they overlap in the roofline);
    ``time_s`` is the modelled wall time. Energies are for all ``tp * pp`` chips.
    """

    time_s: Any
    compute_s: Any
    weights_s: Any
    kv_cache_s: Any
    activations_s: Any
    communication_s: Any
    overhead_s: Any
    flops: Any
    bytes_per_tier: Any
    link_bytes: Any
    energy_memory_j: Any
    energy_compute_j: Any
    energy_network_j: Any
    energy_static_j: Any

    @property
    def energy_j(self):
        return self.energy_memory_j + self.energy_compute_j + self.energy_network_j + self.energy_static_j

    def component_times(self):
        """``(6,)`` array in the order of :data:`COMPONENTS`."""
        return jnp.stack(
            [
                self.compute_s,
                self.weights_s,
                self.kv_cache_s,
                self.activations_s,
                self.communication_s,
                self.overhead_s,
            ],
            axis=-1,
        )


@spec
class Result:
    """Everything :func:`evaluate` reports for one design point (all SI units).

    ``fits`` is ``1.0`` when every tier's capacity margin is non-negative.
    ``kv_on_low_endurance`` is the fraction of the KV cache placed on flash-like tiers (an
    endurance violation unless 0). ``tier_lifetime_years`` is the wear-out time of each tier
    under the decode's KV writes (``inf`` without writes or without an endurance figure).
    The paper's figures of merit are properties: tokens per joule (performance/W), per
    dollar of TCO and per gram of CO2e.
    """

    tpot_s: Any
    ttft_s: Any
    e2e_latency_s: Any
    tokens_per_s: Any
    tokens_per_s_per_user: Any
    decode_tokens_per_s: Any
    energy_j_per_token: Any
    power_w: Any
    usd_per_million_tokens: Any
    tco_usd: Any
    gco2e_per_token: Any
    gco2e_operational_per_token: Any
    gco2e_embodied_per_token: Any
    capacity_used_bytes: Any
    capacity_margin_bytes: Any
    fits: Any
    kv_on_low_endurance: Any
    tier_lifetime_years: Any
    decode: PassCost
    prefill: PassCost

    @property
    def tokens_per_joule(self):
        """Performance per watt: (tokens/s) / W."""
        return 1.0 / self.energy_j_per_token

    @property
    def tokens_per_usd(self):
        """Performance per TCO: tokens per dollar of amortised capex + electricity."""
        return 1e6 / self.usd_per_million_tokens

    @property
    def tokens_per_gco2e(self):
        """Performance per carbon: tokens per gram CO2e (operational + embodied)."""
        return 1.0 / self.gco2e_per_token


# ----------------------------------------------------------------------------- helpers


def seconds_per_flop(system: System, compression: Compression):
    """1 / peak FLOP/s at the activation width, interpolated between 4, 8 and 16 bits.

    Peaks double per halving of operand width on tensor cores, so ``1/peak`` is linear in
    bits between the published points; 2:4 sparsity runs at the dense peak on half the
    FLOPs (see :func:`counts.flop_fraction`).
    """
    chip = system.chip
    inv = jnp.stack(
        [
            safe_div(1.0, chip.peak_flops_fp4),
            safe_div(1.0, chip.peak_flops_fp8),
            safe_div(1.0, chip.peak_flops_bf16),
        ]
    )
    return jnp.interp(jnp.clip(compression.act_bits, 4.0, 16.0), jnp.array([4.0, 8.0, 16.0]), inv)


def _stacked_tiers(system: System):
    """The chip's tiers as one :class:`MemoryTier` whose numeric leaves have shape ``(T,)``
    (static fields, which may differ per tier, are dropped)."""
    numeric = [f.name for f in dataclasses.fields(MemoryTier) if not f.metadata.get("static")]
    tiers = system.chip.tiers
    return MemoryTier(
        **{n: jnp.stack([jnp.asarray(getattr(t, n), dtype=float) for t in tiers]) for n in numeric}
    )


def _class_fractions(system: System):
    """``(4, n_tiers)`` placement fractions for weights, KV cache, activations, context."""
    pl = system.resolved_placement()
    return jnp.stack(
        [jnp.asarray(x, dtype=float) for x in (pl.weights, pl.kv_cache, pl.activations, pl.context)]
    )


def _resident_bytes(model: Model, compression: Compression, workload: Workload):
    """``(4,)`` bytes one chip holds of weights, KV cache, activations, context."""
    return jnp.stack(
        jnp.broadcast_arrays(
            counts.weight_bytes_resident(model, compression, workload),
            counts.kv_bytes_resident(model, compression, workload),
            counts.activation_bytes_resident(model, compression, workload),
            workload.corpus_bytes,
        )
    )


def forward_pass(
    system: System,
    model: Model,
    workload: Workload,
    compression: Compression,
    efficiency: Efficiency,
    new_tokens,
    context_len,
    options: Options = Options(),
    steady_state=False,
) -> PassCost:
    """Cost of one forward pass of ``workload.batch`` sequences (see module docstring).

    ``steady_state`` (a bool or 0/1 array, so passes can be batched) selects the pipeline
    schedule: ``False`` for a one-shot pass
    (prefill: ``m + pp - 1`` stage slots, the GPipe fill and drain); ``True`` for decode,
    where micro-batches circulate through the stages token after token and a round takes
    ``max(m, pp)`` stage slots (idle stages when ``m < pp``).
    """
    model, compression = pruning.resolve(model, compression)  # structured pruning -> shapes
    m_micro = workload.microbatches
    pp = workload.pp
    micro = replace(workload, batch=workload.batch / m_micro)
    ops, comm = counts.forward_counts(model, compression, micro, new_tokens, context_len)
    tiers = _stacked_tiers(system)
    frac = _class_fractions(system)  # (C, T)
    chunk = counts.read_chunk_bytes(model, compression, workload)
    bw = memory.effective_bandwidth(tiers, chunk, efficiency.bandwidth_efficiency, options.roofline)  # (C, T)

    # corpus (RAG context) is read during the prefill only; charged to the embedding column
    corpus = jnp.where(steady_state, 0.0, micro.batch * workload.corpus_read_bytes_per_sequence)
    n_ops = ops.flops.shape[-1]
    corpus_row = jnp.zeros(n_ops).at[n_ops - 1].set(corpus)
    kv_bytes = ops.kv_read_bytes + ops.kv_write_bytes
    class_bytes = jnp.stack([ops.weight_bytes, kv_bytes, ops.act_bytes, corpus_row])  # (C, O)
    bytes_cto = class_bytes[:, None, :] * frac[:, :, None]  # (C, T, O)

    mask = memory.offload_mask(system.chip)  # static (T, O)
    t_flop = seconds_per_flop(system, compression) / efficiency.flops_efficiency
    if mask.any():
        drv = memory.driver_matrix()  # static (C, O)
        driver_bytes = jnp.sum(class_bytes * drv, axis=0)
        driver_frac = jnp.einsum("co,ct->to", drv, frac)
        driver_bw = jnp.einsum("co,ct->to", drv, bw)
        resident = _resident_bytes(model, compression, workload)  # (C,)
        resident_driver = jnp.einsum("co,c,ct->to", drv, resident, frac)
        t_nmc, share, nmc_bytes, nmc_flops, red_bytes, _ = memory.near_memory_times(
            tiers,
            mask,
            driver_bytes,
            driver_frac,
            driver_bw,
            ops.flops,
            ops.out_bytes,
            resident_driver,
            efficiency.flops_efficiency,
            options.smooth_p,
            options.roofline,
        )
        host_bytes_cto = bytes_cto * (1.0 - drv[:, None, :] * mask[None, :, :])
        host_flops = ops.flops * (1.0 - jnp.sum(share, axis=0))
    else:
        t_nmc = jnp.zeros((0, n_ops))
        nmc_bytes = nmc_flops = red_bytes = jnp.zeros((len(system.chip.tiers), n_ops))
        host_bytes_cto = bytes_cto
        host_flops = ops.flops
    class_time = jnp.sum(host_bytes_cto / bw[:, :, None], axis=1)  # (C, O)
    compute_t = host_flops * t_flop
    memory_t = jnp.sum(class_time, axis=0)
    roof = roofline_max(
        jnp.concatenate([jnp.stack([compute_t, memory_t]), t_nmc], axis=0).T,
        p=options.smooth_p,
        mode=options.roofline,
    )
    overhead_t = ops.launches * efficiency.op_overhead_s
    t_ops = jnp.sum(roof + overhead_t)

    net = system.network
    tp, ep = workload.tp, workload.ep
    co = efficiency.collective_overhead_s
    t_tp = comm.tp_allreduce_calls * (
        network.allreduce_s(net, comm.tp_allreduce_bytes, tp, options.roofline) + co * (tp > 1)
    )
    t_ep = comm.ep_alltoall_calls * (network.alltoall_s(net, comm.ep_alltoall_bytes, ep) + co)
    t_ep_ar = comm.ep_allreduce_calls * (
        network.allreduce_s(net, comm.tp_allreduce_bytes, tp / ep, options.roofline) + co
    )
    t_comm = t_tp + t_ep + t_ep_ar
    ov = efficiency.comm_overlap
    both = jnp.stack([t_ops, t_comm])
    t_pass = ov * roofline_max(both, p=options.smooth_p, mode=options.roofline) + (1.0 - ov) * (
        t_ops + t_comm
    )

    # pipeline: each stage runs 1/pp of the pass
    slots = jnp.where(steady_state, jnp.maximum(m_micro, pp), m_micro + pp - 1.0)
    t_p2p = comm.pp_p2p_calls * network.p2p_s(net, comm.pp_p2p_bytes)
    time_s = slots * t_pass / pp + t_p2p * m_micro

    # bytes moved per tier (per chip, whole step) and energy for all chips of the replica
    chips = tp * pp
    host_bytes_t = jnp.sum(host_bytes_cto, axis=(0, 2))  # (T,) across the interface
    nmc_bytes_t = jnp.sum(nmc_bytes, axis=1)
    red_bytes_t = jnp.sum(red_bytes, axis=1)
    bytes_per_tier = (host_bytes_t + nmc_bytes_t + red_bytes_t) * m_micro
    flops = jnp.sum(ops.flops) * m_micro
    link_bytes = m_micro * (
        comm.tp_allreduce_calls * 2.0 * comm.tp_allreduce_bytes * (tp > 1)
        + comm.ep_alltoall_calls * comm.ep_alltoall_bytes
        + comm.pp_p2p_calls * comm.pp_p2p_bytes / jnp.maximum(chips, 1.0)
    )
    e_mem_chip = jnp.sum((host_bytes_t + red_bytes_t) * tiers.energy_j_per_byte) + jnp.sum(
        nmc_bytes_t * tiers.nmc_energy_j_per_byte
    )
    e_mem = chips * m_micro * e_mem_chip
    e_flop = system.chip.energy_j_per_flop_bf16 * compression.act_bits / 16.0
    e_nmc_flop = jnp.sum(jnp.sum(nmc_flops, axis=1) * tiers.nmc_energy_j_per_flop)
    e_compute = chips * m_micro * (jnp.sum(host_flops) * e_flop + e_nmc_flop)
    e_net = chips * link_bytes * net.energy_j_per_byte
    static_w = efficiency.static_power_fraction * system.chip.tdp_w
    e_static = chips * static_w * time_s

    scale = slots / pp * 1.0
    return PassCost(
        time_s=time_s,
        compute_s=jnp.sum(compute_t) * scale,
        weights_s=jnp.sum(class_time[0]) * scale,
        kv_cache_s=jnp.sum(class_time[1]) * scale,
        activations_s=jnp.sum(class_time[2]) * scale,
        communication_s=t_comm * scale + t_p2p * m_micro,
        overhead_s=jnp.sum(overhead_t) * scale,
        flops=flops,
        bytes_per_tier=bytes_per_tier,
        link_bytes=link_bytes,
        energy_memory_j=e_mem,
        energy_compute_j=e_compute,
        energy_network_j=e_net,
        energy_static_j=e_static,
    )


def decode_step(
    system,
    model,
    workload,
    compression=Compression(),
    efficiency=Efficiency(),
    context_len=None,
    options=Options(),
):
    """One decode step (one new token per sequence) at ``context_len`` cached tokens
    (default: the prompt length)."""
    context_len = workload.prompt_len if context_len is None else context_len
    return forward_pass(
        system, model, workload, compression, efficiency, 1.0, context_len, options, steady_state=True
    )


def prefill(system, model, workload, compression=Compression(), efficiency=Efficiency(), options=Options()):
    """The prefill of ``prompt_len`` tokens per sequence (time to first token)."""
    return forward_pass(system, model, workload, compression, efficiency, workload.prompt_len, 0.0, options)


def _gauss_legendre(n: int):
    x, w = np.polynomial.legendre.leggauss(n)
    return jnp.asarray((x + 1.0) / 2.0), jnp.asarray(w / 2.0)


def _request_passes(system, model, workload, compression, efficiency, options):
    """The prefill and the decode quadrature nodes, evaluated as one batched pass.

    Returns ``(prefill, decode_total)``. Step ``i`` (0-based) of the decode sees
    ``prompt_len + i`` cached tokens; the sum over ``output_len`` steps is the integral of
    the step cost over ``[prompt_len - 1/2, prompt_len + output_len - 1/2]`` (midpoint
    rule), evaluated with ``options.decode_quadrature_nodes`` Gauss-Legendre nodes. The
    prefill and the nodes share one traced graph (``vmap``), which halves compile time.
    """
    nodes, weights = _gauss_legendre(options.decode_quadrature_nodes)
    span = workload.output_len
    ctx = jnp.maximum(workload.prompt_len - 0.5 + span * nodes, 0.0)
    pre = forward_pass(system, model, workload, compression, efficiency, workload.prompt_len, 0.0, options)

    def step(c):
        return forward_pass(
            system, model, workload, compression, efficiency, 1.0, c, options, steady_state=True
        )

    # only context-dependent work (attention over the cache) is batched over the nodes
    steps = jax.vmap(step)(ctx)
    dec = jax.tree_util.tree_map(lambda v: span * jnp.tensordot(weights, v, axes=(0, 0)), steps)
    return pre, dec


def decode_total(system, model, workload, compression, efficiency, options=Options()) -> PassCost:
    """Sum of ``output_len`` decode steps as the context grows from ``prompt_len``."""
    return _request_passes(system, model, workload, compression, efficiency, options)[1]


# ----------------------------------------------------------------------------- capacity


def capacity_used_bytes(system: System, model: Model, workload: Workload, compression: Compression):
    """Bytes each tier of one chip holds: weights + final KV cache + activation workspace
    + read-mostly context."""
    model, compression = pruning.resolve(model, compression)
    return _resident_bytes(model, compression, workload) @ _class_fractions(system)


# ----------------------------------------------------------------------------- the whole request


def evaluate(
    system: System,
    model: Model,
    workload: Workload,
    compression: Compression = Compression(),
    efficiency: Efficiency | None = None,
    economics: Economics | None = None,
    options: Options = Options(),
) -> Result:
    """Latency, throughput, energy, cost, carbon and capacity of one static batch.

    Args:
      system: chips, their memory tiers and network (one model replica is ``tp * pp``
        chips; ``dp`` replicas make up ``system.n_chips``).
      model: architecture.
      workload: batch, prompt/output lengths and parallelism.
      compression: numeric formats and sparsity.
      efficiency: achieved fractions and overheads (default: the calibrated set,
        :func:`hwgrad.calibrated_efficiency`; ``Efficiency.speed_of_light()`` for the ideal).
      economics: prices and carbon (default: :func:`hwgrad.presets.default_economics`).
      options: static evaluation options.

    Returns:
      A :class:`Result` pytree of scalars (and per-tier arrays).
    """
    if efficiency is None:
        from .calibrated import calibrated_efficiency

        efficiency = calibrated_efficiency()
    if economics is None:
        from .presets import default_economics

        economics = default_economics()
    model, compression = pruning.resolve(model, compression)
    pre, dec = _request_passes(system, model, workload, compression, efficiency, options)
    n_out = workload.output_len
    tpot = dec.time_s / n_out
    e2e = pre.time_s + dec.time_s
    seq_tokens = workload.batch * n_out  # output tokens per replica per request
    tokens_per_s = workload.dp * seq_tokens / e2e
    energy_per_token = (pre.energy_j + dec.energy_j) / seq_tokens
    chips = system.n_chips
    power_w = energy_per_token * tokens_per_s

    # cost: capex amortised over the lifetime + electricity at the facility PUE
    chip = system.chip
    tiers = _stacked_tiers(system)
    extra_tier_usd = (
        jnp.sum(tiers.capacity_bytes[1:] / units.GB * tiers.cost_usd_per_gb[1:])
        if len(chip.tiers) > 1
        else 0.0
    )
    capex = chips * (chip.price_usd * economics.server_cost_multiplier + extra_tier_usd)
    lifetime_s = economics.lifetime_years * units.YEAR
    served_s = lifetime_s * economics.utilization
    energy_kwh_per_token = energy_per_token * economics.pue / units.KWH
    usd_per_token = (
        capex / (served_s * tokens_per_s) + energy_kwh_per_token * economics.electricity_usd_per_kwh
    )
    tco = capex + energy_kwh_per_token * economics.electricity_usd_per_kwh * tokens_per_s * served_s

    extra_tier_kg = (
        jnp.sum(tiers.capacity_bytes[1:] / units.GB * tiers.embodied_kgco2e_per_gb[1:])
        if len(chip.tiers) > 1
        else 0.0
    )
    # unknown per-chip figure: logic die area x kg/cm^2 + main memory x kg/GB
    estimate_kg = chip.die_area_mm2 / 100.0 * economics.embodied_kgco2e_per_cm2_logic + (
        tiers.capacity_bytes[0] / units.GB * tiers.embodied_kgco2e_per_gb[0]
    )
    chip_kg = jnp.where(jnp.isnan(chip.embodied_kgco2e), estimate_kg, chip.embodied_kgco2e)
    embodied_g = chips * (chip_kg + extra_tier_kg) * 1e3
    g_embodied = embodied_g / (served_s * tokens_per_s)
    g_operational = energy_kwh_per_token * economics.grid_gco2e_per_kwh

    used = capacity_used_bytes(system, model, workload, compression)
    margin = tiers.capacity_bytes - used
    fits = jnp.all(margin >= 0).astype(used.dtype)

    kv_frac = jnp.asarray(system.resolved_placement().kv_cache, dtype=float)
    low = jnp.array([1.0 if t.low_write_endurance else 0.0 for t in chip.tiers])
    kv_write_per_step = counts.kv_cache_bytes(model, compression, workload.batch, 1.0) / (
        counts.kv_shard_factor(model, workload.tp) * workload.pp
    )
    write_rate = kv_write_per_step * kv_frac / tpot  # bytes/s into each tier
    wear = tiers.write_endurance_cycles * tiers.capacity_bytes
    lifetime_years = (
        jnp.where(
            (write_rate > 0) & jnp.isfinite(wear),
            safe_div(jnp.where(jnp.isfinite(wear), wear, 0.0), write_rate),
            jnp.inf,
        )
        / units.YEAR
    )

    mean_step = jax.tree_util.tree_map(lambda v: v / n_out, dec)
    return Result(
        tpot_s=tpot,
        ttft_s=pre.time_s,
        e2e_latency_s=e2e,
        tokens_per_s=tokens_per_s,
        tokens_per_s_per_user=1.0 / tpot,
        decode_tokens_per_s=workload.dp * workload.batch / tpot,
        energy_j_per_token=energy_per_token,
        power_w=power_w,
        usd_per_million_tokens=usd_per_token * 1e6,
        tco_usd=tco,
        gco2e_per_token=g_operational + g_embodied,
        gco2e_operational_per_token=g_operational,
        gco2e_embodied_per_token=g_embodied,
        capacity_used_bytes=used,
        capacity_margin_bytes=margin,
        fits=fits,
        kv_on_low_endurance=jnp.sum(kv_frac * low),
        tier_lifetime_years=lifetime_years,
        decode=mean_step,
        prefill=pre,
    )


evaluate_jit = jax.jit(evaluate, static_argnames=("options",))
