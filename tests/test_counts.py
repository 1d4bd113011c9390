"""Counts against the shipped model table, hand arithmetic and a Monte-Carlo check."""

import functools
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import hwgrad as hg
from hwgrad import counts, presets

MODELS = presets.names("models")


@pytest.mark.parametrize("name", MODELS)
def test_parameter_counts_match_models_csv(name):
    row = presets.table("models")[name]
    m = presets.model(name)
    total = float(counts.param_count(m)) / 1e9
    active = float(counts.active_param_count(m)) / 1e9
    assert total == pytest.approx(float(row["params_total_B"]), rel=0.01)
    assert active == pytest.approx(float(row["params_active_B"]), rel=0.01)


def test_kv_bytes_per_token_gqa_by_hand():
    # Llama-3.1-70B: 80 layers x (K + V) x 8 KV heads x 128 dims x 2 bytes
    m = presets.model("llama-3.1-70b")
    assert float(counts.kv_bytes_per_token(m, hg.compression("bf16"))) == 80 * 2 * 8 * 128 * 2 == 327_680
    # fp8 KV halves it
    assert float(counts.kv_bytes_per_token(m, hg.compression("bf16", "fp8"))) == 163_840


def test_kv_bytes_per_token_mla_by_hand():
    # DeepSeek-V3: 61 layers x (kv_lora_rank 512 + rope 64) x 2 bytes, shared by all 128 heads
    m = presets.model("deepseek-v3")
    assert float(counts.kv_bytes_per_token(m, hg.compression("bf16"))) == 61 * 576 * 2 == 70_272


def test_sliding_window_caps_the_cache():
    # gpt-oss-120b: 18 of 36 layers keep only 128 tokens
    m = presets.model("gpt-oss-120b")
    c = hg.compression("bf16")
    per_layer_token = 2 * 8 * 64 * 2
    got = float(counts.kv_cache_bytes(m, c, 1.0, 4096.0))
    assert got == (18 * 4096 + 18 * 128) * per_layer_token


def test_expected_distinct_experts_limits_and_monte_carlo():
    e, k = 8, 2
    assert float(counts.expected_distinct_experts(e, k, 1.0)) == pytest.approx(k)
    assert float(counts.expected_distinct_experts(e, k, 1e4)) == pytest.approx(e)
    assert float(counts.expected_distinct_experts(0.0, 0.0, 16.0)) == 0.0
    rng = np.random.default_rng(0)
    for e, k, t in [(8, 2, 4), (256, 8, 16), (128, 4, 64)]:
        draws = [
            len(set(np.concatenate([rng.choice(e, k, replace=False) for _ in range(t)]))) for _ in range(4000)
        ]
        assert float(counts.expected_distinct_experts(e, k, float(t))) == pytest.approx(
            np.mean(draws), rel=0.02
        )


def test_decode_flops_are_twice_the_active_matmul_params():
    # batch-1 decode at zero context: every active weight (except the embedding gather) is
    # one multiply-add
    for name in ("llama-3.1-8b", "mixtral-8x7b", "deepseek-v3"):
        m = presets.model(name)
        ops, _ = counts.forward_counts(m, hg.compression("bf16"), hg.Workload(batch=1.0), 1.0, 0.0)
        matmul = float(counts.active_param_count(m) - counts.embedding_params(m))
        norms = float(m.d_model) * (2 * float(m.n_layers) + 1)
        attn = float(ops.flops[1] + ops.flops[2])
        assert float(ops.flops.sum()) - attn == pytest.approx(2 * (matmul - norms), rel=1e-4)


def test_moe_weight_bytes_grow_with_batch_toward_all_experts():
    m = presets.model("mixtral-8x7b")
    c = hg.compression("bf16")
    moe = counts.OP_NAMES.index("moe")
    b1 = float(counts.forward_counts(m, c, hg.Workload(batch=1.0), 1.0, 0.0)[0].weight_bytes[moe])
    b64 = float(counts.forward_counts(m, c, hg.Workload(batch=64.0), 1.0, 0.0)[0].weight_bytes[moe])
    expert_bytes = float(counts.expert_params(m)) * 2 * 32
    router_bytes = float(m.d_model * m.n_experts) * 2 * 32
    assert b1 == pytest.approx(2 * expert_bytes + router_bytes, rel=1e-5)
    assert b64 == pytest.approx(8 * expert_bytes * (1 - (6 / 8) ** 64) + router_bytes, rel=1e-5)


