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
    s = hg.presets.system("h100-sxm", 1, fitted=False)
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
    s = hg.presets.system("h100-sxm", 8, fitted=False)
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


# ----------------------------------------------------------------------------- parallel tiers

import optax  # noqa: E402
from reference import dense_decode_ops, nmc_decode_step, tiered_decode_step_s  # noqa: E402


def _copy_tier_system(hw="h100-sxm", bw2=None, n_chips=1):
    s = hg.presets.system(hw, n_chips, fitted=False)
    t0 = s.chip.tiers[0]
    t1 = hg.replace(t0, bandwidth_bytes_per_s=t0.bandwidth_bytes_per_s if bw2 is None else bw2)
    return hg.replace(s, chip=hg.replace(s.chip, tiers=(t0, t1)))


def test_two_equal_tiers_split_50_50_take_half_the_time_of_one():
    m = hg.presets.model("llama-3.1-8b")
    wl = hg.Workload(batch=1.0)
    c = hg.compression("bf16")
    one = hg.decode_step(hg.presets.system("h100-sxm", 1, fitted=False), m, wl, c, SOL, 1000.0)
    half = np.array([0.5, 0.5])
    s2 = hg.replace(
        _copy_tier_system(), placement=hg.Placement(weights=half, kv_cache=half, activations=half)
    )
    two = hg.decode_step(s2, m, wl, c, SOL, 1000.0)
    assert float(two.time_s) == pytest.approx(0.5 * float(one.time_s), rel=1e-5)
    assert float(two.weights_s) == pytest.approx(0.5 * float(one.weights_s), rel=1e-5)
    # the summed (shared-channel, unlimited link) model takes as long as one tier
    shared = hg.replace(
        s2,
        chip=hg.replace(
            s2.chip,
            tiers=tuple(hg.replace(t, channel=0) for t in s2.chip.tiers),
            channels=(hg.Channel(bandwidth_bytes_per_s=float("inf")),),
        ),
    )
    summed = hg.decode_step(shared, m, wl, c, SOL, 1000.0)
    assert float(summed.time_s) == pytest.approx(float(one.time_s), rel=1e-5)


def test_tiered_decode_matches_the_numpy_reference():
    m = hg.presets.model("llama-3.1-8b")
    c = hg.compression("fp8", "fp8")
    s = _copy_tier_system(bw2=1.2e12)
    pl = hg.Placement(
        weights=np.array([0.7, 0.3]), kv_cache=np.array([0.2, 0.8]), activations=np.array([1.0, 0.0])
    )
    s = hg.replace(s, placement=pl)
    wl = hg.Workload(batch=8.0)
    ops = dense_decode_ops(
        n_layers=32, d_model=4096, n_heads=32, n_kv_heads=8, head_dim=128, d_ff=14336, vocab=128256,
        batch=8, context=3000, w_b=1.0, kv_b=1.0, a_b=1.0,
    )  # fmt: skip
    ref = tiered_decode_step_s(ops, 1978.9e12, [3.35e12, 1.2e12], pl.weights, pl.kv_cache, pl.activations)
    got = float(hg.decode_step(s, m, wl, c, SOL, 3000.0, hg.Options(roofline="hard")).time_s)
    assert got == pytest.approx(ref, rel=1e-4)  # float32 model vs float64 reference


