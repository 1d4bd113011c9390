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
):
    hd = head_dim
    tok = batch
    ops = []
    # attention projections q, k, v, o
    attn_w = d_model * (n_heads * hd) * 2 + d_model * (n_kv_heads * hd) * 2
    ops.append(
        (
            2 * tok * attn_w / tp,
            attn_w * weight_bytes / tp
            + tok * (2 * d_model + 2 * n_heads * hd + 2 * n_kv_heads * hd) * act_bytes / tp,
        )
    )
    # attention over context + the new token
    kv_split = min(tp, n_kv_heads)
    span = context + 1
    ops.append(
        (
            2 * tok * span * (n_heads / tp) * (2 * hd),
            batch * context * 2 * n_kv_heads * hd * kv_bytes / kv_split
            + tok * 2 * n_kv_heads * hd * kv_bytes / kv_split,
        )
    )
    # gated MLP
    mlp_w = 3 * d_model * d_ff
    ops.append(
        (2 * tok * mlp_w / tp, mlp_w * weight_bytes / tp + tok * (2 * d_model + 2 * d_ff) * act_bytes / tp)
    )
    per_layer = sum(max(f / peak_flops, b / mem_bw) for f, b in ops)
    # LM head and embedding gather
    head = max(
        2 * batch * vocab * d_model / tp / peak_flops,
        (vocab * d_model * weight_bytes + batch * (d_model + vocab) * act_bytes) / tp / mem_bw,
    )
    emb = (tok * d_model * weight_bytes + tok * d_model * act_bytes) / mem_bw
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
