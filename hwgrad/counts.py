"""Hardware-free counts: parameters, FLOPs, bytes and collective message sizes.

Everything here is a pure ``jnp`` function of a `Model`, a
`Compression` and a `Workload` - no bandwidths,
no FLOP rates - so the same counts serve the roofline, capacity checks and energy.

Conventions (one multiply-add = 2 FLOP):

* GQA/MHA attention per layer: ``W_q = d x H hd``, ``W_k = W_v = d x KV hd``,
  ``W_o = H hd x d``; KV cache ``2 KV hd`` elements per token per layer.
* MLA (DeepSeek-V2/V3, arXiv:2412.19437 sec. 2.1.1): LoRA-factored queries
  (``d x q_lora``, ``q_lora x H (nope + rope)``), a compressed joint KV
  (``d x (kv_lora + rope)``, ``kv_lora x H (nope + v)``) and ``W_o = H v x d``. The cache
  holds ``kv_lora + rope`` elements per token per layer, shared by all heads. Decode uses
  the weight-absorbed form (``W_UK`` folded into the query, ``W_UV`` into the output):
  scores cost ``2 H (kv_lora + rope)`` and the value sum ``2 H kv_lora`` FLOPs per
  (query, cached token) pair. Prefill (``new_tokens > 1``, a traced select) uses the
  non-absorbed form served in practice (vLLM/SGLang MLA prefill): keys and values are
  decompressed per head, scores ``2 H (nope + rope)``, values ``2 H v_head_dim`` per
  pair, plus ``2 H kv_lora (nope + v)`` per *cached* token for the decompression (the new
  tokens' up-projection is already in the projections). For DeepSeek-V3 the absorbed
  attention costs ``1088 / 320 = 3.4x`` the non-absorbed one, 2.28x the whole prefill FLOPs
  at a 32k prompt.
* Gated FFN (SwiGLU/GeGLU): three ``d x d_ff`` matrices; plain FFN: two.
* MoE: each routed expert is an FFN of width ``moe_d_ff``; router ``d x n_experts``.
  Decoding ``T`` tokens with top-``k`` routing over ``E`` experts touches on average
  ``E (1 - (1 - k/E)^T)`` distinct experts (uniform routing, tokens independent) - the
  count whose weights must be streamed from memory.
* Expert parallelism (``ep`` ranks of ``E / ep`` experts): the step waits for the busiest
  rank, so the MoE op counts the expected maximum over ranks of the distinct experts
  (weights streamed) and of the routed (token, expert) pairs (FLOPs, all-to-all bytes) -
  `ep_busiest_rank_load` (exact moments, exchangeable-correlation correction, a
  matched binomial at small counts and Cornish-Fisher at large ones; within 5 % of a Monte
  Carlo). DeepSeek-V3 at batch 1, EP 8: 2.56 experts on the busiest rank vs a mean of 1.
  ``OpCounts.flops_mean`` / ``weight_bytes_mean`` keep the mean over ranks for energy.
* Attention data parallelism (``Workload.attention_dp``; DeepSeek-V3 report
  arXiv:2412.19437 sec. 3.4, SGLang ``--enable-dp-attention``, vLLM data-parallel
  attention with expert parallelism): ``attention_dp`` groups of ``tp / attention_dp``
  chips each hold the non-expert weights and ``1 / attention_dp`` of the sequences and
  KV cache; TP all-reduces run inside a group (``CommCounts.tp_allreduce_chips``); routed
  experts stay expert-parallel over all chips with all-to-all dispatch and combine.
* Biases, QK-norm vectors and attention sinks (< 0.01 % of any model here) are omitted.
"""

# Longer than ~600 lines on purpose: one concept, the hardware-free arithmetic of every op for every
# architecture kind (dense, MoE, MLA, sliding window; expected distinct experts, the busiest EP rank),
# whose formulas are checked together against the same worked examples.

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

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


# ----------------------------------------------------------------------------- EP: busiest rank

_ORDER_STAT_MAX_P = 1024


@functools.lru_cache(maxsize=1)
def _normal_max_table():
    """``E[M_p]`` and ``E[M_p^2]`` of the maximum of ``p = 1..1024`` iid standard normals.

    Quadrature of ``z^j p phi(z) Phi(z)^(p-1)`` on ``[-8, 9]`` (error < 1e-6).
    """
    z = np.linspace(-8.0, 9.0, 3401)
    dz = z[1] - z[0]
    phi = np.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)
    cdf = 0.5 * (1.0 + np.array([math.erf(v / math.sqrt(2.0)) for v in z]))
    p = np.arange(1.0, _ORDER_STAT_MAX_P + 1.0)
    dens = p[:, None] * phi[None, :] * np.exp((p[:, None] - 1.0) * np.log(np.maximum(cdf, 1e-300))[None, :])
    m1 = (dens * z).sum(axis=1) * dz
    m2 = (dens * z * z).sum(axis=1) * dz
    return p, m1, m2


