"""A plain numpy, hard-max reference of one decode step for dense GQA models.

Written independently of hwgrad.counts / hwgrad.cost from the textbook roofline: every op
takes max(FLOPs / peak, bytes / bandwidth); tensor parallelism divides weights, FLOPs and
KV heads; one ring/tree all-reduce after attention and after the MLP of every layer.
Used by the tests to check the JAX model's values (hard and straight-through modes) and the
bias of the smooth mode.
"""

from __future__ import annotations

import math


def decode_step_s(
    *,
    n_layers,
    d_model,
    n_heads,
    n_kv_heads,
    head_dim,
    d_ff,
    vocab,
    batch,
    context,
    tp,
    weight_bytes,
    kv_bytes,
    act_bytes,
    peak_flops,
    mem_bw,
    link_bw,
    alpha_s,
    allreduce=None,
    attn_weight_bytes=None,
    attn_peak_flops=None,
    head_weight_bytes=None,
    head_peak_flops=None,
    kv_reads=1.0,
):
    """Seconds of one decode step; ``attn_*`` / ``head_*`` (default: the other weights'
    bytes and peak) are the attention projections' and the embedding + LM head's own
    weight bytes and matmul peak (mixed-precision checkpoints); ``kv_reads``: times the
    attention kernel reads the cache (once per query head without grouped reads)."""
    attn_b = weight_bytes if attn_weight_bytes is None else attn_weight_bytes
    attn_peak = peak_flops if attn_peak_flops is None else attn_peak_flops
    head_b = weight_bytes if head_weight_bytes is None else head_weight_bytes
    head_peak = peak_flops if head_peak_flops is None else head_peak_flops
    hd = head_dim
    tok = batch
    ops = []
    # attention projections q, k, v, o
    attn_w = d_model * (n_heads * hd) * 2 + d_model * (n_kv_heads * hd) * 2
    attn_bytes = attn_w * attn_b / tp + tok * (2 * d_model + 2 * n_heads * hd + 2 * n_kv_heads * hd) * act_bytes / tp
    per_layer = max(2 * tok * attn_w / tp / attn_peak, attn_bytes / mem_bw)
    # attention over context + the new token
    kv_split = min(tp, n_kv_heads)
    span = context + 1
    ops.append(
        (
            2 * tok * span * (n_heads / tp) * (2 * hd),
            kv_reads * batch * context * 2 * n_kv_heads * hd * kv_bytes / kv_split
            + tok * 2 * n_kv_heads * hd * kv_bytes / kv_split,
        )
    )
    # gated MLP
    mlp_w = 3 * d_model * d_ff
    ops.append(
        (2 * tok * mlp_w / tp, mlp_w * weight_bytes / tp + tok * (2 * d_model + 2 * d_ff) * act_bytes / tp)
    )
    per_layer += sum(max(f / peak_flops, b / mem_bw) for f, b in ops)
    # LM head and embedding gather
    head = max(
        2 * batch * vocab * d_model / tp / head_peak,
        (vocab * d_model * head_b + batch * (d_model + vocab) * act_bytes) / tp / mem_bw,
    )
    emb = (tok * d_model * head_b + tok * d_model * act_bytes) / mem_bw
    # all-reduces: best of ring and tree
    n = tok * d_model * act_bytes
    if allreduce is not None:  # a fabric's all-reduce (seconds for n bytes over p chips), in bf16
        comm = 2 * n_layers * allreduce(tok * d_model * 2.0, tp)
    elif tp > 1:
        ring = 2 * (tp - 1) * alpha_s + 2 * (tp - 1) / tp * n / link_bw
        tree = 2 * math.log2(tp) * alpha_s + 2 * n / link_bw
        comm = 2 * n_layers * min(ring, tree)
    else:
        comm = 0.0
    return n_layers * per_layer + head + emb + comm


# ----------------------------------------------------------------------------- memory, NMC, power
# The terms of hwgrad.memory and hwgrad.power written out op by op in plain numpy/Python
# (hard max, no surrogates), for a dense GQA decode step at tp = 1. Chunk sizes are assumed
# to be whole multiples of every tier's access granularity (the tests pick such cases).


