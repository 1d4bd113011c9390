"""Compression -> quality: a smooth, fitted model of Wikitext-2 perplexity loss.

The quantity modelled is the increase in language-model loss (nats per token) caused by
compression, which is the log of the perplexity ratio:

    delta_loss = ln(ppl_compressed) - ln(ppl_dense) = ln(ppl_compressed / ppl_dense)
    delta_ppl  = ppl_dense * (exp(delta_loss) - 1)

Every compressed tensor class contributes an effective noise ``z``. Quantising with ``b``
bits leaves a rounding error whose power falls geometrically with ``b`` (``4^-b`` for an
ideal scalar quantiser, i.e. ``gamma = 1 / ln 4 = 0.72`` bits per e-fold; the fit finds 0.75
for weights); pruning a fraction ``s`` removes signal that grows with the odds ``s / (1 - s)``.
The method family sets the amplitude ``A`` (a better method behaves like a worse one with
more bits). With ``N`` the parameter count in billions:

    z_w  = A_w[family]  exp(-(b_w  - 4) / gamma)    (N / 7)^-beta_w
    z_a  = A_a[family]  exp(-(b_a  - 4) / gamma)    (N / 7)^-beta_a
    z_kv = A_kv[family] exp(-(b_kv - 4) / gamma_kv) (N / 7)^-beta_a
    z_s  = A_s[pruner] M[pattern] (s / (1 - s))^k   (N / 7)^-beta_s
    z    = z_w + z_a + z_kv + z_s

Small noise adds loss linearly; past ``z_c`` the model breaks, so the loss grows faster than
``z``, and it saturates at a collapsed model. Larger models break later:

    u = z exp(z / z_c),   z_c = z_c7 (N / 7)^beta_c
    delta_loss = y_max v / (1 + v^4)^(1/4),   v = u / y_max,   y_max = 10 nats

Every exponent ``beta`` is >= 0, so the loss never grows with model size, and the result is
non-increasing in every bit width and non-decreasing in sparsity. The constants are fitted by
``experiments/fit_accuracy.py`` to the published tables in
``hwgrad/presets/data/compression_accuracy.csv`` and stored in ``accuracy_fit.json``; the
constants, held-out errors and range of validity are in ``docs/accuracy.md``.

Method families (static strings):

* ``family`` (quantisers): ``"rtn"`` round-to-nearest with group size 128 (per-token RTN for
  activations and KV); ``"gptq"`` calibrated scalar quantisers with group size 128 (GPTQ,
  AWQ; SmoothQuant for activations; grouped/outlier-aware KV such as ATOM); ``"rotation"``
  incoherence-processed per-channel scalar quantisers (QuaRot, SpinQuant, QuIP; their
  rotated KV and KVQuant-style KV); ``"vector"`` vector/codebook weight quantisers (QuIP#,
  AQLM), which use the ``"rotation"`` activation and KV terms.
* ``pruner``: ``"magnitude"``, ``"wanda"``, ``"sparsegpt"``, ``"owl"`` (non-uniform layer-wise
  sparsity: OWL, BESA).
* ``pattern``: ``"dense"``/``"unstructured"``, ``"4:8"``, ``"2:4"``.

Example:
  >>> import hwgrad.accuracy as acc
  >>> round(float(acc.delta_loss(16.0, params_b=7.0)), 6)
  0.0
  >>> vq, rtn = (acc.delta_loss(2.0, params_b=7.0, family=f) for f in ("vector", "rtn"))
  >>> bool(vq < rtn)
  True

References:
  Kumar et al., "Scaling Laws for Precision", 2024 (exp(-bits/gamma) degradation law).
  Frantar & Alistarh, "SparseGPT", ICML 2023; Sun et al., "Wanda", ICLR 2024.
  Data sources: see the ``source`` column of ``compression_accuracy.csv``.
"""

# Longer than ~600 lines: two fitted models of one quantity (compression -> delta loss; quantisation
# and unstructured sparsity, and structured pruning) that share fit-file loading and range checks;
# they could become accuracy/{quantization,structured}.py.

from __future__ import annotations

import dataclasses
import difflib
import functools
import json
import math
from importlib import resources
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .specs import static

__all__ = [
    "AccuracyFit",
    "FAMILIES",
    "PRUNERS",
    "PATTERNS",
    "load_fit",
    "delta_loss",
    "delta_ppl",
    "default_baseline_ppl",
    "validate_inputs",
    "Structured",
    "StructuredFit",
    "STRUCTURED_METHODS",
    "GENERATIONS",
    "load_structured_fit",
    "structured_delta_loss",
    "structured_uncapped_loss",
    "structured_range_warnings",
    "warn_structured_range",
]