def normal_max_moments(p):
    """``(E[M_p], E[M_p^2])`` for the maximum ``M_p`` of ``p`` iid standard normals,
    interpolated linearly between whole ``p`` (exact there; ``p`` clipped to [1, 1024])."""
    p = jnp.clip(p, 1.0, float(_ORDER_STAT_MAX_P))
    ps, m1, m2 = (jnp.asarray(t, dtype=p.dtype) for t in _normal_max_table())  # float64 runs too
    return jnp.interp(p, ps, m1), jnp.interp(p, ps, m2)


_WINDOW = 32  # whole counts summed exactly in the discrete regime
_DISCRETE_SD = 2.8  # window [mean - 4 sd, mean + 6 sd] fits in _WINDOW counts up to this sd


def _safe_sqrt(x):
    """``sqrt(max(x, 0))`` with a finite gradient at 0."""
    ok = x > 0
    return jnp.where(ok, jnp.sqrt(jnp.where(ok, x, 1.0)), 0.0)


def _safe_pow(base, expo):
    """``base ** expo`` for ``base`` in [0, 1], finite gradients at 0."""
    ok = base > 0
    return jnp.where(ok, jnp.exp(expo * jnp.log(jnp.where(ok, base, 1.0))), 0.0)


def _binomial_window(mean, var):
    """Window of whole counts and the CDF there of the binomial matched to ``mean, var``.

    ``Binomial(N, q)`` with ``N q = mean``, ``N q (1 - q) = var`` (``q`` clipped to
    [0.01, 1], so over-dispersed inputs become a near-Poisson), at ``N`` real via
    ``lgamma``; the window starts at ``floor(mean - 4 sd)`` and the CDF is normalised over
    it. Returns ``(x0, cdf)`` with ``cdf`` of shape ``(..., _WINDOW)``.
    """
    mean = jnp.asarray(mean, dtype=float)
    # a mean below 1e-6 counts as zero (keeps d/d mean of var / mean finite in float32)
    has_mean = mean > 1e-6
    q = jnp.clip(1.0 - jnp.where(has_mean, var / jnp.where(has_mean, mean, 1.0), 1.0), 0.01, 1.0)
    n_trials = safe_div(mean, q)
    x0 = jnp.maximum(jnp.floor(mean - 4.0 * _safe_sqrt(var)), 0.0)
    x = x0[..., None] + jnp.arange(_WINDOW, dtype=float)
    nb = n_trials[..., None]
    ok = x < nb + 1.0  # the real-N pmf vanishes continuously at N + 1 (1/Gamma(0) = 0)
    xs = jnp.where(ok, x, 0.0)
    qb = q[..., None]
    log_q = jnp.log(qb)
    log_1q = jnp.log(jnp.where(qb < 1.0, 1.0 - qb, 1.0))
    logpmf = (
        jax.scipy.special.gammaln(nb + 1.0)
        - jax.scipy.special.gammaln(xs + 1.0)
        - jax.scipy.special.gammaln(jnp.where(ok, nb - xs + 1.0, 1.0))
        + xs * log_q
        + jnp.where(qb < 1.0, (nb - xs) * log_1q, 0.0)
    )
    logpmf = logpmf - jax.lax.stop_gradient(jnp.max(jnp.where(ok, logpmf, -jnp.inf), axis=-1, keepdims=True))
    pmf = jnp.where(ok, jnp.exp(jnp.where(ok, logpmf, 0.0)), 0.0)
    cdf = jnp.cumsum(pmf, axis=-1)
    cdf = jnp.clip(safe_div(cdf, cdf[..., -1:], fill=1.0), 0.0, 1.0)
    return x0, cdf


def _discrete_expected_max(mean, var, p):
    """``E[max]`` of ``p`` iid counts with the matched-binomial law: ``x0 + sum (1 - F^p)``."""
    x0, cdf = _binomial_window(mean, var)
    return x0 + jnp.sum(1.0 - _safe_pow(cdf, p[..., None]), axis=-1)


def _discrete_expected_min(mean, var, p):
    """``E[min]`` of ``p`` iid counts with the matched-binomial law: ``x0 + sum (1 - F)^p``."""
    x0, cdf = _binomial_window(mean, var)
    return x0 + jnp.sum(_safe_pow(1.0 - cdf, p[..., None]), axis=-1)


def _expected_max(mean, var, skew, rho, p, upper, lower, discrete):
    """Expected maximum over ``p`` exchangeable counts with the given marginal moments and
    pairwise correlation ``rho`` (see `ep_busiest_rank_load`)."""
    var_eff = jnp.maximum(var, 0.0) * (1.0 - rho)
    sd = _safe_sqrt(var_eff)
    m1, m2 = normal_max_moments(p)
    continuous = mean + sd * (m1 + jnp.clip(skew, -2.0, 2.0) / 6.0 * (m2 - 1.0))
    value = jnp.where(sd <= _DISCRETE_SD, discrete(var_eff), continuous)
    value = jnp.clip(value, jnp.maximum(mean, lower), upper)
    return jnp.where((p > 1.0) & (var_eff > 0), value, mean)