def dense_decode_ops(
    *, n_layers, d_model, n_heads, n_kv_heads, head_dim, d_ff, vocab, batch, context, w_b, kv_b, a_b
):
    """Per-op totals over layers of one decode step at tp = 1: a list of dicts with
    ``flops, weights, kv, act, out, unit, kind`` (bytes; ``unit`` = bytes of one output's
    reduction: a weight row, or one sequence-head of K and V)."""
    hd, tok = head_dim, batch
    attn_w = d_model * n_heads * hd * 2 + d_model * n_kv_heads * hd * 2
    row = d_model * w_b
    return [
        dict(
            kind="gemv",
            flops=2 * tok * attn_w * n_layers,
            weights=attn_w * w_b * n_layers,
            kv=0.0,
            act=tok * (2 * d_model + 2 * n_heads * hd + 2 * n_kv_heads * hd) * a_b * n_layers,
            out=tok * (n_heads * hd + 2 * n_kv_heads * hd + d_model) * a_b * n_layers,
            unit=row,
        ),
        dict(
            kind="attention",
            flops=2 * tok * (context + 1) * n_heads * 2 * hd * n_layers,
            weights=0.0,
            kv=(batch * context + tok) * 2 * n_kv_heads * hd * kv_b * n_layers,
            act=0.0,
            out=tok * n_heads * hd * a_b * n_layers,
            unit=(context + 1) * 2 * hd * kv_b,
        ),
        dict(
            kind="gemv",
            flops=2 * tok * 3 * d_model * d_ff * n_layers,
            weights=3 * d_model * d_ff * w_b * n_layers,
            kv=0.0,
            act=tok * (2 * d_model + 2 * d_ff) * a_b * n_layers,
            out=tok * (2 * d_ff + d_model) * a_b * n_layers,
            unit=row,
        ),
        dict(
            kind="gemv",
            flops=2 * batch * vocab * d_model,
            weights=vocab * d_model * w_b,
            kv=0.0,
            act=batch * (d_model + vocab) * a_b,
            out=batch * vocab * a_b,
            unit=row,
        ),
        dict(
            kind="embedding",
            flops=0.0,
            weights=tok * d_model * w_b,
            kv=0.0,
            act=tok * d_model * a_b,
            out=0.0,
            unit=0.0,
        ),
    ]


def parallel_memory_s(tier_bytes, tier_bw, channel_of_tier, channel_bw):
    """max over groups: an own-interface tier takes bytes / bw; tiers behind one channel
    take max(sum of their times, their bytes / channel bandwidth)."""
    times = []
    for t, (b, bw) in enumerate(zip(tier_bytes, tier_bw, strict=True)):
        if channel_of_tier[t] < 0:
            times.append(b / bw)
    for k, cbw in enumerate(channel_bw):
        members = [t for t in range(len(tier_bytes)) if channel_of_tier[t] == k]
        if members:
            times.append(sum(tier_bytes[t] / tier_bw[t] for t in members))
            times.append(sum(tier_bytes[t] for t in members) / cbw)
    return max(times)


def tiered_decode_step_s(
    ops, peak_flops, tier_bw, frac_w, frac_kv, frac_act, channel_of_tier=None, channel_bw=()
):
    """Decode step time with weights / KV / activations split over parallel tiers."""
    n = len(tier_bw)
    channel_of_tier = channel_of_tier or [-1] * n
    total = 0.0
    for op in ops:
        tb = [op["weights"] * frac_w[t] + op["kv"] * frac_kv[t] + op["act"] * frac_act[t] for t in range(n)]
        total += max(op["flops"] / peak_flops, parallel_memory_s(tb, tier_bw, channel_of_tier, channel_bw))
    return total


def nmc_decode_step(ops, *, bw, mult, rate16, act_bits, shard, e_byte, e_nmc_byte, e_nmc_flop, cap_w):
    """One tier holding everything, GEMV and attention offloaded to its logic (decode).

    Per offloaded op: ``max(host interface time (activations + outputs x max(1, unit /
    shard)), FLOPs / (rate16 x 16/act_bits), driver bytes / (bw x mult), energy / cap)``; the
    embedding gather stays on the host. Returns ``(time_s, interface_bytes, internal_bytes,
    nmc_flops, nmc_energy_j)``.
    """
    total = ifc = internal = flops = energy = 0.0
    scale = min(max(act_bits, 4.0), 16.0)
    for op in ops:
        if op["kind"] == "embedding":
            b = op["weights"] + op["act"]
            total += b / bw
            ifc += b
            continue
        driver = op["weights"] + op["kv"]
        k = max(1.0, op["unit"] / shard)
        host_b = op["act"] + op["out"] * k
        e = driver * e_nmc_byte + op["flops"] * e_nmc_flop * scale / 16
        t_nmc = max(
            op["flops"] / (rate16 * 16 / scale),
            driver / (bw * mult),
            e / cap_w if math.isfinite(cap_w) else 0.0,
        )
        total += max(host_b / bw, t_nmc)
        ifc += host_b
        internal += driver
        flops += op["flops"]
        energy += e
    return total, ifc, internal, flops, energy


def capped_step(time_s, dynamic_j, *, tdp_w, idle_fraction, tier_idle_w, active_fraction, busy):
    """Power roofline: ``t' = max(t, E_dyn / (TDP - P_idle - busy P_active))``; returns
    ``(t', idle_j, active_j)``."""
    idle = idle_fraction * tdp_w + tier_idle_w
    active = active_fraction * (1 - idle_fraction) * tdp_w
    t = max(time_s, dynamic_j / (tdp_w - idle - busy * active))
    return t, idle * t, active * busy * t
