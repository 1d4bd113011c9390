"""Smooth, NaN-free building blocks for a differentiable roofline.

The cost model needs ``max`` (roofline: compute vs memory), ``min`` (clamps) and safe
division/logs. Hard versions have zero or undefined gradients at the kinks; the smooth
versions here are scale-free p-norms whose bias is bounded:

    max(a, b) <= smax_p(a, b) = (a^p + b^p)^(1/p) <= 2^(1/p) max(a, b)     (a, b >= 0)

so at the default ``p = 8`` the smooth roofline over-estimates by at most 9.05 % (exactly at
the ridge point, and falls off geometrically away from it).

``straight_through(hard, smooth)`` returns the *hard* value with the *smooth* gradient,
``smooth + stop_gradient(hard - smooth)``: the model reports exact roofline numbers while
optimisers see gradients that are nonzero on both sides of every kink.

Every division / log / power is guarded with the double-``where`` pattern so that
gradients are finite even in untaken branches (see jax FAQ "gradients contain NaN where
using where").
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

DEFAULT_P = 8.0


def _power(x, p: float):
    """``x ** p``; for p = 2^k by k squarings (no exp/log: ~10x cheaper on CPU)."""
    k = _log2_int(p)
    if k is None:
        return x**p
    for _ in range(k):
        x = x * x
    return x


def _root(x, p: float):
    """``x ** (1/p)``; for p = 2^k by k square roots."""
    k = _log2_int(p)
    if k is None:
        return x ** (1.0 / p)
    for _ in range(k):
        x = jnp.sqrt(x)
    return x


def _log2_int(p: float):
    k = 0
    while 2**k < p:
        k += 1
    return k if 2**k == p and k <= 6 else None


def safe_div(num, den, fill=0.0):
    """``num / den`` where ``den != 0`` else ``fill``, with finite gradients everywhere."""
    ok = den != 0
    return jnp.where(ok, num / jnp.where(ok, den, 1.0), fill)


def safe_log(x, floor=1e-30):
    """``log(max(x, floor))`` with finite gradients for x <= 0."""
    return jnp.log(jnp.maximum(x, floor))


def smooth_max(values, p: float = DEFAULT_P, axis: int = -1):
    """Scale-free p-norm maximum of non-negative values along ``axis``.

    ``smax = m * (sum_i (v_i / m)^p)^(1/p)`` with ``m = max_i v_i``; exact when one value
    dominates, at most ``n^(1/p)`` times the hard max for ``n`` values. Zero when all
    values are zero (with zero gradient, no NaN).

    Args:
      values: non-negative array; the maximum is taken along ``axis``.
      p: sharpness (>= 1). Larger is closer to the hard max.
    """
    values = jnp.asarray(values)
    m = jnp.max(values, axis=axis, keepdims=True)
    m = jax.lax.stop_gradient(m)
    ok = m > 0
    ratio = jnp.where(ok, values / jnp.where(ok, m, 1.0), 0.0)
    s = jnp.sum(_power(ratio, p), axis=axis, keepdims=True)
    out = jnp.where(ok, m * _root(jnp.where(ok, s, 1.0), p), 0.0)
    return jnp.squeeze(out, axis=axis)


@functools.partial(jax.custom_jvp, nondiff_argnums=(1, 2))
def straight_through_max(values, p: float = DEFAULT_P, axis: int = -1):
    """Hard ``max`` along ``axis`` whose derivative is that of `smooth_max`.

    Same result as ``straight_through(max, smooth_max)`` but the forward pass computes
    only the hard max; the p-norm weights ``(v_i / smax)^(p - 1)`` appear only in the JVP.
    """
    return jnp.max(values, axis=axis)


@straight_through_max.defjvp
def _straight_through_max_jvp(p, axis, primals, tangents):
    (values,), (dvalues,) = primals, tangents
    m = jnp.max(values, axis=axis, keepdims=True)
    ok = m > 0
    ratio = jnp.where(ok, values / jnp.where(ok, m, 1.0), 0.0)
    s = jnp.sum(_power(ratio, p), axis=axis, keepdims=True)
    # d smax / d v_i = (v_i / smax)^(p - 1) = (ratio_i / s^(1/p))^(p - 1)
    x = ratio / _root(jnp.where(ok, s, 1.0), p)
    w = jnp.where(x > 0, _power(x, p) / jnp.where(x > 0, x, 1.0), 0.0)
    return jnp.max(values, axis=axis), jnp.sum(w * dvalues, axis=axis)


@functools.partial(jax.custom_jvp, nondiff_argnums=(1, 2))
def straight_through_min(values, p: float = DEFAULT_P, axis: int = -1):
    """Hard ``min`` of positive values whose derivative is that of the smooth minimum
    ``smin = (sum_i v_i^-p)^(-1/p)``: ``d smin / d v_i = (smin / v_i)^(p + 1)``."""
    return jnp.min(values, axis=axis)


@straight_through_min.defjvp
def _straight_through_min_jvp(p, axis, primals, tangents):
    (values,), (dvalues,) = primals, tangents
    smin = 1.0 / smooth_max(1.0 / values, p=p, axis=axis)
    x = jnp.expand_dims(smin, axis) / values
    w = _power(x, p) * x
    return jnp.min(values, axis=axis), jnp.sum(w * dvalues, axis=axis)


def ceil_st(x):
    """``ceil(x)`` with the gradient of ``x`` (counts of pages, shards, chips)."""
    return x + jax.lax.stop_gradient(jnp.ceil(x) - x)


def straight_through(hard, smooth):
    """Value of ``hard`` with the gradient of ``smooth``."""
    return smooth + jax.lax.stop_gradient(hard - smooth)


def roofline_max(values, p: float = DEFAULT_P, mode: str = "straight_through", axis: int = -1):
    """Maximum used by the roofline, in one of three modes.

    Args:
      values: non-negative array.
      p: sharpness of the smooth surrogate.
      mode: ``"hard"`` (exact max, subgradient), ``"smooth"`` (p-norm value and gradient)
        or ``"straight_through"`` (exact value, p-norm gradient; the default).
    """
    if mode == "hard":
        return jnp.max(values, axis=axis)
    if mode == "smooth":
        return smooth_max(values, p=p, axis=axis)
    if mode == "straight_through":
        return straight_through_max(values, p, axis)
    raise ValueError(f"roofline mode {mode!r} unknown: use 'hard', 'smooth' or 'straight_through'")
