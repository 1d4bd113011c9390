"""Serving modes of :func:`hwgrad.cost.serve`: static waves, continuous batching at a fixed
concurrency, and the decode pool of a disaggregated deployment, against hand arithmetic."""

import jax
import numpy as np
import pytest

import hwgrad as hg
from hwgrad import cost

IDEAL = hg.Stack.ideal()
HARD = hg.Options(roofline="hard")


def _setup(hw="h100-sxm", n=1, model="llama-3-8b"):
    return hg.presets.system(hw, n, fitted=False), hg.presets.model(model), hg.compression("bf16", "bf16")


def test_continuous_step_is_a_decode_step_plus_its_share_of_chunk_steps():
    s, m, c = _setup()
    wl = hg.Workload(batch=64.0, prompt_len=1000.0, output_len=500.0, batching="continuous")
    r = hg.evaluate(s, m, wl, c, IDEAL, options=HARD)
    # 64 / 500 requests arrive per step with 1000 prompt tokens each: q = 128 tokens per step,
    # prefilled one whole prompt per chunk step (1000 <= 8192): a request sees the other 63
    # requests' chunk steps, 63 / 500 per step (its own prompt is in its TTFT)
    dec = cost.forward_pass(s, m, wl, c, IDEAL, 1.0, 1250.0, HARD, steady_state=True)
    one = hg.replace(wl, batch=1.0)
    chunk = cost.forward_pass(s, m, one, c, IDEAL, 1000.0, 0.0, HARD, steady_state=True)
    step = float(dec.time_s) + 0.126 * float(chunk.time_s)
    assert float(r.tpot_s) == pytest.approx(step, rel=1e-6)
    pre = cost.forward_pass(s, m, one, c, IDEAL, 1000.0, 0.0, HARD)
    assert float(r.ttft_s) == pytest.approx(float(pre.time_s) + step, rel=1e-6)
    e2e = float(r.ttft_s) + 500.0 * float(r.tpot_s)
    assert float(r.e2e_latency_s) == pytest.approx(e2e, rel=1e-6)
    # Little's law: C requests in flight, each lasting e2e, each producing O tokens
    assert float(r.tokens_per_s) == pytest.approx(64 * 500 / e2e, rel=1e-6)
    energy = (float(dec.energy_j) + 0.128 * float(chunk.energy_j)) / 64
    assert float(r.energy_j_per_token) == pytest.approx(energy, rel=1e-6)


@pytest.mark.parametrize(
    ("batch", "prompt", "budget", "chunk_seqs"),
    [
        (256.0, 1000.0, 8192.0, 1.024),  # q = 1024 > I: the prompts that arrived share one chunk step
        (8.0, 20000.0, 8192.0, 8192.0 / 20000.0),  # I > S: full chunks of a longer prompt
        (2048.0, 1000.0, 2048.0, 2.048),  # q > S: every chunk step is a full budget
    ],
)
def test_continuous_chunk_steps_by_hand(batch, prompt, budget, chunk_seqs):
    s, m, c = _setup()
    stack = hg.replace(IDEAL, prefill_chunk_tokens=budget)
    wl = hg.Workload(batch=batch, prompt_len=prompt, output_len=250.0, batching="continuous")
    r = hg.evaluate(s, m, wl, c, stack, options=HARD)
    q = batch * prompt / 250.0
    share = q * (batch - 1.0) / batch / (chunk_seqs * prompt)  # the others' chunk steps per decode step
    dec = cost.forward_pass(s, m, wl, c, stack, 1.0, prompt + 125.0, HARD, steady_state=True)
    chunk = cost.forward_pass(s, m, hg.replace(wl, batch=chunk_seqs), c, stack, prompt, 0.0, HARD, steady_state=True)
    assert float(r.tpot_s) == pytest.approx(float(dec.time_s) + share * float(chunk.time_s), rel=1e-6)


def test_continuous_decode_tokens_read_only_their_experts_and_keep_absorbed_mla():
    # the prompts of arriving requests do not ride in every step: an MoE decode step at
    # concurrency 4 streams the experts of 4 tokens, and MLA decode keeps the absorbed form
    for name, hw, tp in (("gpt-oss-120b", "h100-sxm", 2), ("deepseek-v3", "mi300x", 8)):
        s = hg.presets.system(hw, tp, fitted=False)
        m = hg.presets.model(name)
        c = hg.compression("fp8", "bf16")
        wl = hg.Workload(batch=4.0, prompt_len=8192.0, output_len=1024.0, tp=float(tp), batching="continuous")
        r = hg.evaluate(s, m, wl, c, IDEAL, options=HARD)
        dec = cost.forward_pass(s, m, wl, c, IDEAL, 1.0, 8192.0 + 512.0, HARD, steady_state=True)
        share = 3.0 * 8192.0 / 1024.0 / 8192.0  # the other 3 requests' prompts
        chunk = cost.forward_pass(s, m, hg.replace(wl, batch=1.0), c, IDEAL, 8192.0, 0.0, HARD, steady_state=True)
        assert float(r.decode.weights_s) == pytest.approx(
            float(dec.weights_s) + share * float(chunk.weights_s), rel=1e-6
        )
        # the step with the prompts spread evenly (4 x 9 tokens each) reads many more experts
        spread = cost.forward_pass(s, m, wl, c, IDEAL, 9.0, 8192.0 + 512.0, HARD, steady_state=True)
        assert float(r.decode.weights_s) < 0.8 * float(spread.weights_s)


