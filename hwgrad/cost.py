"""The cost model: roofline per op over memory tiers, collectives, prefill and decode.

One forward pass on one chip of a tensor-parallel group (counts from `counts`):

    t_op   = rmax(flops_op / (peak(act_bits) * flops_eff),
                  max_t sum_c bytes_op,c * f_c,t / (bw_t * bw_eff))  +  launches_op * op_overhead
    t_comm = sum_collectives calls * (alpha-beta time + collective_overhead)   (network.py;
             all-reduce payloads in bf16, groups beyond the scale-up domain cross scaleout)
    t_pass = overlap * rmax(sum t_op, t_comm) + (1 - overlap) * (sum t_op + t_comm)

where ``c`` ranges over tensor classes (weights, KV cache, activations), ``f_c,t`` is the
fraction of class ``c`` placed in tier ``t`` and ``rmax`` the roofline maximum of
`hwgrad.smooth.roofline_max` (exact value, smooth gradient by default). A pipeline of
``pp`` stages and ``m`` micro-batches takes ``(m + pp - 1) t_pass(B/m) / pp`` for a
one-shot prefill (the ``(pp - 1)/(m + pp - 1)`` bubble of GPipe) and
``max(m, pp) t_pass(B/m) / pp`` per decode round (micro-batches circulate; stages idle when
``m < pp``), plus ``pp - 1`` stage-to-stage sends per micro-batch.

A request (static batch) costs one prefill of ``prompt_len`` tokens per sequence (its time
is the time to first token) and ``output_len`` decode steps whose context grows from
``prompt_len``; the sum over steps is integrated with Gauss-Legendre quadrature over the
context (exact for the linear growth of KV traffic; the kinks of the roofline add a small,
tested error).

Memory time is the maximum over parallel tiers (tiers on a shared channel add up) and
near-memory compute runs per phase (`hwgrad.memory`). Energy = idle + active +
dynamic (bytes x energy per tier, FLOPs by die and dtype, link bytes), and a pass is slowed
to keep its average power under the TDP (`hwgrad.power`).
Roofline after Williams, Waterman & Patterson, CACM 2009; the decode accounting follows
"How To Scale Your Model" (jax-ml/scaling-book), inference chapter.
"""

