"""The serving model of :mod:`hwgrad.service`: closed-form queueing limits, a numpy
discrete-event simulation of a continuous-batching engine, gradients and bad inputs.

The simulation and the analytic model share one step-time function (a roofline of a few
affine terms, numpy here and jax there), so what is compared is the queueing and batching
approximation, not the cost model."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hwgrad import service as sv

jax.config.update("jax_enable_x64", False)

# a toy replica: 8 ms of weight reads + 40 us of KV per sequence, or 12 us of compute per
# token, whichever is larger, plus 1 ms of engine overhead per step
A_S, B_S, C_S, D_S = 8e-3, 40e-6, 12e-6, 1e-3


def toy_step_np(seqs, tokens):
    return np.maximum(A_S + B_S * seqs, C_S * tokens) + D_S


def toy_step(seqs, tokens):
    return jnp.maximum(A_S + B_S * seqs, C_S * tokens) + D_S, None


def simulate(rate, i_len, o_len, budget, n_requests=4000, input_cv=0.0, seed=0, max_seqs=10_000):
    """Discrete-event simulation of continuous batching with chunked prefill.

    Poisson arrivals; each step decodes one token for every running sequence and fills the
    rest of the token budget with prompt chunks, FCFS; a prompt's last chunk yields its first
    token at the end of that step; the engine idles only when nothing is queued or running.
    Returns mean and p90 TTFT and TPOT and the throughput (requests/s) after a warm-up.
    """
    rng = np.random.default_rng(seed)
    arrivals = np.cumsum(rng.exponential(1.0 / rate, n_requests))
    if input_cv > 0:
        shape = 1.0 / input_cv**2
        lengths = np.maximum(np.round(rng.gamma(shape, i_len / shape, n_requests)), 1.0)
    else:
        lengths = np.full(n_requests, float(i_len))
    ttft = np.full(n_requests, np.nan)
    first = np.zeros(n_requests)
    done = np.full(n_requests, np.nan)
    t = 0.0
    nxt = 0  # next arrival to admit
    waiting = []  # [request, prompt tokens left]
    running = {}  # request -> tokens left to decode
    while nxt < n_requests or waiting or running:
        if not waiting and not running:
            t = max(t, arrivals[nxt])
        while nxt < n_requests and arrivals[nxt] <= t:
            waiting.append([nxt, lengths[nxt]])
            nxt += 1
        decoding = list(running)[:max_seqs]
        room = budget - len(decoding)
        chunk_tokens, finishing, in_step = 0.0, [], 0
        for item in waiting:
            if room <= 0:
                break
            take = min(item[1], room)
            item[1] -= take
            room -= take
            chunk_tokens += take
            in_step += 1
            if item[1] <= 0:
                finishing.append(item[0])
        t += toy_step_np(len(decoding) + in_step, len(decoding) + chunk_tokens)
        for r in decoding:
            running[r] -= 1
            if running[r] <= 0:
                del running[r]
                done[r] = t
        if finishing:
            waiting = [w for w in waiting if w[1] > 0]
            for r in finishing:
                ttft[r] = t - arrivals[r]
                first[r] = t
                if o_len > 1:
                    running[r] = o_len - 1
                else:
                    done[r] = t
    keep = slice(n_requests // 5, n_requests)
    tp = (done - first)[keep] / (o_len - 1)
    tf = ttft[keep]
    span = done[keep].max() - arrivals[keep].min()
    return {
        "ttft_mean": tf.mean(),
        "ttft_p90": np.quantile(tf, 0.9),
        "tpot_mean": tp.mean(),
        "tpot_p90": np.quantile(tp, 0.9),
        "throughput": len(tf) / span,
    }


@jax.jit
def _analytic(rate, i_len, o_len, budget, input_cv):
    service = sv.Service(arrival_rate_rps=rate, input_tokens=i_len, output_tokens=o_len, input_cv=input_cv)
    engine = sv.Engine(max_batched_tokens=budget, max_num_seqs=10_000.0)
    ss = sv.steady_state(toy_step, service, engine, rate, 1e6)
    return {
        "ttft_mean": ss.ttft_mean_s,
        "ttft_p90": sv.gamma_quantile(ss.ttft_mean_s, ss.ttft_var_s2, 0.9),
        "tpot_mean": ss.tpot_mean_s,
        "tpot_p90": sv.gamma_quantile(ss.tpot_mean_s, ss.tpot_var_s2, 0.9),
        "throughput": ss.served_rps,
        "capacity": ss.capacity_rps,
        "utilisation": jnp.max(ss.utilisations),
        "goodput_like": ss.served_rps * sv.gamma_cdf(0.03, ss.ttft_mean_s, ss.ttft_var_s2),
    }


def analytic(rate, i_len, o_len, budget, input_cv=0.0):
    out = _analytic(*(jnp.float32(x) for x in (rate, i_len, o_len, budget, input_cv)))
    return {key: float(v) for key, v in out.items()}


# (rate req/s, input, output, token budget, input cv): light to heavy (utilisation of the
# busiest resource 0.01-0.68), short and chunked prompts, fixed and variable lengths
POINTS = [
    (8.0, 1024, 128, 2048, 0.0),
    (50.0, 1024, 128, 2048, 0.0),
    (12.0, 4096, 256, 2048, 0.0),
    (10.0, 1024, 128, 2048, 1.0),
]
SLOW_POINTS = [
    (2.0, 512, 128, 2048, 0.0),
    (14.0, 1024, 128, 2048, 0.0),
    (35.0, 1024, 128, 2048, 0.0),
    (4.0, 4096, 256, 2048, 0.0),
]


def _compare(point):
    rate, i_len, o_len, budget, cv = point
    model = analytic(rate, i_len, o_len, budget, cv)
    assert model["utilisation"] <= 0.8, model
    sim = simulate(rate, i_len, o_len, budget, n_requests=3000, input_cv=cv)
    # means and throughput within 15 % (the target); p90s within 20 % (the gamma
    # tail of a lumpy mixture: worst seen +18 % on TTFT p90 at rate 8)
    for key, tol in (
        ("ttft_mean", 0.15),
        ("tpot_mean", 0.15),
        ("throughput", 0.15),
        ("ttft_p90", 0.2),
        ("tpot_p90", 0.2),
    ):
        assert model[key] == pytest.approx(sim[key], rel=tol), (key, model, sim)


@pytest.mark.parametrize("point", POINTS, ids=[f"rate{p[0]:g}-in{p[1]}-cv{p[4]:g}" for p in POINTS])
def test_steady_state_matches_discrete_event_simulation(point):
    _compare(point)


@pytest.mark.slow
@pytest.mark.parametrize("point", SLOW_POINTS, ids=[f"rate{p[0]:g}-in{p[1]}" for p in SLOW_POINTS])
def test_steady_state_matches_simulation_more_points(point):
    _compare(point)


# ----------------------------------------------------------------------------- closed forms


def test_pollaczek_khinchine_limits():
    lam, s = 8.0, 0.1  # rho = 0.8
    # M/M/1: W = rho S / (1 - rho) = 0.4 s; M/D/1 half of it
    assert float(sv.pk_wait_s(lam, s, 1.0)) == pytest.approx(0.4, rel=2e-3)
    assert float(sv.pk_wait_s(lam, s, 0.0)) == pytest.approx(0.2, rel=2e-3)
    # M/G/c reduces to Pollaczek-Khinchine at c = 1
    assert float(sv.mgc_wait_s(lam, s, 1.0, 1.0)) == pytest.approx(0.4, rel=2e-3)


def _erlang_c_wait(lam, s, c):
    a = lam * s
    rho = a / c
    top = a**c / math.factorial(c) / (1 - rho)
    p_wait = top / (sum(a**j / math.factorial(j) for j in range(c)) + top)
    return p_wait * s / (c * (1 - rho))


@pytest.mark.parametrize("c,rho", [(2, 0.7), (4, 0.8), (8, 0.85)])
def test_mgc_approximation_against_erlang_c(c, rho):
    s = 0.05
    lam = rho * c / s
    assert float(sv.mgc_wait_s(lam, s, float(c), 1.0)) == pytest.approx(_erlang_c_wait(lam, s, c), rel=0.12)


def test_gamma_quantile_of_an_exponential():
    # exponential = gamma of shape 1: p90 = ln 10 x mean; Wilson-Hilferty within 1.5 %
    assert float(sv.gamma_quantile(1.0, 1.0, 0.9)) == pytest.approx(math.log(10.0), rel=0.015)
    assert float(sv.gamma_cdf(math.log(10.0), 1.0, 1.0)) == pytest.approx(0.9, abs=0.01)


def test_light_load_limit_is_one_request_alone():
    # at a vanishing rate a request waits for nothing: TTFT = its prefill step, TPOT = a
    # decode step of one sequence
    m = analytic(1e-3, 1024, 128, 2048)
    assert m["tpot_mean"] == pytest.approx(float(toy_step_np(1.0, 1.0)), rel=1e-3)
    assert m["ttft_mean"] == pytest.approx(float(toy_step_np(1.0, 1024.0)), rel=1e-2)


def test_over_capacity_is_a_margin_not_a_nan():
    m = analytic(500.0, 1024, 128, 2048)
    assert all(math.isfinite(v) for v in m.values()), m
    assert m["capacity"] < 500.0 and m["throughput"] <= m["capacity"]


# ----------------------------------------------------------------------------- gradients


@pytest.mark.slow  # the gradient's compile takes ~20 s on a loaded 2-core machine
def test_gradients_are_finite_and_match_finite_differences():
    # the token budget enters through a straight-through ceiling (chunks per prompt), whose
    # gradient is by design not its finite difference; the rate and the length CV are smooth
    def f(rate, cv):
        out = _analytic(rate, jnp.float32(1024.0), jnp.float32(128.0), jnp.float32(3000.0), cv)
        return out["ttft_p90"] + 10.0 * out["tpot_p90"]

    x = (jnp.float32(20.0), jnp.float32(0.5))
    g = jax.grad(f, argnums=(0, 1))(*x)
    assert all(np.isfinite(float(v)) for v in g)
    for i, h in ((0, 0.5), (1, 0.05)):
        up = list(x)
        dn = list(x)
        up[i] = up[i] + h
        dn[i] = dn[i] - h
        fd = (float(f(*up)) - float(f(*dn))) / (2 * h)
        assert float(g[i]) == pytest.approx(fd, rel=0.1, abs=1e-7), (i, float(g[i]), fd)
    assert float(g[0]) > 0  # more load, longer latencies


# ----------------------------------------------------------------------------- bad inputs


@pytest.mark.parametrize(
    "field,value,match",
    [
        ("arrival_rate_rps", 0.0, r"service.arrival_rate_rps = 0: the arrival rate must be"),
        ("arrival_rate_rps", -3.0, r"service.arrival_rate_rps = -3"),
        ("percentile", 1.0, r"service.percentile = 1: the SLO percentile lies in \(0, 1\)"),
        ("percentile", 0.0, r"service.percentile = 0"),
        ("ttft_slo_s", 0.0, r"service.ttft_slo_s = 0"),
        ("input_cv", -1.0, r"service.input_cv = -1"),
    ],
)
def test_bad_service_fields_are_one_line_errors(field, value, match):
    with pytest.raises(ValueError, match=match) as e:
        sv.validate_service(sv.Service(**{field: value}))
    assert "\n" not in str(e.value)


@pytest.mark.parametrize(
    "field,value,match",
    [
        ("spec_acceptance", 1.0, r"engine.spec_acceptance = 1: the acceptance rate alpha lies in \[0, 1\)"),
        ("spec_acceptance", -0.1, r"engine.spec_acceptance = -0.1"),
        ("max_batched_tokens", 0.0, r"engine.max_batched_tokens = 0"),
        ("kv_offload_fraction", 0.5, r"engine.kv_offload_tier = 1: the chip has 1 tier"),
    ],
)
def test_bad_engine_fields_are_one_line_errors(field, value, match):
    import hwgrad as hg

    system = hg.presets.system("h100-sxm", 1)
    with pytest.raises(ValueError, match=match):
        sv.validate_service(sv.Service(), sv.Engine(**{field: value}), system)


def test_disaggregated_without_a_network_is_an_error():
    import hwgrad as hg

    s = hg.presets.system("h100-sxm", 1)
    m = hg.presets.model("llama-3.1-8b")
    wl = hg.Workload()
    with pytest.raises(
        ValueError, match=r"link = None: disaggregated prefill and decode pools need a network"
    ):
        sv.evaluate_disaggregated(s, wl, s, wl, m, hg.compression("bf16", "bf16"), sv.Service(), None)


# ----------------------------------------------------------------------------- the cost model


@pytest.mark.slow  # compiles the serving model over the full cost model (~2 min on 2 loaded cores)
def test_cost_model_binding_light_load_and_saturation():
    import hwgrad as hg
    from hwgrad import cost

    s = hg.presets.system("h100-sxm", 1)
    m = hg.presets.model("llama-3.1-8b")
    c = hg.compression("bf16", "bf16")
    wl = hg.Workload()
    eff = hg.calibrated_efficiency()
    f = jax.jit(
        jax.vmap(
            lambda rate: sv.evaluate_service(
                s,
                m,
                wl,
                c,
                sv.Service(arrival_rate_rps=rate, input_tokens=1024.0, output_tokens=256.0),
                efficiency=eff,
            )
        )
    )
    r = f(jnp.array([1e-3, 5.0, 1e3]))
    # vanishing load: TPOT is one sequence's decode step at the mean context, by the cost model
    one = cost.forward_pass(s, m, hg.replace(wl, batch=1.0), c, eff, 1.0, 1024.0 + 128.0, steady_state=True)
    assert float(r.tpot_mean_s[0]) == pytest.approx(float(one.time_s), rel=2e-2)
    assert float(r.throughput_rps[1]) == pytest.approx(5.0, rel=1e-3)
    assert float(r.saturated[2]) == 1.0 and float(r.goodput_rps[2]) < 1e-3
    assert all(np.all(np.isfinite(np.asarray(x))) for x in jax.tree_util.tree_leaves(r))
    msg = sv.saturation_message(jax.tree_util.tree_map(lambda x: x[2], r))
    assert msg.startswith("rate 1e+03 req/s exceeds capacity") and "binding:" in msg


@pytest.mark.slow
def test_hwgrad_serve_json(capsys):
    import json

    from hwgrad.cli import main

    code = main(
        [
            "serve",
            "--model",
            "llama-3.1-8b",
            "--hardware",
            "h100-sxm",
            "--chips",
            "1",
            "--rate",
            "2",
            "--json",
        ]
    )
    assert code == 0
    rep = json.loads(capsys.readouterr().out)
    for key in (
        "goodput_rps",
        "ttft_pct_s",
        "tpot_pct_s",
        "throughput_rps",
        "utilisation",
        "binding_resource",
    ):
        assert key in rep
    assert rep["throughput_rps"] == pytest.approx(2.0, rel=1e-3)


def test_hwgrad_serve_bad_percentile_is_one_line():
    from hwgrad.cli import main

    assert main(["serve", "--model", "llama-3.1-8b", "--chips", "1", "--percentile", "1.5"]) == 2
