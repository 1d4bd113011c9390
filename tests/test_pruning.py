"""Structured pruning: hand counts, published parameter counts, gradients, legal rounding."""

import csv

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import hwgrad as hg
from hwgrad import counts, presets, pruning
from hwgrad.presets import DATA

SOL = hg.Efficiency.speed_of_light()

# Llama-2-7B by hand: d = 4096, 32 layers, 32 heads (MHA) x 128, d_ff = 11008, vocab 32000.
ATTN_7B = 4096 * (4096 + 2 * 4096) + 4096 * 4096 + 4096  # 67,112,960
FFN_7B = 3 * 4096 * 11008 + 4096  # 135,270,400
EMB_7B = 32000 * 4096  # embedding and LM head, each
DENSE_7B = 32 * (ATTN_7B + FFN_7B) + 2 * EMB_7B + 4096  # 6,738,415,616


def test_dense_llama2_7b_by_hand():
    assert float(counts.param_count(presets.model("llama-2-7b"))) == DENSE_7B == 6_738_415_616


def test_slicing_25_percent_of_llama2_7b_by_hand():
    m = presets.model("llama-2-7b")
    c = hg.Compression(hidden_kept_fraction=0.75)
    p = pruning.apply(m, c)
    d = 3072
    attn = d * (4096 + 2 * 4096) + 4096 * d + d
    ffn = 3 * d * 11008 + d
    want = 32 * (attn + ffn) + 2 * 32000 * d + d
    assert want == 5_053_811_712
    assert float(counts.param_count(p)) == want
    # heads and KV cache keep their shapes: 2 x 32 heads x 128 x 32 layers x 2 bytes
    assert float(counts.kv_bytes_per_token(p, hg.compression("bf16"))) == 524_288
    # tensor-parallel all-reduce of the hidden state shrinks with the residual stream
    w = hg.Workload(batch=1, tp=2)
    _, comm = counts.forward_counts(
        m, hg.replace(hg.compression("bf16"), hidden_kept_fraction=0.75), w, 1, 100
    )
    assert float(comm.tp_allreduce_bytes) == 3072 * 2
    # weights held: the pruned model at 2 bytes per parameter over 2 chips
    held = counts.weight_bytes_resident(m, hg.replace(hg.compression("bf16"), hidden_kept_fraction=0.75), w)
    assert float(held) == want * 2 / 2


def test_dropping_8_of_32_layers_by_hand():
    m = presets.model("llama-2-7b")
    want = 24 * (ATTN_7B + FFN_7B) + 2 * EMB_7B + 4096
    assert want == 5_119_348_736
    for c in (
        hg.Compression(layers_kept_fraction=0.75),
        hg.Compression(layer_keep_gates=jnp.array([1.0] * 12 + [0.0] * 8 + [1.0] * 12)),
    ):
        p = pruning.apply(m, c)
        assert float(counts.param_count(p)) == want
        assert float(counts.kv_bytes_per_token(p, hg.compression("bf16"))) == 24 * 2 * 32 * 128 * 2
        # decode FLOPs of one token in the projections and FFNs: 2 x their matmul parameters
        ops, comm = counts.forward_counts(
            m, hg.replace(hg.compression("bf16"), **_fields(c)), hg.Workload(), 1, 0
        )
        matmul = 24 * (ATTN_7B - 4096 + FFN_7B - 4096)
        assert float(ops.flops[0] + ops.flops[3]) == pytest.approx(2 * matmul, rel=1e-6)
        assert float(ops.launches[0]) == 24
        assert float(comm.tp_allreduce_calls) == 48


def _fields(c):
    return {f: getattr(c, f) for f in (*pruning.KEEP_FIELDS, "layer_keep_gates")}


def test_head_pruning_respects_attention_kind():
    gqa = presets.model("llama-3.1-70b")
    p = pruning.apply(gqa, hg.Compression(heads_kept_fraction=0.5, kv_heads_kept_fraction=0.5))
    assert (float(p.n_heads), float(p.n_kv_heads), float(p.head_dim)) == (32, 4, 128)
    mha = presets.model("llama-2-7b")
    p = pruning.apply(mha, hg.Compression(heads_kept_fraction=0.5, kv_heads_kept_fraction=1.0))
    assert float(p.n_kv_heads) == float(p.n_heads) == 16  # MHA: K/V heads go with the queries
    mla = presets.model("deepseek-v3")
    p = pruning.apply(mla, hg.Compression(heads_kept_fraction=0.5))
    assert float(p.n_heads) == 64
    assert float(counts.kv_bytes_per_token(p, hg.compression("bf16"))) == 61 * 576 * 2  # shared latent