FAMILIES = ("rtn", "gptq", "rotation", "vector")
PRUNERS = ("magnitude", "wanda", "sparsegpt", "owl")
PATTERNS = ("dense", "unstructured", "4:8", "2:4")

# Which fitted amplitude each family uses per tensor class. The data has no activation or KV
# rows for vector quantisers (QuIP#, AQLM are weight-only), so they share the rotation terms;
# every calibrated KV scheme in the data (ATOM, KVQuant, QuaRot, SpinQuant) shares one term.
_WEIGHT_LEVEL = {"rtn": 0, "gptq": 1, "rotation": 2, "vector": 3}
_ACT_LEVEL = {"rtn": 0, "gptq": 1, "rotation": 2, "vector": 2}
_KV_LEVEL = {"rtn": 0, "gptq": 1, "rotation": 1, "vector": 1}
_PRUNER_LEVEL = {p: i for i, p in enumerate(PRUNERS)}
_PATTERN_LEVEL = {"dense": 0, "unstructured": 0, "4:8": 1, "2:4": 2}

COLLAPSE_LOSS_NATS = 10.0  # y_max: delta loss of a collapsed model (ppl x 2.2e4)
REFERENCE_BITS = 4.0
REFERENCE_PARAMS_B = 7.0
_SATURATION_POWER = 4.0  # sharpness of the soft cap at y_max

