"""Tests for hwgrad.accuracy: shape of the model, fit quality on held-out rows, gradients."""

from __future__ import annotations

import csv
import functools
import json
import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jax.test_util import check_grads

from hwgrad import accuracy as acc

DATA = Path(acc.__file__).resolve().parent / "presets" / "data"
FIT = json.loads((DATA / acc.FIT_FILE).read_text(encoding="utf-8"))

BITS = st.floats(1.0, 16.0, allow_nan=False)
SPARSITY = st.floats(0.0, 0.95, allow_nan=False)
PARAMS_B = st.floats(1.0, 1000.0, allow_nan=False)


@functools.cache
def _model(family="gptq", pruner="sparsegpt", pattern="unstructured"):
    # delta_loss jits its numeric core once for every family, so no outer jit is needed.
    def f(w, kv, a, s, n):
        return acc.delta_loss(w, kv, a, s, params_b=n, family=family, pruner=pruner, pattern=pattern)

    return f


def _le(a, b):
    """a <= b up to float32 rounding (the soft cap makes values equal near saturation)."""
    return np.all(np.asarray(a) <= np.asarray(b) + 1e-5 * (1.0 + np.abs(np.asarray(b))))


# ----------------------------------------------------------------------------- shape


@pytest.mark.parametrize("family", acc.FAMILIES)
@pytest.mark.parametrize("params_b", [1.0, 7.0, 70.0, 671.0])
def test_zero_at_16_bit_dense(family, params_b):
    y = acc.delta_loss(16.0, 16.0, 16.0, 0.0, params_b=params_b, family=family)
    d = acc.delta_ppl(16.0, params_b=params_b, baseline_ppl=5.0, family=family)
    assert 0.0 <= float(y) < 1e-5
    assert 0.0 <= float(d) < 1e-4


@settings(max_examples=40, deadline=None)
@given(
    family=st.sampled_from(acc.FAMILIES),
    which=st.sampled_from(["w", "kv", "a"]),
    b=BITS,
    step=st.floats(0.01, 8.0),
    w=BITS,
    kv=BITS,
    a=BITS,
    s=SPARSITY,
    n=PARAMS_B,
)
def test_more_bits_never_hurt(family, which, b, step, w, kv, a, s, n):
    args = {"w": w, "kv": kv, "a": a}
    lo = dict(args, **{which: b})
    hi = dict(args, **{which: min(b + step, 16.0)})
    f = _model(family)
    y_lo = f(lo["w"], lo["kv"], lo["a"], s, n)
    y_hi = f(hi["w"], hi["kv"], hi["a"], s, n)
    assert _le(y_hi, y_lo)


@settings(max_examples=40, deadline=None)
@given(
    pruner=st.sampled_from(acc.PRUNERS),
    pattern=st.sampled_from(acc.PATTERNS[1:]),
    s=SPARSITY,
    step=st.floats(0.001, 0.5),
    w=BITS,
    n=PARAMS_B,
)
def test_more_sparsity_never_helps(pruner, pattern, s, step, w, n):
    cap = 0.5 if ":" in pattern else 0.95
    s_lo, s_hi = min(s, cap), min(s + step, cap)
    f = _model("gptq", pruner, pattern)
    assert _le(f(w, 16.0, 16.0, s_lo, n), f(w, 16.0, 16.0, s_hi, n))


@settings(max_examples=30, deadline=None)
@given(
    family=st.sampled_from(acc.FAMILIES),
    w=BITS,
    kv=BITS,
    a=BITS,
    s=SPARSITY,
    n=PARAMS_B,
    k=st.floats(1.01, 10),
)
def test_larger_models_lose_no_more(family, w, kv, a, s, n, k):
    # Every size exponent is constrained >= 0 in the fit, so this holds for any inputs.
    f = _model(family)
    assert _le(f(w, kv, a, s, n * k), f(w, kv, a, s, n))


@pytest.mark.parametrize("family", acc.FAMILIES)
def test_monotone_on_dense_grids(family):
    bits = jnp.linspace(1.0, 16.0, 301)
    for kw in (
        {"weight_bits": bits},
        {"weight_bits": 16.0, "kv_bits": bits},
        {"weight_bits": 16.0, "act_bits": bits},
    ):
        y = np.asarray(acc.delta_loss(**kw, params_b=13.0, family=family))
        assert np.all(np.diff(y) <= 1e-6 * (1 + y[:-1])), kw
        assert y[0] > y[-1]
    for pruner in acc.PRUNERS:
        for pattern, cap in (("unstructured", 0.95), ("4:8", 0.5), ("2:4", 0.5)):
            s = jnp.linspace(0.0, cap, 200)
            y = np.asarray(acc.delta_loss(16.0, sparsity=s, params_b=13.0, pruner=pruner, pattern=pattern))
            assert np.all(np.diff(y) >= -1e-6 * (1 + y[1:])), (pruner, pattern)


