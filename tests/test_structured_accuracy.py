"""Structured-pruning quality: the fitted loss, its combination with quantisation, range warnings."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import hwgrad as hg
from hwgrad import accuracy as acc
from hwgrad import presets, pruning

DATA = Path(acc.__file__).resolve().parent / "presets" / "data"
ROOT = Path(acc.__file__).resolve().parents[1]
SCRIPT = ROOT / "experiments" / "fit_structured_pruning.py"
FIT = json.loads((DATA / acc.STRUCTURED_FIT_FILE).read_text(encoding="utf-8"))
FRACTION = st.floats(0.0, 0.9, allow_nan=False)


def _loss(d=0.0, w=0.0, m=0.0, n=7.0, **kw):
    return acc.structured_delta_loss(acc.Structured(d, w, m, **kw), params_b=n)


def test_no_pruning_costs_nothing_and_leaves_delta_loss_unchanged():
    assert float(_loss()) == 0.0
    plain = acc.delta_loss(4.0, params_b=7.0)
    assert float(acc.delta_loss(4.0, params_b=7.0, structured=acc.Structured())) == float(plain)


@settings(max_examples=30, deadline=None)
@given(FRACTION, FRACTION, FRACTION, st.floats(0.0, 0.05))
def test_monotone_in_every_removed_fraction(d, w, m, step):
    base = float(_loss(d, w, m))
    assert float(_loss(d + step, w, m)) >= base - 1e-6
    assert float(_loss(d, w + step, m)) >= base - 1e-6
    assert float(_loss(d, w, m + step)) >= base - 1e-6
    assert 0.0 <= base <= acc.COLLAPSE_LOSS_NATS


def test_gradients_finite_at_zero_and_over_the_range():
    f = jax.grad(lambda x: _loss(x[0], x[1], x[2]))
    for x in ([0.0, 0.0, 0.0], [0.25, 0.0, 0.0], [0.1, 0.3, 0.5], [0.9, 0.9, 0.9]):
        g = np.asarray(f(jnp.array(x)))
        assert np.all(np.isfinite(g)), x
    assert np.all(np.asarray(f(jnp.array([0.2, 0.2, 0.2]))) > 0)


def test_recovery_and_generation_move_the_loss_the_way_the_data_do():
    base = float(_loss(m=0.3))
    assert float(_loss(m=0.3, finetuned=1.0)) < base  # LoRA recovery helps (LLM-Pruner)
    assert float(_loss(w=0.3, generation="llama-3")) > float(_loss(w=0.3))  # Llama-3 slices worse
    assert float(_loss(d=0.25, n=13.0)) < float(_loss(d=0.25, n=7.0))  # bigger models tolerate more


def test_shipped_constants_reproduce_the_shipped_predictions():
    fit = acc.load_structured_fit()
    rows = FIT["rows"]
    for line, r in list(rows.items())[::5]:
        kw = {"finetuned": r["finetuned"], "generation": r["generation"]}
        kw[{"depth": "depth_method", "width_hidden": "width_method", "mixed": "mixed_method"}[r["kind"]]] = r[
            "family"
        ]
        amounts = {k: (r["removed"] if k == r["kind"] else 0.0) for k in acc.STRUCTURED_KINDS}
        s = acc.Structured(amounts["depth"], amounts["width_hidden"], amounts["mixed"], **kw)
        got = float(acc.structured_delta_loss(s, params_b=_params_b(line), fit=fit))
        # pred_delta_loss is the shipped model (reference protocol, no source factor)
        assert got == pytest.approx(r["pred_delta_loss"], abs=2e-3), line


def _params_b(line: str) -> float:
    with (DATA / "structured_pruning.csv").open(newline="", encoding="utf-8") as fh:
        model = list(csv.DictReader(fh))[int(line) - 2]["model"]
    shapes = {"llama-1-7b": "llama-2-7b", "llama-1-13b": "llama-2-13b"}
    name = shapes.get(model, model)
    name = "llama-3.1-8b" if name.startswith("llama-3") and "8b" in name else name
    return float(hg.counts.param_count(presets.model(name))) / 1e9


def test_fit_quality_on_the_table():
    err = FIT["errors"]
    assert err["train"]["median_abs_err_delta_loss"] <= 0.1
    # issue 19's target (<= 0.15 nats) holds on rows whose every factor another source
    # measures; all rows include methods only one source has (docs/accuracy.md)
    assert err["leave_one_source_out_covered"]["median_abs_err_delta_loss"] <= 0.15
    assert err["leave_one_source_out"]["median_abs_err_delta_loss"] <= 0.2
    assert err["leave_one_source_out"]["p90_abs_err_delta_loss"] <= 1.5
    assert err["train"]["censored_predicted_collapsed"] == 1.0
    n = FIT["n_parameters"]
    assert n["shipped"] == sum(np.size(v) for v in FIT["constants"].values()) == 24
    # the 128-token factor sits on the README's paired measurement (Δ at 128 / 2048 tokens)
    assert -0.3 < err["nuisance"]["ctx128_paired_estimate"] < -0.1
    assert err["nuisance"]["ctx128_log_mult"] == pytest.approx(
        err["nuisance"]["ctx128_paired_estimate"], abs=0.05
    )
    # SliceGPT, Llama-2-7B, 25 % slicing: ppl 5.47 -> 7.24 (ln ratio 0.280)
    got = float(_loss(w=0.25, n=6.738))
    assert got == pytest.approx(np.log(7.24 / 5.47), abs=0.12)


def test_rows_and_repeated_configurations_are_reported():
    rows = FIT["rows"].values()
    uncovered = [r for r in rows if r["uncovered"] and not r["censored"]]
    assert len(uncovered) == FIT["errors"]["leave_one_source_out_uncovered"]["n_rows"]
    assert all("loso_pred" in r for r in rows)
    # the paper and the zlab reproduction of SliceGPT 50 % on Llama-2-7B differ by ~0.2 nats
    same = {(c["model"], c["family"], c["removed"]): c for c in FIT["same_configuration"]}
    c = same[("llama-2-7b", "slicegpt", 0.5)]
    assert c["cross_source"] and 0.15 < c["spread_delta_loss"] < 0.3


def test_docs_show_the_shipped_tables():
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "--markdown"], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout
    assert out.strip() and out in (ROOT / "docs" / "accuracy.md").read_text(encoding="utf-8")


@pytest.mark.slow
def test_shipped_file_equals_the_script_fit():
    """The script refits (no held-out refits) and compares with the shipped constants."""
    done = subprocess.run([sys.executable, str(SCRIPT), "--check"], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr


def test_quantisation_and_structured_loss_add_before_the_cap():
    s = acc.Structured(width_removed=0.2)
    q = float(acc.delta_loss(3.0, params_b=7.0))
    p = float(acc.structured_delta_loss(s, params_b=7.0))
    both = float(acc.delta_loss(3.0, params_b=7.0, structured=s))
    assert both == pytest.approx(q + p, rel=1e-3)
    huge = acc.Structured(depth_removed=0.9, mixed_removed=0.9)
    assert float(acc.delta_loss(2.0, params_b=7.0, family="rtn", structured=huge)) <= acc.COLLAPSE_LOSS_NATS


def test_from_compression_reads_the_keep_knobs():
    m = presets.model("llama-2-7b")
    gates = jnp.ones(32).at[20:28].set(0.0)
    c = hg.Compression(layer_keep_gates=gates, hidden_kept_fraction=0.75)
    s = acc.Structured.from_compression(m, c)
    assert float(s.depth_removed) == pytest.approx(0.25)
    assert float(s.width_removed) == pytest.approx(0.25)
    assert float(s.mixed_removed) == pytest.approx(0.0, abs=1e-7)
    c = hg.Compression(heads_kept_fraction=0.75, ffn_kept_fraction=0.75)
    s = acc.Structured.from_compression(m, c)
    assert float(s.mixed_removed) == pytest.approx(float(pruning.params_removed_fraction(m, c)), rel=1e-6)
    g = jax.grad(
        lambda x: acc.structured_delta_loss(
            acc.Structured.from_compression(m, hg.Compression(layer_keep_gates=x)), params_b=6.7
        )
    )(jnp.full(32, 0.8))
    assert np.all(np.isfinite(g)) and np.all(np.asarray(g) < 0)  # keeping more layers costs less


def test_pruning_beyond_the_data_warns_naming_the_range():
    lo, hi = FIT["validity"]["removed_by_kind"]["depth"]
    with pytest.warns(
        UserWarning, match=rf"depth pruning removes 0.6, beyond the fitted range \[{lo:.3g}, {hi:.3g}\]"
    ):
        acc.warn_structured_range(acc.Structured(depth_removed=0.6), params_b=7.0)
    msgs = acc.structured_range_warnings(acc.Structured(depth_removed=0.25, finetuned=1.0), params_b=70.0)
    assert any("outside the depth pruning data" in m for m in msgs)
    assert any("no fine-tuned depth rows" in m for m in msgs)
    assert acc.structured_range_warnings(acc.Structured(width_removed=0.3), params_b=13.0) == []


def test_unknown_method_names_suggest_the_nearest():
    with pytest.raises(ValueError, match="did you mean 'slicegpt'"):
        _loss(w=0.1, width_method="slicegtp")
    with pytest.raises(ValueError, match="generation"):
        _loss(w=0.1, generation="gpt-2")


def test_layer_importance_makes_the_choice_of_layers_matter():
    m = presets.model("llama-2-7b")
    w = np.ones(32)
    w[:4] = 5.0  # ASSUMED: the first layers matter most
    drop = lambda idx: hg.Compression(layer_keep_gates=jnp.ones(32).at[jnp.array(idx)].set(0.0))
    middle = acc.Structured.from_compression(m, drop(list(range(16, 24))), layer_importance=w)
    first = acc.Structured.from_compression(m, drop(list(range(0, 8))), layer_importance=w)
    uniform = acc.Structured.from_compression(m, drop(list(range(0, 8))), layer_importance=np.ones(32))
    # dropping 8 of the least important layers is the fitted curve at r = 8/32
    assert float(middle.depth_removed) == pytest.approx(0.25, abs=1e-6)
    assert float(uniform.depth_removed) == pytest.approx(0.25, abs=1e-6)
    assert float(first.depth_removed) > 0.4
    g = jax.grad(
        lambda x: (
            acc.Structured.from_compression(
                m, hg.Compression(layer_keep_gates=x), layer_importance=w
            ).depth_removed
        )
    )(jnp.full(32, 0.9))
    assert np.all(np.isfinite(g)) and float(g[0]) < float(g[20]) < 0