def test_tensor_parallel_splits_weights_but_not_mla_cache():
    c = hg.compression("bf16")
    llama = presets.model("llama-3.1-70b")
    ds = presets.model("deepseek-v3")
    for m, kv_split_at_16 in ((llama, 8.0), (ds, 1.0)):
        one = counts.forward_counts(m, c, hg.Workload(batch=4.0, tp=1.0), 1.0, 1000.0)[0]
        sixteen = counts.forward_counts(m, c, hg.Workload(batch=4.0, tp=16.0), 1.0, 1000.0)[0]
        assert float(sixteen.weight_bytes[0]) == pytest.approx(float(one.weight_bytes[0]) / 16, rel=1e-6)
        assert float(sixteen.kv_read_bytes[1]) == pytest.approx(
            float(one.kv_read_bytes[1]) / kv_split_at_16, rel=1e-6
        )


def test_kv_reads_per_pass_without_grouped_reads_by_hand():
    """A decode kernel with one thread block per query head reads each KV head once per
    query head of its group: Llama-2-70B has 64 query heads over 8 KV heads."""
    m = presets.model("llama-2-70b")
    assert (float(m.n_heads), float(m.n_kv_heads)) == (64.0, 8.0)

    def reads(reuse, tp=2.0, new_tokens=1.0, model=m):
        return float(counts.kv_reads_per_pass(model, hg.Workload(batch=8.0, tp=tp), reuse, new_tokens))

    assert reads(1.0) == 1.0  # grouped kernel (FlashDecoding / XQA)
    assert reads(0.0) == 8.0  # once per query head: G = 64 / 8
    assert reads(0.5) == pytest.approx(4.5)
    # TP 16 > 8 KV heads: a chip holds 4 query heads over one replicated KV head
    assert reads(0.0, tp=16.0) == 4.0
    assert reads(0.0, new_tokens=512.0) == 1.0  # prefill: the context kernels share the read
    assert reads(0.0, model=presets.model("llama-2-7b")) == 1.0  # MHA: G = 1
    assert reads(0.0, model=presets.model("deepseek-v3")) == 1.0  # MLA latent cache


def test_sparse_storage_bits():
    dense = hg.compression("bf16")
    assert float(counts.weight_bits_per_param(dense)) == 16
    two_four = hg.compression("bf16", pattern="2:4")
    assert float(counts.weight_bits_per_param(two_four)) == 0.5 * 16 + 1
    unstructured = hg.compression("int4", sparsity=0.7, pattern="unstructured")
    assert float(counts.weight_bits_per_param(unstructured)) == pytest.approx(0.3 * 4.25 + 1)


# ----------------------------------------------------------------------------- mixed-precision checkpoints


@pytest.mark.parametrize("name,gib", [("gpt-oss-120b", 60.8), ("gpt-oss-20b", 12.8)])
def test_gpt_oss_mxfp4_size_matches_the_published_checkpoint(name, gib):
    # gpt-oss model card (OpenAI, 2025), table 1: checkpoint sizes 60.8 GiB and 12.8 GiB;
    # MXFP4 experts (4.25 bits) + bf16 attention, router, embeddings and LM head
    m = presets.model(name)
    got = float(counts.weight_bytes_resident(m, hg.compression("mxfp4"), hg.Workload())) / 2**30
    assert got == pytest.approx(gib, rel=0.01)
    everything_mx = hg.compression("mxfp4", attention_dtype="mxfp4", embedding_dtype="mxfp4")
    assert float(counts.weight_bytes_resident(m, everything_mx, hg.Workload())) / 2**30 < 0.96 * gib


