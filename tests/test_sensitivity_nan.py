"""Sensitivities never turn a NaN into a number (issue 18 item 1, issue 11 item 7).

An unknown TDP, price or die area makes energy, cost or carbon undefined (NaN); those rows
are NaN with their cause named, and the metrics that are defined keep exactly the
elasticities they have when the unknowns are filled in.
"""

import math

import jax
import numpy as np
import pytest

import hwgrad as hg
from hwgrad import presets
from hwgrad import sweep as sw

MODEL = "llama-3.1-8b"
# a TDP large enough that the power roofline (hwgrad.power) never binds, even on a wafer (WSE-3
# SRAM traffic alone draws ~100 kW at a few pJ/byte): with a known TDP the step may slow to
# the power cap, a real change of latency that this test is not about
FILLED = dict(tdp_w=1e7, price_usd=30000.0, energy_j_per_flop_bf16=4e-13, die_area_mm2=800.0)


def _design(hardware: str, fill: bool):
    system = presets.system(hardware, 1)
    if fill:
        chip = system.chip
        changes = {k: v for k, v in FILLED.items() if not math.isfinite(float(getattr(chip, k)))}
        if math.isfinite(float(chip.tdp_w)):
            # with a known TDP the cap is on (hwgrad.power.pass_power counts an unknown FLOP
            # energy as 0 there): the FLOP energy is part of the latency, and filling it in
            # is a real change of the design, not the filling of an unknown
            changes.pop("energy_j_per_flop_bf16", None)
        system = hg.replace(system, chip=hg.replace(chip, **changes))
    model = presets.model(MODEL)
    wl = hg.Workload(batch=8.0, prompt_len=512.0, output_len=128.0, tp=1.0)
    return sw.design(system, model, wl, hg.compression("fp8"), hg.Efficiency.speed_of_light())


def _same_defined_rows(hardware: str):
    raw = _design(hardware, fill=False)
    knobs = tuple(sw.paths(raw))
    knobs = tuple(k for k in knobs if math.isfinite(sw.get(raw, k)) and sw.get(raw, k) > 0)
    knobs = tuple(k for k in knobs if k.rsplit(".", 1)[-1] not in sw.INTEGER_FIELDS)
    a = sw.sensitivity(**raw, knobs=knobs, label=hardware)
    b = sw.sensitivity(**_design(hardware, fill=True), knobs=knobs)
    for i, m in enumerate(a.metrics):
        if m in ("tpot_s", "ttft_s", "e2e_latency_s", "tokens_per_s"):
            assert m not in a.undefined
            np.testing.assert_allclose(a.elasticity[i], b.elasticity[i], rtol=1e-5, atol=1e-7, err_msg=m)
            assert np.all(np.isfinite(a.elasticity[i])), m
    return a


def test_unknown_tdp_keeps_the_latency_elasticities_and_names_the_cause():
    s = _same_defined_rows("h800")
    assert not math.isfinite(float(presets.chip("h800").tdp_w))
    tpot = s.elasticity[s.metrics.index("tpot_s")]
    assert np.count_nonzero(tpot) >= 3  # before the fix: all zero
    assert "energy_j_per_token" in s.undefined
    assert "system.chip.tdp_w" in s.undefined["energy_j_per_token"]
    assert "h800" in s.undefined["energy_j_per_token"]
    assert np.all(np.isnan(s.elasticity[s.metrics.index("energy_j_per_token")]))
    text = s.table()
    assert "energy_j_per_token = nan: system.chip.tdp_w" in text
    d = s.to_dict()
    assert d["energy_j_per_token"]["value"] is None and d["energy_j_per_token"]["elasticity"] == {}
    assert "tdp_w" in d["energy_j_per_token"]["undefined"]


def test_unknown_die_area_behind_a_known_embodied_figure_has_finite_gradients():
    from hwgrad.cost import evaluate

    d = _design("h100-sxm", fill=True)
    chip = hg.replace(d["system"].chip, embodied_kgco2e=150.0, die_area_mm2=float("nan"))
    d["system"] = hg.replace(d["system"], chip=chip)

    def g(k):
        econ = hg.replace(d["economics"], embodied_kgco2e_per_cm2_logic=k)
        return evaluate(**{**d, "economics": econ}).gco2e_per_token

    value, grad = jax.value_and_grad(g)(float(d["economics"].embodied_kgco2e_per_cm2_logic))
    assert math.isfinite(float(value)) and float(grad) == 0.0  # before: NaN


def test_a_nan_elasticity_of_a_defined_metric_is_shown_as_nan():
    s = sw.Sensitivity(
        ("tpot_s",), ("a", "b"), np.array([1.0, 2.0]), np.array([0.5]), np.array([[0.3, np.nan]])
    )
    assert s.rows("tpot_s")[0][1] == "b"  # NaN first, never dropped as "0"
    assert "nan" in s.table() and "derivative undefined" in s.table()
    assert s.to_dict()["tpot_s"]["elasticity"] == {"b": None, "a": 0.3}


@pytest.mark.slow
@pytest.mark.parametrize("hardware", list(presets.table("hardware")))
def test_every_hardware_preset_keeps_its_latency_elasticities(hardware):
    _same_defined_rows(hardware)