def test_placement_optimised_from_logits_converges_to_the_bandwidth_split():
    # exact model: f1 / f2 = b1 / b2; the p-norm surrogate's stationary point is
    # (b1 / b2)^(p / (p - 1)) (memory.py docstring), which the optimiser must reach
    m = hg.presets.model("llama-3.1-8b")
    wl = hg.Workload(batch=1.0)
    c = hg.compression("bf16")
    s = _copy_tier_system(bw2=3.35e12 / 2)

    for p, tol in ((8.0, 2e-3), (64.0, 2e-3)):
        opts = hg.Options(smooth_p=p)

        def tpot(z, s=s, opts=opts):
            logits = jnp.stack([z, 0.0])
            pl = hg.Placement.from_logits(logits, logits, logits)
            return jnp.log(hg.decode_step(hg.replace(s, placement=pl), m, wl, c, SOL, 0.0, opts).time_s)

        vg = jax.jit(jax.value_and_grad(tpot))
        opt = optax.adam(0.05)
        z = jnp.asarray(0.0)
        state = opt.init(z)
        for _ in range(400):
            _, g = vg(z)
            upd, state = opt.update(g, state)
            z = optax.apply_updates(z, upd)
        f = float(jax.nn.sigmoid(z))
        target_ratio = 2.0 ** (p / (p - 1.0))
        assert f / (1 - f) == pytest.approx(target_ratio, rel=tol * 10)
        if p == 64.0:
            assert f == pytest.approx(2.0 / 3.0, rel=0.01)


def test_cxl_tier_behind_pcie_is_bound_by_the_link():
    m = hg.presets.model("llama-3.1-8b")
    wl = hg.Workload(batch=1.0)
    c = hg.compression("fp8", "fp8")
    base = hg.presets.system("h100-sxm", 1, fitted=False)
    w = float(hg.decode_step(base, m, wl, c, SOL, 0.0).weights_s) * 3.35e12  # weight bytes
    for modules, bound in ((4, 64e9), (1, 36e9)):  # 4 x 36 GB/s behind a 64 GB/s link; 1 module alone
        s = designs.with_cxl_memory(base, modules=modules)
        s = hg.replace(
            s,
            placement=hg.Placement(
                weights=np.array([0.0, 1.0]), kv_cache=np.array([1.0, 0.0]), activations=np.array([1.0, 0.0])
            ),
        )
        hg.validate(s, m, hg.Workload(batch=1.0, output_len=16.0), c)
        step = hg.decode_step(s, m, wl, c, SOL, 0.0)
        assert float(step.weights_s) == pytest.approx(w / bound, rel=1e-4)
        # link energy: every weight byte crosses PCIe at the SerDes figure (5.5 pJ/bit)
        assert float(step.energy_channel_j) == pytest.approx(w * 5.5e-12 * 8, rel=1e-3)
    # two module tiers on one channel add up (each 36 GB/s, link not binding)
    s = designs.with_cxl_memory(base, modules=1)
    cxl = s.chip.tiers[1]
    s2 = hg.replace(s, chip=hg.replace(s.chip, tiers=s.chip.tiers + (cxl,)))
    half = np.array([0.0, 0.5, 0.5])
    dram = np.array([1.0, 0.0, 0.0])
    s2 = hg.replace(s2, placement=hg.Placement(weights=half, kv_cache=dram, activations=dram))
    step = hg.decode_step(s2, m, wl, c, SOL, 0.0)
    assert float(step.weights_s) == pytest.approx(w / 36e9, rel=1e-4)


def test_hbm4_plus_hbf_parallel_interfaces_read_split_weights_in_half_the_time():
    s = designs.hbm4_hbf_accelerator(weights_on_hbf=0.5)
    # the datasheet chip (designs carry the B200 family's fitted fractions)
    s = hg.replace(s, chip=hg.replace(s.chip, bandwidth_efficiency=1.0, kernel_memory_latency_s=0.0))
    summed = hg.replace(
        s,
        chip=hg.replace(
            s.chip,
            tiers=tuple(hg.replace(t, channel=0) for t in s.chip.tiers),
            channels=(hg.Channel(bandwidth_bytes_per_s=float("inf")),),
        ),
    )
    m = hg.presets.model("llama-3.1-70b")
    wl = hg.Workload(batch=1.0, prompt_len=2048.0, output_len=256.0, tp=8.0)
    c = hg.compression("fp8", "fp8")
    par = float(hg.decode_step(s, m, wl, c, SOL).weights_s)
    tot = float(hg.decode_step(summed, m, wl, c, SOL).weights_s)
    assert par == pytest.approx(tot / 2, rel=1e-4)
    # by hand: 70B fp8 weights / 8 chips, half on each tier of 4 x 1638 GB/s
    w = float(counts.weight_bytes_resident(m, c, wl))
    assert par == pytest.approx(w / 2 / (4 * 1638e9), rel=0.02)  # embedding table is gathered, not read