def test_meta_fp8_405b_keeps_attention_and_embeddings_in_bf16():
    m = presets.model("llama-3.1-405b")
    wl = hg.Workload(tp=8.0)
    fp8 = hg.compression("fp8")
    meta = hg.compression("fp8", checkpoint="meta-llama/Llama-3.1-405B-FP8")
    assert (float(meta.attention_weight_bits), float(meta.embedding_weight_bits)) == (16.0, 16.0)
    # one extra byte per attention and embedding/LM-head weight, split over 8 chips
    extra = float(m.n_layers * counts.attention_params_per_layer(m) + 2 * m.vocab_size * m.d_model)
    assert float(counts.weight_bytes_resident(m, meta, wl) - counts.weight_bytes_resident(m, fp8, wl)) == (
        pytest.approx(extra / 8, rel=1e-6)
    )
    # a decode step reads the bf16 projections and LM head, and multiplies them in bf16
    ops_fp8, _ = counts.forward_counts(m, fp8, wl, 1.0, 100.0)
    ops_meta, _ = counts.forward_counts(m, meta, wl, 1.0, 100.0)
    names = counts.OP_NAMES

    def ratio(op):
        j = names.index(op)
        return float(ops_meta.weight_bytes[j]) / float(ops_fp8.weight_bytes[j])

    assert [ratio(op) for op in ("attn_proj", "lm_head", "embedding", "ffn_dense")] == pytest.approx([2, 2, 2, 1])
    bits = np.asarray(counts.op_compute_bits(meta))
    assert bits[names.index("attn_proj")] == bits[names.index("lm_head")] == 16.0
    assert bits[names.index("ffn_dense")] == 8.0


def test_own_weight_formats_default_to_the_other_weights():
    plain = hg.compression("int4")
    assert float(plain.attention_weight_bits) == float(plain.embedding_weight_bits) == 0.0
    assert float(counts.attention_weight_bits_per_param(plain)) == pytest.approx(4.25)
    # an unknown checkpoint name changes nothing; an explicit format wins over the preset
    assert hg.compression("fp8", checkpoint="someone/else") == hg.compression("fp8")
    assert float(hg.compression("mxfp4", attention_dtype="fp8").attention_weight_bits) == 8.0
    # a weight-only format's bf16 attention still multiplies at 16 bits, an fp4 stack's fp8
    # attention at 8
    assert np.all(np.asarray(counts.op_compute_bits(hg.compression("mxfp4"))) == 16.0)
    nvfp4 = hg.compression("fp4", attention_dtype="fp8")
    assert np.asarray(counts.op_compute_bits(nvfp4)).tolist() == [8.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0]
    with pytest.raises(ValueError, match="attention_dtype = 'fp7' is not a known format"):
        hg.compression("fp8", attention_dtype="fp7")


# ----------------------------------------------------------------------------- EP: busiest rank

# (name, E, k) of the three routings in the issue
_ROUTINGS = (("deepseek-v3", 256, 8), ("mixtral-8x7b", 8, 2), ("qwen3-30b-a3b", 128, 8))
_T_GRID = (1, 2, 4, 16, 64, 256, 1024, 4096)
_EP_GRID = (1, 2, 4, 8, 16, 32)


