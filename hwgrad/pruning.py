"""Structured pruning: compression knobs that change the model's shapes.

Structured pruning removes whole rows, columns, heads or layers, so the pruned network is a
smaller dense transformer: it needs no sparse format and no special kernels, and every count
(parameters, bytes, FLOPs, KV cache, activations, collective messages) follows from the new
shapes. `apply` maps a `Model` and the keep fractions of a
`Compression` to that smaller model, with relaxed (possibly
fractional) shape leaves so that co-design can differentiate through them:

    n_layers'     = sum(layer_keep_gates)          (or n_layers x layers_kept_fraction)
    d_model'      = d_model x hidden_kept_fraction (SliceGPT: the residual stream)
    d_ff'         = d_ff x ffn_kept_fraction       (moe_d_ff likewise: each expert's width)
    n_heads'      = n_heads x heads_kept_fraction
    n_kv_heads'   = n_kv_heads x kv_heads_kept_fraction   (MHA: = n_heads')

``head_dim`` is unchanged (heads are removed whole). Dense-prefix layers of MoE models keep
their identity: with gates, ``n_dense_layers' = sum(gates[:n_dense_layers])``; without, the
dense and MoE layers shrink in proportion; sliding-window layers always shrink in proportion
(which layers slide is not part of `Model`).

The cost model calls `resolve` once where it receives the model
(`hwgrad.cost.forward_pass`, `hwgrad.cost.capacity_used_bytes`,
`hwgrad.cost.evaluate`); ``resolve`` returns the pruned model together with a
compression whose keep fractions are reset to one, so applying it twice is harmless.

Not counted: SliceGPT's residual "shortcut" matrices (``Q_l^T Q_(l+1)``, one
``d_model' x d_model'`` matrix per residual connection, two per layer; Ashkboos et al. 2024,
sec. 3.3): `slicing_shortcut_params` gives their size. With them, 30 % slicing of
Llama-2-7B/13B removes 22 % of the parameters (BlockPruner reports 21.5 %); without, 30 %.

`round_to_legal` turns relaxed fractions into ones that give whole, legal shapes (at
least one layer and one KV head, query heads a multiple of the KV heads, TP divisibility),
like the other integers rounded at the end of co-design; `check_shapes` raises the
one-line errors that `hwgrad.validate.validate` reports.

References:
  Ashkboos et al., "SliceGPT: Compress Large Language Models by Deleting Rows and Columns",
  ICLR 2024. Men et al., "ShortGPT", 2024; Song et al., "SLEB", ICML 2024 (depth).
  Ma et al., "LLM-Pruner", NeurIPS 2023; An et al., "FLAP", AAAI 2024 (heads + channels).
"""

from __future__ import annotations

import dataclasses
import math

import jax.numpy as jnp
import numpy as np

from .specs import Compression, Model, replace

__all__ = [
    "KEEP_FIELDS",
    "is_pruned",
    "kept_layers",
    "apply",
    "resolve",
    "params_removed_fraction",
    "slicing_shortcut_params",
    "round_to_legal",
    "check_shapes",
]

KEEP_FIELDS = (
    "layers_kept_fraction",
    "hidden_kept_fraction",
    "ffn_kept_fraction",
    "heads_kept_fraction",
    "kv_heads_kept_fraction",
)


def is_pruned(c: Compression) -> bool:
    """Static test: does ``c`` carry any shape-changing knob (gates or a fraction that is not
    the Python literal default 1.0)? Traced values count as pruned."""
    if c.layer_keep_gates is not None:
        return True
    return any(not (isinstance(v, float | int) and v == 1.0) for v in (getattr(c, f) for f in KEEP_FIELDS))


def kept_layers(m: Model, c: Compression):
    """Relaxed number of layers kept: the sum of the gates, or ``n_layers x fraction``."""
    if c.layer_keep_gates is not None:
        return jnp.sum(jnp.asarray(c.layer_keep_gates, dtype=float), axis=-1)
    return m.n_layers * c.layers_kept_fraction