# Longer than ~600 lines: the forward pass, the request-level serving modes (static waves,
# continuous, disaggregated) and evaluate() share the PassCost / Result breakdowns. The serving
# part is the candidate to move out (next to the serving model of hwgrad/service.py).

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from . import counts, memory, network, power, pruning, stacks, units
from .smooth import ceil_st, roofline_max, safe_div, smooth_max
from .specs import (
    Compression,
    Economics,
    Efficiency,
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
    ``time_s`` is the modelled wall time (after the power roofline). Energies are for all
    ``tp * pp`` chips: ``energy_memory_j`` (all tiers and shared channels; per tier in
    ``energy_memory_tier_j``, shared channels in ``energy_channel_j``),
    ``energy_compute_j`` (host die + memory-side logic, the latter also in
    ``energy_compute_nmc_j``), ``energy_network_j``, and ``energy_static_j`` = idle
    (``energy_idle_j``) + active clock/stall power (``energy_active_j``) over time
    (`hwgrad.power`). ``power_s`` is the time the TDP alone would impose;
    ``on_memory_fraction`` (per op of `hwgrad.counts.OP_NAMES`) the fraction of each
    op's driving bytes processed by memory-side logic.
    """

    time_s: float | jax.Array
    compute_s: float | jax.Array
    weights_s: float | jax.Array
    kv_cache_s: float | jax.Array
    activations_s: float | jax.Array
    communication_s: float | jax.Array
    overhead_s: float | jax.Array
    flops: float | jax.Array
    bytes_per_tier: float | jax.Array
    link_bytes: float | jax.Array
    energy_memory_j: float | jax.Array
    energy_compute_j: float | jax.Array
    energy_network_j: float | jax.Array
    energy_static_j: float | jax.Array
    energy_memory_tier_j: float | jax.Array = None
    energy_channel_j: float | jax.Array = None
    energy_compute_nmc_j: float | jax.Array = None
    energy_idle_j: float | jax.Array = None
    energy_active_j: float | jax.Array = None
    power_s: float | jax.Array = None
    on_memory_fraction: float | jax.Array = None

    @property
    def energy_j(self):
        return self.energy_memory_j + self.energy_compute_j + self.energy_network_j + self.energy_static_j

    def energy_components(self) -> dict:
        """Energy by component, J (all chips): ``compute_host``, ``compute_memory_side``,
        ``memory`` (``(T,)`` per tier), ``channel``, ``network``, ``idle``, ``active``.
        They sum to `energy_j`."""
        return {
            "compute_host": self.energy_compute_j - self.energy_compute_nmc_j,
            "compute_memory_side": self.energy_compute_nmc_j,
            "memory": self.energy_memory_tier_j,
            "channel": self.energy_channel_j,
            "network": self.energy_network_j,
            "idle": self.energy_idle_j,
            "active": self.energy_active_j,
        }

    def component_times(self):
        """``(6,)`` array in the order of `COMPONENTS`."""
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
    """Everything `evaluate` reports for one design point (all SI units).

    ``capacity_margin_bytes`` is, per tier of one chip, the capacity the engine may use
    (``capacity x efficiency.memory_fraction``: 0.9 on the calibrated stacks, 1 on the
    ideal one) less ``capacity_used_bytes``, so ``fits`` (``1.0`` when every margin is
    non-negative) counts against the memory the KV planning of `sequences_that_fit` uses.
    ``decode`` is the mean decode step, ``prefill`` the prefill of one batch (static) or
    of one request (continuous, disaggregated); ``waves`` is the number of back-to-back
    static batches the request runs in when the whole batch's KV cache does not fit
    (fractional on a stack that preempts, `effective_waves`).
    ``kv_on_low_endurance`` is the fraction of the KV cache placed on flash-like tiers (an
    endurance violation unless 0). ``tier_lifetime_years`` is the wear-out time of each tier
    under the decode's KV writes (``inf`` without writes or without an endurance figure).
    The paper's figures of merit are properties: tokens per joule (performance/W), per
    dollar of TCO and per gram of CO2e.
    """

    tpot_s: float | jax.Array
    ttft_s: float | jax.Array
    e2e_latency_s: float | jax.Array
    tokens_per_s: float | jax.Array
    tokens_per_s_per_user: float | jax.Array
    decode_tokens_per_s: float | jax.Array
    energy_j_per_token: float | jax.Array
    power_w: float | jax.Array
    usd_per_million_tokens: float | jax.Array
    tco_usd: float | jax.Array
    gco2e_per_token: float | jax.Array
    gco2e_operational_per_token: float | jax.Array
    gco2e_embodied_per_token: float | jax.Array
    capacity_used_bytes: float | jax.Array
    capacity_margin_bytes: float | jax.Array
    fits: float | jax.Array
    kv_on_low_endurance: float | jax.Array
    tier_lifetime_years: float | jax.Array
    decode: PassCost
    prefill: PassCost
    waves: float | jax.Array = 1.0

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


def seconds_per_flop(system: System, compression: Compression, bits=None):
    """1 / peak FLOP/s at the activation width, interpolated between 4, 8 and 16 bits.

    Peaks double per halving of operand width on tensor cores, so ``1/peak`` is linear in
    bits between the published points; 2:4 sparsity runs at the dense peak on half the
    FLOPs (see `counts.flop_fraction`). ``bits`` (e.g. `counts.op_compute_bits`, one width
    per op) replaces ``compression.act_bits``.
    """
    chip = system.chip
    inv = jnp.stack(
        [
            safe_div(1.0, chip.peak_flops_fp4),
            safe_div(1.0, chip.peak_flops_fp8),
            safe_div(1.0, chip.peak_flops_bf16),
        ]
    )
    bits = compression.act_bits if bits is None else bits
    return jnp.interp(jnp.clip(bits, 4.0, 16.0), jnp.array([4.0, 8.0, 16.0]), inv)


def gemm_tile_factor(chip, model: Model, workload: Workload, new_tokens, mode: str = "straight_through"):
    """``(n_ops,)`` FLOP multiplier of tile quantisation at small M.

    A GEMM over ``T`` tokens runs ``ceil(T / tile) * tile`` rows of the chip's tensor-core
    tile (``Chip.gemm_tile_tokens``), so the compute of a decode step at batch 1 costs a
    whole tile. Routed experts see ``T k / E_touched`` tokens each; the LM head one token
    per sequence. The straight-through ceiling keeps the gradient of the unpadded count;
    ``mode="smooth"`` pads only below one tile, ``smax(T, tile) / T`` (continuous).
    """
    tokens = workload.batch * new_tokens
    touched = counts.expected_distinct_experts(model.n_experts, model.n_experts_active, tokens)
    per_expert = safe_div(tokens * model.n_experts_active, touched, fill=1.0)
    tile = jnp.maximum(chip.gemm_tile_tokens, 1.0)
    rows = {"attn_proj": tokens, "ffn_dense": tokens, "moe": per_expert, "lm_head": workload.batch}

    def pad(t):
        t = jnp.maximum(t, 1e-9)
        if mode == "smooth":
            padded = smooth_max(jnp.stack(jnp.broadcast_arrays(t, tile), -1))
        else:
            padded = ceil_st(t / tile) * tile
        return jnp.where(tile > 1.0, padded / t, 1.0)

    one = jnp.ones_like(jnp.asarray(tokens, dtype=float))
    return jnp.stack([pad(rows[n]) if n in rows else one for n in counts.OP_NAMES])


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
    tiers = memory.stacked_tiers(system)
    frac = memory.class_fractions(system)  # (C, T)
    chunk = counts.read_chunk_bytes(model, compression, workload)
    chip = system.chip
    # achieved fraction of peak bandwidth per class: the chip family's achievable fraction x
    # the stack's kernels (the paged KV cache read by attention kernels at its own fraction)
    bw_frac = chip.bandwidth_efficiency * efficiency.bandwidth_efficiency
    class_frac = bw_frac * jnp.stack(jnp.broadcast_arrays(1.0, efficiency.attention_efficiency, 1.0, 1.0))
    bw = memory.effective_bandwidth(tiers, chunk, class_frac[:, None], options.roofline)  # (C, T)

    # corpus (RAG context) is read during the prefill only; charged to the embedding column
    corpus = jnp.where(steady_state, 0.0, micro.batch * workload.corpus_read_bytes_per_sequence)
    n_ops = ops.flops.shape[-1]
    corpus_row = jnp.zeros(n_ops).at[n_ops - 1].set(corpus)
    # a decode attention kernel without grouped KV reads moves the cache once per query head
    kv_bytes = counts.kv_bytes_moved(ops, model, micro, efficiency.kv_group_reuse, new_tokens)
    class_bytes = jnp.stack([ops.weight_bytes, kv_bytes, ops.act_bytes, corpus_row])  # (C, O)

    # parallel tiers, shared channels and phase-aware near-memory compute (memory.py)
    flops_frac = chip.flops_efficiency * efficiency.flops_efficiency
    tile = gemm_tile_factor(chip, model, micro, new_tokens, options.roofline)
    op_bits = counts.op_compute_bits(compression)
    t_flop = seconds_per_flop(system, compression, op_bits) / flops_frac * tile
    oc = memory.op_costs(
        system.chip,
        tiers,
        bw,
        frac,
        class_bytes,
        ops.flops,
        ops.out_bytes,
        memory.nmc_unit_bytes(model, compression, new_tokens, context_len),
        t_flop,
        compression.act_bits,
        efficiency.flops_efficiency,  # memory-side logic: the stack's kernels, not the host's fraction
        bw_frac,
        steady_state,
        options.smooth_p,
        options.roofline,
    )
    class_time = oc.class_time
    compute_t = oc.compute
    # small-transfer ramp: a kernel that streams memory waits one memory latency first
    moves = (jnp.sum(class_time, axis=0) > 0).astype(compute_t.dtype)
    ramp_t = ops.launches * moves * chip.kernel_memory_latency_s
    overhead_t = ops.launches * stacks.kernels_per_op(model) * efficiency.op_overhead_s
    t_ops = jnp.sum(oc.time + ramp_t + overhead_t) + efficiency.step_overhead_s

    net, out = system.network, system.scaleout
    tp, ep = workload.tp, workload.ep
    co = efficiency.collective_overhead_s
    # all-reduces run in the communication dtype (bf16), not the activation width
    tp_group = comm.tp_allreduce_chips  # tp, or tp / attention_dp
    ar_bytes = network.comm_payload_bytes(comm.tp_allreduce_bytes, compression.act_bits, efficiency.comm_bits)
    ep_ar_bytes = network.comm_payload_bytes(
        comm.ep_allreduce_bytes, compression.act_bits, efficiency.comm_bits
    )
    # the stack's collective library: its algorithms and their bandwidth fractions, and its
    # fitted per-call software latency (zero for a group of one chip)
    lib = efficiency.collective_bandwidth_fraction
    t_tp = comm.tp_allreduce_calls * network.allreduce_s(
        net, ar_bytes, tp_group, options.roofline, sync_s=co, implementation=lib, scaleout=out
    )
    t_ep = comm.ep_alltoall_calls * (network.alltoall_s(net, comm.ep_alltoall_bytes, ep, out) + co)
    t_ep_ar = comm.ep_allreduce_calls * (
        network.allreduce_s(net, ep_ar_bytes, tp / ep, options.roofline, implementation=lib, scaleout=out)
        + co
    )
    t_comm = t_tp + t_ep + t_ep_ar
    ov = efficiency.comm_overlap
    both = jnp.stack([t_ops, t_comm])
    t_pass = ov * roofline_max(both, p=options.smooth_p, mode=options.roofline) + (1.0 - ov) * (
        t_ops + t_comm
    )

    # pipeline: each stage runs 1/pp of the pass
    slots = jnp.where(steady_state, jnp.maximum(m_micro, pp), m_micro + pp - 1.0)
    t_p2p = network.pipeline_p2p_s(net, comm.pp_p2p_bytes, tp, pp, out)
    time_s = slots * t_pass / pp + t_p2p * m_micro

    # bytes moved per tier (per chip, whole step); power roofline and energy (power.py)
    # counts cover every layer of the model on one chip of a TP group; a pipeline stage's
    # chip runs 1/pp of them, m times per step
    chips = tp * pp
    per_chip = m_micro / pp
    bytes_per_tier = (oc.interface_bytes + oc.internal_bytes) * per_chip
    flops = jnp.sum(ops.flops) * m_micro
    link_bytes = m_micro * (
        (
            comm.tp_allreduce_calls * 2.0 * ar_bytes * (tp_group > 1)
            + comm.ep_alltoall_calls * comm.ep_alltoall_bytes
        )
        / pp
        + comm.pp_p2p_calls * comm.pp_p2p_bytes / jnp.maximum(chips, 1.0)
    )
    pw = power.pass_power(
        system.chip,
        tiers,
        compression.act_bits,
        oc.host_flops * per_chip,
        oc.nmc_flops * per_chip,
        oc.interface_bytes * per_chip,
        oc.internal_bytes * per_chip,
        oc.channel_bytes * per_chip,
        link_bytes,
        net.energy_j_per_byte,
        time_s,
        m_micro / slots,
        options.smooth_p,
        options.roofline,
        host_bits=op_bits,
    )
    time_s = pw.time_s
    e_tier = chips * pw.memory_tier_j
    e_channel = chips * pw.channel_j
    e_compute_nmc = chips * pw.compute_nmc_j
    e_idle = chips * pw.idle_j
    e_active = chips * pw.active_j

    scale = slots / pp * 1.0
    return PassCost(
        time_s=time_s,
        compute_s=jnp.sum(compute_t) * scale,
        weights_s=jnp.sum(class_time[0]) * scale,
        kv_cache_s=jnp.sum(class_time[1]) * scale,
        activations_s=jnp.sum(class_time[2]) * scale,
        communication_s=t_comm * scale + t_p2p * m_micro,
        overhead_s=(jnp.sum(overhead_t) + efficiency.step_overhead_s) * scale,
        flops=flops,
        bytes_per_tier=bytes_per_tier,
        link_bytes=link_bytes,
        energy_memory_j=jnp.sum(e_tier) + e_channel,
        energy_compute_j=chips * pw.compute_host_j + e_compute_nmc,
        energy_network_j=chips * pw.network_j,
        energy_static_j=e_idle + e_active,
        energy_memory_tier_j=e_tier,
        energy_channel_j=e_channel,
        energy_compute_nmc_j=e_compute_nmc,
        energy_idle_j=e_idle,
        energy_active_j=e_active,
        power_s=pw.power_s,
        on_memory_fraction=oc.on_memory,
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


def _passes(
    system, model, workload, compression, efficiency, options, new_tokens, context_len, steady_state, batch=None
):
    """Several forward passes of one traced graph: ``vmap`` over ``(k,)`` arrays of
    ``new_tokens``, ``context_len``, ``steady_state`` (0/1) and ``batch`` (sequences; default
    ``workload.batch`` for every pass). One trace and one compiled copy of the forward pass
    serve the prefill and every decode node (compile time is proportional to the traced
    graph, not to the number of points)."""
    batch_axis = None if batch is None else 0
    batch = workload.batch if batch is None else jnp.asarray(batch, dtype=float)

    def one(n, c, s, b):
        wl = replace(workload, batch=b)
        return forward_pass(system, model, wl, compression, efficiency, n, c, options, steady_state=s)

    return jax.vmap(one, in_axes=(0, 0, 0, batch_axis))(
        jnp.asarray(new_tokens, dtype=float),
        jnp.asarray(context_len, dtype=float),
        jnp.asarray(steady_state, dtype=float),
        batch,
    )


def _request_passes(system, model, workload, compression, efficiency, options, redo_len=None):
    """The prefill and the decode quadrature nodes, evaluated as one batched pass.

    Returns ``(prefill, decode_total)``, and with ``redo_len`` also the prefill of one
    sequence of that many tokens (a preempted request prefilled again). Step ``i``
    (0-based) of the decode sees ``prompt_len + i`` cached tokens; the sum over ``output_len`` steps is the integral of
    the step cost over ``[prompt_len - 1/2, prompt_len + output_len - 1/2]`` (midpoint
    rule), evaluated with ``options.decode_quadrature_nodes`` Gauss-Legendre nodes. The
    prefill and the nodes share one traced graph (`_passes`).
    """
    nodes, weights = _gauss_legendre(options.decode_quadrature_nodes)
    span = workload.output_len
    ctx = jnp.maximum(workload.prompt_len - 0.5 + span * nodes, 0.0)
    k = nodes.shape[0]
    new_tokens = jnp.concatenate(
        [jnp.reshape(jnp.asarray(workload.prompt_len, dtype=float), (1,)), jnp.ones(k)]
    )
    context = jnp.concatenate([jnp.zeros(1), ctx])
    steady = jnp.concatenate([jnp.zeros(1), jnp.ones(k)])
    batch = None
    if redo_len is not None:
        new_tokens = jnp.concatenate([new_tokens, jnp.reshape(jnp.asarray(redo_len, dtype=float), (1,))])
        context = jnp.concatenate([context, jnp.zeros(1)])
        steady = jnp.concatenate([steady, jnp.zeros(1)])
        batch = jnp.concatenate([jnp.full(k + 1, workload.batch, dtype=float), jnp.ones(1)])
    both = _passes(system, model, workload, compression, efficiency, options, new_tokens, context, steady, batch)
    pre = jax.tree_util.tree_map(lambda v: v[0], both)
    dec = jax.tree_util.tree_map(lambda v: span * jnp.tensordot(weights, v[1 : k + 1], axes=(0, 0)), both)
    if redo_len is None:
        return pre, dec
    return pre, dec, jax.tree_util.tree_map(lambda v: v[-1], both)


def decode_total(system, model, workload, compression, efficiency, options=Options()) -> PassCost:
    """Sum of ``output_len`` decode steps as the context grows from ``prompt_len``."""
    return _request_passes(system, model, workload, compression, efficiency, options)[1]


# ----------------------------------------------------------------------------- serving modes


@spec
class Timing:
    """Request-level timing of one serving mode (see `serve`)."""

    ttft_s: float | jax.Array
    tpot_s: float | jax.Array
    e2e_s: float | jax.Array
    tokens_per_s: float | jax.Array
    energy_j_per_token: float | jax.Array
    waves: float | jax.Array
    prefill: PassCost
    decode_step: PassCost


def sequences_per_tier(
    system: System, model: Model, workload: Workload, compression: Compression, memory_fraction, budget_tokens, context_len
):
    """How many sequences of ``context_len`` cached tokens each memory tier of one chip has
    room for (``inf`` where the tier has unknown capacity or holds no KV cache).

    The engine may use ``memory_fraction`` of each tier (vLLM's ``gpu_memory_utilization``);
    out of it come the weights, the read-mostly context and the activation workspace of one
    step of ``budget_tokens`` tokens (`hwgrad.counts.activation_bytes_resident`: vLLM
    profiles a forward pass of its ``max_num_batched_tokens`` at start-up and sets that peak
    aside, TensorRT-LLM sizes its buffers for ``max_num_tokens``); the rest holds the KV
    cache.
    """
    tiers = memory.stacked_tiers(system)
    frac = memory.class_fractions(system)  # (classes, tiers)
    fixed = capacity_used_bytes(system, model, replace(workload, batch=0.0), compression)
    act = counts.activation_bytes_resident(model, compression, replace(workload, batch=1.0, prompt_len=budget_tokens))
    fixed = fixed + act * frac[2]
    m, c = pruning.resolve(model, compression)
    kv_seq = counts.kv_cache_bytes(m, c, 1.0, context_len) / (counts.kv_cache_split(m, workload) * workload.pp)
    per_seq = kv_seq * frac[1]
    cap = tiers.capacity_bytes * memory_fraction
    binds = (per_seq > 0) & jnp.isfinite(cap)
    room = jnp.where(binds, cap - fixed, 1.0)
    return jnp.where(binds, room / jnp.where(binds, per_seq, 1.0), jnp.inf)


def effective_waves(batch, n_fit, prompt_len, output_len, on_demand):
    """Back-to-back static batches a batch of ``batch`` sequences costs when only ``n_fit``
    of ``prompt_len + output_len`` tokens fit in the KV cache at once (``>= 1``; 1 when the
    batch fits).

    * ``on_demand`` 0 (the scheduler reserves each request's whole context): ``ceil(B /
      n_fit)`` waves of equal size.
    * ``on_demand`` 1 (blocks allocated as sequences grow, the newest preempted and later
      recomputed when the pool runs out, `hwgrad.stacks.KV_ON_DEMAND_STACKS`): the
      ``n_fit`` sequences that keep their blocks run their ``O`` steps as one wave, and the
      rest, ``B - n_fit``, cost the larger of two terms. Flow: they pass through the full
      pool as under continuous batching, at the concurrency a uniform mix of contexts
      ``I .. I + O`` fits, ``n_fit (I + O) / (I + O / 2)``: ``(B / n_fit - 1) (I + O / 2) /
      (I + O)`` waves of steps. Tail: the first sequence preempted, when the pool filled
      after ``g = n_fit (I + O) / B - I`` steps, still has ``O - g`` steps to go: ``1 -
      clip(g / O, 0, 1)`` of a wave. Within 15 % of a step-by-step simulation of vLLM's
      scheduler (median 2 %, ``tests/scheduler_reference.py``); the prefills of preempted
      requests are `recomputed_tokens`.

    Values in between interpolate. Piecewise constant in the capacity: no gradient flows
    through the count.
    """
    ratio = batch / n_fit
    reserve = jnp.ceil(ratio)
    context = prompt_len + output_len
    flow = (ratio - 1.0) * (prompt_len + output_len / 2.0) / context
    tail = 1.0 - jnp.clip((context / ratio - prompt_len) / output_len, 0.0, 1.0)
    paged = 1.0 + jnp.maximum(flow, tail)
    waves = jnp.where(n_fit >= batch, 1.0, reserve + on_demand * (paged - reserve))
    return jax.lax.stop_gradient(waves)


def recomputed_tokens(batch, n_fit, output_len, on_demand):
    """Context tokens a preempting scheduler prefills again for a static batch of which only
    ``n_fit`` sequences fit (0 when it fits or ``on_demand`` is 0).

    Once the pool is full, every token a running request adds must be paid for by evicting
    a token of some request's context, which is prefilled again when that request returns.
    The first ``n_fit`` requests' growth fits; the rest, ``(B - n_fit) O`` tokens, is
    evicted and recomputed: 0.7-1.7x of what a step-by-step simulation of vLLM's scheduler
    prefills again (median 0.93x; ``tests/scheduler_reference.py``).
    """
    return jax.lax.stop_gradient(on_demand * jnp.maximum(batch - n_fit, 0.0) * output_len)


def sequences_that_fit(system, model, workload, compression, stack):
    """Whole sequences of ``prompt_len + output_len`` tokens that one chip's KV cache holds
    at once under ``stack`` (the tightest tier of `sequences_per_tier`; 0: not one beside
    the weights and the workspace)."""
    fit = sequences_per_tier(
        system,
        model,
        workload,
        compression,
        stack.memory_fraction,
        stack.prefill_chunk_tokens,
        workload.prompt_len + workload.output_len,
    )
    return jnp.floor(jnp.min(fit))


def static_waves(system: System, model: Model, workload: Workload, compression: Compression, stack=None):
    """The back-to-back static batches (`effective_waves`) a static batch costs when its
    whole KV cache does not fit.

    ``n_fit = floor(min_t sequences_per_tier)`` sequences of ``prompt_len + output_len``
    tokens fit at once (`sequences_per_tier` with the stack's ``memory_fraction`` and a
    workspace of its ``prefill_chunk_tokens``; ``stack`` ``None``: the ideal stack, all of
    the capacity and an 8192-token workspace); the stack's ``kv_on_demand`` says whether
    the scheduler reserves each request's whole context (waves) or preempts. A batch of
    which not even one sequence fits is reported by the capacity margin, not here (one
    wave).
    """
    stack = Efficiency.ideal() if stack is None else stack
    n_fit = jnp.maximum(sequences_that_fit(system, model, workload, compression, stack), 1.0)
    return effective_waves(workload.batch, n_fit, workload.prompt_len, workload.output_len, stack.kv_on_demand)


def serve(system, model, workload, compression, efficiency, options=Options()) -> Timing:
    """Time to first token, time per output token, request latency, throughput and energy
    per output token of one replica in the serving mode ``workload.batching``.

    * ``static``: a prefill of the batch, then ``output_len`` decode steps as the context
      grows (Gauss-Legendre quadrature), in `static_waves` back-to-back waves, plus, on a
      preempting stack, the prefills of the `recomputed_tokens` (one-sequence prefills of
      ``I + O / 2`` tokens); tokens/s = ``dp B O / e2e``.
    * ``continuous`` (concurrency ``C = batch``, a closed loop): in steady state the
      sequences in flight are spread evenly over their decode, so a decode step reads the
      KV cache of ``C`` sequences at mean context ``I + O / 2`` (exact for the summed KV
      bytes). ``C / O`` requests finish per step and as many arrive, bringing
      ``q = C I / O`` prompt tokens per step; the engine prefills them in chunk steps of
      ``s = clip(q, min(I, S), S)`` tokens (what arrived since the last chunk: at least one
      prompt, at most the budget ``S = stack.prefill_chunk_tokens``), i.e. ``q / s`` chunk
      steps per decode step. A request's TPOT is its mean step, ``T_dec + ((C - 1) I / O /
      s) T_chunk`` (the other requests' prompts; its own is in its TTFT, so ``C = 1`` is
      plain decode); energy per token counts all ``q / s`` chunk steps. Prompts are not
      spread over every step (a chunk of thousands of tokens is compute-bound and routes
      to every expert of an MoE; decode tokens keep the weight-absorbed MLA form).
      The chunk's own weight read is counted beside the decode step's (an overcount of at
      most ``q / s`` of a decode step's weight time). TTFT is the request's own prefill
      (one sequence) plus the wait for the step in flight; Little's law gives
      ``dp C O / e2e`` tokens/s with ``e2e = TTFT + O TPOT``.
    * ``disaggregated``: the decode pool's steps carry no prefill (TPOT at ``C``
      sequences, mean context ``I + O / 2``); TTFT is the prefill of one request on a
      prefill pool of the same chips plus the transfer of its KV cache over the network
      (each chip sends its shard); tokens/s is the decode pool's ``dp C / TPOT``; energy
      per token adds each request's prefill energy spread over its ``O`` tokens.
    """
    mode = workload.batching
    n_out = workload.output_len
    if mode == "static":
        n_fit = jnp.maximum(sequences_that_fit(system, model, workload, compression, efficiency), 1.0)
        i_len, on_demand = workload.prompt_len, efficiency.kv_on_demand
        waves = effective_waves(workload.batch, n_fit, i_len, n_out, on_demand)
        wave = replace(workload, batch=workload.batch / waves)
        # preempted requests come back as prefills of about their mean context, I + O / 2
        redo_len = i_len + n_out / 2.0
        pre, dec, redo = _request_passes(system, model, wave, compression, efficiency, options, redo_len)
        n_redo = recomputed_tokens(workload.batch, n_fit, n_out, on_demand) / redo_len
        e2e = waves * (pre.time_s + dec.time_s) + n_redo * redo.time_s
        seq_tokens = workload.batch * n_out
        return Timing(
            ttft_s=pre.time_s,
            tpot_s=dec.time_s / n_out,
            e2e_s=e2e,
            tokens_per_s=workload.dp * seq_tokens / e2e,
            energy_j_per_token=(waves * (pre.energy_j + dec.energy_j) + n_redo * redo.energy_j) / seq_tokens,
            waves=waves,
            prefill=pre,
            decode_step=jax.tree_util.tree_map(lambda v: v / n_out, dec),
        )
    if mode not in ("continuous", "disaggregated"):
        raise ValueError(f"workload.batching = {mode!r}: use one of static, continuous, disaggregated")
    c, i_len = workload.batch, workload.prompt_len
    mean_ctx = i_len + n_out / 2.0
    # closed loop at concurrency C: C / O requests finish (and C / O arrive) per decode step,
    # bringing q = C I / O prompt tokens; a chunk step carries what arrived since the last
    # one (at least one prompt, or a full chunk of a longer one; at most the budget S)
    i_one = jnp.maximum(i_len, 1.0)
    budget = efficiency.prefill_chunk_tokens
    q = c * i_len / n_out
    chunk = jnp.clip(q, jnp.minimum(i_one, budget), budget)
    # (new tokens, context, steady state, sequences): the request's own prefill, the decode
    # step and, under continuous batching, a prompt chunk step, as one traced pass
    kinds = [(i_len, 0.0, 0.0, 1.0), (1.0, mean_ctx, 1.0, c)]
    if mode == "continuous":
        kinds.append((i_one, 0.0, 1.0, chunk / i_one))
    columns = (jnp.stack(jnp.broadcast_arrays(*col)) for col in zip(*kinds, strict=True))
    passes = _passes(system, model, workload, compression, efficiency, options, *columns)
    pre, step, *chk = (jax.tree_util.tree_map(lambda v, i=i: v[i], passes) for i in range(len(kinds)))
    if mode == "continuous":
        dec, chk = step, chk[0]
        # a request's mean step: a decode step + the chunk steps of the *other* C - 1
        # requests' prompts ((C - 1) I / O tokens per step; its own prompt is in its TTFT)
        share = jnp.maximum(c - 1.0, 0.0) * i_len / n_out / chunk
        step = jax.tree_util.tree_map(lambda a, b: a + share * b, dec, chk)
        step = replace(step, on_memory_fraction=dec.on_memory_fraction)
        ttft = pre.time_s + step.time_s
        e2e = ttft + n_out * step.time_s
        tokens_per_s = workload.dp * c * n_out / e2e
        # energy per output token: every prompt's chunk work (q tokens per step) over C tokens
        energy = (dec.energy_j + q / chunk * chk.energy_j) / c
    else:  # disaggregated: the decode pool's steps carry no prefill
        kv = counts.kv_cache_bytes(model, compression, 1.0, i_len) / (
            counts.kv_shard_factor(model, workload.tp) * workload.pp
        )
        ttft = pre.time_s + network.p2p_s(system.network, kv)
        e2e = ttft + n_out * step.time_s
        tokens_per_s = workload.dp * c / step.time_s
        energy = step.energy_j / c + safe_div(pre.energy_j, n_out)
    return Timing(
        ttft_s=ttft,
        tpot_s=step.time_s,
        e2e_s=e2e,
        tokens_per_s=tokens_per_s,
        energy_j_per_token=energy,
        waves=jnp.ones_like(step.time_s),
        prefill=pre,
        decode_step=step,
    )


# ----------------------------------------------------------------------------- capacity


def capacity_used_bytes(
    system: System, model: Model, workload: Workload, compression: Compression, budget_tokens=None
):
    """Bytes each tier of one chip holds: weights + final KV cache + activation workspace
    (of a prefill step of at most ``budget_tokens`` tokens, the stack's
    ``prefill_chunk_tokens``; ``None``: the whole batch's prompts at once) + read-mostly
    context."""
    model, compression = pruning.resolve(model, compression)
    resident = memory.resident_bytes(model, compression, workload, budget_tokens)
    return resident @ memory.class_fractions(system)


# ----------------------------------------------------------------------------- cost of ownership


def capex_usd(system: System, economics: Economics, chips=None):
    """Capital cost of ``chips`` chips of ``system`` (default ``system.n_chips``), USD: each
    chip's price x the server multiplier + the capacity of its extra tiers x their price per GB."""
    chip = system.chip
    tiers = memory.stacked_tiers(system)
    extra_tier_usd = (
        jnp.sum(tiers.capacity_bytes[1:] / units.GB * tiers.cost_usd_per_gb[1:]) if len(chip.tiers) > 1 else 0.0
    )
    n = system.n_chips if chips is None else chips
    return n * (chip.price_usd * economics.server_cost_multiplier + extra_tier_usd)


def served_seconds(economics: Economics):
    """Seconds of service over the lifetime: ``lifetime_years x utilization``."""
    return economics.lifetime_years * units.YEAR * economics.utilization


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
        `hwgrad.calibrated_efficiency`; ``Efficiency.speed_of_light()`` for the ideal).
      economics: prices and carbon (default: `hwgrad.presets.default_economics`).
      options: static evaluation options.

    Returns:
      A `Result` pytree of scalars (and per-tier arrays).
    """
    if efficiency is None:
        from .calibrated import calibrated_efficiency

        efficiency = calibrated_efficiency()
    if economics is None:
        from .presets import default_economics

        economics = default_economics()
    model, compression = pruning.resolve(model, compression)
    t = serve(system, model, workload, compression, efficiency, options)
    pre, dec = t.prefill, t.decode_step
    tpot, e2e, tokens_per_s, energy_per_token = t.tpot_s, t.e2e_s, t.tokens_per_s, t.energy_j_per_token
    chips = system.n_chips
    power_w = energy_per_token * tokens_per_s

    # cost: capex amortised over the lifetime + electricity at the facility PUE
    chip = system.chip
    tiers = memory.stacked_tiers(system)
    capex = capex_usd(system, economics)
    served_s = served_seconds(economics)
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
    # unknown per-chip figure: logic die area x kg/cm^2 + main memory x kg/GB; double where
    # so that a NaN die area behind a known figure leaves the gradients finite
    estimated = jnp.isnan(chip.embodied_kgco2e)
    area_mm2 = jnp.where(estimated, chip.die_area_mm2, 0.0)
    estimate_kg = area_mm2 / 100.0 * economics.embodied_kgco2e_per_cm2_logic + (
        tiers.capacity_bytes[0] / units.GB * tiers.embodied_kgco2e_per_gb[0]
    )
    chip_kg = jnp.where(estimated, estimate_kg, jnp.where(estimated, 0.0, chip.embodied_kgco2e))
    embodied_g = chips * (chip_kg + extra_tier_kg) * 1e3
    g_embodied = embodied_g / (served_s * tokens_per_s)
    g_operational = energy_kwh_per_token * economics.grid_gco2e_per_kwh

    used = capacity_used_bytes(system, model, workload, compression, efficiency.prefill_chunk_tokens)
    # against the share of each tier the engine may use, as the KV planning counts it
    margin = tiers.capacity_bytes * efficiency.memory_fraction - used
    fits = jnp.all(margin >= 0).astype(used.dtype)

    kv_frac = jnp.asarray(system.resolved_placement().kv_cache, dtype=float)
    low = jnp.array([1.0 if t.low_write_endurance else 0.0 for t in chip.tiers])
    kv_write_per_step = counts.kv_cache_bytes(model, compression, workload.batch, 1.0) / (
        counts.kv_cache_split(model, workload) * workload.pp
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

    return Result(
        tpot_s=tpot,
        ttft_s=t.ttft_s,
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
        decode=dec,
        prefill=pre,
        waves=t.waves,
    )


evaluate_jit = jax.jit(evaluate, static_argnames=("options",))