def _busiest_rank_load_if_moe(n_experts, top_k, n_tokens, ep):
    """`ep_busiest_rank_load`, skipped at run time for a dense model (``E == 0``: both
    loads are 0). A `jax.lax.cond` on the expert count: under ``vmap`` over designs of one
    model the predicate is not batched and stays a branch, so dense models do not pay the
    order statistics (measured: 92 % of a dense 70B evaluate's gradient time, 49.8 -> 3.9 us
    per point); a batched or non-scalar count falls back to evaluating them (exact zeros
    for the dense rows either way)."""
    e = jnp.asarray(n_experts)
    if e.ndim != 0:
        return ep_busiest_rank_load(n_experts, top_k, n_tokens, ep)
    args = jnp.broadcast_arrays(*(jnp.asarray(x, dtype=float) for x in (top_k, n_tokens, ep)))

    # both branches depend on every operand, so they agree on shape and (under shard_map) on
    # which mesh axes they vary over
    def tie(k, t, p):
        return 0.0 * (k + t + p)

    def moe(k, t, p):
        return tuple(v + tie(k, t, p) for v in ep_busiest_rank_load(e, k, t, p))

    return jax.lax.cond(e > 0, moe, lambda k, t, p: (tie(k, t, p),) * 2, *args)


def ep_busiest_rank_load(n_experts, top_k, n_tokens, ep):
    """Expected load of the busiest of ``ep`` expert-parallel ranks under top-``k`` routing.

    ``T = n_tokens`` tokens each pick ``k`` distinct experts uniformly out of ``E``; rank
    ``r`` holds ``n = E / ep`` experts. Per rank, ``X_r`` = (token, expert) pairs routed to
    it (its FLOPs and its all-to-all receive volume) and ``Y_r`` = distinct experts it
    touches (the expert weights it streams). The step waits for the busiest rank, so the
    cost model needs ``E[max_r X_r]`` and ``E[max_r Y_r]`` (the means are ``T k / ep`` and
    `expected_distinct_experts` ``/ ep``).

    Exact marginal moments:

    * ``X_r`` is a sum of ``T`` iid hypergeometric(``E``, ``n``, ``k``) counts: mean
      ``T k / ep``, variance ``T k (1/ep)(1 - 1/ep)(E - k)/(E - 1)``, skewness of the
      hypergeometric over ``sqrt(T)``; ``sum_r X_r = T k`` so ranks correlate with
      ``rho = -1/(ep - 1)``.
    * ``U_r = n - Y_r`` (untouched experts) has factorial moments ``n^(j) q_j`` with
      ``q_j = (C(E - j, k) / C(E, k))^T`` (``j`` given experts all missed), hence mean,
      variance, third moment and the cross-rank covariance ``n^2 (q_2 - q_1^2)``.

    Expected maximum of ``p = ep`` exchangeable variables with correlation ``rho``: the
    maximum of ``p`` iid variables of variance ``var (1 - rho)`` (exact for Gaussians:
    ``X_i = mu + sd sqrt(1 - rho) (Z_i - Zbar)`` when ``rho = -1/(p - 1)``). Two regimes:

    * small counts (effective sd <= 2.8): a binomial matched to mean and effective variance,
      ``E[max] = x0 + sum_x (1 - F(x)^p)`` over a 32-count window (``Y`` uses the same
      on ``U`` where ranks are mostly saturated, ``E[max Y] = n - E[min U]``, blended over
      ``E[Y] / n`` in [0.4, 0.6]);
    * large counts: Cornish-Fisher, ``mu + sd (E[M_p] + g/6 (E[M_p^2] - 1))`` with the
      moments of the maximum ``M_p`` of ``p`` standard normals (tabulated by quadrature).

    Clipped to ``[max(mean, min(T, 1)), bound]`` (some rank gets a token; a rank holds at
    most ``n`` experts and ``T min(k, n)`` pairs). Agrees with a Monte Carlo within 5 % for
    DeepSeek-V3 (256, 8), Mixtral (8, 2), Qwen3-30B-A3B (128, 8), ``T`` in 1..4096, ``ep``
    in 1..32 (``tests/test_counts.py``); e.g. DeepSeek-V3 at ``T = 1``, ``ep = 8``: 2.55
    experts on the busiest rank vs a mean of 1.

    Args:
      n_experts: routed experts ``E`` (0 for dense models: returns zeros).
      top_k: experts per token ``k``.
      n_tokens: tokens routed in this pass ``T``.
      ep: expert-parallel ranks (``ep <= 1``: the means).

    Returns:
      ``(experts_busiest, pairs_busiest)``: expected distinct experts and routed
      (token, expert) pairs on the busiest rank.
    """
    e = jnp.maximum(jnp.asarray(n_experts, dtype=float), 1e-9)
    k = jnp.clip(jnp.asarray(top_k, dtype=float), 0.0, e)
    t = jnp.maximum(jnp.asarray(n_tokens, dtype=float), 0.0)
    p = jnp.maximum(jnp.asarray(ep, dtype=float), 1.0)
    e, k, t, p = jnp.broadcast_arrays(e, k, t, p)
    n = e / p
    frac = 1.0 / p
    many = p > 1.0

    # pairs per rank: T iid hypergeometric(E, n, k)
    fpc = safe_div(e - k, e - 1.0)  # finite-population correction of k draws
    var1 = k * frac * (1.0 - frac) * fpc
    skew_num = (e - 2.0 * n) * _safe_sqrt(e - 1.0) * (e - 2.0 * k)
    skew_den = _safe_sqrt(k * n * (e - n) * (e - k)) * (e - 2.0)
    skew1 = safe_div(skew_num, skew_den)
    x_mean = t * k * frac
    x_var = t * var1
    wide_x = x_var > 1.0  # skewness only enters the large-count (Cornish-Fisher) regime
    x_skew = jnp.where(wide_x, skew1 / jnp.sqrt(jnp.where(wide_x, t, 1.0)), 0.0)
    x_rho = jnp.where(many, -safe_div(1.0, p - 1.0), 0.0)
    x_upper = t * jnp.minimum(k, n)
    lower = jnp.minimum(t, 1.0) * (k > 0)
    pairs = _expected_max(
        x_mean, x_var, x_skew, x_rho, p, x_upper, lower, lambda v: _discrete_expected_max(x_mean, v, p)
    )

    # distinct experts per rank, through the untouched count U = n - Y
    def log_ratio(j):  # log of C(E - j, k) / C(E, k) = sum_i log((E - k - i) / (E - i))
        terms = [jnp.log(jnp.maximum(e - k - i, 1e-30) / jnp.maximum(e - i, 1e-30)) for i in range(j)]
        return sum(terms)

    l1, l2, l3 = log_ratio(1), log_ratio(2), log_ratio(3)
    q1 = jnp.exp(t * l1)
    d2 = q1 * q1 * jnp.expm1(t * (l2 - 2.0 * l1))  # q2 - q1^2 (<= 0), without cancellation
    d3 = q1**3 * jnp.expm1(t * (l3 - 3.0 * l1))  # q3 - q1^3
    u_mean = n * q1
    u_var = n * q1 * (1.0 - q1) + n * (n - 1.0) * d2
    third = 2.0 * n * q1**3 + n * (n - 1.0) * (n - 2.0) * d3 - 3.0 * n * n * (n - 1.0) * q1 * d2
    # E[(U - mu)^3] = (f3 - 3 f1 f2 + 2 f1^3) + 3 (f2 - f1^2) + f1 with f_j = n^(j) q_j
    u_m3 = third + 3.0 * (n * (n - 1.0) * (q1 * q1 + d2) - u_mean * u_mean) + u_mean
    u_var = jnp.maximum(u_var, 0.0)
    y_mean = n - u_mean
    wide_y = u_var > 1.0
    y_skew = -jnp.where(wide_y, u_m3 / jnp.where(wide_y, u_var, 1.0) ** 1.5, 0.0)
    # guard tiny variances (a saturated rank): rho is irrelevant there and d/d var of
    # cov / var would overflow float32
    has_var = u_var > 1e-12
    y_rho = jnp.where(has_var, n * n * d2 / jnp.where(has_var, u_var, 1.0), 0.0)
    y_rho = jnp.where(many, jnp.clip(y_rho, -safe_div(1.0, p - 1.0), 0.0), 0.0)

    def y_discrete(v):
        direct = _discrete_expected_max(y_mean, v, p)
        via_untouched = n - _discrete_expected_min(u_mean, v, p)
        w = jnp.clip((safe_div(y_mean, n) - 0.4) / 0.2, 0.0, 1.0)
        w = w * w * (3.0 - 2.0 * w)
        return (1.0 - w) * direct + w * via_untouched

    experts = _expected_max(y_mean, u_var, y_skew, y_rho, p, n, lower, y_discrete)
    dense = jnp.asarray(n_experts, dtype=float) <= 0
    return jnp.where(dense, 0.0, experts), jnp.where(dense, 0.0, pairs)


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