def test_moe_gates_keep_the_dense_prefix():
    m = presets.model("deepseek-v3")  # 3 dense layers, then 58 MoE layers
    gates = jnp.ones(61).at[1].set(0.0).at[40].set(0.0)
    p = pruning.apply(m, hg.Compression(layer_keep_gates=gates, ffn_kept_fraction=0.5))
    assert (float(p.n_layers), float(p.n_dense_layers)) == (59, 2)
    assert float(p.moe_d_ff) == float(m.moe_d_ff) / 2


# ----------------------------------------------------------------------------- published counts


def _rows():
    with (DATA / "structured_pruning.csv").open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_layer_removal_matches_the_papers_parameter_fractions():
    """BlockPruner's table: removing n whole layers of Llama-2-7B/13B removes this fraction."""
    rows = [r for r in _rows() if r["layers_removed"] and r["params_removed_fraction"]]
    assert len(rows) >= 12
    for r in rows:
        m = presets.model(r["model"])
        c = hg.Compression(layers_kept_fraction=1.0 - float(r["layers_removed"]) / float(m.n_layers))
        got = float(pruning.params_removed_fraction(m, c))
        assert got == pytest.approx(float(r["params_removed_fraction"]), abs=6e-4), r["method"]


@pytest.mark.parametrize(
    ("model", "printed"),
    [("llama-3.1-8b", 2_337_409_024), ("llama-2-7b", 1_750_206_464)],
)
def test_half_width_matches_torch_pruning_printout(model, printed):
    """Torch-Pruning halves hidden, FFN and query heads (Llama-3: 8 KV heads kept) and prints
    ``num_params`` (structured_pruning.csv notes)."""
    m = presets.model(model)
    c = hg.Compression(hidden_kept_fraction=0.5, ffn_kept_fraction=0.5, heads_kept_fraction=0.5)
    assert float(counts.param_count(pruning.apply(m, c))) == printed


def test_slicegpt_fraction_with_shortcut_matrices():
    """SliceGPT 30 %: BlockPruner reports 21.45 % / 21.52 % of Llama-2-7B / 13B removed; the
    shape count alone says 30 %, with the two shortcut matrices per layer 22.2 % / 22.1 %."""
    for model, reported in (("llama-2-7b", 0.2145), ("llama-2-13b", 0.2152)):
        m = presets.model(model)
        c = hg.Compression(hidden_kept_fraction=0.7)
        assert float(pruning.params_removed_fraction(m, c)) == pytest.approx(0.30, abs=1e-9)
        kept = counts.param_count(pruning.apply(m, c)) + pruning.slicing_shortcut_params(m, c)
        assert 1.0 - float(kept / counts.param_count(m)) == pytest.approx(reported, abs=0.008)


# ----------------------------------------------------------------------------- cost model


def _setup():
    system = presets.system("h100-sxm", 1)
    model = presets.model("llama-3.1-8b")
    workload = hg.Workload(batch=8, prompt_len=1024, output_len=128)
    return system, model, workload


def test_evaluate_sees_the_pruned_model():
    system, model, workload = _setup()
    c = hg.replace(hg.compression("bf16"), layers_kept_fraction=0.75, hidden_kept_fraction=0.75)
    pruned = pruning.apply(model, c)
    a = hg.evaluate(system, model, workload, c, SOL)
    b = hg.evaluate(system, pruned, workload, hg.compression("bf16"), SOL)
    assert float(a.tpot_s) == pytest.approx(float(b.tpot_s), rel=1e-6)
    assert np.allclose(np.asarray(a.capacity_used_bytes), np.asarray(b.capacity_used_bytes))
    dense = hg.evaluate(system, model, workload, hg.compression("bf16"), SOL)
    assert float(a.tpot_s) < 0.7 * float(dense.tpot_s)


def test_resolve_is_idempotent():
    _, model, _ = _setup()
    c = hg.Compression(heads_kept_fraction=0.5, ffn_kept_fraction=0.8)
    m1, c1 = pruning.resolve(model, c)
    m2, c2 = pruning.resolve(m1, c1)
    assert m1 == m2 and c1 == c2 and not pruning.is_pruned(c1)


def test_gradients_through_gates_and_fractions_are_finite_and_signed():
    system, model, workload = _setup()

    def tpot(gates, hidden):
        c = hg.replace(hg.compression("bf16"), layer_keep_gates=gates, hidden_kept_fraction=hidden)
        return hg.evaluate(system, model, workload, c, SOL).tpot_s

    g_gates, g_hidden = jax.grad(tpot, argnums=(0, 1))(jnp.full(32, 0.9), 0.8)
    assert np.all(np.isfinite(g_gates)) and np.all(np.asarray(g_gates) > 0)
    assert np.isfinite(g_hidden) and float(g_hidden) > 0


