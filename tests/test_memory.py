"""Memory tiers: granularity, Little's law, placement, endurance, near-memory compute."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import hwgrad as hg
from hwgrad import counts, memory
from hwgrad.presets import designs

SOL = hg.Efficiency.speed_of_light()


def test_page_granular_reads_lose_bandwidth_exactly():
    assert float(memory.granularity_efficiency(1024.0, 4096.0)) == 0.25
    assert float(memory.granularity_efficiency(4096.0, 4096.0)) == 1.0
    assert float(memory.granularity_efficiency(6144.0, 4096.0)) == 0.75  # 2 pages for 1.5 pages of data
    assert float(memory.granularity_efficiency(8192.0, 32.0)) == 1.0


def test_weight_reads_from_a_flash_page_tier_slow_down_as_modelled():
    # Llama-3.1-8B rows are 4096 x 1 byte (fp8): exactly one 4 KiB page; at 4 bits a row is
    # 2 KiB (+ scales) and every page read carries half waste
    m = hg.presets.model("llama-3.1-8b")
    s = hg.presets.system("h100-sxm", 1)
    page = hg.replace(s.chip.tiers[0], access_granularity_bytes=4096.0)
    s_page = hg.replace(s, chip=hg.replace(s.chip, tiers=(page,)))
    wl = hg.Workload(batch=1.0)
    for dtype, waste in (("fp8", 1.0), ("mxfp4", 4096 / (4096 * 4.25 / 8))):
        c = hg.compression(dtype)
        fine = hg.decode_step(s, m, wl, c, SOL, 0.0).weights_s
        paged = hg.decode_step(s_page, m, wl, c, SOL, 0.0).weights_s
        assert float(paged) / float(fine) == pytest.approx(waste, rel=1e-5)


def test_littles_law_caps_bandwidth():
    hbf = hg.presets.memory_tier("hbf")
    need = float(hbf.read_latency_s * hbf.bandwidth_bytes_per_s)
    tiers = jax.tree_util.tree_map(lambda x: jnp.asarray([x]), hg.replace(hbf, prefetch_bytes=need / 2))
    assert float(memory.latency_efficiency(tiers)[0]) == pytest.approx(0.5)
    tiers = jax.tree_util.tree_map(lambda x: jnp.asarray([x]), hg.replace(hbf, prefetch_bytes=4 * need))
    assert float(memory.latency_efficiency(tiers)[0]) == 1.0


def _two_tier(fast_bw=3.35e12, slow_bw=1.0e12):
    s = hg.presets.system("h100-sxm", 8)
    fast = hg.replace(s.chip.tiers[0], bandwidth_bytes_per_s=fast_bw)
    slow = hg.replace(s.chip.tiers[0], bandwidth_bytes_per_s=slow_bw, capacity_bytes=512e9)
    return hg.replace(s, chip=hg.replace(s.chip, tiers=(fast, slow)))


def test_placement_gradient_moves_weights_to_the_faster_tier():
    s = _two_tier()
    m = hg.presets.model("llama-3.1-70b")
    wl = hg.Workload(batch=4.0, prompt_len=512.0, output_len=64.0, tp=8.0)

    def tpot(logit_fast):
        pl = hg.Placement.from_logits(jnp.stack([logit_fast, 0.0]), [5.0, -5.0], [5.0, -5.0])
        return hg.evaluate(hg.replace(s, placement=pl), m, wl, hg.compression("fp8"), SOL).tpot_s

    g = jax.grad(tpot)(0.0)
    assert float(g) < 0  # more weight in the fast tier -> lower TPOT
    # and the capacity margin reports the split
    pl = hg.Placement.from_logits([0.0, 0.0], [10.0, -10.0], [10.0, -10.0])
    r = hg.evaluate(hg.replace(s, placement=pl), m, wl, hg.compression("fp8"), SOL)
    w_bytes = float(counts.weight_bytes_resident(m, hg.compression("fp8"), wl))
    assert float(r.capacity_used_bytes[1]) == pytest.approx(w_bytes / 2, rel=1e-3)


def test_kv_on_flash_is_penalised_and_wears_it_out():
    s = designs.hbm4_hbf_accelerator()
    m = hg.presets.model("llama-3.1-70b")
    wl = hg.Workload(batch=32.0, prompt_len=1024.0, output_len=256.0, tp=8.0)
    c = hg.compression("fp8", "fp8")
    good = hg.evaluate(s, m, wl, c, SOL)
    assert float(good.kv_on_low_endurance) == 0.0
    cycles = 3000.0
    hbf = hg.replace(s.chip.tiers[1], write_endurance_cycles=cycles)
    bad_pl = hg.replace(s.placement, kv_cache=np.array([0.0, 1.0]))
    bad = hg.replace(s, chip=hg.replace(s.chip, tiers=(s.chip.tiers[0], hbf)), placement=bad_pl)
    with pytest.raises(ValueError, match="low write endurance"):
        hg.validate(bad, m, wl, c)
    r = hg.evaluate(bad, m, wl, c, SOL)
    assert float(r.kv_on_low_endurance) == 1.0
    per_step = 32 * 80 * 2 * 8 * 128 * 1 / 8  # batch x layers x K,V x heads x dim x 1 byte / tp
    years = cycles * float(hbf.capacity_bytes) / (per_step / float(r.tpot_s)) / (365.25 * 86400)
    assert float(r.tier_lifetime_years[1]) == pytest.approx(years, rel=1e-3)
    assert np.isinf(float(r.tier_lifetime_years[0]))


def test_pim_shard_count_for_a_70b_model_by_hand():
    tier = designs.pim_tier(hg.MemoryTier(capacity_bytes=96e9, bandwidth_bytes_per_s=1e12))
    s = hg.System(
        chip=hg.Chip(tiers=(tier,), peak_flops_bf16=1e15, peak_flops_fp8=2e15, peak_flops_fp4=4e15),
        n_chips=1.0,
        network=hg.Network(link_bandwidth_bytes_per_s=1e11),
    )
    m = hg.presets.model("llama-3.1-70b")
    wl = hg.Workload(batch=1.0, prompt_len=128.0, output_len=16.0)
    c = hg.compression("int8")
    shards = float(memory.shard_counts(s, m, wl, c)[0])
    weights = 70.554e9  # params x 1 byte
    kv = 80 * 2 * 8 * 128 * 2 * (128 + 16)  # bf16 KV for 144 tokens
    assert shards == pytest.approx((weights + kv) / (np.sqrt(32e6 * 64e6)), rel=2e-3)
    assert 1500 < shards < 1600


def test_thermal_cap_binds_at_high_batch_not_at_batch_one():
    m = hg.presets.model("llama-3.1-8b")
    c = hg.compression("fp8", "fp8")
    capped = designs.base_die_compute(n_chips=1)
    uncapped = hg.replace(
        capped,
        chip=hg.replace(capped.chip, tiers=(hg.replace(capped.chip.tiers[0], nmc_power_cap_w=float("inf")),)),
    )
    ratio = {}
    for batch in (1.0, 256.0):
        wl = hg.Workload(batch=batch)
        step = hg.decode_step(capped, m, wl, c, SOL, 1000.0)
        t_free = float(hg.decode_step(uncapped, m, wl, c, SOL, 1000.0).time_s)
        ratio[batch] = float(step.time_s) / t_free
    assert ratio[1.0] == pytest.approx(1.0, abs=1e-6)
    assert ratio[256.0] > 1.3
    # the step takes at least the stack logic's energy / its thermal budget
    tier = capped.chip.tiers[0]
    internal = float(step.bytes_per_tier[0]) - 0.0  # interface bytes are tiny next to internal
    e_stack = float(step.energy_compute_nmc_j) + internal * float(tier.nmc_energy_j_per_byte)
    assert float(step.time_s) >= e_stack / float(tier.nmc_power_cap_w) * 0.98


def test_near_memory_compute_saves_energy_and_host_link():
    m = hg.presets.model("llama-3.1-8b")
    wl = hg.Workload(batch=1.0, prompt_len=256.0, output_len=64.0)
    c = hg.compression("int4")
    plain = hg.evaluate(designs.mobile_soc(), m, wl, c, SOL)
    pim = hg.evaluate(designs.mobile_soc(pim=True), m, wl, c, SOL)
    assert float(pim.energy_j_per_token) < float(plain.energy_j_per_token) / 2
    assert float(pim.tpot_s) < float(plain.tpot_s)


NEW_LEAVES = {
    "prefetch": (1e3, 1e9),
    "granularity": (1.0, 65536.0),
    "latency": (1e-9, 1e-4),
    "nmc_mult": (0.5, 16.0),
    "shard": (1e6, 1e11),
    "cap": (1.0, 1e4),
    "logit": (-10.0, 10.0),
}


@given(st.fixed_dictionaries({k: st.floats(lo, hi) for k, (lo, hi) in NEW_LEAVES.items()}))
@settings(max_examples=20, deadline=None)
def test_new_leaves_have_finite_gradients(x):
    v = {k: jnp.asarray(val, jnp.float32) for k, val in x.items()}
    _, grads = _vg(v)
    for k, g in grads.items():
        assert np.isfinite(float(g)), k


def _objective(v):
    s = designs.base_die_compute()
    s = _with_hbf(s, v)
    m = _MODEL
    wl = hg.Workload(batch=8.0, prompt_len=256.0, output_len=32.0, tp=8.0)
    r = hg.evaluate(s, m, wl, hg.compression("fp8", "fp8"), hg.Efficiency(0.8, 0.7, 1e-6, 1e-6, 0.5, 0.2))
    return jnp.log(r.tpot_s) + jnp.log(r.energy_j_per_token) + jnp.log(r.ttft_s)


def _with_hbf(s, v):
    hbm = hg.replace(
        s.chip.tiers[0],
        nmc_bandwidth_multiplier=v["nmc_mult"],
        nmc_shard_bytes=v["shard"],
        nmc_power_cap_w=v["cap"],
    )
    hbf = hg.replace(
        hg.presets.memory_tier("hbf"),
        prefetch_bytes=v["prefetch"],
        access_granularity_bytes=v["granularity"],
        read_latency_s=v["latency"],
    )
    pl = hg.Placement.from_logits(jnp.stack([v["logit"], 0.0]), [8.0, -8.0], [8.0, -8.0])
    return hg.replace(s, chip=hg.replace(s.chip, tiers=(hbm, hbf)), placement=pl)


_MODEL = hg.presets.model("mixtral-8x7b")
_vg = jax.jit(jax.value_and_grad(_objective))