def _given_or(bits, default):
    """``bits`` where given (> 0, the own-format fields of `Compression`), else ``default``."""
    return jnp.where(jnp.asarray(bits) > 0, bits, default)


def attention_weight_bits_per_param(c: Compression):
    """Stored bits per attention-projection weight (`Compression.attention_weight_bits`)."""
    return _given_or(c.attention_weight_bits, weight_bits_per_param(c))


def embedding_weight_bits_per_param(c: Compression):
    """Stored bits per embedding / LM-head weight (`Compression.embedding_weight_bits`)."""
    return _given_or(c.embedding_weight_bits, weight_bits_per_param(c))


def op_compute_bits(c: Compression):
    """``(len(OP_NAMES),)`` operand width each op's matmuls run at.

    ``act_bits`` everywhere, except ops whose weights have their own width: the attention
    projections and the LM head run at ``max(act_bits, width)`` (capped at 16), as a
    W8A8 stack multiplies a bf16 weight with bf16 kernels.
    """

    act = c.act_bits

    def own(bits):
        return jnp.maximum(act, jnp.minimum(_given_or(bits, act), 16.0))

    return jnp.stack(
        jnp.broadcast_arrays(own(c.attention_weight_bits), act, act, act, act, own(c.embedding_weight_bits), act)
    )


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
    """Per-chip work of one forward pass, one entry per op in `OP_NAMES`.

    All arrays have shape ``(len(OP_NAMES),)`` and are totals over every layer that runs
    the op on one chip of a tensor-parallel group (before dividing by pipeline stages).
    With expert parallelism the MoE entries are those of the busiest rank (the step waits
    for it, `ep_busiest_rank_load`); ``flops_mean`` / ``weight_bytes_mean`` are the
    averages over the chips, for energy.

    Attributes:
      flops: FLOPs on one chip (the busiest, for the MoE op).
      weight_bytes: weight bytes streamed from memory on one chip (the busiest).
      kv_read_bytes / kv_write_bytes: KV-cache traffic on one chip.
      act_bytes: activation bytes read + written on one chip.
      out_bytes: bytes of the op's outputs (what partial-sum reductions move).
      launches: kernels launched (layers running the op).
      flops_mean / weight_bytes_mean: ``flops`` / ``weight_bytes`` averaged over the chips
        (equal to them except for the MoE op under expert parallelism).
    """

    flops: float | jax.Array
    weight_bytes: float | jax.Array
    kv_read_bytes: float | jax.Array
    kv_write_bytes: float | jax.Array
    act_bytes: float | jax.Array
    out_bytes: float | jax.Array
    launches: float | jax.Array
    flops_mean: float | jax.Array = None
    weight_bytes_mean: float | jax.Array = None

    def __post_init__(self):
        if self.flops_mean is None:
            object.__setattr__(self, "flops_mean", self.flops)
        if self.weight_bytes_mean is None:
            object.__setattr__(self, "weight_bytes_mean", self.weight_bytes)