def _monte_carlo_busiest(e, k, t, eps, rng):
    """Mean over trials of max over ranks of (distinct experts, routed pairs), per ep."""
    trials = int(np.clip(2e6 / (t * e), 50, 20000))
    out = {p: ([], []) for p in eps}
    left = trials
    while left:
        c = min(left, max(1, int(4e6 // (t * e))))
        left -= c
        sel = np.argpartition(rng.random((c, t, e), dtype=np.float32), k - 1, axis=-1)[..., :k]
        hits = np.zeros((c, e), dtype=np.int64)
        np.add.at(hits, (np.repeat(np.arange(c), t * k), sel.ravel()), 1)
        for p in eps:
            per = hits.reshape(c, p, e // p)
            out[p][0].append((per > 0).sum(-1).max(-1))
            out[p][1].append(per.sum(-1).max(-1))
    return {p: (np.concatenate(y).mean(), np.concatenate(x).mean()) for p, (y, x) in out.items()}


@pytest.mark.parametrize("name,e,k", _ROUTINGS)
def test_ep_busiest_rank_against_monte_carlo(name, e, k):
    rng = np.random.default_rng(11)
    eps = [p for p in _EP_GRID if e % p == 0]
    t_grid = np.array(_T_GRID, dtype=float)
    worst = 0.0
    for t in _T_GRID:
        ref = _monte_carlo_busiest(e, k, t, eps, rng)
        experts, pairs = counts.ep_busiest_rank_load(
            float(e), float(k), t_grid[_T_GRID.index(t)], np.array(eps, float)
        )
        for i, p in enumerate(eps):
            for got, want in ((experts[i], ref[p][0]), (pairs[i], ref[p][1])):
                assert float(got) == pytest.approx(want, rel=0.05), (name, t, p)
                worst = max(worst, abs(float(got) / want - 1))
    assert worst > 0.0  # the grid exercised the approximation (not only the ep = 1 means)


def _exact_busiest_one_token(e, k, ep):
    """E[max_r X_r] for one token, exactly: the rank counts are multivariate hypergeometric, so
    ``P(max <= x) = [z^k] (sum_{c <= x} C(n, c) z^c)^ep / C(E, k)``."""
    from math import comb

    n = e // ep

    def all_at_most(x):
        poly = [1]
        for _ in range(ep):
            term = [comb(n, c) for c in range(min(x, n) + 1)]
            poly = [
                sum(poly[i] * term[j - i] for i in range(len(poly)) if 0 <= j - i < len(term))
                for j in range(min(len(poly) + len(term) - 1, k + 1))
            ]
        return (poly[k] if len(poly) > k else 0) / comb(e, k)

    return sum(1.0 - all_at_most(x) for x in range(k))


@pytest.mark.parametrize("e,k,ep", [(256, 8, 8), (8, 2, 2), (8, 2, 4), (128, 8, 32), (256, 8, 32)])
def test_ep_busiest_rank_one_token_exact(e, k, ep):
    # DeepSeek-V3 at batch 1 with EP 8: 2.564 experts on the busiest rank vs a mean of 1
    exact = _exact_busiest_one_token(e, k, ep)
    experts, pairs = counts.ep_busiest_rank_load(float(e), float(k), 1.0, float(ep))
    assert float(pairs) == pytest.approx(exact, rel=0.05)
    assert float(experts) == pytest.approx(float(pairs), rel=1e-4)  # one token: no collisions
    if (e, k, ep) == (256, 8, 8):
        assert exact == pytest.approx(2.5637, abs=1e-4)
        assert float(pairs) == pytest.approx(2.55, abs=0.02)


def test_ep_busiest_rank_limits():
    e, k = 256.0, 8.0
    # ep = 1: the means
    y, x = counts.ep_busiest_rank_load(e, k, 37.0, 1.0)
    assert float(y) == pytest.approx(float(counts.expected_distinct_experts(e, k, 37.0)), rel=1e-6)
    assert float(x) == pytest.approx(37.0 * 8.0, rel=1e-6)
    # a huge batch saturates every rank: E / ep experts, pairs -> the mean
    y, x = counts.ep_busiest_rank_load(e, k, 1e6, 8.0)
    assert float(y) == pytest.approx(32.0, rel=1e-6)
    assert float(x) == pytest.approx(1e6, rel=0.01)
    # dense model
    assert [float(v) for v in counts.ep_busiest_rank_load(0.0, 0.0, 16.0, 8.0)] == [0.0, 0.0]
    # never below the mean, never above the rank's experts / pairs
    t = np.array([1.0, 3.0, 10.0, 100.0, 1000.0])
    y, x = counts.ep_busiest_rank_load(e, k, t, 32.0)
    assert np.all(np.asarray(y) <= 8.0 + 1e-6)
    assert np.all(np.asarray(x) >= t * k / 32.0 - 1e-4)
    assert np.all(np.asarray(y) >= np.asarray(counts.expected_distinct_experts(e, k, t)) / 32.0 - 1e-5)


@given(
    st.sampled_from([(256.0, 8.0), (8.0, 2.0), (128.0, 8.0), (64.0, 1.0)]),
    st.floats(0.0, 1e7),
    st.floats(1.0, 64.0),
)
@settings(max_examples=60, deadline=None)
def test_ep_busiest_rank_gradients_are_finite(ek, t, ep):
    e, k = ek
    for i in range(2):
        g = _busiest_grad(i)(e, k, jnp.float32(t), jnp.float32(ep))
        assert all(np.isfinite(float(v)) for v in g), (i, t, ep, g)


@functools.lru_cache(maxsize=2)
def _busiest_grad(i):
    return jax.jit(jax.grad(lambda e, k, t, p: counts.ep_busiest_rank_load(e, k, t, p)[i], argnums=(2, 3)))


def test_moe_counts_use_the_busiest_rank_and_keep_the_mean_for_energy():
    m = presets.model("deepseek-v3")
    c = hg.compression("bf16")
    moe = counts.OP_NAMES.index("moe")
    w = hg.Workload(batch=1.0, tp=8.0, ep=8.0)
    ops, comm = counts.forward_counts(m, c, w, 1.0, 0.0)
    experts, pairs = counts.ep_busiest_rank_load(256.0, 8.0, 1.0, 8.0)
    p_exp, layers = float(counts.expert_params(m)), 58.0
    non_routed = (1 * p_exp + 7168 * 256) / 8.0  # shared expert + router, split over tp
    # tp / ep = 1 chip per rank: the busiest rank streams its ~2.55 experts
    assert float(ops.weight_bytes[moe]) == pytest.approx(
        (float(experts) * p_exp + non_routed) * 2 * layers, rel=1e-5
    )
    assert float(ops.weight_bytes_mean[moe]) == pytest.approx(
        (1.0 * p_exp + non_routed) * 2 * layers, rel=1e-5
    )
    assert float(ops.flops[moe]) == pytest.approx(2 * (float(pairs) * p_exp + non_routed) * layers, rel=1e-5)
    assert float(ops.flops_mean[moe]) == pytest.approx(2 * (1.0 * p_exp + non_routed) * layers, rel=1e-5)
    # other ops: mean == per chip
    others = np.arange(len(counts.OP_NAMES)) != moe
    np.testing.assert_allclose(np.asarray(ops.flops_mean)[others], np.asarray(ops.flops)[others])
    # dispatch/combine: the busiest rank's pairs x d_model x 2 bytes
    assert float(comm.ep_alltoall_bytes) == pytest.approx(float(pairs) * 7168 * 2, rel=1e-6)
    assert float(comm.tp_allreduce_chips) == 8.0


# ----------------------------------------------------------------------------- MLA phases


def test_mla_prefill_is_non_absorbed_and_decode_absorbed_by_hand():
    # DeepSeek-V3: H 128, nope 128, rope 64, v 128, kv_lora 512, 61 layers
    m = presets.model("deepseek-v3")
    c = hg.compression("bf16")
    w = hg.Workload(batch=1.0)
    p = 32768.0
    pre = counts.forward_counts(m, c, w, p, 0.0)[0]
    absorbed = counts.forward_counts(m, c, w, p, 0.0, mla_absorbed=True)[0]
    pairs = p * (p + 1) / 2  # causal (query, key) pairs
    assert float(pre.flops[1]) == pytest.approx(2 * pairs * 128 * (128 + 64 + 128) * 61, rel=1e-5)
    assert float(absorbed.flops[1]) == pytest.approx(2 * pairs * 128 * (512 + 64 + 512) * 61, rel=1e-5)
    # the absorbed form costs 1088 / 320 = 3.4x the attention FLOPs and ~2.3x the whole prefill
    assert float(absorbed.flops[1] / pre.flops[1]) == pytest.approx(3.4, rel=1e-5)
    assert 2.2 < float(absorbed.flops.sum() / pre.flops.sum()) < 2.4
    # decode stays absorbed: 2 (L + 1) H (kv_lora + rope + kv_lora) per layer
    dec = counts.forward_counts(m, c, w, 1.0, 4096.0)[0]
    assert float(dec.flops[1]) == pytest.approx(2 * 4097 * 128 * 1088 * 61, rel=1e-6)
    # a non-absorbed pass over cached context also decompresses the cached latents
    chunk = counts.forward_counts(m, c, w, 256.0, 1024.0)[0]
    span = 1024 + 257 / 2
    want = 2 * 256 * span * 128 * 320 * 61 + 2 * 1024 * 512 * 128 * 256 * 61
    assert float(chunk.flops[1]) == pytest.approx(want, rel=1e-5)


# ----------------------------------------------------------------------------- attention-DP


def test_attention_dp_replicates_attention_and_splits_the_batch():
    m = presets.model("deepseek-v3")
    c = hg.compression("bf16")
    tp = hg.Workload(batch=64.0, tp=8.0, ep=8.0)
    dp = hg.replace(tp, attention_dp=8.0)
    o_tp, c_tp = counts.forward_counts(m, c, tp, 1.0, 2048.0)
    o_dp, c_dp = counts.forward_counts(m, c, dp, 1.0, 2048.0)
    attn = counts.OP_NAMES.index("attn_proj")
    # each chip holds the whole attention (8x the bytes), FLOPs per chip unchanged
    assert float(o_dp.weight_bytes[attn]) == pytest.approx(8 * float(o_tp.weight_bytes[attn]), rel=1e-6)
    assert float(o_dp.flops[attn]) == pytest.approx(float(o_tp.flops[attn]), rel=1e-6)
    # MLA latent cache: replicated under TP, 1/8 of the sequences per chip under attention-DP
    assert float(o_dp.kv_read_bytes[1]) == pytest.approx(float(o_tp.kv_read_bytes[1]) / 8, rel=1e-6)
    assert float(o_dp.kv_read_bytes[1]) == pytest.approx(8 * 2048 * 576 * 2 * 61, rel=1e-6)
    # routed experts unchanged; no tensor-parallel all-reduce (groups of one chip)
    moe = counts.OP_NAMES.index("moe")
    assert float(o_dp.flops[moe]) == pytest.approx(float(o_tp.flops[moe]), rel=1e-6)
    assert float(c_dp.tp_allreduce_chips) == 1.0 and float(c_tp.tp_allreduce_chips) == 8.0
    assert float(c_dp.ep_alltoall_bytes) == pytest.approx(float(c_tp.ep_alltoall_bytes), rel=1e-6)
    # capacity: routed experts / 8, the rest replicated; KV / 8
    routed = float(counts.n_moe_layers(m) * m.n_experts * counts.expert_params(m))
    rest = float(counts.param_count(m)) - routed
    assert float(counts.weight_bytes_resident(m, c, dp)) == pytest.approx((routed / 8 + rest) * 2, rel=1e-6)
    assert float(counts.weight_bytes_resident(m, c, tp)) == pytest.approx((routed + rest) / 8 * 2, rel=1e-6)
    assert float(counts.kv_bytes_resident(m, c, dp)) == pytest.approx(
        float(counts.kv_bytes_resident(m, c, tp)) / 8, rel=1e-6
    )


def test_attention_dp_removes_the_tp_allreduce_from_the_step():
    m = presets.model("deepseek-v3")
    s = presets.system("h100-sxm", 8)
    c = hg.compression("fp8")
    sol = hg.Efficiency.speed_of_light()
    base = hg.Workload(batch=64.0, prompt_len=1024.0, output_len=64.0, tp=8.0, ep=8.0)
    r_tp = hg.evaluate(s, m, base, c, sol)
    r_dp = hg.evaluate(s, m, hg.replace(base, attention_dp=8.0), c, sol)
    assert np.isfinite(float(r_dp.tpot_s))
    assert float(r_dp.decode.communication_s) < float(r_tp.decode.communication_s)
    # attention weights are replicated: more bytes held per chip
    assert float(r_dp.capacity_used_bytes[0]) > float(r_tp.capacity_used_bytes[0])


@pytest.mark.parametrize(
    "changes,msg",
    [
        ({"attention_dp": 2.5}, "workload.attention_dp = 2.5: must be a whole number"),
        ({"attention_dp": 2.0, "ep": 1.0}, "set ep > 1"),
        ({"attention_dp": 3.0}, "must divide tp = 8"),
        ({"attention_dp": 8.0, "batch": 4.0}, "split evenly"),
    ],
)
def test_attention_dp_validation(changes, msg):
    from hwgrad.validate import validate

    m = presets.model("deepseek-v3")
    s = presets.system("h100-sxm", 8)
    good = hg.Workload(batch=64.0, tp=8.0, ep=8.0, attention_dp=8.0)
    validate(s, m, good, hg.compression("bf16"))
    with pytest.raises(ValueError, match=re.escape(msg)):
        validate(s, m, hg.replace(good, **changes), hg.compression("bf16"))
