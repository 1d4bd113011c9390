"""Smooth relaxations: bounds, limits and NaN-free gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwgrad import smooth

positive = st.one_of(st.just(0.0), st.floats(min_value=1e-30, max_value=1e6))


@given(st.lists(positive, min_size=1, max_size=6), st.sampled_from([2.0, 4.0, 8.0, 16.0]))
@settings(max_examples=200, deadline=None)
def test_smooth_max_bounds(values, p):
    v = np.asarray(values)
    s = float(smooth.smooth_max(jnp.asarray(v), p=p))
    hard = v.max()
    assert hard * (1 - 1e-5) <= s <= hard * len(v) ** (1 / p) * (1 + 1e-5)


def test_smooth_max_bias_at_ridge_is_the_documented_bound():
    s = float(smooth.smooth_max(jnp.array([1.0, 1.0]), p=8.0))
    assert s == pytest.approx(2 ** (1 / 8))


@given(st.lists(positive, min_size=2, max_size=4))
@settings(max_examples=100, deadline=None)
def test_smooth_max_gradients_are_finite(values):
    g = jax.grad(lambda x: smooth.smooth_max(x))(jnp.asarray(values))
    assert np.all(np.isfinite(np.asarray(g)))


def test_zero_inputs_give_zero_and_finite_gradient():
    g = jax.grad(lambda x: smooth.smooth_max(x))(jnp.zeros(3))
    assert np.all(np.asarray(g) == 0)
    assert float(smooth.safe_div(1.0, 0.0)) == 0.0
    assert np.isfinite(float(jax.grad(lambda x: smooth.safe_div(1.0, x))(0.0)))
    assert np.isfinite(float(jax.grad(smooth.safe_log)(0.0)))


def test_straight_through_value_is_hard_gradient_is_smooth():
    f = lambda a: smooth.roofline_max(jnp.stack([a, 1.0]), mode="straight_through")
    assert float(f(0.5)) == 1.0
    # the hard max has zero gradient w.r.t. the smaller argument; the surrogate does not
    assert float(jax.grad(f)(0.5)) > 0
    assert float(jax.grad(lambda a: smooth.roofline_max(jnp.stack([a, 1.0]), mode="hard"))(0.5)) == 0


def test_unknown_mode_is_a_clear_error():
    with pytest.raises(ValueError, match="roofline mode"):
        smooth.roofline_max(jnp.ones(2), mode="soft")


@given(st.lists(st.floats(min_value=1e-3, max_value=1e3), min_size=2, max_size=5))
@settings(max_examples=50, deadline=None)
def test_straight_through_max_has_the_smooth_gradient_and_the_hard_value(values):
    v = jnp.asarray(values)
    assert float(smooth.straight_through_max(v)) == float(jnp.max(v))
    g_st = jax.grad(lambda x: smooth.straight_through_max(x))(v)
    g_sm = jax.grad(lambda x: smooth.smooth_max(x))(v)
    np.testing.assert_allclose(np.asarray(g_st), np.asarray(g_sm), rtol=1e-4, atol=1e-7)
    g_min = jax.grad(lambda x: smooth.straight_through_min(x))(v)
    g_smin = jax.grad(lambda x: 1.0 / smooth.smooth_max(1.0 / x))(v)
    np.testing.assert_allclose(np.asarray(g_min), np.asarray(g_smin), rtol=1e-4, atol=1e-7)