@spec
class CommCounts:
    """Collective traffic of one forward pass (bytes are per message, per chip).

    Attributes:
      tp_allreduce_bytes / tp_allreduce_calls: tensor-parallel all-reduces of the hidden
        state (after attention and after each FFN when ``ep == 1``).
      ep_alltoall_bytes / ep_alltoall_calls: expert-parallel dispatch + combine
        all-to-alls: bytes the busiest rank receives (dispatch) or sends (combine) per call
        (its routed (token, expert) pairs x ``d_model`` activations).
      ep_allreduce_calls: all-reduces over the ``tp / ep`` chips sharing one expert.
      pp_p2p_bytes / pp_p2p_calls: activations sent between pipeline stages.
      tp_allreduce_chips: chips in each tensor-parallel all-reduce (``tp``, or
        ``tp / attention_dp`` with attention data parallelism).
      ep_allreduce_bytes: bytes of each all-reduce over the ``tp / ep`` chips of one expert
        rank (the busiest rank's routed tokens x ``d_model``).
    """

    tp_allreduce_bytes: float | jax.Array
    tp_allreduce_calls: float | jax.Array
    ep_alltoall_bytes: float | jax.Array
    ep_alltoall_calls: float | jax.Array
    ep_allreduce_calls: float | jax.Array
    pp_p2p_bytes: float | jax.Array
    pp_p2p_calls: float | jax.Array
    tp_allreduce_chips: float | jax.Array = None
    ep_allreduce_bytes: float | jax.Array = None


def kv_shard_factor(m: Model, tp):
    """Ways the KV cache is split across ``tp`` chips.

    GQA/MHA shard KV heads (a chip holds ``ceil(KV / tp)`` heads, so beyond ``tp = KV``
    heads are replicated); the MLA latent cache is shared by all heads and replicated.
    """
    if m.attention == "mla":
        return jnp.ones_like(jnp.asarray(tp, dtype=float))
    return jnp.minimum(tp, m.n_kv_heads)


def kv_reads_per_pass(m: Model, w: Workload, reuse, new_tokens):
    """How many times a decode step's attention kernel reads the cached KV (1 = once).

    A chip holds ``H / tp`` query heads over ``KV / kv_shard_factor`` KV heads, ``G`` query
    heads per KV head. A kernel that shares each KV head's read across its group (``reuse``
    1) reads the cache once; one that reads it per query head (``reuse`` 0) reads it ``G``
    times: ``1 + (1 - reuse)(G - 1)``. MLA's latent cache is read once (its absorbed decode
    is one grouped kernel), and so is the cache in a prefill (``new_tokens > 1``: the
    context attention kernels tile the query heads of a group together).
    """
    if m.attention == "mla":
        return jnp.ones_like(jnp.asarray(new_tokens, dtype=float))
    tp_a = attention_group_chips(w)
    group = (m.n_heads / tp_a) / jnp.maximum(m.n_kv_heads / kv_shard_factor(m, tp_a), 1e-9)
    group = jnp.maximum(group, 1.0)
    return jnp.where(jnp.asarray(new_tokens) <= 1.0, 1.0 + (1.0 - reuse) * (group - 1.0), 1.0)