def test_continuous_tends_to_static_decode_as_prompts_vanish():
    s, m, c = _setup()
    static = hg.Workload(batch=32.0, prompt_len=0.0, output_len=2000.0)
    cont = hg.replace(static, batching="continuous")
    t_static = float(hg.evaluate(s, m, static, c, IDEAL).tpot_s)
    t_cont = float(hg.evaluate(s, m, cont, c, IDEAL).tpot_s)
    # mean context O/2 carries the mean KV traffic of a static decode from 0 to O
    assert t_cont == pytest.approx(t_static, rel=2e-3)


def test_prefill_work_slows_continuous_decode():
    s, m, c = _setup()
    base = hg.Workload(batch=64.0, prompt_len=8000.0, output_len=1000.0, batching="continuous")
    short = hg.replace(base, prompt_len=1000.0)
    assert float(hg.evaluate(s, m, base, c, IDEAL).tpot_s) > 1.5 * float(hg.evaluate(s, m, short, c, IDEAL).tpot_s)


def test_disaggregated_decode_pool_by_hand():
    s, m, c = _setup("h100-sxm", 8, "llama-3-70b")
    wl = hg.Workload(batch=128.0, prompt_len=4096.0, output_len=1024.0, tp=8.0, batching="disaggregated")
    r = hg.evaluate(s, m, wl, c, IDEAL, options=HARD)
    step = cost.forward_pass(s, m, wl, c, IDEAL, 1.0, 4096.0 + 512.0, HARD, steady_state=True)
    assert float(r.tpot_s) == pytest.approx(float(step.time_s), rel=1e-6)
    # the KV cache of one request crosses the network once: 4096 tokens x 80 layers x 2 x 8 heads x 128 x 2 B,
    # split over 8 chips (one KV head each)
    kv_per_chip = 4096 * 80 * 2 * 8 * 128 * 2 / 8
    pre = cost.forward_pass(s, m, hg.replace(wl, batch=1.0), c, IDEAL, 4096.0, 0.0, HARD)
    transfer = float(hg.network.p2p_s(s.network, kv_per_chip))
    assert float(r.ttft_s) == pytest.approx(float(pre.time_s) + transfer, rel=1e-5)
    assert float(r.tokens_per_s) == pytest.approx(128 / float(step.time_s), rel=1e-6)


def test_static_waves_when_the_kv_cache_does_not_fit():
    s, m, c = _setup("a100-40gb-sxm", 1, "llama-2-7b")
    wl = hg.Workload(batch=64.0, prompt_len=1024.0, output_len=1024.0)
    waves = float(cost.static_waves(s, m, wl, c))
    weights = np.asarray(cost.capacity_used_bytes(s, m, hg.replace(wl, batch=0.0), c))[0]
    # by hand: the engine's workspace of 8192 tokens x (residual + normalised input 2 x 4096
    # + gate/up 2 x 11008) x 2 B, and 2048 cached tokens x 32 layers x (K, V) x 32 heads x 128 x 2 B
    workspace = 8192 * (2 * 4096 + 2 * 11008) * 2
    kv_seq = 2048 * 32 * 2 * 32 * 128 * 2
    n_fit = np.floor((float(s.chip.tiers[0].capacity_bytes) - weights - workspace) / kv_seq)
    assert 1 <= n_fit < 64 and waves == np.ceil(64 / n_fit)
    # the stack's memory share and token budget move the count
    tight = hg.Stack(memory_fraction=0.9, prefill_chunk_tokens=131072.0)
    n_tight = np.floor((0.9 * float(s.chip.tiers[0].capacity_bytes) - weights - 16 * workspace) / kv_seq)
    assert float(cost.static_waves(s, m, wl, c, tight)) == np.ceil(64 / n_tight) > waves
    r = hg.evaluate(s, m, wl, c, IDEAL, options=HARD)
    one_wave = hg.evaluate(s, m, hg.replace(wl, batch=64.0 / waves), c, IDEAL, options=HARD)
    assert float(r.waves) == waves
    assert float(r.e2e_latency_s) == pytest.approx(waves * float(one_wave.e2e_latency_s), rel=1e-6)
    assert float(r.tpot_s) == pytest.approx(float(one_wave.tpot_s), rel=1e-6)
    # a batch that fits runs in one wave
    assert float(cost.static_waves(s, m, hg.replace(wl, batch=4.0), c)) == 1.0


