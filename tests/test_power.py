"""Power: idle + active + dynamic energy, the TDP roofline, energy by component."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reference import capped_step

import hwgrad as hg
from hwgrad import power
from hwgrad.presets import designs

SOL = hg.Efficiency.speed_of_light()
M70 = hg.presets.model("llama-3.1-70b")
W70 = hg.Workload(batch=32.0, prompt_len=2048.0, output_len=512.0, tp=8.0)
FP8 = hg.compression("fp8", "fp8")


def test_idle_fraction_comes_from_the_data():
    assert hg.presets.idle_power_fraction() == pytest.approx(59.5 / 300)
    assert float(hg.presets.chip("h100-sxm", fitted=False).idle_power_fraction) == pytest.approx(59.5 / 300)
    assert hg.Chip(
        tiers=(), peak_flops_bf16=1.0, peak_flops_fp8=1.0, peak_flops_fp4=1.0
    ).idle_power_fraction == (pytest.approx(59.5 / 300))


def test_flop_energy_is_what_the_tdp_leaves_at_peak():
    # H100: (700 W x (1 - 0.198) - 3.35 TB/s x 3.9 pJ/bit x 8) / 989.4 TFLOPS
    e = float(hg.presets.chip("h100-sxm", fitted=False).energy_j_per_flop_bf16)
    assert e == pytest.approx((700 * (1 - 59.5 / 300) - 3.35e12 * 3.9e-12 * 8) / 989.4e12, rel=1e-4)


def test_energy_components_sum_and_idle_is_fraction_times_tdp_times_time():
    r = hg.evaluate(hg.presets.system("h100-sxm", 8, fitted=False), M70, W70, FP8, SOL)
    for pc in (r.decode, r.prefill):
        parts = pc.energy_components()
        total = sum(float(jnp.sum(v)) for v in parts.values())
        assert total == pytest.approx(float(pc.energy_j), rel=1e-5)
        assert float(pc.energy_idle_j) == pytest.approx(8 * 700 * 59.5 / 300 * float(pc.time_s), rel=1e-5)
        assert float(pc.energy_active_j) == 0.0  # default active fraction: not fitted yet
    # the retired fitted static fraction has no effect on energy
    r2 = hg.evaluate(
        hg.presets.system("h100-sxm", 8, fitted=False), M70, W70, FP8, hg.Efficiency(static_power_fraction=0.48)
    )
    assert float(r2.energy_j_per_token) == pytest.approx(float(r.energy_j_per_token), rel=1e-6)


def test_b200_uses_less_energy_per_token_than_h100():
    e = {
        hw: float(hg.evaluate(hg.presets.system(hw, 8, fitted=False), M70, W70, FP8, SOL).energy_j_per_token)
        for hw in ("h100-sxm", "b200")
    }
    assert e["b200"] < e["h100-sxm"]


def test_mobile_pim_uses_less_energy_per_token_than_plain_mobile():
    m = hg.presets.model("llama-3.1-8b")
    wl = hg.Workload(batch=1.0, prompt_len=4096.0, output_len=256.0)
    c = hg.compression("q4_0")
    plain = hg.evaluate(designs.mobile_soc(), m, wl, c, SOL)
    pim = hg.evaluate(designs.mobile_soc(pim=True), m, wl, c, SOL)
    assert float(pim.energy_j_per_token) < float(plain.energy_j_per_token) / 3
    assert float(pim.ttft_s) == pytest.approx(float(plain.ttft_s), rel=1e-6)  # prefill on the host


def _busy_chip(active):
    s = hg.presets.system("h100-sxm", 1, fitted=False)
    return hg.replace(s, chip=hg.replace(s.chip, active_power_fraction=active))


def test_power_roofline_slows_a_compute_bound_prefill_and_matches_the_reference():
    m = hg.presets.model("llama-3.1-8b")
    wl = hg.Workload(batch=8.0, prompt_len=4096.0, output_len=16.0)
    c = hg.compression("bf16")
    free = hg.prefill(_busy_chip(0.0), m, wl, c, SOL, hg.Options(roofline="hard"))
    hot = hg.prefill(_busy_chip(0.6), m, wl, c, SOL, hg.Options(roofline="hard"))
    # no cap at a = 0: FLOP energy is sized so peak FLOPs + peak bandwidth draw the TDP exactly
    assert float(free.power_s) <= float(free.time_s) * (1 + 1e-5)
    dynamic = float(hot.energy_memory_j + hot.energy_compute_j + hot.energy_network_j)
    t, idle_j, active_j = capped_step(
        float(free.time_s),
        dynamic,
        tdp_w=700.0,
        idle_fraction=59.5 / 300,
        tier_idle_w=0.0,
        active_fraction=0.6,
        busy=1.0,
    )
    assert t > 1.2 * float(free.time_s)
    assert float(hot.time_s) == pytest.approx(t, rel=1e-4)
    assert float(hot.energy_idle_j) == pytest.approx(idle_j, rel=1e-4)
    assert float(hot.energy_active_j) == pytest.approx(active_j, rel=1e-4)
    assert float(hot.energy_j) / float(hot.time_s) == pytest.approx(700.0, rel=1e-4)  # at the TDP


def test_memory_bound_decode_is_not_capped_and_active_power_adds_energy():
    m = hg.presets.model("llama-3.1-8b")
    wl = hg.Workload(batch=1.0)
    c = hg.compression("bf16")
    a0 = hg.decode_step(_busy_chip(0.0), m, wl, c, SOL, 1000.0)
    a3 = hg.decode_step(_busy_chip(0.3), m, wl, c, SOL, 1000.0)
    assert float(a3.time_s) == pytest.approx(float(a0.time_s), rel=1e-6)
    expect = 0.3 * (1 - 59.5 / 300) * 700 * float(a0.time_s)
    assert float(a3.energy_active_j) == pytest.approx(expect, rel=1e-5)


def test_added_tiers_idle_and_unknown_tdp_has_no_cap():
    s = designs.hbm4_hbf_accelerator(n_chips=8)
    chip = s.chip
    assert float(chip.tiers[0].idle_power_w) == 0.0  # covered by the board idle fraction
    tiers = hg.memory.stacked_tiers(s)
    assert float(power.idle_power_w(chip, tiers)) == pytest.approx(1000 * 59.5 / 300 + 4 * 80 * 0.1)
    s_nan = hg.replace(s, chip=hg.replace(chip, tdp_w=float("nan")))
    step = hg.decode_step(s_nan, M70, hg.Workload(batch=1.0, tp=8.0), FP8, SOL)
    assert np.isfinite(float(step.time_s)) and float(step.power_s) == 0.0


def test_validation_of_power_fields():
    s = hg.presets.system("h100-sxm", 8, fitted=False)
    wl = hg.Workload(batch=1.0, tp=8.0)
    for field, value, match in (
        ("idle_power_fraction", 1.0, "idle_power_fraction = 1"),
        ("idle_power_fraction", -0.1, "idle_power_fraction"),
        ("active_power_fraction", 1.5, "active_power_fraction"),
    ):
        bad = hg.replace(s, chip=hg.replace(s.chip, **{field: value}))
        with pytest.raises(ValueError, match=match):
            hg.validate(bad, M70, wl, FP8)
    t = hg.replace(s.chip.tiers[0], channel=0)
    with pytest.raises(ValueError, match=r"tiers\[0\].channel = 0: the chip has no channels"):
        hg.validate(hg.replace(s, chip=hg.replace(s.chip, tiers=(t,))), M70, wl, FP8)
    hot = hg.replace(s.chip.tiers[0], idle_power_w=600.0)
    with pytest.raises(ValueError, match="leaves nothing to run on"):
        hg.validate(hg.replace(s, chip=hg.replace(s.chip, tiers=(hot,))), M70, wl, FP8)
    pol = hg.replace(s.chip.tiers[0], nmc_decode="bank")
    with pytest.raises(ValueError, match="nmc_decode = 'bank'"):
        hg.validate(hg.replace(s, chip=hg.replace(s.chip, tiers=(pol,))), M70, wl, FP8)


POWER_LEAVES = {
    "idle": (0.0, 0.9),
    "active": (0.0, 0.6),
    "tdp": (50.0, 2000.0),
    "tier_idle": (0.0, 50.0),
    "cxl_logit": (-8.0, 8.0),
    "nmc_flops": (1e12, 1e16),
    "batch": (1.0, 512.0),
}


def _power_objective(v):
    base = designs.with_cxl_memory(designs.base_die_compute(n_chips=8), modules=2)
    t0 = hg.replace(base.chip.tiers[0], nmc_flops=v["nmc_flops"], nmc_decode="auto", nmc_prefill="auto")
    t1 = hg.replace(base.chip.tiers[1], idle_power_w=v["tier_idle"])
    chip = hg.replace(
        base.chip,
        tiers=(t0, t1),
        idle_power_fraction=v["idle"],
        active_power_fraction=v["active"],
        tdp_w=v["tdp"],
    )
    pl = hg.Placement.from_logits(jnp.stack([0.0, v["cxl_logit"]]), [8.0, -8.0], [8.0, -8.0])
    s = hg.replace(base, chip=chip, placement=pl)
    wl = hg.Workload(batch=v["batch"], prompt_len=256.0, output_len=32.0, tp=8.0)
    r = hg.evaluate(s, M70, wl, FP8, hg.Efficiency(0.8, 0.7, 1e-6, 1e-6, 0.5, 0.2))
    return jnp.log(r.tpot_s) + jnp.log(r.energy_j_per_token) + jnp.log(r.ttft_s)


_power_vg = jax.jit(jax.value_and_grad(_power_objective))


@given(st.fixed_dictionaries({k: st.floats(lo, hi) for k, (lo, hi) in POWER_LEAVES.items()}))
@settings(max_examples=15, deadline=None)
def test_power_and_nmc_leaves_have_finite_gradients(x):
    v = {k: jnp.asarray(val, jnp.float32) for k, val in x.items()}
    value, grads = _power_vg(v)
    assert np.isfinite(float(value))
    for k, g in grads.items():
        assert np.isfinite(float(g)), k