def kv_bytes_moved(ops: OpCounts, m: Model, w: Workload, reuse, new_tokens):
    """``(n_ops,)`` KV-cache bytes a pass moves per chip: the reads of ``ops`` times
    `kv_reads_per_pass` (a kernel's grouped reads, ``reuse``) plus the writes."""
    return ops.kv_read_bytes * kv_reads_per_pass(m, w, reuse, new_tokens) + ops.kv_write_bytes


def attention_group_chips(w: Workload):
    """Chips of one attention group: ``tp / attention_dp`` (``tp`` without attention-DP)."""
    return w.tp / w.attention_dp


def kv_cache_split(m: Model, w: Workload):
    """Ways one replica's KV cache is divided over its ``tp`` chips (per pipeline stage).

    Attention-DP groups hold disjoint sequences (``attention_dp`` ways); inside a group
    the cache is split as `kv_shard_factor` of the group's chips. Without
    attention-DP this is ``kv_shard_factor(m, tp)``.
    """
    return kv_shard_factor(m, attention_group_chips(w)) * w.attention_dp


def _mla_dims(m: Model, absorbed):
    """Attention-core widths of MLA: ``(score_dim, value_dim, core_out_per_head)``.

    Absorbed (decode): ``W_UK`` folds into the query and ``W_UV`` into the output, so each
    head scores against the cached latent (``kv_lora + rope``) and sums latents
    (``kv_lora``). Non-absorbed (prefill as served): keys/values are decompressed per head,
    scores cost ``nope + rope`` and values ``v_head_dim``.
    """
    score = jnp.where(absorbed, m.kv_lora_rank + m.qk_rope_head_dim, m.qk_nope_head_dim + m.qk_rope_head_dim)
    value = jnp.where(absorbed, m.kv_lora_rank, m.v_head_dim)
    return score, value, value