@pytest.mark.parametrize("prompt, output", [(128, 2048), (1024, 1024), (2048, 128), (512, 4096)])
def test_on_demand_waves_follow_a_step_by_step_paged_scheduler(prompt, output):
    from scheduler_reference import paged_static_batch

    fit = 6
    kv_tokens = fit * (prompt + output) + (prompt + output) // 3  # room for 6 whole requests
    errors = []
    for n in (8, 9, 12, 18, 30, 48):  # 1.33 to 8 times what fits
        steps, _, _ = paged_static_batch(n, prompt, output, kv_tokens)
        waves = float(cost.effective_waves(float(n), float(fit), float(prompt), float(output), 1.0))
        assert 1.0 < waves <= np.ceil(n / fit)  # never worse than reserving whole requests
        errors.append(waves / (steps / output) - 1.0)
        assert float(cost.effective_waves(float(n), float(fit), float(prompt), float(output), 0.0)) == np.ceil(n / fit)
    assert max(abs(e) for e in errors) < 0.16, errors
    assert np.median(np.abs(errors)) < 0.05, errors


def test_an_on_demand_scheduler_runs_an_oversized_static_batch_sooner():
    s, m, c = _setup("a100-40gb-sxm", 1, "llama-2-7b")
    wl = hg.Workload(batch=64.0, prompt_len=1024.0, output_len=1024.0)
    reserve = float(cost.static_waves(s, m, wl, c))
    paged = hg.Stack(kv_on_demand=1.0)
    on_demand = float(cost.static_waves(s, m, wl, c, paged))
    n_fit = np.floor(float(cost.sequences_per_tier(s, m, wl, c, 1.0, 8192.0, 2048.0)[0]))
    assert n_fit == 24 and reserve == 3.0  # 24 of 64 fit (hand count above)
    # 64 / 24 - 1 = 1.67 waves' worth of requests flow through the full pool at 4 / 3 the
    # concurrency of whole ones (mean context 1024 + 512 of 2048): 1 + 1.67 x 0.75 = 2.25
    # waves of steps (the tail term, 1 - (2048 x 24 / 64 - 1024) / 1024 = 1, is not larger)
    assert on_demand == pytest.approx(1 + (64 / 24 - 1) * 0.75, rel=1e-6)
    t_reserve = hg.evaluate(s, m, wl, c, IDEAL, options=HARD)
    t_paged = hg.evaluate(s, m, wl, c, paged, options=HARD)
    assert float(t_paged.waves) == pytest.approx(on_demand) and float(t_paged.e2e_latency_s) < float(t_reserve.e2e_latency_s)
    # the 40 requests beyond the first 24 grow by 40 x 1024 tokens while the pool is full:
    # that much context is evicted and prefilled again, as one-sequence prefills of the mean
    # context 1024 + 512
    assert float(cost.recomputed_tokens(64.0, 24.0, 1024.0, 1.0)) == 40 * 1024
    assert float(cost.recomputed_tokens(64.0, 24.0, 1024.0, 0.0)) == 0.0
    wave = hg.replace(wl, batch=64.0 / on_demand)
    pre = cost.forward_pass(s, m, wave, c, paged, 1024.0, 0.0, HARD)
    dec = cost.decode_total(s, m, wave, c, paged, HARD)
    redo = cost.forward_pass(s, m, hg.replace(wl, batch=1.0), c, paged, 1536.0, 0.0, HARD)
    e2e = on_demand * (float(pre.time_s) + float(dec.time_s)) + 40 * 1024 / 1536 * float(redo.time_s)
    assert float(t_paged.e2e_latency_s) == pytest.approx(e2e, rel=1e-5)


def test_serving_modes_have_finite_gradients():
    s, m, c = _setup()

    def f(bw, mode):
        tier = hg.replace(s.chip.tiers[0], bandwidth_bytes_per_s=bw)
        sys2 = hg.replace(s, chip=hg.replace(s.chip, tiers=(tier,)))
        wl = hg.Workload(batch=64.0, prompt_len=2000.0, output_len=500.0, batching=mode)
        r = hg.evaluate(sys2, m, wl, c)
        return r.tpot_s + r.ttft_s + r.energy_j_per_token

    for mode in ("static", "continuous", "disaggregated"):
        g = jax.grad(f)(3.35e12, mode)
        assert np.isfinite(g) and g < 0, mode


def test_unknown_batching_mode_is_a_clear_error():
    s, m, c = _setup()
    with pytest.raises(ValueError, match=r"workload.batching = 'streaming'.*static, continuous, disaggregated"):
        hg.validate(s, m, hg.Workload(batching="streaming"), c)