# ----------------------------------------------------------------------------- near-memory compute


def _pim_system(tier):
    return hg.System(
        chip=hg.Chip(
            tiers=(tier,), peak_flops_bf16=1e15, peak_flops_fp8=2e15, peak_flops_fp4=4e15, tdp_w=0.0
        ),
        n_chips=1.0,
        network=hg.Network(link_bandwidth_bytes_per_s=1e11),
    )


def _ops_8b(batch, context, w_b, a_b=2.0, kv_b=2.0):
    return dense_decode_ops(
        n_layers=32, d_model=4096, n_heads=32, n_kv_heads=8, head_dim=128, d_ff=14336, vocab=128256,
        batch=batch, context=context, w_b=w_b, kv_b=kv_b, a_b=a_b,
    )  # fmt: skip


def test_pim_decode_by_hand_45_mb_shards():
    # 8 HBM4 stacks (13.1 TB/s, 384 GB) with bank PIM: 7.07x internal bandwidth, 4 FLOP per
    # internal byte (int4 sizing), 45 MB shards; Llama-3.1-8B q4_0 (4.5 bit), batch 1, ctx 0
    hbm = hg.presets.memory_tier("hbm4", devices=8.0)
    tier = designs.pim_tier(hbm)
    assert float(tier.nmc_shard_bytes) == pytest.approx(np.sqrt(32e6 * 64e6))
    assert float(tier.nmc_flops) == pytest.approx(4.0 * 8 * 1638e9 * np.sqrt(50))
    m = hg.presets.model("llama-3.1-8b")
    c = hg.compression("q4_0")
    bw = 8 * 1638e9
    internal = bw * np.sqrt(50)
    step = hg.decode_step(
        _pim_system(tier), m, hg.Workload(batch=1.0), c, SOL, 0.0, hg.Options(roofline="hard")
    )
    # hand: every matmul weight streams at the internal bandwidth (batch 1 is memory-bound
    # on logic sized 4 FLOP/B for 4.5-bit weights: 3.56 FLOP/B needed); the new token's K/V
    # is written internally; the embedding row is gathered by the host
    matmul = 32 * (4096 * 6144 + 4096 * 4096 + 3 * 4096 * 14336) + 128256 * 4096  # layers + LM head
    wbytes = matmul * 4.5 / 8
    kv_write = 32 * 2 * 8 * 128 * 2
    emb = 4096 * 4.5 / 8 + 4096 * 2
    hand = wbytes / internal + kv_write / internal + emb / bw
    assert float(step.time_s) == pytest.approx(hand, rel=2e-3)
    # the numpy reference, op by op
    ref = nmc_decode_step(
        _ops_8b(1, 0, 4.5 / 8), bw=bw, mult=np.sqrt(50), rate16=float(tier.nmc_flops), act_bits=16.0,
        shard=float(tier.nmc_shard_bytes), e_byte=float(hbm.energy_j_per_byte),
        e_nmc_byte=float(tier.nmc_energy_j_per_byte), e_nmc_flop=float(tier.nmc_energy_j_per_flop), cap_w=np.inf,
    )  # fmt: skip
    assert float(step.time_s) == pytest.approx(ref[0], rel=1e-4)
    # output-row split: each output crosses the interface once (no 1/shard multiplication)
    assert float(step.bytes_per_tier[0]) == pytest.approx(ref[1] + ref[2], rel=1e-4)
    assert ref[1] < 2e7  # activations + outputs, ~MB, not shards x outputs