FIT_FILE = "accuracy_fit.json"


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class AccuracyFit:
    """Fitted constants of the accuracy model; every field is a pytree leaf.

    Attributes:
      weight_log_amp: shape (4,), ln A_w for rtn, gptq, rotation, vector.
      act_log_amp: shape (3,), ln A_a for rtn, gptq, rotation (vector uses rotation).
      kv_log_amp: shape (2,), ln A_kv for per-token uniform (rtn) and calibrated KV schemes.
      sparsity_log_amp: shape (4,), ln A_s for magnitude, wanda, sparsegpt, owl.
      pattern_log_mult: shape (3,), ln M for unstructured (0), 4:8, 2:4.
      bits_scale: gamma, bits per e-fold of weight and activation quantisation noise.
      kv_bits_scale: gamma for the KV cache.
      weight_size_exp / act_size_exp / sparsity_size_exp: beta; KV shares ``act_size_exp``.
      sparsity_power: k >= 1, exponent on the pruning odds.
      blowup_noise: z_c at 7B, noise at which loss starts growing faster than linearly.
      blowup_size_exp: z_c grows as ``(N / 7)^blowup_size_exp`` (larger models break later).
      per_channel_log_mult: ln of the extra weight noise of per-channel (group-free) scales
        for rtn/gptq; a nuisance constant of the fit, not exposed by `delta_loss`.
      baseline_log_ppl_7b / baseline_size_exp: default dense perplexity
        ``ppl0 = exp(baseline_log_ppl_7b) * (N / 7)^-baseline_size_exp`` (LLaMA-1/2,
        Wikitext-2, 2048-token context) used when ``baseline_ppl`` is not given.
    """

    weight_log_amp: Any
    act_log_amp: Any
    kv_log_amp: Any
    sparsity_log_amp: Any
    pattern_log_mult: Any
    bits_scale: Any
    kv_bits_scale: Any
    weight_size_exp: Any
    act_size_exp: Any
    sparsity_size_exp: Any
    sparsity_power: Any
    blowup_noise: Any
    blowup_size_exp: Any
    per_channel_log_mult: Any
    baseline_log_ppl_7b: Any
    baseline_size_exp: Any

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python copy (lists and floats) for JSON."""
        return {f.name: np.asarray(getattr(self, f.name)).tolist() for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AccuracyFit:
        """Inverse of `to_dict`; values become float arrays."""
        return cls(**{f.name: jnp.asarray(d[f.name], dtype=float) for f in dataclasses.fields(cls)})


@functools.cache
def _fit_file() -> dict[str, Any]:
    path = resources.files("hwgrad.presets") / "data" / FIT_FILE
    with path.open(encoding="utf-8") as fh:
        return json.load(fh)


def load_fit() -> AccuracyFit:
    """The shipped constants from ``hwgrad/presets/data/accuracy_fit.json``."""
    return _load_fit(bool(jax.config.jax_enable_x64))


@functools.cache
def _load_fit(x64: bool) -> AccuracyFit:
    # Cached per precision mode so that enabling x64 later yields float64 constants.
    del x64
    # concrete arrays even when the first call happens while tracing (a cached tracer would
    # leak into later calls)
    with jax.ensure_compile_time_eval():
        return AccuracyFit.from_dict(_fit_file()["constants"])


def _static_index(table: dict[str, int], name: str, value: str, hint: str) -> int:
    if value in table:
        return table[value]
    close = difflib.get_close_matches(str(value), list(table), n=1, cutoff=0.5)
    suggestion = f"did you mean {close[0]!r}? " if close else ""
    raise ValueError(f"accuracy: {name} = {value!r} is not one of {', '.join(table)}: {suggestion}{hint}")


def _indices(family: str, pruner: str, pattern: str) -> tuple[int, int, int, int, int]:
    _static_index(
        _WEIGHT_LEVEL,
        "family",
        family,
        "AWQ/GPTQ are 'gptq', QuaRot/SpinQuant 'rotation', QuIP#/AQLM 'vector'",
    )
    _static_index(_PRUNER_LEVEL, "pruner", pruner, "OWL and BESA are 'owl'")
    _static_index(_PATTERN_LEVEL, "pattern", pattern, "use 'unstructured' for element-wise pruning")
    return (
        _WEIGHT_LEVEL[family],
        _ACT_LEVEL[family],
        _KV_LEVEL[family],
        _PRUNER_LEVEL[pruner],
        _PATTERN_LEVEL[pattern],
    )


def _safe_pow(x, p):
    """``x**p`` for ``x >= 0`` with finite gradients at ``x = 0`` (zero there)."""
    ok = x > 0
    return jnp.where(ok, jnp.exp(p * jnp.log(jnp.where(ok, x, 1.0))), 0.0)


def _quant_noise(log_amp, bits, bits_scale, size_term):
    return jnp.exp(log_amp - (bits - REFERENCE_BITS) / bits_scale) * size_term


def _sparsity_noise(log_amp, log_mult, sparsity, size_term, fit: AccuracyFit):
    # Pruning odds s/(1-s), normalised to 1 at s = 0.5; clipped below 1 so that s -> 1 stays finite.
    s = jnp.clip(sparsity, 0.0, 0.999)
    odds = s / (1.0 - s)
    return jnp.exp(log_amp + log_mult) * _safe_pow(odds, fit.sparsity_power) * size_term


def _noise_to_loss(z, blowup_noise, extra_u=None):
    """Map total effective noise ``z >= 0`` to delta loss (nats), monotone and NaN-free.

    ``u = z exp(z / z_c) + extra_u``; ``y = y_max v (1 + v^4)^(-1/4)`` with ``v = u / y_max``,
    evaluated in log space so that huge ``z`` saturates at ``y_max`` without overflow.
    ``extra_u`` is the uncapped structured-pruning loss (`structured_delta_loss`).
    """
    ok = z > 0
    log_z = jnp.log(jnp.where(ok, z, 1.0))
    # -1e3 stands for log(0): finite, so logaddexp and its gradient stay NaN-free
    log_u = jnp.where(ok, log_z + z / blowup_noise, -1e3)
    if extra_u is not None:
        ok_s = extra_u > 0
        log_s = jnp.where(ok_s, jnp.log(jnp.where(ok_s, extra_u, 1.0)), -1e3)
        ok = ok | ok_s
        log_u = jnp.logaddexp(log_u, log_s)
    t = jnp.where(ok, log_u, 0.0) - math.log(COLLAPSE_LOSS_NATS)
    p = _SATURATION_POWER
    y = COLLAPSE_LOSS_NATS * jnp.exp(t - jax.nn.softplus(p * t) / p)
    return jnp.where(ok, y, 0.0)


def _log_rel_size(params_b):
    return jnp.log(jnp.maximum(jnp.asarray(params_b, dtype=float) / REFERENCE_PARAMS_B, 1e-6))


@jax.jit
def _loss(
    fit,
    weight_bits,
    kv_bits,
    act_bits,
    sparsity,
    params_b,
    idx,
    per_channel=0.0,
    layer_sensitivity=None,
    structured_u=None,
):
    """Delta loss from level indices (ints or int arrays); shared by the API and the fit.

    Jitted as a whole (indices are traced, so one compilation serves every family) because
    op-by-op dispatch of the ~60 small operations dominates eager calls.
    """
    z = _total_noise(
        fit, weight_bits, kv_bits, act_bits, sparsity, params_b, idx, per_channel, layer_sensitivity
    )
    blowup = fit.blowup_noise * jnp.exp(fit.blowup_size_exp * _log_rel_size(params_b))
    return _noise_to_loss(z, blowup, structured_u)


def _total_noise(
    fit, weight_bits, kv_bits, act_bits, sparsity, params_b, idx, per_channel=0.0, layer_sensitivity=None
):
    w_i, a_i, kv_i, s_i, pat_i = idx
    log_size = _log_rel_size(params_b)
    size_w = jnp.exp(-fit.weight_size_exp * log_size)
    size_a = jnp.exp(-fit.act_size_exp * log_size)
    size_s = jnp.exp(-fit.sparsity_size_exp * log_size)
    w_amp = jnp.asarray(fit.weight_log_amp)[w_i] + per_channel * fit.per_channel_log_mult
    parts = (
        _quant_noise(w_amp, weight_bits, fit.bits_scale, size_w),
        _quant_noise(jnp.asarray(fit.act_log_amp)[a_i], act_bits, fit.bits_scale, size_a),
        _quant_noise(jnp.asarray(fit.kv_log_amp)[kv_i], kv_bits, fit.kv_bits_scale, size_a),
        _sparsity_noise(
            jnp.asarray(fit.sparsity_log_amp)[s_i],
            jnp.asarray(fit.pattern_log_mult)[pat_i],
            sparsity,
            size_s,
            fit,
        ),
    )
    if layer_sensitivity is None:
        return sum(parts)
    # Per-layer inputs: the last axis is the layer; each layer's noise is weighted by its
    # share of the (normalised) sensitivity profile, so equal bits in every layer reproduce
    # the whole-model result.
    weights = jnp.asarray(layer_sensitivity, dtype=float)
    weights = weights / jnp.sum(weights)
    return sum(
        jnp.sum(jnp.broadcast_to(p, jnp.broadcast_shapes(p.shape, weights.shape)) * weights, -1)
        for p in parts
    )


def delta_loss(
    weight_bits,
    kv_bits=16.0,
    act_bits=16.0,
    sparsity=0.0,
    *,
    params_b,
    family: str = "gptq",
    pruner: str = "sparsegpt",
    pattern: str = "unstructured",
    layer_sensitivity=None,
    fit: AccuracyFit | None = None,
    structured: Structured | None = None,
):
    """Increase in Wikitext-2 loss (nats/token) = ln(ppl / ppl_dense) caused by compression.

    Smooth, monotone (non-increasing in every bit width, non-decreasing in sparsity) and
    NaN-free under ``jit``/``vmap``/``grad`` for bits in [1, 32] and sparsity in [0, 0.999].
    Numeric arguments broadcast; strings are static. Check inputs at the edges with
    `validate_inputs` (this function does not, so it can run inside ``jit``).

    Args:
      weight_bits: nominal code bits per weight element (group scales not counted).
      kv_bits: bits per KV-cache element.
      act_bits: bits per activation element (matmul inputs).
      sparsity: pruned fraction of weights in [0, 1); at most 0.5 for ``"2:4"``/``"4:8"``.
      params_b: model size, billions of parameters (fitted on 6.7B-70B dense LLaMA models).
      family: quantiser family, one of `FAMILIES`.
      pruner: pruning method, one of `PRUNERS`.
      pattern: sparsity pattern, one of `PATTERNS`.
      layer_sensitivity: optional shape ``(L,)`` non-negative profile; the numeric inputs then
        carry a trailing layer axis (broadcast against it) and the noise is the
        profile-weighted mean over layers (an assumption: no per-layer data was fitted).
      fit: constants; defaults to `load_fit`.
      structured: optional structured pruning (`Structured`, e.g.
        ``Structured.from_compression(model, compression)``); its uncapped loss is added to
        the quantisation/sparsity loss before the collapse cap (see
        `structured_delta_loss`).

    Returns:
      Delta loss in nats per token, shape of the broadcast inputs (without the layer axis).
    """
    idx = _indices(family, pruner, pattern)
    fit = load_fit() if fit is None else fit
    u_s = None if structured is None else structured_uncapped_loss(structured, params_b)
    return _loss(fit, weight_bits, kv_bits, act_bits, sparsity, params_b, idx, 0.0, layer_sensitivity, u_s)


def delta_ppl(
    weight_bits,
    kv_bits=16.0,
    act_bits=16.0,
    sparsity=0.0,
    *,
    params_b,
    baseline_ppl=None,
    family: str = "gptq",
    pruner: str = "sparsegpt",
    pattern: str = "unstructured",
    layer_sensitivity=None,
    fit: AccuracyFit | None = None,
    structured: Structured | None = None,
):
    """Increase in Wikitext-2 perplexity: ``ppl_dense * (exp(delta_loss) - 1)``.

    Args:
      baseline_ppl: the uncompressed model's perplexity. ``None`` uses the fitted LLaMA-1/2
        curve ``ppl0(N)`` (Wikitext-2, 2048-token context); pass the real value for other
        models, tokenisers or context lengths.
      others: as `delta_loss`.

    Returns:
      Delta perplexity (same units as ``baseline_ppl``), at most ``ppl0 * (e^10 - 1)``.
    """
    fit = load_fit() if fit is None else fit
    y = delta_loss(
        weight_bits,
        kv_bits,
        act_bits,
        sparsity,
        params_b=params_b,
        family=family,
        pruner=pruner,
        pattern=pattern,
        layer_sensitivity=layer_sensitivity,
        fit=fit,
        structured=structured,
    )
    if baseline_ppl is None:
        baseline_ppl = default_baseline_ppl(params_b, fit)
    return baseline_ppl * jnp.expm1(y)


def default_baseline_ppl(params_b, fit: AccuracyFit | None = None):
    """Fitted dense Wikitext-2 perplexity of a LLaMA-1/2-class model of ``params_b`` billion."""
    fit = load_fit() if fit is None else fit
    rel = jnp.maximum(jnp.asarray(params_b, dtype=float) / REFERENCE_PARAMS_B, 1e-6)
    return jnp.exp(fit.baseline_log_ppl_7b - fit.baseline_size_exp * jnp.log(rel))


def _check_range(name: str, value, lo: float, hi: float, hi_open: bool, fix: str) -> None:
    arr = np.asarray(value, dtype=float)
    bad = ~np.isfinite(arr) | (arr < lo) | ((arr >= hi) if hi_open else (arr > hi))
    if np.any(bad):
        first = arr[bad].flat[0] if arr.ndim else float(arr)
        interval = f"[{lo:g}, {hi:g})" if hi_open else f"[{lo:g}, {hi:g}]"
        raise ValueError(f"accuracy: {name} = {first:g} is outside {interval}: {fix}")


def validate_inputs(
    weight_bits,
    kv_bits=16.0,
    act_bits=16.0,
    sparsity=0.0,
    *,
    params_b,
    family: str = "gptq",
    pruner: str = "sparsegpt",
    pattern: str = "unstructured",
    baseline_ppl=None,
) -> None:
    """Raise ``ValueError`` naming the field, the value and the fix for out-of-range inputs.

    Meant for the edges (CLI, config loading, before an optimisation starts) on concrete
    values; not inside ``jit``. Checks: known family/pruner/pattern; bits in [1, 32];
    sparsity in [0, 1) (at most 0.5 for N:M patterns, exactly 0 for ``"dense"``);
    positive ``params_b`` and ``baseline_ppl``.
    """
    _indices(family, pruner, pattern)
    for name, bits in (("weight_bits", weight_bits), ("kv_bits", kv_bits), ("act_bits", act_bits)):
        _check_range(
            name, bits, 1.0, 32.0, False, "pass nominal bits per element, e.g. 4 for int4, 16 for bf16"
        )
    _check_range(
        "sparsity", sparsity, 0.0, 1.0, True, "pass the pruned fraction, e.g. 0.5 for half the weights"
    )
    if pattern in ("2:4", "4:8"):
        _check_range(
            "sparsity",
            sparsity,
            0.0,
            0.5,
            False,
            f"pattern {pattern!r} prunes at most half; use 'unstructured'",
        )
    if pattern == "dense" and np.any(np.asarray(sparsity, dtype=float) != 0):
        raise ValueError(
            f"accuracy: sparsity = {np.max(sparsity):g} with pattern = 'dense': "
            "use pattern='unstructured' (or '2:4') for a pruned model, or sparsity=0"
        )
    _check_range(
        "params_b",
        params_b,
        1e-3,
        1e5,
        False,
        "pass the parameter count in billions, e.g. 70 for a 70B model",
    )
    if baseline_ppl is not None:
        _check_range(
            "baseline_ppl", baseline_ppl, 1.0, 1e6, False, "pass the dense model's perplexity (> 1), or None"
        )


# ----------------------------------------------------------------------------- structured pruning

# Method families of structured pruning, per kind (static strings). ``depth``: whole layers
# (or attention/FFN sub-blocks) removed; ``width_hidden``: the residual-stream dimension
# sliced; ``mixed``: attention heads and FFN channels removed together.
STRUCTURED_METHODS = {
    "depth": ("iterative", "one_shot", "magnitude"),
    "width_hidden": ("slicegpt", "llm_pruner"),
    "mixed": ("flap", "llm_pruner", "wanda_sp", "random", "magnitude"),
}
STRUCTURED_KINDS = tuple(STRUCTURED_METHODS)
GENERATIONS = ("llama-2", "llama-3")
_STRUCT_OFFSET = {"depth": 0, "width_hidden": 3, "mixed": 5}
_N_STRUCT_METHODS = 10
_STRUCT_HINTS = {
    "depth": "SLEB/BlockPruner are 'iterative', ShortGPT/LaCo 'one_shot', relative magnitude 'magnitude'",
    "width_hidden": "SliceGPT is 'slicegpt', LLM-Pruner channel pruning 'llm_pruner'",
    "mixed": "FLAP 'flap', LLM-Pruner 'llm_pruner', structured Wanda 'wanda_sp', L2/magnitude 'magnitude'",
}
STRUCTURED_FIT_FILE = "structured_pruning_fit.json"
_MAX_REMOVED = 0.95  # removed fractions are clipped here so the odds stay finite


def structured_method_index(kind: str, method: str) -> int:
    """Flat index of ``(kind, method)`` into `StructuredFit.method_log_offset`."""
    if kind not in STRUCTURED_METHODS:
        _static_index({k: 0 for k in STRUCTURED_KINDS}, "kind", kind, "")
    table = {m: _STRUCT_OFFSET[kind] + i for i, m in enumerate(STRUCTURED_METHODS[kind])}
    return _static_index(table, f"{kind}_method", method, _STRUCT_HINTS[kind])


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Structured:
    """Amount and method of structured pruning, for `structured_delta_loss`.

    Attributes:
      depth_removed: fraction of transformer layers removed, [0, 1).
      width_removed: fraction of the hidden (residual) dimension removed, [0, 1).
      mixed_removed: fraction of all parameters removed by head and FFN-channel pruning,
        [0, 1).
      finetuned: 1 = LoRA recovery fine-tuning after pruning (relaxed in [0, 1]).
      depth_method / width_method / mixed_method: static; one of
        `STRUCTURED_METHODS` for the kind.
      generation: static; ``"llama-2"`` (LLaMA-1/2-like, the reference) or ``"llama-3"``
        (15T-token models, which the data show tolerate pruning far worse).
    """

    depth_removed: Any = 0.0
    width_removed: Any = 0.0
    mixed_removed: Any = 0.0
    finetuned: Any = 0.0
    # static: the method names select rows of the fitted offset table (text, not numbers)
    depth_method: str = static("iterative")
    width_method: str = static("slicegpt")
    mixed_method: str = static("flap")
    # static: the model generation selects a fitted table (text, not a number)
    generation: str = static("llama-2")

    @staticmethod
    def from_compression(model, compression, finetuned=0.0, layer_importance=None, **methods) -> Structured:
        """Removed fractions implied by the keep knobs of a `Compression`.

        ``depth_removed = 1 - kept layers / n_layers``, ``width_removed = 1 -
        hidden_kept_fraction``, ``mixed_removed`` = parameter fraction removed by the head,
        KV-head and FFN knobs alone (the unit the FLAP/LLM-Pruner tables use). Differentiable
        in the knobs. ``methods``: ``depth_method``, ``width_method``, ``mixed_method``,
        ``generation``.

        ``layer_importance`` (optional, shape ``(n_layers,)``, positive; an ASSUMPTION - the
        data give layer counts, not which layers) makes the per-layer gates matter: the
        fitted depth curve is read as the loss of dropping the *least important* layers (what
        SLEB/ShortGPT/BlockPruner do), so a gate vector counts as the fraction ``r`` of least
        important layers that removes the same importance share:

            share = sum_l (1 - g_l) w_l / sum_l w_l,   r = C^-1(share)

        with ``C(j / L)`` the share of the ``j`` least important layers (piecewise linear).
        Uniform importance gives ``r = 1 - sum(g) / L``.
        """
        from . import counts, pruning

        c = compression
        if layer_importance is not None and c.layer_keep_gates is not None:
            depth = _importance_weighted_removed(c.layer_keep_gates, layer_importance)
        else:
            depth = 1.0 - pruning.kept_layers(model, c) / model.n_layers
        heads_ffn = dataclasses.replace(
            pruning._unpruned(c),
            heads_kept_fraction=c.heads_kept_fraction,
            kv_heads_kept_fraction=c.kv_heads_kept_fraction,
            ffn_kept_fraction=c.ffn_kept_fraction,
        )
        mixed = 1.0 - counts.param_count(pruning.apply(model, heads_ffn)) / counts.param_count(model)
        return Structured(
            depth_removed=depth,
            width_removed=1.0 - jnp.asarray(c.hidden_kept_fraction, dtype=float),
            mixed_removed=mixed,
            finetuned=finetuned,
            **methods,
        )


def _importance_weighted_removed(gates, importance):
    """``C^-1(share of importance removed)`` (see `Structured.from_compression`)."""
    w = np.asarray(importance, dtype=float)
    if w.ndim != 1 or np.any(~np.isfinite(w)) or np.any(w <= 0):
        raise ValueError("accuracy: layer_importance must be a vector of positive numbers, one per layer")
    order = np.sort(w)
    cum = np.concatenate([[0.0], np.cumsum(order)]) / order.sum()  # share of the j least important
    frac = np.arange(len(w) + 1) / len(w)
    g = jnp.asarray(gates, dtype=float)
    share = jnp.sum((1.0 - g) * w, axis=-1) / w.sum()
    return jnp.interp(share, jnp.asarray(cum), jnp.asarray(frac))


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class StructuredFit:
    """Fitted constants of the structured-pruning loss (``structured_pruning_fit.json``).

    Attributes:
      kind_log_amp: shape (3,), ln A of depth, width_hidden, mixed: the loss (nats) at 50 %
        removed (odds 1) for a 7B LLaMA-2-generation model, no recovery, method offset 0.
      method_log_offset: shape (10,), ln of each method's amplitude relative to its kind
        (order of `STRUCTURED_METHODS`; shrunk towards 0, so an unseen method is the kind's
        middle).
      kind_power: shape (3,), exponent k on the removal odds ``r / (1 - r)`` per kind
        (LLaMA-1/2 generation; about 1.1-1.3 in every kind of the data).
      llama3_power_log_mult: ln of the ratio of the Llama-3 exponent to ``kind_power``
        (shared by the kinds: Llama-3 loses more at small ``r``, the gap narrows at 50 %).
      size_exp: shape (3,), beta >= 0 per kind: the loss scales as ``(N / 7)^-beta``.
      recovery_log_mult: ln of the loss ratio after LoRA recovery fine-tuning.
      llama3_log_mult: shape (3,), ln of the loss ratio of Llama-3-generation models per kind
        at 50 % removed.
    """

    kind_log_amp: Any
    method_log_offset: Any
    kind_power: Any
    llama3_power_log_mult: Any
    size_exp: Any
    recovery_log_mult: Any
    llama3_log_mult: Any

    def to_dict(self) -> dict[str, Any]:
        return {f.name: np.asarray(getattr(self, f.name)).tolist() for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StructuredFit:
        return cls(**{f.name: jnp.asarray(d[f.name], dtype=float) for f in dataclasses.fields(cls)})


@functools.cache
def structured_fit_file() -> dict[str, Any]:
    """The whole shipped JSON: constants, held-out errors, fitted range."""
    path = resources.files("hwgrad.presets") / "data" / STRUCTURED_FIT_FILE
    with path.open(encoding="utf-8") as fh:
        return json.load(fh)


def load_structured_fit() -> StructuredFit:
    """The shipped constants from ``hwgrad/presets/data/structured_pruning_fit.json``."""
    return _load_structured_fit(bool(jax.config.jax_enable_x64))


@functools.cache
def _load_structured_fit(x64: bool) -> StructuredFit:
    del x64
    with jax.ensure_compile_time_eval():
        return StructuredFit.from_dict(structured_fit_file()["constants"])


def _structured_u(fit: StructuredFit, removed, method_idx, finetuned, llama3, params_b, log_mult=0.0):
    """Uncapped loss (nats) summed over kinds; ``removed``/``method_idx`` have a trailing
    axis of 3 (depth, width_hidden, mixed); shared by the API and the fit (``log_mult``: the
    fit's per-row protocol factors)."""
    r = jnp.clip(jnp.asarray(removed, dtype=float), 0.0, _MAX_REMOVED)
    odds = r / (1.0 - r)
    l3 = jnp.asarray(llama3, dtype=float)[..., None]
    amp = jnp.asarray(fit.kind_log_amp) + jnp.asarray(fit.method_log_offset)[method_idx]
    log_scale = (
        fit.recovery_log_mult * jnp.asarray(finetuned, dtype=float)[..., None]
        + jnp.asarray(fit.llama3_log_mult) * l3
        - jnp.asarray(fit.size_exp) * _log_rel_size(params_b)[..., None]
        + log_mult
    )
    power = jnp.asarray(fit.kind_power) * jnp.exp(fit.llama3_power_log_mult * l3)
    return jnp.sum(jnp.exp(amp + log_scale) * _safe_pow(odds, power), axis=-1)


def structured_uncapped_loss(st: Structured, params_b, fit: StructuredFit | None = None):
    """``u_s`` (nats) before the collapse cap:

    u_kind = A[kind] O[method] R^finetuned G[kind]^llama3 (N / 7)^-beta[kind]
             (r_kind / (1 - r_kind))^(k[kind] P^llama3)
    u_s = sum_kind u_kind
    """
    fit = load_structured_fit() if fit is None else fit
    idx = jnp.array(
        [
            structured_method_index("depth", st.depth_method),
            structured_method_index("width_hidden", st.width_method),
            structured_method_index("mixed", st.mixed_method),
        ]
    )
    if st.generation not in GENERATIONS:
        _static_index({g: 0 for g in GENERATIONS}, "generation", st.generation, "LLaMA-1/2 are 'llama-2'")
    removed = jnp.stack(jnp.broadcast_arrays(st.depth_removed, st.width_removed, st.mixed_removed), -1)
    return _structured_u(fit, removed, idx, st.finetuned, float(st.generation == "llama-3"), params_b)


def structured_delta_loss(st: Structured, *, params_b, fit: StructuredFit | None = None):
    """Increase in Wikitext-2 loss (nats/token) from structured pruning alone.

    ``delta_loss = y_max v / (1 + v^4)^(1/4)``, ``v = u_s / y_max`` (the collapse cap of
    `delta_loss`). Combined with quantisation and unstructured sparsity through
    ``delta_loss(..., structured=st)``, the two losses add before the cap (no published
    table in the data combines them, so additivity is the documented assumption).
    Smooth, non-decreasing in every removed fraction, NaN-free under ``grad``.

    Args:
      st: amounts, methods and generation (`Structured`).
      params_b: dense model size, billions of parameters.
      fit: constants; default `load_structured_fit`.
    """
    u = structured_uncapped_loss(st, params_b, fit)
    return _noise_to_loss(jnp.zeros_like(u), 1.0, u)


def structured_range_warnings(st: Structured, params_b) -> list[str]:
    """Messages for inputs outside the data the structured fit saw (concrete values): a
    removed fraction beyond the largest fitted one, a model size, generation or recovery
    setting that no row of that kind has."""
    info = structured_fit_file()["validity"]
    n = float(np.max(np.asarray(params_b, dtype=float)))
    ft = float(np.max(np.asarray(st.finetuned, dtype=float))) > 0
    out = []
    for kind, value in (
        ("depth", st.depth_removed),
        ("width_hidden", st.width_removed),
        ("mixed", st.mixed_removed),
    ):
        x = float(np.max(np.asarray(value, dtype=float)))
        if x <= 1e-9:
            continue
        lo, hi = info["removed_by_kind"][kind]
        if x > hi + 1e-9:
            out.append(
                f"accuracy: {kind} pruning removes {x:.3g}, beyond the fitted range [{lo:.3g}, {hi:.3g}] "
                f"of structured_pruning.csv: the loss is extrapolated"
            )
        plo, phi = info["params_b_by_kind"][kind]
        if not 0.9 * plo <= n <= 1.1 * phi:
            out.append(
                f"accuracy: params_b = {n:g} is outside the {kind} pruning data ({plo:g}-{phi:g}B): "
                "the size scaling is extrapolated"
            )
        if st.generation not in info["generations_by_kind"][kind]:
            out.append(
                f"accuracy: no {st.generation} rows for {kind} pruning: the generation factor is assumed"
            )
        if ft and kind not in info["finetuned_kinds"]:
            out.append(
                f"accuracy: no fine-tuned {kind} rows in structured_pruning.csv (recovery fitted on "
                f"{', '.join(info['finetuned_kinds'])} only): the recovery factor is assumed"
            )
    return out


def warn_structured_range(st: Structured, params_b) -> None:
    """``warnings.warn`` every `structured_range_warnings` message (call at the edges,
    e.g. when a study is set up)."""
    import warnings

    for msg in structured_range_warnings(st, params_b):
        warnings.warn(msg, UserWarning, stacklevel=2)