def test_saturates_at_collapse_without_overflow():
    y = acc.delta_loss(1.0, 1.0, 1.0, 0.95, params_b=1.0, family="rtn", pruner="magnitude")
    assert float(y) == pytest.approx(acc.COLLAPSE_LOSS_NATS, rel=1e-4)
    assert np.isfinite(float(acc.delta_ppl(1.0, 1.0, 1.0, 0.95, params_b=1.0, family="rtn")))


# ----------------------------------------------------------------------------- what the data says


@pytest.mark.parametrize("params_b", [7.0, 70.0])
def test_vector_quantisers_degrade_less_at_2_bits(params_b):
    vec = acc.delta_loss(2.0, params_b=params_b, family="vector")
    for fam in ("rtn", "gptq", "rotation"):
        assert 2.0 * float(vec) < float(acc.delta_loss(2.0, params_b=params_b, family=fam))
    # QuIP# / AQLM at 2 bits cost ~0.1-0.3 nats on Llama-2 (compression_accuracy.csv).
    assert 0.05 < float(vec) < 0.4


def test_w4a4_needs_rotation():
    # SpinQuant table: RTN W4A4 collapses (ppl in the thousands), QuaRot/SpinQuant lose < 0.3 nats.
    rtn = acc.delta_loss(4.0, act_bits=4.0, params_b=7.0, family="rtn")
    rot = acc.delta_loss(4.0, act_bits=4.0, params_b=7.0, family="rotation")
    assert float(rtn) > math.log(100 / 5.5)
    assert float(rot) < 0.3


def test_uniform_2_bit_kv_breaks_calibrated_does_not():
    uniform = acc.delta_loss(16.0, kv_bits=2.0, params_b=7.0, family="rtn")
    calibrated = acc.delta_loss(16.0, kv_bits=2.0, params_b=7.0, family="rotation")
    assert float(uniform) > 1.0 > 0.5 > float(calibrated)


def test_pruning_orderings():
    at = functools.partial(acc.delta_loss, 16.0, params_b=7.0)
    unstructured = at(sparsity=0.5)
    assert (
        float(unstructured) < float(at(sparsity=0.5, pattern="4:8")) < float(at(sparsity=0.5, pattern="2:4"))
    )
    assert (
        float(at(sparsity=0.7, pruner="owl"))
        < float(at(sparsity=0.7))
        < float(at(sparsity=0.7, pruner="magnitude"))
    )


def test_default_baseline_matches_llama_2():
    # Wikitext-2 dense perplexity at 2048 context (AWQ Table 4): Llama-2-7B 5.47, -70B 3.32.
    assert float(acc.default_baseline_ppl(6.738)) == pytest.approx(5.47, rel=0.05)
    assert float(acc.default_baseline_ppl(68.977)) == pytest.approx(3.32, rel=0.05)
    y = acc.delta_loss(3.0, params_b=13.0)
    assert float(acc.delta_ppl(3.0, params_b=13.0, baseline_ppl=4.88)) == pytest.approx(
        4.88 * math.expm1(y), rel=1e-5
    )


# ----------------------------------------------------------------------------- fit quality


def _csv_rows():
    with (DATA / "compression_accuracy.csv").open(newline="", encoding="utf-8") as fh:
        return {line: r for line, r in enumerate(csv.DictReader(fh), start=2)}


def _predict(rows_meta, raw):
    lv = lambda table, key: jnp.asarray([table[m[key]] for m in rows_meta])
    col = lambda key: jnp.asarray([float(r[key]) for r in raw])
    idx = (
        lv(acc._WEIGHT_LEVEL, "family"),
        lv(acc._ACT_LEVEL, "act_family"),
        lv(acc._KV_LEVEL, "kv_family"),
        lv(acc._PRUNER_LEVEL, "pruner"),
        lv(acc._PATTERN_LEVEL, "pattern"),
    )
    params_b = jnp.asarray([m["params_b"] for m in rows_meta])
    per_channel = jnp.asarray([float(m["per_channel"]) for m in rows_meta])
    return np.asarray(
        acc._loss(
            acc.load_fit(),
            col("weight_bits"),
            col("kv_bits"),
            col("act_bits"),
            col("sparsity"),
            params_b,
            idx,
            per_channel,
        )
    )