def test_pnm_decode_by_hand_22_gb_shards_and_batch_makes_it_compute_bound():
    # PNM on 8 HBM4 stacks: 3.16x internal bandwidth, 16 FLOP per internal byte, 22.6 GB
    # shards; Llama-3.1-8B fp8 weights, bf16 activations (act 16), batch 1 and 64, ctx 0
    hbm = hg.presets.memory_tier("hbm4", devices=8.0)
    tier = designs.pnm_tier(hbm)
    assert float(tier.nmc_shard_bytes) == pytest.approx(np.sqrt(16e9 * 32e9))
    m = hg.presets.model("llama-3.1-8b")
    c = hg.compression("int8")  # weight-only int8, 16-bit activations
    s = _pim_system(tier)
    bw = 8 * 1638e9
    gain = np.sqrt(10)
    kw = dict(
        bw=bw, mult=gain, rate16=float(tier.nmc_flops), act_bits=16.0, shard=float(tier.nmc_shard_bytes),
        e_byte=float(hbm.energy_j_per_byte), e_nmc_byte=float(tier.nmc_energy_j_per_byte),
        e_nmc_flop=float(tier.nmc_energy_j_per_flop), cap_w=np.inf,
    )  # fmt: skip
    for batch in (1, 64):
        step = hg.decode_step(s, m, hg.Workload(batch=float(batch)), c, SOL, 0.0, hg.Options(roofline="hard"))
        ref = nmc_decode_step(_ops_8b(batch, 0, 1.0), **kw)
        assert float(step.time_s) == pytest.approx(ref[0], rel=1e-4)
        assert float(step.energy_compute_nmc_j) == pytest.approx(ref[3] * kw["e_nmc_flop"], rel=1e-4)
    # by hand at batch 64: MLP = 2 x 64 x 32 x 3 x 4096 x 14336 FLOP on 16 x 3.16 x 13.1 TB/s
    mlp_flops = 2 * 64 * 32 * 3 * 4096 * 14336
    assert mlp_flops / float(tier.nmc_flops) > 32 * 3 * 4096 * 14336 / (bw * gain)  # compute-bound


def test_fp8_activations_double_the_memory_side_rate_and_halve_its_energy():
    tier = designs.pnm_tier(hg.presets.memory_tier("hbm4", devices=8.0))
    m = hg.presets.model("llama-3.1-8b")
    s = _pim_system(tier)
    wl = hg.Workload(batch=256.0)  # compute-bound on the PNM logic
    e16 = hg.decode_step(s, m, wl, hg.compression("int8"), SOL, 0.0)
    e8 = hg.decode_step(s, m, wl, hg.compression("fp8", act_dtype="fp8"), SOL, 0.0)
    assert float(e8.energy_compute_nmc_j) == pytest.approx(float(e16.energy_compute_nmc_j) / 2, rel=1e-3)
    assert float(e8.time_s) < 0.6 * float(e16.time_s)


def test_k_split_only_where_a_shard_holds_less_than_one_row():
    m = hg.presets.model("llama-3.1-8b")
    c = hg.compression("int8")
    tier = designs.pim_tier(hg.presets.memory_tier("hbm4", devices=8.0))
    row = 4096.0  # d_model int8 weights
    wl = hg.Workload(batch=1.0)
    whole = hg.decode_step(_pim_system(hg.replace(tier, nmc_shard_bytes=row)), m, wl, c, SOL, 0.0)
    quarter = hg.decode_step(_pim_system(hg.replace(tier, nmc_shard_bytes=row / 4)), m, wl, c, SOL, 0.0)
    ops = _ops_8b(1, 0, 1.0)
    gemv_out = sum(o["out"] for o in ops if o["kind"] == "gemv")
    extra = float(quarter.bytes_per_tier[0] - whole.bytes_per_tier[0])
    assert extra == pytest.approx(3 * gemv_out, rel=1e-3)  # 4 partial sums instead of 1 output
    with pytest.raises(ValueError, match="smaller than one weight row"):
        hg.validate(
            _pim_system(hg.replace(tier, nmc_shard_bytes=row / 4)),
            m,
            hg.Workload(batch=1.0, output_len=8.0),
            c,
        )