@pytest.mark.slow  # ~50 s: hypothesis over model shapes, one compile each
@settings(max_examples=15, deadline=None)
@given(
    st.floats(0.05, 1.0),
    st.floats(0.05, 1.0),
    st.floats(0.05, 1.0),
    st.floats(0.05, 1.0),
    st.floats(0.13, 1.0),
)
def test_no_nan_gradients_over_the_range(layers, hidden, ffn, heads, kv):
    system, model, workload = _setup()

    def f(x):
        c = hg.replace(
            hg.compression("bf16"),
            layers_kept_fraction=x[0],
            hidden_kept_fraction=x[1],
            ffn_kept_fraction=x[2],
            heads_kept_fraction=x[3],
            kv_heads_kept_fraction=x[4],
        )
        return hg.evaluate(system, model, workload, c, SOL).tpot_s

    g = jax.grad(f)(jnp.array([layers, hidden, ffn, heads, kv]))
    assert np.all(np.isfinite(g))


@pytest.mark.slow  # ~40 s: one compile per loop point
def test_vmap_over_keep_fractions_equals_a_loop():
    system, model, workload = _setup()
    fr = jnp.array([0.5, 0.75, 1.0])

    def f(x):
        return hg.evaluate(system, model, workload, hg.Compression(ffn_kept_fraction=x), SOL).tpot_s

    assert np.allclose(jax.vmap(f)(fr), [float(f(x)) for x in fr], rtol=1e-6)


# ----------------------------------------------------------------------------- legal shapes and errors


def test_round_to_legal_gives_whole_shapes_that_validate():
    m = presets.model("llama-3.1-70b")
    c = hg.Compression(
        layer_keep_gates=jnp.linspace(1.0, 0.2, 80),
        hidden_kept_fraction=0.71,
        ffn_kept_fraction=0.63,
        heads_kept_fraction=0.55,
        kv_heads_kept_fraction=0.4,
    )
    r = pruning.round_to_legal(m, c, tp=4)
    pruning.check_shapes(m, r, 4)
    p = pruning.apply(m, r)
    assert float(p.n_layers) == round(float(jnp.sum(c.layer_keep_gates)))
    assert np.all(np.asarray(r.layer_keep_gates)[: int(p.n_layers)] == 1.0)  # the largest gates kept
    assert (
        float(p.n_kv_heads) == 4 and float(p.n_heads) % 4 == 0 and float(p.n_heads) % float(p.n_kv_heads) == 0
    )
    assert float(p.d_model) % float(p.n_heads) == 0 and float(p.d_ff) % 4 == 0
    assert abs(float(p.n_heads) - 0.55 * 64) <= 4


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"hidden_kept_fraction": 0.0}, "hidden_kept_fraction = 0: keep fractions must lie in (0, 1]"),
        ({"ffn_kept_fraction": 1.5}, "ffn_kept_fraction = 1.5: keep fractions must lie in (0, 1]"),
        ({"kv_heads_kept_fraction": 0.05}, "rounds to zero; keep at least one (fraction >= 0.125)"),
        ({"hidden_kept_fraction": 0.7}, "leaves d_model = 2867.2, not a whole number"),
        ({"hidden_kept_fraction": 1000 / 4096}, "leaves d_model = 1000, not divisible by the 32 query heads"),
        ({"heads_kept_fraction": 26 / 32, "kv_heads_kept_fraction": 0.5}, "GQA needs whole groups"),
        ({"layer_keep_gates": jnp.full(32, 0.5)}, "fractional gates"),
        ({"layer_keep_gates": jnp.ones(31)}, "give one gate per layer (32)"),
    ],
)
def test_bad_keep_knobs_raise_one_line_errors(change, needle):
    system = presets.system("h100-sxm", 1)
    model = presets.model("llama-3.1-8b")
    c = hg.replace(hg.compression("bf16"), **change)
    with pytest.raises(ValueError) as err:
        hg.validate(system, model, hg.Workload(), c)
    assert needle in str(err.value)
    assert "\n" not in str(err.value)


def test_heads_must_divide_over_tp_after_pruning():
    system = presets.system("h100-sxm", 8)
    model = presets.model("llama-3.1-70b")
    c = hg.Compression(heads_kept_fraction=36 / 64, kv_heads_kept_fraction=0.5)
    with pytest.raises(ValueError, match="36 query heads do not divide over tp = 8"):
        hg.validate(system, model, hg.Workload(tp=8), c)