def test_held_out_rows_within_documented_error():
    raw_all = _csv_rows()
    substituted = {s["line"] for s in FIT["baseline_substitutions"]}
    lines = FIT["holdout_lines"]
    assert len(lines) >= 0.15 * len(FIT["rows"])
    meta = [FIT["rows"][str(line)] for line in lines]
    raw = [raw_all[line] for line in lines]
    for line, m, r in zip(lines, meta, raw, strict=True):
        assert m["fold"] == 0
        if line not in substituted:  # baselines come straight from the CSV
            assert m["ppl0"] == float(r["fp16_baseline"])
    pred = _predict(meta, raw)
    ppl0 = np.array([m["ppl0"] for m in meta])
    obs = np.maximum(np.log(np.array([float(r["value"]) for r in raw]) / ppl0), 0.0)
    cens = np.array([m["censored"] for m in meta])

    e_loss = np.abs(pred - obs)[~cens]
    e_ppl = np.abs(ppl0 * np.expm1(pred) - ppl0 * np.expm1(obs))[~cens]
    documented = FIT["errors"]["holdout"]
    assert np.median(e_loss) == pytest.approx(documented["median_abs_err_delta_loss"], rel=2e-3)
    assert np.quantile(e_loss, 0.9) == pytest.approx(documented["p90_abs_err_delta_loss"], rel=2e-3)
    assert np.median(e_ppl) == pytest.approx(documented["median_abs_err_delta_ppl"], rel=2e-3)
    assert np.quantile(e_ppl, 0.9) == pytest.approx(documented["p90_abs_err_delta_ppl"], rel=2e-3)
    # The bounds quoted in docs/accuracy.md.
    assert np.median(e_loss) < 0.05
    assert np.median(e_ppl) < 0.3
    assert np.quantile(e_loss, 0.9) < 1.0
    floor = np.log(100.0 / ppl0[cens])
    assert np.mean(pred[cens] >= floor) >= 0.8


def test_public_api_matches_fit_path():
    # Rows whose tensors all use their family's own terms go through delta_loss unchanged.
    raw_all = _csv_rows()
    picked = [
        (line, m)
        for line, m in FIT["rows"].items()
        if not m["per_channel"] and m["act_family"] == m["family"] == m["kv_family"]
    ][:40]
    meta = [m for _, m in picked]
    raw = [raw_all[int(line)] for line, _ in picked]
    ref = _predict(meta, raw)
    for m, r, y_ref in zip(meta, raw, ref, strict=True):
        f = _model(m["family"], m["pruner"], m["pattern"])
        y = f(*(float(r[k]) for k in ("weight_bits", "kv_bits", "act_bits", "sparsity")), m["params_b"])
        assert float(y) == pytest.approx(float(y_ref), rel=1e-5, abs=1e-9)


def test_fit_file_documents_validity_and_errors():
    v = FIT["validity"]
    assert v["weight_bits"] == [1.0, 16.0] and v["sparsity"][1] == 0.7
    assert v["params_b"][0] < 7 and v["params_b"][1] > 68
    for split in ("train", "holdout", "cv5"):
        assert FIT["errors"][split]["n_rows"] > 0
    gamma = FIT["constants"]["bits_scale"]
    assert 0.5 < gamma < 1.2  # near 1/ln 4 = 0.72, the ideal scalar quantiser's 4^-bits noise


# ----------------------------------------------------------------------------- jax


def _grid():
    rng = np.random.default_rng(0)
    edges = np.array(
        [[1.0, 1.0, 1.0, 0.0, 1.0], [16.0, 16.0, 16.0, 0.95, 1000.0], [32.0, 32.0, 32.0, 0.0, 7.0]]
    )
    random = np.column_stack(
        [
            rng.uniform(1, 16, 200),
            rng.uniform(1, 16, 200),
            rng.uniform(1, 16, 200),
            rng.uniform(0, 0.95, 200),
            np.exp(rng.uniform(0, np.log(1000), 200)),
        ]
    )
    return jnp.asarray(np.vstack([edges, random]), dtype=jnp.float32)


@pytest.mark.parametrize(
    "family,pruner,pattern",
    [
        ("rtn", "magnitude", "unstructured"),
        ("gptq", "sparsegpt", "2:4"),
        ("rotation", "wanda", "4:8"),
        ("vector", "owl", "unstructured"),
    ],
)
def test_gradients_finite_over_documented_ranges(family, pruner, pattern):
    x = _grid()
    if ":" in pattern:
        x = x.at[:, 3].set(jnp.minimum(x[:, 3], 0.5))

    def f(row):
        return acc.delta_ppl(
            *row[:4], params_b=row[4], baseline_ppl=5.0, family=family, pruner=pruner, pattern=pattern
        )

    g = jax.jit(jax.vmap(jax.grad(f)))(x)
    assert np.all(np.isfinite(np.asarray(g)))
    y = jax.vmap(f)(x)
    assert np.all(np.isfinite(np.asarray(y))) and np.all(np.asarray(y) >= 0)