def test_prefill_runs_on_the_host_and_decode_in_memory_by_default():
    m = hg.presets.model("llama-3.1-8b")
    wl = hg.Workload(batch=1.0, prompt_len=4096.0, output_len=64.0)
    c = hg.compression("q4_0")
    plain = hg.evaluate(designs.mobile_soc(), m, wl, c, SOL)
    pim = hg.evaluate(designs.mobile_soc(pim=True), m, wl, c, SOL)
    assert float(pim.ttft_s) == pytest.approx(float(plain.ttft_s), rel=1e-6)
    assert float(pim.tpot_s) < float(plain.tpot_s) / 5
    assert float(jnp.max(pim.prefill.on_memory_fraction)) == 0.0
    assert float(pim.decode.on_memory_fraction[0]) == pytest.approx(1.0)
    # forcing prefill onto the bank logic is far slower (weak logic, compute-bound GEMMs);
    # "auto" picks the faster side in each phase
    s = designs.mobile_soc(pim=True)
    s = hg.replace(
        s, chip=hg.replace(s.chip, peak_flops_bf16=4e12, peak_flops_fp8=8e12, peak_flops_fp4=16e12)
    )
    results = {}
    for pre, dec in (("memory", "memory"), ("host", "memory"), ("auto", "auto")):
        tier = hg.replace(s.chip.tiers[0], nmc_prefill=pre, nmc_decode=dec)
        results[pre] = hg.evaluate(hg.replace(s, chip=hg.replace(s.chip, tiers=(tier,))), m, wl, c, SOL)
    assert float(results["memory"].ttft_s) > 2 * float(results["host"].ttft_s)
    assert float(results["auto"].ttft_s) <= float(results["host"].ttft_s) * (1 + 1e-6)
    assert float(results["auto"].tpot_s) <= float(results["host"].tpot_s) * (1 + 1e-6)


def test_data_wired_tiers():
    hbf = hg.presets.memory_tier("hbf", devices=4.0)
    assert float(hbf.prefetch_bytes) == pytest.approx(3e-6 * 4 * 1638e9)  # latency x bandwidth
    assert float(hbf.write_endurance_cycles) == hg.presets.FLASH_ENDURANCE_CYCLES
    assert float(hbf.idle_power_w) == pytest.approx(4 * 80 * hg.presets.MEMORY_IDLE_SHARE)
    cxl = hg.presets.memory_tier("cxl-ddr5")
    assert float(cxl.read_latency_s) == pytest.approx(32e-9 + 210e-9)
    assert float(cxl.energy_j_per_byte) == pytest.approx(29.41e-12 * 8)
    sram = hg.presets.sram_tier("gaudi3")
    assert float(sram.bandwidth_bytes_per_s) == 12.8e12 and float(sram.capacity_bytes) == 96e6
    with pytest.raises(ValueError, match="no per-device SRAM bandwidth"):
        hg.presets.memory_tier("sram")
    # queue sized for the rated point: a longer latency without a deeper queue loses bandwidth
    slow = jax.tree_util.tree_map(lambda x: jnp.asarray([x]), hg.replace(hbf, read_latency_s=6e-6))
    assert float(memory.latency_efficiency(slow)[0]) == pytest.approx(0.5)


def test_kv_on_hbf_reports_wear_out_from_the_data_default():
    s = designs.hbm4_hbf_accelerator()
    m = hg.presets.model("llama-3.1-70b")
    wl = hg.Workload(batch=32.0, prompt_len=1024.0, output_len=256.0, tp=8.0)
    c = hg.compression("fp8", "fp8")
    bad = hg.replace(s, placement=hg.replace(s.placement, kv_cache=np.array([0.0, 1.0])))
    r = hg.evaluate(bad, m, wl, c, SOL)
    years = float(r.tier_lifetime_years[1])
    assert np.isfinite(years) and years < 5.0  # flash wears out within a server life
