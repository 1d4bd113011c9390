"""Counts against the shipped model table, hand arithmetic and a Monte-Carlo check."""

import numpy as np
import pytest

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


def test_sparse_storage_bits():
    dense = hg.compression("bf16")
    assert float(counts.weight_bits_per_param(dense)) == 16
    two_four = hg.compression("bf16", pattern="2:4")
    assert float(counts.weight_bits_per_param(two_four)) == 0.5 * 16 + 1
    unstructured = hg.compression("int4", sparsity=0.7, pattern="unstructured")
    assert float(counts.weight_bits_per_param(unstructured)) == pytest.approx(0.3 * 4.25 + 1)