def forward_counts(
    m: Model,
    c: Compression,
    w: Workload,
    new_tokens,
    context_len,
    mla_absorbed=None,
) -> tuple[OpCounts, CommCounts]:
    """Counts of one forward pass on one chip for ``w.batch`` sequences.

    Each sequence adds ``new_tokens`` tokens after ``context_len`` cached ones: a decode
    step is ``(1, L)``, a prefill ``(prompt_len, 0)``.

    Args:
      m: model architecture.
      c: compression.
      w: workload (``tp``, ``ep``, ``attention_dp`` split the work).
      new_tokens: tokens processed per sequence in this pass.
      context_len: tokens already in each sequence's KV cache.
      mla_absorbed: MLA only: ``True`` for the weight-absorbed attention (decode),
        ``False`` for the decompressed per-head form (prefill); a bool or 0/1 array. Default
        ``new_tokens <= 1`` (a traced select, so prefill and decode batch under ``vmap``).
    """
    m, c = pruning.resolve(m, c)  # structured pruning: count the smaller dense model
    b = w.batch
    tokens = b * new_tokens
    tp, ep, adp = w.tp, w.ep, w.attention_dp
    tp_a = attention_group_chips(w)  # chips that share one copy of the non-expert weights
    b_a = b / adp  # sequences per attention group
    tokens_a = tokens / adp
    wbyte = weight_bits_per_param(c) / 8.0
    attn_wbyte = attention_weight_bits_per_param(c) / 8.0
    emb_wbyte = embedding_weight_bits_per_param(c) / 8.0
    abyte = c.act_bits / 8.0
    kv_bits = c.kv_bits + c.kv_overhead_bits
    frac = flop_fraction(c)
    d = m.d_model
    if mla_absorbed is None:
        mla_absorbed = jnp.asarray(new_tokens) <= 1.0
    mla_absorbed = jnp.asarray(mla_absorbed, dtype=bool)

    full_layers = m.n_layers - m.n_sliding_layers
    win_layers = m.n_sliding_layers
    moe_layers = n_moe_layers(m)

    # attention projections (all layers), tensor-parallel inside an attention group
    p_attn = attention_params_per_layer(m) - d
    attn_proj_flops = 2.0 * tokens_a * p_attn * m.n_layers * frac / tp_a
    attn_proj_bytes = p_attn * m.n_layers * attn_wbyte / tp_a
    if m.attention == "mla":
        q_width = m.n_heads * (m.qk_nope_head_dim + m.qk_rope_head_dim)
        attn_io = d + q_width + m.kv_lora_rank + m.qk_rope_head_dim + m.n_heads * m.v_head_dim
        score_dim, value_dim, core_head_out = _mla_dims(m, mla_absorbed)
    else:
        q_width = m.n_heads * m.head_dim
        attn_io = 2 * d + 2 * q_width + 2 * m.n_kv_heads * m.head_dim
        score_dim = value_dim = core_head_out = m.head_dim
    attn_proj_act = tokens_a * attn_io * abyte * m.n_layers / tp_a

    # attention over the cache: each new token i attends to context_len + i tokens
    kv_split = kv_shard_factor(m, tp_a)
    kv_elems = kv_elements_per_token_per_layer(m)
    mean_span_full = context_len + (new_tokens + 1.0) / 2.0
    window = jnp.where(win_layers > 0, m.sliding_window, 1.0)
    mean_span_win = jnp.minimum(mean_span_full, window)
    heads_per_chip = m.n_heads / tp_a
    if m.attention == "mla":
        # non-absorbed: the cached latents are decompressed to per-head keys and values
        # (W_UK, W_UV; the new tokens' up-projection is in attn_proj) and the decompressed
        # K/V are written by that GEMM and read by the attention kernel
        up_width = heads_per_chip * (m.qk_nope_head_dim + m.v_head_dim)
        decompress = jnp.where(mla_absorbed, 0.0, 1.0)
    else:
        up_width = 0.0
        decompress = 0.0

    def attn_core(layers, span, cached):
        flops = 2.0 * tokens_a * span * heads_per_chip * (score_dim + value_dim) * layers
        flops = flops + decompress * 2.0 * b_a * cached * m.kv_lora_rank * up_width * layers
        # cached tokens are read once per sequence per pass; new keys/values stay on chip
        kv_read = b_a * cached * kv_elems * kv_bits / 8.0 * layers / kv_split
        kv_write = tokens_a * kv_elems * kv_bits / 8.0 * layers / kv_split
        act = decompress * 2.0 * (b_a * cached + tokens_a) * up_width * abyte * layers
        return flops, kv_read, kv_write, act

    core_full = attn_core(full_layers, mean_span_full, context_len)
    core_win = attn_core(win_layers, mean_span_win, jnp.minimum(context_len, window))

    # dense FFN layers (run by the attention group under attention-DP)
    p_ffn = dense_ffn_params(m) - d
    ffn_flops = 2.0 * tokens_a * p_ffn * m.n_dense_layers * frac / tp_a
    ffn_bytes = p_ffn * m.n_dense_layers * wbyte / tp_a
    ffn_io = 2 * d + (_ffn_matrices(m) - 1.0) * m.d_ff
    ffn_act = tokens_a * ffn_io * abyte * m.n_dense_layers / tp_a

    # MoE layers: routed experts on the busiest of the ep ranks (each rank's experts are
    # split over tp / ep chips) + shared experts and router (held per attention group)
    p_exp = expert_params(m)
    n_mat = _ffn_matrices(m)
    k_act = m.n_experts_active
    chips_per_rank = tp / ep
    experts_busy, pairs_busy = _busiest_rank_load_if_moe(m.n_experts, k_act, tokens, ep)
    experts_mean = expected_distinct_experts(m.n_experts, k_act, tokens) / ep
    pairs_mean = tokens * k_act / ep
    non_routed = m.n_shared_experts * p_exp + d * m.n_experts
    moe_bytes, moe_bytes_mean = (
        (e_rank * p_exp / chips_per_rank + non_routed / tp_a) * moe_layers * wbyte
        for e_rank in (experts_busy, experts_mean)
    )
    moe_flops, moe_flops_mean = (
        2.0 * (x_rank * p_exp / chips_per_rank + tokens_a * non_routed / tp_a) * moe_layers * frac
        for x_rank in (pairs_busy, pairs_mean)
    )
    moe_act = (
        (
            (tokens_a / tp_a) * (2 * d + (n_mat - 1.0) * m.moe_d_ff * m.n_shared_experts)
            + (pairs_busy / chips_per_rank) * (n_mat - 1.0) * m.moe_d_ff
        )
        * abyte
        * moe_layers
    )

    # LM head: only the last position of each sequence is projected to the vocabulary
    head_flops = 2.0 * b_a * lm_head_params(m) / tp_a
    head_bytes = lm_head_params(m) * emb_wbyte / tp_a
    head_act = b_a * (d + m.vocab_size) * abyte / tp_a

    # embedding gather: one row per token of the chip's attention group
    emb_bytes = tokens_a * d * emb_wbyte
    emb_act = tokens_a * d * abyte

    zero = jnp.zeros_like(jnp.asarray(tokens, dtype=float))
    launches_attn = m.n_layers + zero
    if m.attention == "mla":
        proj_out = q_width + m.kv_lora_rank + m.qk_rope_head_dim + d
    else:
        proj_out = q_width + 2 * m.n_kv_heads * m.head_dim + d
    core_out = m.n_heads * core_head_out
    active_experts = k_act + m.n_shared_experts
    out_widths = (
        proj_out * m.n_layers,
        core_out * full_layers,
        core_out * win_layers,
        ((n_mat - 1.0) * m.d_ff + d) * m.n_dense_layers,
        ((n_mat - 1.0) * m.moe_d_ff * active_experts + d) * moe_layers,
        m.vocab_size * b / jnp.maximum(tokens, 1e-9),
        zero,
    )
    flops = jnp.stack([attn_proj_flops, core_full[0], core_win[0], ffn_flops, moe_flops, head_flops, zero])
    weight_bytes = jnp.stack([attn_proj_bytes, zero, zero, ffn_bytes, moe_bytes, head_bytes, emb_bytes])
    moe_col = np.arange(len(OP_NAMES)) == OP_NAMES.index("moe")
    ops = OpCounts(
        flops=flops,
        weight_bytes=weight_bytes,
        kv_read_bytes=jnp.stack([zero, core_full[1], core_win[1], zero, zero, zero, zero]),
        kv_write_bytes=jnp.stack([zero, core_full[2], core_win[2], zero, zero, zero, zero]),
        act_bytes=jnp.stack(
            [attn_proj_act, core_full[3] + zero, core_win[3] + zero, ffn_act, moe_act, head_act, emb_act]
        ),
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
        flops_mean=jnp.where(moe_col, moe_flops_mean, flops),
        weight_bytes_mean=jnp.where(moe_col, moe_bytes_mean, weight_bytes),
    )

    has_ep = ep > 1
    comm = CommCounts(
        tp_allreduce_bytes=tokens_a * d * abyte,
        tp_allreduce_calls=m.n_layers + m.n_dense_layers + jnp.where(has_ep, 0.0, moe_layers),
        # dispatch: the busiest rank receives its routed (token, expert) pairs; combine:
        # it sends them back (mean: each chip owns tokens / ep tokens x k experts)
        ep_alltoall_bytes=pairs_busy * d * abyte,
        ep_alltoall_calls=jnp.where(has_ep, 2.0 * moe_layers, 0.0),
        ep_allreduce_calls=jnp.where(has_ep & (tp > ep), moe_layers, 0.0),
        pp_p2p_bytes=tokens_a * d * abyte,
        pp_p2p_calls=w.pp - 1.0,
        tp_allreduce_chips=tp_a + zero,
        # one partial output per routed token of the rank (at most one per token after
        # the local weighted sum of its experts)
        ep_allreduce_bytes=jnp.minimum(pairs_busy, tokens) * d * abyte,
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
    """Weight bytes held by one chip (1/pp of the layers).

    Routed experts are split over all ``tp`` chips (``ep`` ranks of ``tp / ep`` chips);
    everything else (attention, dense FFN, shared experts, router, embeddings, LM head)
    over the ``tp / attention_dp`` chips of an attention group, i.e. replicated
    ``attention_dp`` times. Without attention-DP: ``params / (tp pp)``.
    """
    m, c = pruning.resolve(m, c)
    routed = n_moe_layers(m) * m.n_experts * expert_params(m)
    attn = m.n_layers * attention_params_per_layer(m)
    emb = embedding_params(m) + (0.0 if m.tied_embeddings else lm_head_params(m))
    rest = param_count(m) - routed - attn - emb
    wbits = weight_bits_per_param(c)
    group_bits = rest * wbits + attn * attention_weight_bits_per_param(c) + emb * embedding_weight_bits_per_param(c)
    bits = routed * wbits / w.tp + group_bits / attention_group_chips(w)
    return bits / 8.0 / w.pp


def kv_bytes_resident(m: Model, c: Compression, w: Workload):
    """KV-cache bytes held by one chip at the end of the request (prompt + output);
    attention-DP groups hold disjoint sequences (`kv_cache_split`)."""
    m, c = pruning.resolve(m, c)
    total = kv_cache_bytes(m, c, w.batch, w.prompt_len + w.output_len)
    return total / (kv_cache_split(m, w) * w.pp)


#: bytes of one activation element between kernels (bf16)
ACTIVATION_BYTES = 2.0


def activation_bytes_resident(m: Model, c: Compression, w: Workload, budget_tokens=None):
    """Peak activation workspace on one chip for a prefill of the batch's prompts, one layer
    at a time: ``batch x prompt_len`` tokens at once, or at most the engine's token budget
    of one step (``budget_tokens``, `Stack.prefill_chunk_tokens`: the engine prefills in
    chunks of it; ``None``: no budget).

    Per token, the peak of a layer's forward pass is the FFN's: the residual stream and the
    normalised FFN input (``2 d_model``; every tensor-parallel rank holds the whole hidden
    state, only the intermediate is sharded) plus the up-projection output (gate and up for
    a gated FFN, ``2 d_ff / tp``; the routed experts' intermediate for MoE), all 16-bit:
    serving stacks keep activations in bf16 between kernels and quantise fp8/fp4 GEMM inputs
    inside the kernel. This is what vLLM's start-up profile measures (a dummy forward pass
    of its token budget, ``Worker.determine_num_available_blocks``) and sets aside before
    the KV cache (`hwgrad.cost.sequences_per_tier`).
    """
    m, c = pruning.resolve(m, c)
    ff = jnp.maximum(m.d_ff, m.moe_d_ff * (m.n_experts_active + m.n_shared_experts))
    up = (2.0 if m.gated_ffn else 1.0) * ff / w.tp
    per_token = (2.0 * m.d_model + up) * ACTIVATION_BYTES
    tokens = w.batch * w.prompt_len
    if budget_tokens is not None:
        tokens = jnp.minimum(tokens, budget_tokens)
    return tokens * per_token


def bytes_moved(ops: OpCounts):
    """Bytes each op moves: weights + KV reads and writes + activations."""
    return ops.weight_bytes + ops.kv_read_bytes + ops.kv_write_bytes + ops.act_bytes


def arithmetic_intensity(ops: OpCounts):
    """FLOPs per byte moved, per op."""
    return safe_div(ops.flops, bytes_moved(ops))