def test_check_grads_float64():
    previous = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    try:
        fit = acc.load_fit()
        assert fit.bits_scale.dtype == jnp.float64

        def f(w, kv, a, s, n):
            return acc.delta_ppl(w, kv, a, s, params_b=n, baseline_ppl=5.0, family="gptq", fit=fit)

        point = tuple(jnp.asarray(v, dtype=jnp.float64) for v in (3.5, 6.0, 8.0, 0.3, 13.0))
        check_grads(jax.jit(f), point, order=1, modes=("fwd", "rev"), atol=1e-5, rtol=1e-5)

        # ... and with respect to the fitted constants (what calibration would differentiate).
        def g(constants):
            return acc.delta_loss(3.0, 4.0, 8.0, 0.5, params_b=13.0, fit=constants)

        check_grads(jax.jit(g), (fit,), order=1, modes=("rev",), atol=1e-5, rtol=1e-5)
    finally:
        jax.config.update("jax_enable_x64", previous)


def test_jit_vmap_and_broadcasting_agree_with_a_loop():
    bits = jnp.array([2.0, 3.0, 4.0, 8.0])
    sizes = jnp.array([7.0, 13.0, 70.0, 405.0])
    vec = jax.vmap(lambda b, n: acc.delta_loss(b, 8.0, params_b=n, family="rotation"))(bits, sizes)
    broadcast = acc.delta_loss(bits, 8.0, params_b=sizes, family="rotation")
    f = _model("rotation")
    loop = [f(float(b), 8.0, 16.0, 0.0, float(n)) for b, n in zip(bits, sizes, strict=True)]
    jitted = jax.jit(acc.delta_loss, static_argnames=("family", "pruner", "pattern"))(
        bits, 8.0, params_b=sizes, family="rotation"
    )
    np.testing.assert_allclose(vec, loop, rtol=1e-6)
    np.testing.assert_allclose(broadcast, loop, rtol=1e-6)
    np.testing.assert_allclose(jitted, loop, rtol=1e-6)


def test_per_layer_profile():
    profile = jnp.array([4.0, 1.0, 1.0, 2.0])
    per_layer = jax.jit(lambda b: acc.delta_loss(b, params_b=7.0, layer_sensitivity=profile))
    same = per_layer(jnp.full(4, 3.0))
    np.testing.assert_allclose(same, acc.delta_loss(3.0, params_b=7.0), rtol=1e-6)
    # One bit less on the most sensitive layer hurts more than on the least sensitive one.
    hurt_sensitive = per_layer(jnp.array([2.0, 3.0, 3.0, 3.0]))
    hurt_robust = per_layer(jnp.array([3.0, 2.0, 3.0, 3.0]))
    assert float(same) < float(hurt_robust) < float(hurt_sensitive)
    g = jax.grad(per_layer)(jnp.full(4, 3.0))
    assert np.all(np.asarray(g) < 0) and float(g[0]) == pytest.approx(4 * float(g[1]), rel=1e-5)


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "kwargs,needles",
    [
        ({"family": "awq"}, ["family", "'awq'", "gptq"]),
        ({"pruner": "sparsgpt"}, ["pruner", "did you mean 'sparsegpt'"]),
        ({"pattern": "1:4"}, ["pattern", "'1:4'"]),
        ({"weight_bits": 0.5}, ["weight_bits = 0.5", "[1, 32]", "e.g. 4 for int4"]),
        ({"kv_bits": 64.0}, ["kv_bits = 64", "[1, 32]"]),
        ({"act_bits": float("nan")}, ["act_bits = nan"]),
        ({"sparsity": 1.0}, ["sparsity = 1", "[0, 1)", "pruned fraction"]),
        ({"sparsity": -0.1}, ["sparsity = -0.1"]),
        ({"sparsity": 0.6, "pattern": "2:4"}, ["sparsity = 0.6", "'2:4'", "unstructured"]),
        ({"sparsity": 0.3, "pattern": "dense"}, ["sparsity = 0.3", "'dense'", "unstructured"]),
        ({"params_b": 0.0}, ["params_b = 0", "billions"]),
        ({"baseline_ppl": 0.5}, ["baseline_ppl = 0.5"]),
    ],
)
def test_validate_inputs_names_field_value_and_fix(kwargs, needles):
    args = {"weight_bits": 4.0, "params_b": 7.0, **kwargs}
    with pytest.raises(ValueError) as err:
        acc.validate_inputs(**args)
    for needle in needles:
        assert needle in str(err.value)


def test_validate_inputs_accepts_documented_ranges():
    acc.validate_inputs(
        jnp.array([1.0, 4.0, 32.0]), 2.0, 4.0, 0.95, params_b=70.0, family="vector", baseline_ppl=3.3
    )
    acc.validate_inputs(4.0, sparsity=0.5, params_b=7.0, pattern="2:4")
    acc.validate_inputs(16.0, params_b=7.0, pattern="dense")


def test_unknown_family_raises_even_under_jit():
    with pytest.raises(ValueError, match="family"):
        jax.jit(lambda b: acc.delta_loss(b, params_b=7.0, family="quip#"))(4.0)
