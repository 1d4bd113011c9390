"""Hardware-free counts: parameters, FLOPs, bytes and collective message sizes.

Everything here is a pure ``jnp`` function of a :class:`~hwgrad.specs.Model`, a
:class:`~hwgrad.specs.Compression` and a :class:`~hwgrad.specs.Workload` - no bandwidths,
no FLOP rates - so the same counts serve the roofline, capacity checks and energy.

Conventions (one multiply-add = 2 FLOP):

* GQA/MHA attention per layer: ``W_q = d x H hd``, ``W_k = W_v = d x KV hd``,
  ``W_o = H hd x d``; KV cache ``2 KV hd`` elements per token per layer.
* MLA (DeepSeek-V2/V3, arXiv:2412.19437 sec. 2.1.1): LoRA-factored queries
  (``d x q_lora``, ``q_lora x H (nope + rope)``), a compressed joint KV
  (``d x (kv_lora + rope)``, ``kv_lora x H (nope + v)``) and ``W_o = H v x d``. The cache
  holds ``kv_lora + rope`` elements per token per layer, shared by all heads; decode uses
  the weight-absorbed form, so attention scores cost ``2 H (kv_lora + rope)`` and the value
  sum ``2 H kv_lora`` FLOPs per cached token.
* Gated FFN (SwiGLU/GeGLU): three ``d x d_ff`` matrices; plain FFN: two.
* MoE: each routed expert is an FFN of width ``moe_d_ff``; router ``d x n_experts``.
  Decoding ``T`` tokens with top-``k`` routing over ``E`` experts touches on average
  ``E (1 - (1 - k/E)^T)`` distinct experts (uniform routing, tokens independent) - the
  count whose weights must be streamed from memory.
* Biases, QK-norm vectors and attention sinks (< 0.01 % of any model here) are omitted.
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp

from . import pruning
from .smooth import safe_div
from .specs import Compression, Model, Workload, spec

# ----------------------------------------------------------------------------- parameters


def attention_params_per_layer(m: Model):
    """Weights of one attention block (projections + its RMSNorm vector)."""
    if m.attention == "mla":
        qk_head = m.qk_nope_head_dim + m.qk_rope_head_dim
        has_q_lora = m.q_lora_rank > 0
        q = jnp.where(
            has_q_lora,
            m.d_model * m.q_lora_rank + m.q_lora_rank + m.q_lora_rank * m.n_heads * qk_head,
            m.d_model * m.n_heads * qk_head,
        )
        kv = (
            m.d_model * (m.kv_lora_rank + m.qk_rope_head_dim)
            + m.kv_lora_rank
            + m.kv_lora_rank * m.n_heads * (m.qk_nope_head_dim + m.v_head_dim)
        )
        o = m.n_heads * m.v_head_dim * m.d_model
        return q + kv + o + m.d_model
    q_out = m.n_heads * m.head_dim
    kv_out = 2 * m.n_kv_heads * m.head_dim
    return m.d_model * (q_out + kv_out) + q_out * m.d_model + m.d_model


def _ffn_matrices(m: Model) -> float:
    return 3.0 if m.gated_ffn else 2.0


def dense_ffn_params(m: Model):
    """Weights of one dense FFN block (+ its RMSNorm vector)."""
    return _ffn_matrices(m) * m.d_model * m.d_ff + m.d_model


def expert_params(m: Model):
    """Weights of one routed (or shared) expert."""
    return _ffn_matrices(m) * m.d_model * m.moe_d_ff


def moe_params_per_layer(m: Model):
    """All experts + router + RMSNorm vector of one MoE layer."""
    return (m.n_experts + m.n_shared_experts) * expert_params(m) + m.d_model * m.n_experts + m.d_model


def n_moe_layers(m: Model):
    return m.n_layers - m.n_dense_layers


def embedding_params(m: Model):
    return m.vocab_size * m.d_model


def lm_head_params(m: Model):
    """LM head matrix; tied embeddings share the input table (counted once in totals)."""
    return m.vocab_size * m.d_model


def param_count(m: Model):
    """Total parameters (embeddings and LM head counted once each unless tied)."""
    head = 0.0 if m.tied_embeddings else lm_head_params(m)
    return (
        m.n_layers * attention_params_per_layer(m)
        + m.n_dense_layers * dense_ffn_params(m)
        + n_moe_layers(m) * moe_params_per_layer(m)
        + embedding_params(m)
        + head
        + m.d_model
    )


def active_param_count(m: Model):
    """Parameters used per token: total minus the routed experts a token does not select.

    Both the input embedding table and the LM head are included (the convention of
    ``models.csv``).
    """
    unselected = (m.n_experts - m.n_experts_active) * expert_params(m)
    return param_count(m) - n_moe_layers(m) * unselected


def expected_distinct_experts(n_experts, top_k, n_tokens):
    """Expected number of distinct experts touched by ``n_tokens`` top-``k`` routings.

    ``E (1 - (1 - k/E)^T)``: each token misses a given expert with probability
    ``1 - k/E``. Equals ``k`` for one token and tends to ``E`` for large batches; zero for
    dense models (``E == 0``). Smooth in ``T`` (and ``E``, ``k``) for relaxation.
    """
    e = jnp.maximum(n_experts, 1e-9)
    miss = jnp.clip(1.0 - top_k / e, 0.0, 1.0)
    # miss**T with a safe log so the gradient is finite at miss == 0
    log_miss = jnp.log(jnp.where(miss > 0, miss, 1.0))
    hit_none = jnp.where(miss > 0, jnp.exp(n_tokens * log_miss), 0.0)
    return jnp.where(n_experts > 0, e * (1.0 - hit_none), 0.0)


# ----------------------------------------------------------------------------- bytes per element


def weight_bits_per_param(c: Compression):
    """Stored bits per (dense-shape) weight, including quantisation and sparse metadata.

    Sparse formats store the kept ``(1 - s)`` values plus one bit of index per element
    (a bitmap for unstructured sparsity; the 2-bit index per kept value of 2:4 is also
    1 bit per element).
    """
    value_bits = c.weight_bits + c.weight_overhead_bits
    if c.pattern == "dense":
        return value_bits
    sparsity = 0.5 if c.pattern == "2:4" else c.sparsity
    return (1.0 - sparsity) * value_bits + 1.0


def flop_fraction(c: Compression):
    """Fraction of dense matmul FLOPs executed: 2:4 halves them; unstructured does not."""
    return 0.5 if c.pattern == "2:4" else 1.0


def kv_elements_per_token_per_layer(m: Model):
    """KV-cache elements stored per token per attention layer."""
    if m.attention == "mla":
        return m.kv_lora_rank + m.qk_rope_head_dim
    return 2.0 * m.n_kv_heads * m.head_dim


def kv_bytes_per_token(m: Model, c: Compression):
    """KV-cache bytes per token summed over all layers (before any window truncation)."""
    bits = c.kv_bits + c.kv_overhead_bits
    return m.n_layers * kv_elements_per_token_per_layer(m) * bits / 8.0


def kv_cache_bytes(m: Model, c: Compression, batch, context_len):
    """KV-cache bytes for ``batch`` sequences of ``context_len`` tokens (windowed layers
    keep only their last ``sliding_window`` tokens)."""
    bits = c.kv_bits + c.kv_overhead_bits
    full_layers = m.n_layers - m.n_sliding_layers
    windowed = jnp.minimum(context_len, jnp.where(m.n_sliding_layers > 0, m.sliding_window, 0.0))
    tokens_layers = full_layers * context_len + m.n_sliding_layers * windowed
    return batch * tokens_layers * kv_elements_per_token_per_layer(m) * bits / 8.0


# ----------------------------------------------------------------------------- per-op counts

OP_NAMES = (
    "attn_proj",
    "attn_core_full",
    "attn_core_window",
    "ffn_dense",
    "moe",
    "lm_head",
    "embedding",
)


@spec
class OpCounts:
    """Per-chip work of one forward pass, one entry per op in :data:`OP_NAMES`.

    All arrays have shape ``(len(OP_NAMES),)`` and are totals over every layer that runs
    the op on one chip of a tensor-parallel group (before dividing by pipeline stages).

    Attributes:
      flops: FLOPs on one chip.
      weight_bytes: weight bytes streamed from memory on one chip.
      kv_read_bytes / kv_write_bytes: KV-cache traffic on one chip.
      act_bytes: activation bytes read + written on one chip.
      out_bytes: bytes of the op's outputs (what partial-sum reductions move).
      launches: kernels launched (layers running the op).
    """

    flops: Any
    weight_bytes: Any
    kv_read_bytes: Any
    kv_write_bytes: Any
    act_bytes: Any
    out_bytes: Any
    launches: Any


@spec
class CommCounts:
    """Collective traffic of one forward pass (bytes are per message, per chip).

    Attributes:
      tp_allreduce_bytes / tp_allreduce_calls: tensor-parallel all-reduces of the hidden
        state (after attention and after each FFN when ``ep == 1``).
      ep_alltoall_bytes / ep_alltoall_calls: expert-parallel dispatch + combine
        all-to-alls, bytes each chip sends per call.
      ep_allreduce_calls: all-reduces over the ``tp / ep`` chips sharing one expert.
      pp_p2p_bytes / pp_p2p_calls: activations sent between pipeline stages.
    """

    tp_allreduce_bytes: Any
    tp_allreduce_calls: Any
    ep_alltoall_bytes: Any
    ep_alltoall_calls: Any
    ep_allreduce_calls: Any
    pp_p2p_bytes: Any
    pp_p2p_calls: Any


def kv_shard_factor(m: Model, tp):
    """Ways the KV cache is split across ``tp`` chips.

    GQA/MHA shard KV heads (a chip holds ``ceil(KV / tp)`` heads, so beyond ``tp = KV``
    heads are replicated); the MLA latent cache is shared by all heads and replicated.
    """
    if m.attention == "mla":
        return jnp.ones_like(jnp.asarray(tp, dtype=float))
    return jnp.minimum(tp, m.n_kv_heads)


def forward_counts(
    m: Model,
    c: Compression,
    w: Workload,
    new_tokens,
    context_len,
) -> tuple[OpCounts, CommCounts]:
    """Counts of one forward pass on one chip for ``w.batch`` sequences.

    Each sequence adds ``new_tokens`` tokens after ``context_len`` cached ones: a decode
    step is ``(1, L)``, a prefill ``(prompt_len, 0)``.

    Args:
      m: model architecture.
      c: compression.
      w: workload (``tp``, ``ep`` split the work).
      new_tokens: tokens processed per sequence in this pass.
      context_len: tokens already in each sequence's KV cache.
    """
    m, c = pruning.resolve(m, c)  # structured pruning: count the smaller dense model
    b = w.batch
    tokens = b * new_tokens
    tp, ep = w.tp, w.ep
    wbits = weight_bits_per_param(c)
    wbyte = wbits / 8.0
    abyte = c.act_bits / 8.0
    kv_bits = c.kv_bits + c.kv_overhead_bits
    frac = flop_fraction(c)
    d = m.d_model

    full_layers = m.n_layers - m.n_sliding_layers
    win_layers = m.n_sliding_layers
    moe_layers = n_moe_layers(m)

    # attention projections (all layers)
    p_attn = attention_params_per_layer(m) - d
    attn_proj_flops = 2.0 * tokens * p_attn * m.n_layers * frac / tp
    attn_proj_bytes = p_attn * m.n_layers * wbyte / tp
    if m.attention == "mla":
        q_width = m.n_heads * (m.qk_nope_head_dim + m.qk_rope_head_dim)
        attn_io = d + q_width + m.kv_lora_rank + m.qk_rope_head_dim + m.n_heads * m.v_head_dim
        score_dim = m.kv_lora_rank + m.qk_rope_head_dim
        value_dim = m.kv_lora_rank
    else:
        q_width = m.n_heads * m.head_dim
        attn_io = 2 * d + 2 * q_width + 2 * m.n_kv_heads * m.head_dim
        score_dim = m.head_dim
        value_dim = m.head_dim
    attn_proj_act = tokens * attn_io * abyte * m.n_layers / tp

    # attention over the cache: each new token i attends to context_len + i tokens
    kv_split = kv_shard_factor(m, tp)
    kv_elems = kv_elements_per_token_per_layer(m)
    mean_span_full = context_len + (new_tokens + 1.0) / 2.0
    window = jnp.where(win_layers > 0, m.sliding_window, 1.0)
    mean_span_win = jnp.minimum(mean_span_full, window)
    heads_per_chip = m.n_heads / tp

    def attn_core(layers, span, cached):
        flops = 2.0 * tokens * span * heads_per_chip * (score_dim + value_dim) * layers
        # cached tokens are read once per sequence per pass; new keys/values stay on chip
        kv_read = b * cached * kv_elems * kv_bits / 8.0 * layers / kv_split
        kv_write = tokens * kv_elems * kv_bits / 8.0 * layers / kv_split
        return flops, kv_read, kv_write

    core_full = attn_core(full_layers, mean_span_full, context_len)
    core_win = attn_core(win_layers, mean_span_win, jnp.minimum(context_len, window))

    # dense FFN layers
    p_ffn = dense_ffn_params(m) - d
    ffn_flops = 2.0 * tokens * p_ffn * m.n_dense_layers * frac / tp
    ffn_bytes = p_ffn * m.n_dense_layers * wbyte / tp
    ffn_io = 2 * d + (_ffn_matrices(m) - 1.0) * m.d_ff
    ffn_act = tokens * ffn_io * abyte * m.n_dense_layers / tp

    # MoE layers: routed experts touched by this pass + shared experts + router
    p_exp = expert_params(m)
    touched = expected_distinct_experts(m.n_experts, m.n_experts_active, tokens)
    moe_weight_params = (touched + m.n_shared_experts) * p_exp + d * m.n_experts
    moe_bytes = moe_weight_params * moe_layers * wbyte / tp
    per_token_moe = (m.n_experts_active + m.n_shared_experts) * p_exp + d * m.n_experts
    moe_flops = 2.0 * tokens * per_token_moe * moe_layers * frac / tp
    moe_io = 2 * d + (_ffn_matrices(m) - 1.0) * m.moe_d_ff * (m.n_experts_active + m.n_shared_experts)
    moe_act = tokens * moe_io * abyte * moe_layers / tp

    # LM head: only the last position of each sequence is projected to the vocabulary
    head_tokens = b
    head_flops = 2.0 * head_tokens * lm_head_params(m) / tp
    head_bytes = lm_head_params(m) * wbyte / tp
    head_act = head_tokens * (d + m.vocab_size) * abyte / tp

    # embedding gather: one row per token
    emb_bytes = tokens * d * wbyte
    emb_act = tokens * d * abyte

    zero = jnp.zeros_like(jnp.asarray(tokens, dtype=float))
    launches_attn = m.n_layers + zero
    n_mat = _ffn_matrices(m)
    if m.attention == "mla":
        proj_out = q_width + m.kv_lora_rank + m.qk_rope_head_dim + d
        core_out = m.n_heads * m.kv_lora_rank
    else:
        proj_out = q_width + 2 * m.n_kv_heads * m.head_dim + d
        core_out = q_width
    active_experts = m.n_experts_active + m.n_shared_experts
    out_widths = (
        proj_out * m.n_layers,
        core_out * full_layers,
        core_out * win_layers,
        ((n_mat - 1.0) * m.d_ff + d) * m.n_dense_layers,
        ((n_mat - 1.0) * m.moe_d_ff * active_experts + d) * moe_layers,
        m.vocab_size * b / jnp.maximum(tokens, 1e-9),
        zero,
    )
    ops = OpCounts(
        flops=jnp.stack([attn_proj_flops, core_full[0], core_win[0], ffn_flops, moe_flops, head_flops, zero]),
        weight_bytes=jnp.stack([attn_proj_bytes, zero, zero, ffn_bytes, moe_bytes, head_bytes, emb_bytes]),
        kv_read_bytes=jnp.stack([zero, core_full[1], core_win[1], zero, zero, zero, zero]),
        kv_write_bytes=jnp.stack([zero, core_full[2], core_win[2], zero, zero, zero, zero]),
        act_bytes=jnp.stack([attn_proj_act, zero, zero, ffn_act, moe_act, head_act, emb_act]),
        out_bytes=jnp.stack([tokens * wdt * abyte / tp + zero for wdt in out_widths]),
        launches=jnp.stack(
            [
                launches_attn,
                full_layers + zero,
                win_layers + zero,
                m.n_dense_layers + zero,
                moe_layers + zero,
                1.0 + zero,
                1.0 + zero,
            ]
        ),
    )

    hidden_bytes = tokens * d * abyte
    has_ep = ep > 1
    comm = CommCounts(
        tp_allreduce_bytes=hidden_bytes,
        tp_allreduce_calls=m.n_layers + m.n_dense_layers + jnp.where(has_ep, 0.0, moe_layers),
        # each chip owns tokens / ep tokens and sends each to k experts (dispatch), then
        # gets k results back (combine)
        ep_alltoall_bytes=safe_div(tokens * m.n_experts_active * d * abyte, ep),
        ep_alltoall_calls=jnp.where(has_ep, 2.0 * moe_layers, 0.0),
        ep_allreduce_calls=jnp.where(has_ep & (tp > ep), moe_layers, 0.0),
        pp_p2p_bytes=hidden_bytes,
        pp_p2p_calls=w.pp - 1.0,
    )
    return ops, comm


def read_chunk_bytes(m: Model, c: Compression, w: Workload):
    """Contiguous bytes per memory read for weights, KV cache, activations, context.

    A weight matrix row (``d_model`` elements) is contiguous; a paged KV block holds
    ``kv_block_tokens`` tokens of one KV head (GQA) or of the shared latent (MLA); an
    activation vector is ``d_model`` elements; corpus reads are assumed to be whole 4 KiB
    pages. Tiers whose access granularity exceeds these waste bandwidth.
    """
    per_head = m.kv_lora_rank + m.qk_rope_head_dim if m.attention == "mla" else m.head_dim
    kv_bits = c.kv_bits + c.kv_overhead_bits
    return jnp.stack(
        jnp.broadcast_arrays(
            m.d_model * weight_bits_per_param(c) / 8.0,
            w.kv_block_tokens * per_head * kv_bits / 8.0,
            m.d_model * c.act_bits / 8.0,
            4096.0,
        )
    )


def weight_bytes_resident(m: Model, c: Compression, w: Workload):
    """Weight bytes held by one chip (all experts, 1/(tp pp) of the model)."""
    m, c = pruning.resolve(m, c)
    return param_count(m) * weight_bits_per_param(c) / 8.0 / (w.tp * w.pp)


def kv_bytes_resident(m: Model, c: Compression, w: Workload):
    """KV-cache bytes held by one chip at the end of the request (prompt + output)."""
    m, c = pruning.resolve(m, c)
    total = kv_cache_bytes(m, c, w.batch, w.prompt_len + w.output_len)
    return total / (kv_shard_factor(m, w.tp) * w.pp)


def activation_bytes_resident(m: Model, c: Compression, w: Workload):
    """Peak activation workspace on one chip: the prefill hidden states of the batch
    (input + FFN intermediate) for one layer at a time."""
    m, c = pruning.resolve(m, c)
    width = m.d_model + jnp.maximum(m.d_ff, m.moe_d_ff * (m.n_experts_active + m.n_shared_experts))
    return w.batch * w.prompt_len * width * c.act_bits / 8.0 / w.tp


def bytes_moved(ops: OpCounts):
    """Bytes each op moves: weights + KV reads and writes + activations."""
    return ops.weight_bytes + ops.kv_read_bytes + ops.kv_write_bytes + ops.act_bytes


def arithmetic_intensity(ops: OpCounts):
    """FLOPs per byte moved, per op."""
    return safe_div(ops.flops, bytes_moved(ops))