def apply(m: Model, c: Compression) -> Model:
    """The pruned model (relaxed shape leaves); ``m`` itself when ``c`` prunes nothing.

    Args:
      m: the dense architecture.
      c: compression; its keep fractions and optional ``layer_keep_gates`` (shape
        ``(n_layers,)``, values in [0, 1]) are used.

    Returns:
      A `Model` with ``n_layers``, ``n_dense_layers``,
      ``n_sliding_layers``, ``d_model``, ``d_ff``, ``moe_d_ff``, ``n_heads`` and
      ``n_kv_heads`` scaled as in the module docstring.
    """
    if not is_pruned(c):
        return m
    n_kept = kept_layers(m, c)
    if c.layer_keep_gates is not None:
        gates = jnp.asarray(c.layer_keep_gates, dtype=float)
        dense_mask = jnp.arange(gates.shape[-1]) < m.n_dense_layers
        n_dense = jnp.sum(gates * dense_mask, axis=-1)
    else:
        n_dense = m.n_dense_layers * c.layers_kept_fraction
    layer_ratio = n_kept / m.n_layers
    n_heads = m.n_heads * c.heads_kept_fraction
    if m.attention == "mha":
        n_kv = n_heads
    elif m.attention == "mla":
        n_kv = m.n_kv_heads  # one latent shared by all heads: nothing to prune
    else:
        n_kv = m.n_kv_heads * c.kv_heads_kept_fraction
    return replace(
        m,
        n_layers=n_kept,
        n_dense_layers=n_dense,
        n_sliding_layers=m.n_sliding_layers * layer_ratio,
        d_model=m.d_model * c.hidden_kept_fraction,
        d_ff=m.d_ff * c.ffn_kept_fraction,
        moe_d_ff=m.moe_d_ff * c.ffn_kept_fraction,
        n_heads=n_heads,
        n_kv_heads=n_kv,
    )


def _unpruned(c: Compression) -> Compression:
    return replace(c, layer_keep_gates=None, **{f: 1.0 for f in KEEP_FIELDS})


def resolve(m: Model, c: Compression) -> tuple[Model, Compression]:
    """``(apply(m, c), c with the keep knobs reset)``: idempotent, so every entry point of
    the cost model can call it."""
    if not is_pruned(c):
        return m, c
    return apply(m, c), _unpruned(c)


def params_removed_fraction(m: Model, c: Compression):
    """``1 - param_count(apply(m, c)) / param_count(m)`` (embeddings and LM head included)."""
    from . import counts

    return 1.0 - counts.param_count(apply(m, c)) / counts.param_count(m)


def slicing_shortcut_params(m: Model, c: Compression, matrices_per_layer=2.0):
    """Parameters of SliceGPT's residual shortcut matrices (not part of `apply`).

    ``matrices_per_layer x n_layers' x d_model'^2``, zero without hidden slicing. SliceGPT
    rotates the residual stream at both RMSNorms of a block, so each of the two residual
    connections carries a ``Q_l^T Q_(l+1)`` matrix (Ashkboos et al. 2024, sec. 3.3).
    """
    p = apply(m, c)
    sliced = jnp.asarray(c.hidden_kept_fraction) < 1.0
    return jnp.where(sliced, matrices_per_layer * p.n_layers * p.d_model**2, 0.0)


# ----------------------------------------------------------------------------- legal shapes


def _nearest(candidates: list[int], target: float) -> int:
    return min(candidates, key=lambda x: (abs(x - target), -x))


