"""Speculative decoding: the chain formula, its gradients, and the measured defaults."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwgrad import speculative as sp


def test_formula_by_hand():
    # (1 - 0.8^6) / 0.2 = (1 - 0.262144) / 0.2
    assert float(sp.expected_tokens_per_step(0.8, 5.0)) == pytest.approx(3.68928, rel=1e-6)
    assert float(sp.expected_tokens_per_step(0.0, 5.0)) == 1.0
    assert float(sp.expected_tokens_per_step(1.0, 5.0)) == pytest.approx(6.0)
    assert float(sp.expected_tokens_per_step(0.5, 0.0)) == pytest.approx(1.0)
    # sum of a geometric series for integer k
    for a in (0.3, 0.7, 0.95):
        assert float(sp.expected_tokens_per_step(a, 4.0)) == pytest.approx(
            sum(a**i for i in range(5)), rel=1e-5
        )


def test_gradients_match_the_series_and_are_finite_at_the_edges():
    g = jax.grad(sp.expected_tokens_per_step, argnums=(0, 1))
    da, dk = g(1.0, 5.0)
    assert float(da) == pytest.approx(15.0)  # d/da sum a^i at a = 1: k(k+1)/2
    assert float(dk) == pytest.approx(1.0)
    da, _ = g(0.6, 3.0)
    assert float(da) == pytest.approx(1 + 2 * 0.6 + 3 * 0.36, rel=1e-4)
    for a, k in ((0.0, 0.0), (0.0, 3.0), (1.0 - 5e-5, 2.0), (1.0, 0.0)):
        assert all(np.isfinite(float(x)) for x in g(a, k))


@settings(max_examples=40, deadline=None)
@given(st.floats(0.0, 1.0), st.floats(0.0, 16.0), st.floats(0.0, 0.05))
def test_monotone_and_bounded(a, k, step):
    e = float(sp.expected_tokens_per_step(a, k))
    assert 1.0 - 1e-5 <= e <= k + 1.0 + 1e-4
    assert float(sp.expected_tokens_per_step(min(a + step, 1.0), k)) >= e - 1e-4
    assert float(sp.expected_tokens_per_step(a, k + step)) >= e - 1e-4


def test_inverse_round_trip():
    for a, k in ((0.42, 5.0), (0.79, 5.0), (0.9, 2.0)):
        tau = float(sp.expected_tokens_per_step(a, k))
        assert sp.acceptance_from_tokens(tau, k) == pytest.approx(a, abs=1e-5)
    with pytest.raises(ValueError, match="between 1 and k \\+ 1"):
        sp.acceptance_from_tokens(7.0, 5.0)


def _both():
    return [
        r
        for r in sp.rows()
        if not math.isnan(r["acceptance_rate"]) and not math.isnan(r["mean_accepted_tokens_per_step"])
    ]


def test_chain_formula_against_rows_with_both_alpha_and_tokens():
    """EAGLE's rows give tree tau and chain 0-alpha (k = 5): the chain formula is a lower bound
    on the tree's tokens per step, within 30 % (median 10 %)."""
    rows = _both()
    assert len(rows) >= 30
    ratio = np.array(
        [
            r["mean_accepted_tokens_per_step"]
            / float(sp.expected_tokens_per_step(r["acceptance_rate"], r["draft_tokens_k"]))
            for r in rows
        ]
    )
    assert np.all(ratio >= 1.0) and np.all(ratio <= 1.3)
    assert np.median(ratio) == pytest.approx(1.10, abs=0.03)


def test_chain_formula_lies_between_the_chain_ablation_and_the_tree():
    """MT-bench, temperature 0: chain-draft tau (EAGLE ablation) <= formula(0-alpha) <= tree tau."""
    n = 0
    for target, method in sp.pairings():
        if method != "eagle-chain":
            continue
        chain = sp.lookup(target, "eagle-chain").mean_accepted_tokens
        tree = sp.lookup(target, "eagle", dataset="MT-bench")
        formula = float(sp.expected_tokens_per_step(tree.acceptance_rate, 5.0))
        assert chain <= formula <= tree.mean_accepted_tokens, target
        n += 1
    assert n == 6


def test_lookup_returns_the_table_values_and_names_the_source():
    d = sp.lookup("vicuna-7b-v1.3", "eagle", dataset="MT-bench")
    assert (d.mean_accepted_tokens, d.acceptance_rate, d.draft_tokens_k) == (3.94, 0.79, 5.0)
    assert any("EAGLE" in s for s in d.sources) and not d.alpha_derived
    # a chain method with tau and k only: alpha derived so that the formula reproduces tau
    d = sp.lookup("llama-4-scout-17b-16e", "ngram", temperature=None)
    assert d.alpha_derived and float(d.expected_tokens()) == pytest.approx(d.mean_accepted_tokens, rel=1e-4)
    # tree methods state k as the tree size: alpha is not invented
    assert math.isnan(sp.lookup("vicuna-7b-v1.3", "eagle-2", temperature=None).acceptance_rate)
    mtp = sp.lookup("deepseek-v3", "mtp", temperature=None)
    assert 0.8 <= mtp.acceptance_rate <= 0.95  # DeepSeek-V3 report: 85-90 % second-token acceptance


def test_lookup_errors_name_the_fix():
    with pytest.raises(ValueError, match="did you mean 'eagle-3'"):
        sp.lookup("llama-3.1-8b-instruct", "eagle3")
    with pytest.raises(ValueError, match="did you mean"):
        sp.lookup("llama-3.1-8b-instrct", "eagle-3")
    with pytest.raises(ValueError, match="measured methods: eagle, eagle-2, eagle-3"):
        sp.lookup("llama-3.1-8b-instruct", "medusa")
    with pytest.raises(ValueError, match="give only speedups, no acceptance"):
        sp.lookup("llama-3.1-8b-instruct", "eagle", temperature=None)


def test_vmap_over_alpha():
    a = jnp.linspace(0.0, 1.0, 5)
    got = jax.vmap(lambda x: sp.expected_tokens_per_step(x, 3.0))(a)
    assert np.allclose(got, [float(sp.expected_tokens_per_step(float(x), 3.0)) for x in a], rtol=1e-5)
