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

import jax
import jax.numpy as jnp

DEFAULT_P = 8.0


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
    s = jnp.sum(ratio**p, axis=axis, keepdims=True)
    out = jnp.where(ok, m * jnp.where(ok, s, 1.0) ** (1.0 / p), 0.0)
    return jnp.squeeze(out, axis=axis)


def smooth_max2(a, b, p: float = DEFAULT_P):
    """``smooth_max`` of two broadcastable arrays."""
    a, b = jnp.broadcast_arrays(jnp.asarray(a, dtype=float), jnp.asarray(b, dtype=float))
    return smooth_max(jnp.stack([a, b], axis=-1), p=p)


def smooth_min2(a, b, p: float = DEFAULT_P):
    """Smooth minimum of two positive arrays: ``1 / smax(1/a, 1/b)`` (bias <= 2^(1/p))."""
    return safe_div(1.0, smooth_max2(safe_div(1.0, a), safe_div(1.0, b), p=p))


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
    smooth = smooth_max(values, p=p, axis=axis)
    if mode == "smooth":
        return smooth
    if mode == "straight_through":
        return straight_through(jnp.max(values, axis=axis), smooth)
    raise ValueError(f"roofline mode {mode!r} unknown: use 'hard', 'smooth' or 'straight_through'")