def round_to_legal(
    m: Model,
    c: Compression,
    tp: int = 1,
    hidden_multiple: int | None = None,
    ffn_multiple: int = 1,
) -> Compression:
    """Nearest keep knobs that give whole, legal shapes (concrete values; not for ``jit``).

    * layers: ``round(kept)`` (at least one); with gates, the ``round(sum(gates))`` largest
      gates become 1 and the rest 0 (ties keep the earlier layer);
    * KV heads: at least one, and either a multiple or a divisor of ``tp`` (sharded or
      replicated); GQA: query heads a whole multiple of the KV heads (whole groups) and
      divisible by ``tp``; MHA: query heads = KV heads, divisible by ``tp``;
    * sliced hidden size: a multiple of ``hidden_multiple`` (default: the kept query-head
      count, the rule `check_shapes` enforces); FFN width: a multiple of
      ``ffn_multiple x tp``.

    Args:
      m: dense architecture (whole shapes).
      c: compression with relaxed keep knobs.
      tp: tensor-parallel degree the pruned model must shard over.
      hidden_multiple / ffn_multiple: alignment (ASSUMPTION: kernels prefer multiples of
        64-128; pass what the target stack needs).

    Returns:
      ``c`` with fractions (and 0/1 gates) whose shapes are whole and legal.
    """
    n_layers = int(round(float(m.n_layers)))
    changes: dict = {}
    if c.layer_keep_gates is not None:
        g = np.asarray(c.layer_keep_gates, dtype=float)
        k = max(1, int(round(float(g.sum()))))
        order = np.argsort(-g, kind="stable")
        hard = np.zeros_like(g)
        hard[order[:k]] = 1.0
        changes["layer_keep_gates"] = jnp.asarray(hard)
    else:
        k = max(1, int(round(n_layers * float(c.layers_kept_fraction))))
        changes["layers_kept_fraction"] = k / n_layers

    heads, kv = int(round(float(m.n_heads))), int(round(float(m.n_kv_heads)))
    if m.attention == "mla":
        h_opts = [h for h in range(1, heads + 1) if h % tp == 0] or [heads]
        h_new = _nearest(h_opts, heads * float(c.heads_kept_fraction))
        kv_new = kv
    elif m.attention == "mha":
        h_opts = [h for h in range(1, heads + 1) if h % tp == 0] or [heads]
        h_new = _nearest(h_opts, heads * float(c.heads_kept_fraction))
        kv_new = h_new
    else:
        kv_opts = [x for x in range(1, kv + 1) if x % tp == 0 or tp % x == 0] or [kv]
        kv_new = _nearest(kv_opts, kv * float(c.kv_heads_kept_fraction))
        h_opts = [h for h in range(kv_new, heads + 1, kv_new) if h % tp == 0] or [kv_new * math.lcm(1, tp)]
        h_new = _nearest(h_opts, heads * float(c.heads_kept_fraction))
    changes["heads_kept_fraction"] = h_new / heads
    if m.attention == "gqa":
        changes["kv_heads_kept_fraction"] = kv_new / kv

    d = int(round(float(m.d_model)))
    if float(c.hidden_kept_fraction) < 1.0:
        mult = hidden_multiple or h_new
        d_new = max(mult, mult * int(round(d * float(c.hidden_kept_fraction) / mult)))
        changes["hidden_kept_fraction"] = 1.0 if d_new >= d else d_new / d

    for width in ("d_ff", "moe_d_ff"):
        f = int(round(float(getattr(m, width))))
        if f > 0:
            fm = ffn_multiple * tp
            f_new = max(fm, fm * int(round(f * float(c.ffn_kept_fraction) / fm)))
            changes["ffn_kept_fraction"] = min(f_new, f) / f
            break
    return dataclasses.replace(c, **changes)


def _frac_error(field: str, value: float) -> ValueError:
    return ValueError(
        f"compression.{field} = {value:g}: keep fractions must lie in (0, 1]; "
        "use 1 for no pruning, e.g. 0.75 to keep three quarters"
    )


def check_fractions(c: Compression) -> None:
    """Keep fractions in (0, 1] and gates in [0, 1] with at least one layer kept."""
    for field in KEEP_FIELDS:
        arr = np.asarray(getattr(c, field), dtype=float)
        if arr.ndim != 0:
            raise ValueError(f"compression.{field} = {arr!r}: expected a single number (per-layer: gates)")
        x = float(arr)
        if not (0.0 < x <= 1.0):
            raise _frac_error(field, x)
    if c.layer_keep_gates is not None:
        g = np.asarray(c.layer_keep_gates, dtype=float)
        if g.ndim != 1 or np.any(~np.isfinite(g)) or np.any((g < 0) | (g > 1)):
            bad = g[~np.isfinite(g) | (g < 0) | (g > 1)] if g.ndim == 1 else g
            raise ValueError(
                f"compression.layer_keep_gates contains {np.ravel(bad)[:1]}: gates are one number per "
                "layer in [0, 1] (1 = keep); pass a vector of length n_layers"
            )
        if g.sum() < 1.0:
            raise ValueError(
                f"compression.layer_keep_gates sum to {g.sum():g}: keep at least one layer (sum >= 1)"
            )


def check_shapes(m: Model, c: Compression, tp=1.0) -> None:
    """Raise a one-line ``ValueError`` when the pruned shapes are not legal.

    Checks `check_fractions`, a gate vector of length ``n_layers``, then that the
    pruned model has whole layer/head/width counts, at least one KV head, query heads a
    multiple of the KV heads, a sliced hidden size that is a whole multiple of the query
    heads, and heads/FFN width divisible by ``tp``. The fix names `round_to_legal`.
    """
    check_fractions(c)
    if not is_pruned(c):
        return
    n_layers = int(round(float(m.n_layers)))
    if c.layer_keep_gates is not None and np.asarray(c.layer_keep_gates).shape != (n_layers,):
        raise ValueError(
            f"compression.layer_keep_gates has shape {np.asarray(c.layer_keep_gates).shape}: "
            f"give one gate per layer ({n_layers})"
        )
    p = apply(m, c)
    fix = "; round with hwgrad.pruning.round_to_legal(model, compression, tp)"
    tp = int(round(float(tp)))

    def whole(field: str, value, knob: str, minimum: float = 1.0) -> float:
        x = float(value)
        if abs(x - round(x)) > 1e-6 * max(1.0, abs(x)) or round(x) < minimum:
            raise ValueError(
                f"compression.{knob} = {float(getattr(c, knob)) if knob in KEEP_FIELDS else 'gates'}: "
                f"leaves {field} = {x:g}, not a whole number >= {minimum:g}{fix}"
            )
        return float(round(x))

    layer_knob = "layer_keep_gates" if c.layer_keep_gates is not None else "layers_kept_fraction"
    if c.layer_keep_gates is not None:
        g = np.asarray(c.layer_keep_gates, dtype=float)
        if np.any((g > 0) & (g < 1)):
            raise ValueError(
                f"compression.layer_keep_gates has fractional gates (e.g. {g[(g > 0) & (g < 1)][0]:g}): "
                f"a model to evaluate keeps or drops each layer{fix}"
            )
    else:
        whole("n_layers", p.n_layers, layer_knob)
    heads = whole("n_heads", p.n_heads, "heads_kept_fraction")
    if m.attention == "gqa":
        kv_x = float(p.n_kv_heads)
        if round(kv_x) < 1:
            raise ValueError(
                f"compression.kv_heads_kept_fraction = {float(c.kv_heads_kept_fraction):g}: leaves "
                f"{kv_x:g} of {float(m.n_kv_heads):g} KV heads, which rounds to zero; keep at least one "
                f"(fraction >= {1.0 / float(m.n_kv_heads):g})"
            )
        kv = whole("n_kv_heads", kv_x, "kv_heads_kept_fraction")
        if heads % kv:
            raise ValueError(
                f"compression.heads_kept_fraction = {float(c.heads_kept_fraction):g}: leaves {heads:g} "
                f"query heads for {kv:g} KV heads; GQA needs whole groups (a multiple of {kv:g}){fix}"
            )
        if kv % tp and tp % kv:
            raise ValueError(
                f"compression.kv_heads_kept_fraction = {float(c.kv_heads_kept_fraction):g}: {kv:g} KV "
                f"heads neither shard nor replicate over tp = {tp}{fix}"
            )
    hidden = whole("d_model", p.d_model, "hidden_kept_fraction")
    if float(c.hidden_kept_fraction) < 1.0 and hidden % heads:
        raise ValueError(
            f"compression.hidden_kept_fraction = {float(c.hidden_kept_fraction):g}: leaves d_model = "
            f"{hidden:g}, not divisible by the {heads:g} query heads{fix}"
        )
    if heads % tp:
        raise ValueError(
            f"compression.heads_kept_fraction = {float(c.heads_kept_fraction):g}: {heads:g} query heads "
            f"do not divide over tp = {tp}{fix}"
        )
    for width in ("d_ff", "moe_d_ff"):
        if float(getattr(m, width)) > 0:
            f = whole(width, getattr(p, width), "ffn_kept_fraction")
            if f % tp:
                raise ValueError(
                    f"compression.ffn_kept_fraction = {float(c.ffn_kept_fraction):g}: {width} = {f:g} "
                    f"does not divide over tp = {tp}{fix}"
                )
