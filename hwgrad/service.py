"""Serving under a request rate: a steady-state model of a continuous-batching engine.

`hwgrad.cost.serve` prices one engine at a *given* concurrency. Here the load is an
open stream of requests (`Service`: Poisson arrivals at ``arrival_rate_rps``, mean
input ``I`` and output ``O`` tokens, SLOs on TTFT and TPOT at a percentile) and the
concurrency follows from it. Per replica (the rate is split evenly over ``workload.dp``):

**Decode: a fixed point (Little's law).** Each engine step decodes every running sequence
(``k + 1`` tokens each under speculative decoding, committing ``E = (1 - a^(k+1)) / (1 - a)``
of them, `hwgrad.speculative.expected_tokens_per_step`) and carries the queued prompts'
prefill chunks, up to ``Engine.max_batched_tokens`` tokens (chunked prefill). With step time
``tau``, a request decodes for ``(O - 1) tau / E`` seconds, so (Little) ``n = lam (O - 1) tau / E``
sequences are decoding on average and ``p = lam I tau`` prompt tokens ride in each step. A
tagged request sees itself plus the others (the M/G/inf view of continuous batching: the
others' number is independent of the tagged one), so its step is

    tau = T(1 + n, (1 + n)(k + 1) + p) (1 + k c)                          (*)

where ``T(sequences, tokens)`` is `hwgrad.cost.forward_pass` (weights read once for
all tokens, KV of every sequence at the mean context ``I + O / 2``, as in
`hwgrad.cost.serve`) and ``c`` is the draft's cost per drafted token relative to the
target's step (Leviathan et al. 2023, Theorem 3.8). Both arguments of ``T`` are affine in
``tau``, so (*) is a scalar fixed point ``tau = g(tau)`` with ``g`` convex (a roofline is a
maximum of affine functions): it is started at the chord solution between no load and the
capacity point and refined by `NEWTON_STEPS` Newton steps; the gradient is that of the
implicit function, ``d tau / d theta = (d g / d theta) / (1 - g')`` (one Newton step outside
``stop_gradient``). TPOT is ``tau / E``.

**Capacity.** Concurrency is bounded by the KV cache (sequences at the mean context that fit
in the capacity the engine may use, `hwgrad.specs.Stack.memory_fraction`), by
``Engine.max_num_seqs`` and by the token budget (``n (k + 1) + p <= max_batched_tokens``);
at the smallest bound ``n_max`` the engine serves ``lam_max = n_max E / ((O - 1) T_max)``
requests/s. The prefill budget left in a step, ``b = max_batched_tokens - n (k + 1)``, serves
prompt tokens at ``b / tau_b`` tokens/s (``tau_b``: a step with a full chunk), so the prefill
capacity is ``b / (I tau_b)``. A rate above capacity is evaluated at the capacity edge
(``rho <=`` `RHO_MAX`), reported as a margin (``capacity_rps - arrival_rate_rps``) and
a message (`saturation_message`), and its goodput is zero: never a NaN.

**TTFT (a queue for prefill).** A request waits for the step in flight (mean residual
``tau / 2`` when the engine is busy), then for the prompts ahead of it: the prefill budget is
an M/G/1 token server (Pollaczek-Khinchine) with service time ``S = I tau_b / b`` and
``rho_p = lam S``:

    W = lam E[S^2] / (2 (1 - rho_p)),   E[W^2] = 2 W^2 + lam E[S^3] / (3 (1 - rho_p))  (Takacs)

(input lengths gamma-distributed with coefficient of variation ``input_cv``:
``E[S^2] = S^2 (1 + cv^2)``, ``E[S^3] = S^3 (1 + cv^2)(1 + 2 cv^2)``), then for its own prefill,
``m = ceil(I / b)`` steps of ``T(1 + n, n (k + 1) + I / m)``; the first token is sampled at the
end of the last. **TPOT** of a request is the mean of its steps: it varies with the number
of sequences decoding beside it (the average of an M/G/inf count over a window of one
request's decode has variance ``2 n / 3``) and with the prompt tokens of the requests that
arrive meanwhile (compound Poisson: variance ``p I (1 + cv^2) / N`` over ``N`` steps), each
times the marginal step cost. **Percentiles** take each latency as gamma-distributed with
its mean and variance (Wilson-Hilferty: ``x_q = mu (1 - 1/(9k) + z_q / sqrt(9k))^3``, shape
``k = mu^2 / var``; within 2.5 % of the exact gamma quantile for ``k >= 0.5`` at p90; exact
for M/M/1 waits in the limit of a heavy queue only to that accuracy). **Goodput** is
``throughput x P(TTFT <= slo) x P(TPOT <= slo)`` (independence assumed).

**Disaggregated pools** (`evaluate_disaggregated`): prefill replicas form an M/G/c
queue (Sakasegawa's approximation, exact M/G/1 at ``c = 1``; smooth in the relaxed replica
count), each request's KV cache crosses ``link`` once (each prefill chip sends its shard; the
link's utilisation is a capacity), and the decode pool is the fixed point above with no
prefill in its steps. The balanced split puts the fraction of chips on prefill that makes
both pools equally utilised.

**KV offload** (``Engine.kv_offload_fraction``): that fraction of the KV cache lives in tier
``Engine.kv_offload_tier`` (host DDR, CXL; not flash: write endurance) and is read from it
every step through the cost model's tiers and shared channels (its link prices the
transfer), and its capacity admits more sequences.

References:
  Little, "A proof for the queuing formula L = lambda W", Oper. Res. 1961. Pollaczek 1930,
  Khinchine 1932; Takacs, "Introduction to the Theory of Queues", 1962 (moments of the M/G/1
  wait). Sakasegawa, "An approximation formula L_q = a b^c / (1 - b)", Ann. Inst. Stat. Math.
  1977; Allen-Cunneen (M/G/c). Wilson & Hilferty, PNAS 1931. Kwon et al., "Efficient Memory
  Management for LLM Serving with PagedAttention" (vLLM), SOSP 2023; Agrawal et al.,
  "Sarathi-Serve" (chunked prefill), OSDI 2024; Zhong et al., "DistServe", OSDI 2024
  (goodput under SLOs, disaggregation). Leviathan, Kalman & Matias, ICML 2023.

Over 600 lines because the steady-state model, its disaggregated variant, the queueing helpers they share and their CLI are one concept; the queueing formulas are the natural first split.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import ndtr, ndtri

from . import counts, network, pruning, units
from .cost import COMPONENTS, PassCost, capex_usd, forward_pass, sequences_per_tier, served_seconds
from .smooth import ceil_st, safe_div
from .specs import Compression, Model, Network, Options, System, Workload, replace, spec
from .speculative import expected_tokens_per_step

__all__ = [
    "Service",
    "Engine",
    "ServiceResult",
    "DisaggregatedResult",
    "RESOURCES",
    "evaluate_service",
    "evaluate_disaggregated",
    "steady_state",
    "pk_wait_s",
    "mgc_wait_s",
    "gamma_quantile",
    "gamma_cdf",
    "saturation_message",
    "validate_service",
    "summary",
    "Pool",
    "DESIGN_ROOTS",
    "SERVICE_METRICS",
    "DISAGGREGATED_METRICS",
    "DEFAULT_SERVICE_METRICS",
    "metrics",
    "capex_usd_per_s",
    "design_metrics",
    "add_service_arguments",
    "service_specs",
    "validate_design_service",
]

#: Newton steps after the chord start, before the final (differentiable) one. ``g`` is
#: piecewise linear (a roofline of a few ops): on the DES operating points of the tests the
#: step time after 1 / 2 / 3 steps is within 3e-4 / 3e-7 / 1e-7 of 6 steps (TTFT 1e-3 / 7e-6
#: / 0); each step costs a JVP of three passes, so 2
NEWTON_STEPS = 2
#: loads above capacity are evaluated at this utilisation (finite, and the queue is long
#: enough that goodput is ~0); the reported margin carries the excess
RHO_MAX = 0.98

#: resources whose utilisation `ServiceResult` reports, in this order
RESOURCES = ("kv_memory", "max_num_seqs", "token_budget", "prefill", "network")


@spec
class Service:
    """An open stream of requests and its service-level objectives.

    Attributes:
      arrival_rate_rps: mean Poisson arrival rate, requests/s (> 0), over the whole system.
      input_tokens / output_tokens: mean prompt and output lengths, tokens (output >= 1).
      input_cv / output_cv: coefficients of variation of the lengths (0 = fixed; 1 =
        exponential-like; ShareGPT-style chats ~1); lengths are taken gamma-distributed.
      ttft_slo_s / tpot_slo_s: SLO thresholds on time to first token and time per output
        token (a request's mean inter-token time, as benchmark clients report it), s.
      percentile: the SLO percentile in (0, 1), e.g. 0.9 for p90.
    """

    arrival_rate_rps: Any = 1.0
    input_tokens: Any = 1024.0
    output_tokens: Any = 256.0
    input_cv: Any = 0.0
    output_cv: Any = 0.0
    ttft_slo_s: Any = 1.0
    tpot_slo_s: Any = 0.05
    percentile: Any = 0.9


@spec
class Engine:
    """Engine knobs of continuous batching (defaults: vLLM as in the InferenceMAX rows).

    Attributes:
      max_batched_tokens: token budget of one step (decode + prefill chunks; the chunk size
        of chunked prefill); vLLM ``--max-num-batched-tokens``, 8192 in the InferenceMAX
        launch scripts (calibration.csv notes, rows 1056+). Range 256-65536.
      max_num_seqs: most sequences decoding at once (vLLM ``--max-num-seqs``, default 256
        in vLLM's EngineArgs).
      spec_acceptance: per-token acceptance ``alpha`` of speculative decoding, in [0, 1)
        (`hwgrad.speculative.lookup` gives measured values per pairing; e.g. EAGLE-3).
      spec_draft_tokens: draft length ``k`` (0 = no speculative decoding); the target
        verifies ``k + 1`` tokens per sequence per step.
      draft_cost_ratio: ``c`` of Leviathan et al.: time of one draft forward per drafted
        token / time of the target's step (a draft model ~ its parameter ratio when decode is
        memory-bound; EAGLE / MTP heads ~ one layer, ``1 / n_layers``). Range [0, 1].
      kv_offload_fraction: share of the KV cache held in tier ``kv_offload_tier`` instead of
        tier 0, in [0, 1] (the rest of the placement is kept).
      kv_offload_tier: static; index of the offload tier (default 1).
    """

    max_batched_tokens: Any = 8192.0
    max_num_seqs: Any = 256.0
    spec_acceptance: Any = 0.0
    spec_draft_tokens: Any = 0.0
    draft_cost_ratio: Any = 0.0
    kv_offload_fraction: Any = 0.0
    kv_offload_tier: int = dataclasses.field(default=1, metadata={"static": True})


@spec
class ServiceResult:
    """What `evaluate_service` reports (whole system unless "per replica"; SI units).

    ``ttft_pct_s`` / ``tpot_pct_s`` are at ``percentile``; ``goodput_rps`` counts requests
    meeting both SLOs; ``utilisation`` is ``arrival / capacity`` (> 1: saturated), and
    ``utilisations`` the load of each of `RESOURCES` at the operating point, and
    ``binding`` indexes the one that sets the capacity.
    ``concurrency`` is the mean number of sequences decoding per replica; ``step_s`` the
    engine step seen by a decoding request; ``decode_step`` that step by component.
    """

    goodput_rps: Any
    throughput_rps: Any
    arrival_rate_rps: Any
    capacity_rps: Any
    rate_margin_rps: Any
    saturated: Any
    utilisation: Any
    utilisations: Any
    binding: Any
    slo_attainment: Any
    ttft_ok_fraction: Any
    tpot_ok_fraction: Any
    ttft_mean_s: Any
    ttft_pct_s: Any
    tpot_mean_s: Any
    tpot_pct_s: Any
    e2e_mean_s: Any
    percentile: Any
    concurrency: Any
    step_s: Any
    tokens_per_step: Any
    output_tokens_per_s: Any
    energy_j_per_token: Any
    decode_step: PassCost

    @property
    def ttft_p90_s(self):
        """Alias of ``ttft_pct_s`` (the percentile is ``percentile``, 0.9 by default)."""
        return self.ttft_pct_s

    @property
    def tpot_p90_s(self):
        """Alias of ``tpot_pct_s``."""
        return self.tpot_pct_s


@spec
class DisaggregatedResult:
    """`ServiceResult` of the whole deployment plus each pool.

    ``service`` is the end-to-end result (TTFT from the prefill pool and the KV transfer,
    TPOT from the decode pool, capacity the smaller pool's); ``prefill_utilisation`` the
    prefill pool's ``rho``, ``kv_transfer_s`` one request's KV cache over the link,
    ``prefill_capacity_rps`` / ``decode_capacity_rps`` the rate each pool sustains, and
    ``balanced_prefill_fraction`` the share of chips on prefill that equalises the two
    pools' utilisations at the same total.
    """

    service: ServiceResult
    prefill_capacity_rps: Any
    decode_capacity_rps: Any
    prefill_utilisation: Any
    kv_transfer_s: Any
    kv_bytes_per_request: Any
    balanced_prefill_fraction: Any


# ----------------------------------------------------------------------------- queueing


def _smooth_min(a, b, sharpness=200.0):
    """Soft minimum of positive ``a`` and ``b`` on a relative scale (bias <= ln 2 / sharpness
    of the smaller at a tie): ``-log(e^(-s a/m) + e^(-s b/m)) m / s``, ``m = min(a, b)`` (so an
    infinite ``b`` returns ``a`` exactly)."""
    m = jax.lax.stop_gradient(jnp.maximum(jnp.minimum(a, b), 1e-30))
    return -jnp.logaddexp(-sharpness * a / m, -sharpness * b / m) * m / sharpness


def _clip_rho(rho):
    """``rho`` kept below `RHO_MAX` (soft, so the gradient survives up to the edge)."""
    return _smooth_min(jnp.maximum(rho, 0.0), RHO_MAX)


def pk_wait_s(arrival_rate, mean_service_s, service_cv):
    """Mean wait in queue of an M/G/1 queue (Pollaczek-Khinchine), s.

    ``W = lam E[S^2] / (2 (1 - rho))`` with ``E[S^2] = S^2 (1 + cv^2)``: M/M/1 (``cv = 1``)
    gives ``rho S / (1 - rho)``, M/D/1 (``cv = 0``) half of it. ``rho`` is clipped below
    `RHO_MAX`.
    """
    rho = _clip_rho(arrival_rate * mean_service_s)
    return arrival_rate * mean_service_s**2 * (1.0 + service_cv**2) / (2.0 * (1.0 - rho))


def mgc_wait_s(arrival_rate, mean_service_s, servers, service_cv):
    """Mean wait in queue of an M/G/c queue (Sakasegawa 1977 with the Allen-Cunneen factor):

        W = rho^(sqrt(2 (c + 1)) - 1) / (c (1 - rho)) S (1 + cv^2) / 2,   rho = lam S / c

    exact for M/G/1; within 12 % of Erlang C for M/M/c at rho >= 0.7 (tested), but +37 % at
    c = 8, rho = 0.6 (light load, many servers: the wait is then small anyway). Smooth in a
    relaxed server count ``c``.
    """
    c = jnp.maximum(servers, 1.0)
    rho = _clip_rho(arrival_rate * mean_service_s / c)
    safe = jnp.maximum(rho, 1e-12)
    return (
        safe ** (jnp.sqrt(2.0 * (c + 1.0)) - 1.0)
        / (c * (1.0 - rho))
        * mean_service_s
        * (1.0 + service_cv**2)
        / 2.0
    )


def _gamma_shape(mean, var):
    mean = jnp.maximum(mean, 1e-30)
    var = jnp.maximum(var, (1e-3 * mean) ** 2)  # a point mass becomes a 0.1 %-wide gamma
    return mean, mean**2 / var


def gamma_quantile(mean, var, q):
    """``q``-quantile of a gamma distribution of the given mean and variance (Wilson-Hilferty
    cube-root normal approximation; exact in the limit of a large shape)."""
    mean, k = _gamma_shape(mean, var)
    c = 1.0 / (9.0 * k)
    base = jnp.maximum(1.0 - c + ndtri(q) * jnp.sqrt(c), 0.0)
    return mean * base**3


def gamma_cdf(x, mean, var):
    """``P(X <= x)`` of the same gamma (Wilson-Hilferty, consistent with `gamma_quantile`)."""
    mean, k = _gamma_shape(mean, var)
    c = 1.0 / (9.0 * k)
    r = jnp.maximum(x, 0.0) / mean
    cube = jnp.where(r > 0, jnp.where(r > 0, r, 1.0) ** (1.0 / 3.0), 0.0)
    return ndtr((cube - (1.0 - c)) / jnp.sqrt(c))


# ----------------------------------------------------------------------------- the engine


@spec
class SteadyState:
    """The fixed point of one continuous-batching replica (per replica; see module docstring).

    Times in s, rates in requests/s, counts in sequences or tokens.
    """

    step_s: Any
    tpot_mean_s: Any
    tpot_var_s2: Any
    ttft_mean_s: Any
    ttft_var_s2: Any
    served_rps: Any
    capacity_rps: Any
    concurrency: Any
    tokens_per_step: Any
    utilisations: Any
    op_sequences: Any
    op_tokens: Any
    op: Any = None
    binding: Any = 0.0


def steady_state(step_fn, service: Service, engine: Engine, arrival_rate, max_sequences_kv, prefill=True):
    """Steady state of one continuous-batching replica for a step-time function.

    Args:
      step_fn: ``(sequences, tokens) -> (step time in s, aux)`` for arrays of equal shape
        (vectorised; ``aux`` any pytree batched alike, e.g. the `PassCost`, or ``None``;
        `evaluate_service` passes the cost model, tests a numpy-checkable roofline).
      service: the request stream (``arrival_rate_rps`` is ignored: ``arrival_rate`` is this
        replica's).
      engine: engine knobs.
      arrival_rate: requests/s arriving at this replica.
      max_sequences_kv: sequences whose KV cache fits (at the mean context).
      prefill: ``False`` for a decode pool (prompts arrive as KV caches, no prefill queue).

    Returns:
      `SteadyState`.
    """
    i_len = service.input_tokens if prefill else 0.0
    o_dec = jnp.maximum(service.output_tokens - 1.0, 1e-6)  # the first token comes with the prefill
    k = engine.spec_draft_tokens
    e_tok = expected_tokens_per_step(engine.spec_acceptance, k)
    draft = 1.0 + k * engine.draft_cost_ratio
    budget = engine.max_batched_tokens
    per_seq_tokens = (k + 1.0) + i_len * e_tok / o_dec  # step tokens per decoding sequence in steady state

    def step(seqs, tokens):
        t, aux = step_fn(seqs, tokens)
        return t * draft, aux

    def step_t(seqs, tokens):
        return step(seqs, tokens)[0]

    # capacity: the smallest bound on the mean concurrency
    n_budget = budget / per_seq_tokens
    bounds = jnp.stack(jnp.broadcast_arrays(max_sequences_kv, engine.max_num_seqs, n_budget))
    n_max = jnp.maximum(jnp.min(bounds), 1e-3)
    tau0, tau_max = step_t(
        jnp.stack(jnp.broadcast_arrays(1.0, n_max)),
        jnp.stack(jnp.broadcast_arrays(k + 1.0, n_max * per_seq_tokens)),
    )
    lam_conc = n_max * e_tok / (o_dec * tau_max)
    lam = _smooth_min(arrival_rate, RHO_MAX * lam_conc)

    # tau = g(tau): others decoding n = lam O tau / E, prompt tokens per step p = lam I tau
    dn, dp = lam * o_dec / e_tok, lam * i_len

    # chord start between no load and the capacity point (g convex: the chord lies above it),
    # then Newton (one traced pass, outside the gradient)
    u_max = jnp.maximum(n_max - 1.0, 1e-6) / jnp.maximum(dn, 1e-30)
    slope = jnp.where(n_max > 1.0, (tau_max - tau0) / u_max, 0.0)
    start = jax.lax.stop_gradient(tau0 / jnp.maximum(1.0 - slope, 0.05))
    dn_sg, dp_sg = jax.lax.stop_gradient(dn), jax.lax.stop_gradient(dp)

    def mix(n, p):
        """Steps carry no prompt, one prompt chunk (``c = I / ceil(I / room)`` tokens) or a
        full budget (prompts that arrived together): a roofline is convex, so a step at the
        mean prompt load would be too short. Prompts per step are Poisson with mean
        ``mu = p / c``; one-chunk steps have probability ``mu e^-mu`` and full steps the rest
        of the mean load ``p``, so the tokens are conserved."""
        room = jnp.maximum(budget - n * (k + 1.0), 0.05 * budget)
        chunks = ceil_st(jnp.maximum(i_len, 1e-6) / room)
        size = jnp.maximum(i_len, 1e-6) / chunks
        mu = p / size
        q1 = mu * jnp.exp(-mu)
        qf = jnp.maximum(p - q1 * size, 0.0) / room
        return room, chunks, size, q1, qf

    def g_sg(tau):
        n = 1.0 + dn_sg * tau
        p = dp_sg * tau
        room, _, size, q1, qf = mix(n, p)
        d = n * (k + 1.0)
        t = step_t(jnp.stack([n, n, n]), jnp.stack([d, d + size, d + room]))
        return (1.0 - q1 - qf) * t[0] + q1 * t[1] + qf * t[2]

    def newton(_, carry):
        tau, _ = carry
        gt, dg = jax.jvp(g_sg, (tau,), (jnp.ones_like(tau),))
        return (gt - dg * tau) / jnp.maximum(1.0 - dg, 0.02), dg

    tau_sg, dg = jax.lax.stop_gradient(
        jax.lax.fori_loop(0, NEWTON_STEPS, newton, (start, jnp.zeros_like(start)), unroll=True)
    )

    # every step the model needs, at the converged point, as one batch: decode only, with a
    # prompt chunk, with a full chunk (the prefill token server) and with the request's own chunk
    n_others = dn * tau_sg
    seqs = 1.0 + n_others
    p = dp * tau_sg
    room, chunks, size, q1, qf = mix(seqs, p)
    dec_tokens = seqs * (k + 1.0)
    own_tokens = n_others * (k + 1.0) + i_len / chunks
    tokens_at = jnp.stack(jnp.broadcast_arrays(dec_tokens, dec_tokens + size, dec_tokens + room, own_tokens))
    times, aux = step(jnp.stack(jnp.broadcast_arrays(seqs, seqs, seqs, seqs)), tokens_at)
    tau_dec, tau_chunk, tau_full, tau_own = times
    q0 = 1.0 - q1 - qf
    gt = q0 * tau_dec + q1 * tau_chunk + qf * tau_full
    op_aux = jax.tree_util.tree_map(lambda v: q0 * v[0] + q1 * v[1] + qf * v[2], aux)
    f_tok = jnp.maximum(safe_div(tau_full - tau_dec, room), 0.0)
    # dg/dtau = dn f_seq + (dn (k + 1) + dp) f_tok (f_seq: one more decoding sequence)
    f_seq = jnp.maximum(safe_div(dg - f_tok * (dn * (k + 1.0) + dp), dn), 0.0)
    # the implicit-function step: d tau = (dg / dtheta) / (1 - g'); the other steps follow
    # to first order (their values are those at the converged point)
    tau = tau_sg + (gt - tau_sg) / jnp.maximum(1.0 - dg, 0.02)
    shift = tau - jax.lax.stop_gradient(tau)
    d_seq = f_seq * dn * shift
    tau_own = tau_own + d_seq + f_tok * dn * (k + 1.0) * shift
    tau_full = tau_full + d_seq
    tau_dec = tau_dec + d_seq + f_tok * dn * (k + 1.0) * shift
    tau_chunk = tau_chunk + d_seq + f_tok * dn * (k + 1.0) * shift
    n_others = dn * tau
    p = dp * tau
    seqs = 1.0 + n_others
    tokens = seqs * (k + 1.0) + p
    # moments of the step an arrival lands in (length-biased: E[t^2] / (2 E[t]) residual)
    m2 = q0 * tau_dec**2 + q1 * tau_chunk**2 + qf * tau_full**2
    m3 = q0 * tau_dec**3 + q1 * tau_chunk**3 + qf * tau_full**3

    cv_i = service.input_cv
    s_tok = i_len * tau_full / room  # service time of one prompt on the token server
    rho_p_raw = lam * s_tok
    rho_p = _clip_rho(rho_p_raw)
    es2 = s_tok**2 * (1.0 + cv_i**2)
    es3 = s_tok**3 * (1.0 + cv_i**2) * (1.0 + 2.0 * cv_i**2)
    w_mean = lam * es2 / (2.0 * (1.0 - rho_p))
    w2 = 2.0 * w_mean**2 + lam * es3 / (3.0 * (1.0 - rho_p))
    own = chunks * tau_own
    busy = 1.0 - jnp.exp(-lam * (o_dec * tau / e_tok + own))
    resid = busy * m2 / (2.0 * tau)
    resid_var = busy * m3 / (3.0 * tau) - resid**2
    # prompts arrive between steps and are scheduled at the next one: those that came
    # earlier in the same step (Poisson over the step's age, mean = the residual) are ahead,
    # and one of them whose prompt overflows the slack of our last chunk pushes our first
    # token one step later (a full-chunk step)
    slack = chunks * room - i_len
    ahead = 1.0 - jnp.exp(-lam * resid)
    spill = ahead * (1.0 - gamma_cdf(slack, jnp.maximum(i_len, 1e-6), (cv_i * i_len) ** 2))
    if prefill:
        ttft = resid + w_mean + own + spill * tau_full
        ttft_var = (
            jnp.maximum(resid_var, 0.0)
            + jnp.maximum(w2 - w_mean**2, 0.0)
            + (cv_i * s_tok) ** 2
            + spill * (1.0 - spill) * tau_full**2
        )
        lam_prefill = safe_div(lam, rho_p_raw, fill=jnp.inf)
    else:
        ttft = jnp.zeros_like(tau)
        ttft_var = jnp.zeros_like(tau)
        rho_p_raw = jnp.zeros_like(tau)
        lam_prefill = jnp.full_like(tau, jnp.inf)

    n_steps = o_dec / e_tok
    # a request's steps: others decoding beside it (M/G/inf window average, variance 2n/3)
    # and the chunk steps of the prompts arriving meanwhile (Poisson, ``chunks`` steps each)
    var_step = f_seq**2 * (2.0 / 3.0) * n_others + safe_div(p, jnp.maximum(i_len, 1e-6)) * (
        chunks * (tau_chunk - tau_dec)
    ) ** 2 * (1.0 + cv_i**2) / jnp.maximum(n_steps, 1.0)
    capacity = _smooth_min(lam_conc, lam_prefill)
    # the resource that sets the capacity: the tightest concurrency bound, or the prefill budget
    binding = jnp.where(lam_prefill < lam_conc, 3.0, jnp.argmin(bounds).astype(float))
    served = _smooth_min(lam, RHO_MAX * capacity) * jnp.where(
        rho_p_raw > 1.0, 1.0 / jnp.maximum(rho_p_raw, 1.0), 1.0
    )
    n_avg = lam * o_dec * tau / e_tok
    offered = arrival_rate / lam  # > 1 only above capacity: loads scale with the offered rate
    util = offered * jnp.stack(
        jnp.broadcast_arrays(
            n_avg / max_sequences_kv,
            n_avg / engine.max_num_seqs,
            safe_div(n_avg * per_seq_tokens, budget),
            rho_p_raw,
            0.0,
        )
    )
    return SteadyState(
        step_s=tau,
        tpot_mean_s=tau / e_tok,
        tpot_var_s2=var_step / e_tok**2,
        ttft_mean_s=ttft,
        ttft_var_s2=ttft_var,
        served_rps=served,
        capacity_rps=capacity,
        concurrency=n_avg,
        tokens_per_step=tokens,
        utilisations=util,
        op_sequences=seqs,
        op_tokens=tokens,
        op=op_aux,
        binding=binding,
    )


# ----------------------------------------------------------------------------- cost-model binding


def _offload_system(system: System, engine: Engine) -> System:
    """``system`` with ``engine.kv_offload_fraction`` of the KV cache moved from tier 0 to
    ``engine.kv_offload_tier`` (the other classes' placement kept)."""
    n_tiers = len(system.chip.tiers)
    if n_tiers < 2:
        return system
    pl = system.resolved_placement()
    j = min(engine.kv_offload_tier, n_tiers - 1)
    f = jnp.asarray(engine.kv_offload_fraction, dtype=float)
    kv = jnp.asarray(pl.kv_cache, dtype=float)
    moved = kv[0] * f
    kv = kv.at[0].add(-moved).at[j].add(moved)
    return replace(system, placement=replace(pl, kv_cache=kv))


def _replica_workload(workload: Workload, service: Service) -> Workload:
    return replace(workload, prompt_len=service.input_tokens, output_len=service.output_tokens)


def _max_sequences(system, model, workload, compression, efficiency, service, engine):
    """Sequences whose KV cache (at the mean context ``I + O / 2``) fits beside the weights
    and a prefill workspace of one token budget, on the tightest tier (straight-through min)."""
    from .smooth import straight_through_min

    ctx = service.input_tokens + service.output_tokens / 2.0
    fit = sequences_per_tier(
        system, model, workload, compression, efficiency.memory_fraction, engine.max_batched_tokens, ctx
    )
    return jnp.maximum(straight_through_min(jnp.where(jnp.isfinite(fit), fit, 1e9)), 1e-3)


def _step_fn(system, model, workload, compression, efficiency, options, ctx):
    def one(seqs, tokens):
        wl = replace(workload, batch=seqs)
        return forward_pass(
            system, model, wl, compression, efficiency, tokens / seqs, ctx, options, steady_state=True
        )

    def fn(seqs, tokens):
        seqs, tokens = jnp.broadcast_arrays(jnp.asarray(seqs, float), jnp.asarray(tokens, float))
        if seqs.ndim == 0:
            return one(seqs, tokens).time_s, None
        out = jax.vmap(one)(seqs, tokens)
        return out.time_s, out

    return fn, one


def _defaults(efficiency):
    if efficiency is None:
        from .calibrated import calibrated_efficiency

        efficiency = calibrated_efficiency()
    return efficiency


def _result(
    ss: SteadyState, service: Service, replicas, op: PassCost, e_tok, extra_util=None
) -> ServiceResult:
    q = service.percentile
    ttft_pct = gamma_quantile(ss.ttft_mean_s, ss.ttft_var_s2, q)
    tpot_pct = gamma_quantile(ss.tpot_mean_s, ss.tpot_var_s2, q)
    p_ttft = jnp.where(ss.ttft_mean_s > 0, gamma_cdf(service.ttft_slo_s, ss.ttft_mean_s, ss.ttft_var_s2), 1.0)
    p_tpot = gamma_cdf(service.tpot_slo_s, ss.tpot_mean_s, ss.tpot_var_s2)
    capacity = replicas * ss.capacity_rps
    rate = service.arrival_rate_rps
    served = replicas * ss.served_rps
    # over capacity the queue grows without bound: no request meets a TTFT SLO in the long run
    admit = jax.nn.sigmoid((capacity - rate) / (0.005 * capacity))
    attainment = p_ttft * p_tpot * admit
    util = ss.utilisations if extra_util is None else extra_util
    out_tok = served * service.output_tokens
    return ServiceResult(
        goodput_rps=served * attainment,
        throughput_rps=served,
        arrival_rate_rps=jnp.asarray(rate, dtype=float),
        capacity_rps=capacity,
        rate_margin_rps=capacity - rate,
        saturated=(rate > capacity).astype(float),
        utilisation=rate / capacity,
        utilisations=util,
        binding=ss.binding,
        slo_attainment=attainment,
        ttft_ok_fraction=p_ttft,
        tpot_ok_fraction=p_tpot,
        ttft_mean_s=ss.ttft_mean_s,
        ttft_pct_s=ttft_pct,
        tpot_mean_s=ss.tpot_mean_s,
        tpot_pct_s=tpot_pct,
        e2e_mean_s=ss.ttft_mean_s + (service.output_tokens - 1.0) * ss.tpot_mean_s,
        percentile=jnp.asarray(q, dtype=float),
        concurrency=ss.concurrency,
        step_s=ss.step_s,
        tokens_per_step=ss.tokens_per_step,
        output_tokens_per_s=out_tok,
        energy_j_per_token=op.energy_j / (ss.op_sequences * e_tok),
        decode_step=op,
    )


def evaluate_service(
    system: System,
    model: Model,
    workload: Workload,
    compression: Compression,
    service: Service,
    engine: Engine = Engine(),
    efficiency=None,
    options: Options = Options(),
) -> ServiceResult:
    """Goodput, TTFT/TPOT at the SLO percentile, throughput and utilisation of a
    continuous-batching deployment under ``service`` (see the module docstring).

    Args:
      system: one replica's chips (``workload.tp * workload.pp``) and network; ``dp``
        replicas share the arrival stream evenly.
      model / compression: the served model and its formats.
      workload: parallelism (``tp``, ``pp``, ``ep``, ``dp``, ``attention_dp``, KV block);
        its batch and lengths are ignored (the service sets them).
      service: arrival rate, lengths and SLOs.
      engine: token budget, max sequences, speculative decoding, KV offload.
      efficiency: the software stack (default: the calibrated one).
      options: static evaluation options.

    Returns:
      `ServiceResult` (jit- and vmap-able; differentiable in every numeric leaf).
    """
    efficiency = _defaults(efficiency)
    model, compression = pruning.resolve(model, compression)
    system = _offload_system(system, engine)
    wl = _replica_workload(workload, service)
    ctx = service.input_tokens + service.output_tokens / 2.0
    fn, _ = _step_fn(system, model, wl, compression, efficiency, options, ctx)
    n_kv = _max_sequences(system, model, wl, compression, efficiency, service, engine)
    replicas = workload.dp
    ss = steady_state(fn, service, engine, service.arrival_rate_rps / replicas, n_kv)
    op = ss.op
    e_tok = expected_tokens_per_step(engine.spec_acceptance, engine.spec_draft_tokens)
    return _result(ss, service, replicas, op, e_tok)


def evaluate_disaggregated(
    prefill_system: System,
    prefill_workload: Workload,
    decode_system: System,
    decode_workload: Workload,
    model: Model,
    compression: Compression,
    service: Service,
    link: Network | None,
    engine: Engine = Engine(),
    efficiency=None,
    options: Options = Options(),
) -> DisaggregatedResult:
    """A prefill pool and a decode pool joined by ``link`` (see the module docstring).

    Args:
      prefill_system / prefill_workload: one prefill replica and its parallelism;
        ``prefill_workload.dp`` replicas form the M/G/c prefill queue.
      decode_system / decode_workload: one decode replica; ``decode_workload.dp`` replicas.
      link: the network the KV caches cross (e.g. ``hg.presets.scaleout("ib-ndr")``); each
        prefill chip sends its shard of a request's KV cache over one link.
      model, compression, service, engine, efficiency, options: as `evaluate_service`
        (the engine's token budget applies to the decode pool; prefill runs one prompt at a time).

    Returns:
      `DisaggregatedResult`.
    """
    if link is None:
        raise ValueError(
            "link = None: disaggregated prefill and decode pools need a network between them; "
            "pass link=hg.presets.scaleout('ib-ndr') (or the scale-up Network when both pools share one domain)"
        )
    efficiency = _defaults(efficiency)
    model, compression = pruning.resolve(model, compression)
    i_len = service.input_tokens
    lam = service.arrival_rate_rps
    # prefill pool: one prompt per pass, M/G/c over the replicas
    pwl = replace(_replica_workload(prefill_workload, service), batch=1.0)
    pre = forward_pass(prefill_system, model, pwl, compression, efficiency, i_len, 0.0, options)
    s_p = pre.time_s
    c = prefill_workload.dp
    cap_p = c / s_p
    rho_p = lam * s_p / c
    w = mgc_wait_s(lam, s_p, c, service.input_cv)
    theta = s_p / (c * (1.0 - _clip_rho(rho_p)))  # mean wait of those who wait (M/M/c structure)
    w_var = jnp.maximum(2.0 * w * theta - w**2, 0.0)
    # the KV cache crosses the link once; every prefill chip sends its shard
    kv_total = counts.kv_cache_bytes(model, compression, 1.0, i_len)
    kv_chip = kv_total / (counts.kv_shard_factor(model, prefill_workload.tp) * prefill_workload.pp)
    transfer = network.p2p_s(link, kv_chip)
    rho_net = lam / c * kv_chip / link.link_bandwidth_bytes_per_s
    cap_net = c * link.link_bandwidth_bytes_per_s / kv_chip

    # decode pool: the fixed point without prefill in its steps
    dsys = _offload_system(decode_system, engine)
    dwl = _replica_workload(decode_workload, service)
    ctx = i_len + service.output_tokens / 2.0
    fn, _ = _step_fn(dsys, model, dwl, compression, efficiency, options, ctx)
    n_kv = _max_sequences(dsys, model, dwl, compression, efficiency, service, engine)
    d = decode_workload.dp
    ss = steady_state(fn, service, engine, lam / d, n_kv, prefill=False)
    cap_d = d * ss.capacity_rps
    capacity = _smooth_min(_smooth_min(cap_p, cap_d), cap_net)
    # the decode pool's served rate already has min(lam, its capacity): taking the soft minimum
    # with lam again would meet it at a tie below capacity (a 0.35 % bias, ln 2 / 200)
    served = _smooth_min(d * ss.served_rps, RHO_MAX * _smooth_min(cap_p, cap_net))
    ttft = w + s_p + transfer
    ttft_var = w_var + (service.input_cv * s_p) ** 2
    util = ss.utilisations.at[3].set(rho_p).at[4].set(rho_net)
    caps = jnp.stack([cap_d, cap_p, cap_net])
    binding = jnp.stack([ss.binding, 3.0, 4.0])[jnp.argmin(caps)]
    ss = replace(
        ss,
        ttft_mean_s=ttft,
        ttft_var_s2=ttft_var,
        capacity_rps=capacity / d,
        served_rps=served / d,
        utilisations=util,
        binding=binding,
    )
    op = ss.op
    e_tok = expected_tokens_per_step(engine.spec_acceptance, engine.spec_draft_tokens)
    res = _result(ss, service, d, op, e_tok)
    # add each request's prefill energy to its output tokens
    res = replace(res, energy_j_per_token=res.energy_j_per_token + pre.energy_j / service.output_tokens)
    chips_p = prefill_workload.tp * prefill_workload.pp
    chips_d = decode_workload.tp * decode_workload.pp
    need_p = chips_p / cap_p * c  # chips per (request/s) on prefill
    need_d = chips_d / cap_d * d
    return DisaggregatedResult(
        service=res,
        prefill_capacity_rps=cap_p,
        decode_capacity_rps=cap_d,
        prefill_utilisation=rho_p,
        kv_transfer_s=transfer,
        kv_bytes_per_request=kv_total,
        balanced_prefill_fraction=need_p / (need_p + need_d),
    )


# ----------------------------------------------------------------------------- the edges


def _num(value, where: str) -> float:
    if value is None or isinstance(value, str | bytes | bool):
        raise ValueError(f"{where} = {value!r}: expected a number")
    arr = np.asarray(value, dtype=float)
    if arr.ndim != 0:
        return float(arr.ravel()[0]) if arr.size else math.nan
    return float(arr)


def _check(ok: bool, where: str, value: float, fix: str) -> None:
    if not ok:
        raise ValueError(f"{where} = {value:g}: {fix}")


def validate_service(
    service: Service, engine: Engine | None = None, system: System | None = None, name: str = "service"
) -> None:
    """Check a `Service` (and `Engine`, against ``system``'s tiers); raise a
    one-line ``ValueError`` naming the field, the value and the fix. Call at the edges
    (CLI, files, before a study), never inside ``jit``."""
    if not isinstance(service, Service):
        raise ValueError(f"{name} = {type(service).__name__}: expected a hwgrad.service.Service")
    r = _num(service.arrival_rate_rps, f"{name}.arrival_rate_rps")
    _check(
        math.isfinite(r) and r > 0,
        f"{name}.arrival_rate_rps",
        r,
        "the arrival rate must be a finite number > 0 requests/s",
    )
    for f in ("input_tokens", "output_tokens"):
        v = _num(getattr(service, f), f"{name}.{f}")
        _check(math.isfinite(v) and v >= 1, f"{name}.{f}", v, "mean lengths are >= 1 token")
    for f in ("input_cv", "output_cv"):
        v = _num(getattr(service, f), f"{name}.{f}")
        _check(
            math.isfinite(v) and 0 <= v <= 10,
            f"{name}.{f}",
            v,
            "a coefficient of variation lies in [0, 10] (0 = fixed lengths)",
        )
    for f in ("ttft_slo_s", "tpot_slo_s"):
        v = _num(getattr(service, f), f"{name}.{f}")
        _check(v > 0, f"{name}.{f}", v, "an SLO threshold is > 0 s (use inf for no SLO)")
    q = _num(service.percentile, f"{name}.percentile")
    _check(0 < q < 1, f"{name}.percentile", q, "the SLO percentile lies in (0, 1): 0.9 for p90, 0.99 for p99")
    if engine is None:
        return
    e = "engine"
    a = _num(engine.spec_acceptance, f"{e}.spec_acceptance")
    _check(
        0 <= a < 1,
        f"{e}.spec_acceptance",
        a,
        "the acceptance rate alpha lies in [0, 1) (see hwgrad.speculative.lookup)",
    )
    k = _num(engine.spec_draft_tokens, f"{e}.spec_draft_tokens")
    _check(
        0 <= k <= 64,
        f"{e}.spec_draft_tokens",
        k,
        "the draft length k lies in [0, 64] (0 = no speculative decoding)",
    )
    c = _num(engine.draft_cost_ratio, f"{e}.draft_cost_ratio")
    _check(
        0 <= c <= 1,
        f"{e}.draft_cost_ratio",
        c,
        "the draft's cost per token relative to the target's step lies in [0, 1]",
    )
    b = _num(engine.max_batched_tokens, f"{e}.max_batched_tokens")
    _check(
        math.isfinite(b) and b >= 1,
        f"{e}.max_batched_tokens",
        b,
        "the step's token budget is >= 1 (vLLM default 8192)",
    )
    s = _num(engine.max_num_seqs, f"{e}.max_num_seqs")
    _check(s >= 1, f"{e}.max_num_seqs", s, "at least one sequence must be allowed (vLLM default 256)")
    f = _num(engine.kv_offload_fraction, f"{e}.kv_offload_fraction")
    _check(0 <= f <= 1, f"{e}.kv_offload_fraction", f, "a fraction of the KV cache lies in [0, 1]")
    if f > 0 and system is not None:
        tiers = system.chip.tiers
        j = engine.kv_offload_tier
        if not 0 < j < len(tiers):
            raise ValueError(
                f"{e}.kv_offload_tier = {j}: the chip has {len(tiers)} tier(s); add one "
                "(hg.presets.designs.with_cxl_memory) or set kv_offload_fraction = 0"
            )
        if tiers[j].low_write_endurance:
            raise ValueError(
                f"{e}.kv_offload_tier = {j}: that tier has low write endurance (flash) and cannot hold the KV cache; "
                "offload to DRAM or CXL"
            )


def _resource_name(i: int) -> str:
    return RESOURCES[int(i)]


def saturation_message(result: ServiceResult) -> str:
    """``""`` when the rate is within capacity, else one line with the excess
    ("rate 12 req/s exceeds capacity 9.1 req/s (binding: kv_memory)")."""
    rate, cap = float(result.arrival_rate_rps), float(result.capacity_rps)
    if rate <= cap:
        return ""
    return (
        f"rate {rate:.3g} req/s exceeds capacity {cap:.3g} req/s (binding: {_resource_name(result.binding)}); "
        "add replicas, raise the KV capacity or lower the rate"
    )


def summary(result: ServiceResult) -> dict:
    """Plain-Python summary of one (unbatched) result: the stable keys of ``hwgrad serve --json``
    (the numbers are those of `metrics`, under the same names)."""
    m = {k: float(np.asarray(v)) for k, v in metrics(result).items()}
    step = result.decode_step
    comps = dict(zip(COMPONENTS, map(lambda x: float(np.asarray(x)), step.component_times()), strict=True))
    out = {k: m[k] for k in _SUMMARY_NUMBERS[:5]}
    out["saturated"] = bool(m["saturated"])
    out["utilisation"] = m["utilisation"]
    out["utilisations"] = {name: m[f"utilisations.{name}"] for name in RESOURCES}
    out["binding_resource"] = _resource_name(result.binding)
    out["step_bound_by"] = max(comps, key=comps.get)
    out.update({k: m[k] for k in _SUMMARY_NUMBERS[5:-1]})
    out["energy_j_per_token"] = m["serving_energy_j_per_token"]
    out["message"] = saturation_message(result)
    return out


# ----------------------------------------------------------------------------- served designs

#: the numbers of `summary` (``hwgrad serve --json``), in its order; ``energy_j_per_token``
#: is `metrics`' ``serving_energy_j_per_token`` (a design's ``energy_j_per_token`` is the
#: cost model's static batch)
_SUMMARY_NUMBERS = (
    "goodput_rps", "throughput_rps", "arrival_rate_rps", "capacity_rps", "rate_margin_rps", "percentile",
    "ttft_mean_s", "ttft_pct_s", "tpot_mean_s", "tpot_pct_s", "e2e_mean_s", "slo_attainment",
    "concurrency_per_replica", "step_s", "output_tokens_per_s", "serving_energy_j_per_token",
)  # fmt: skip

#: metrics of a served design (`design_metrics`; sweep columns, sensitivity rows, co-design
#: objectives and constraints), named as the keys of ``hwgrad serve --json``; per-resource
#: utilisations are ``utilisations.<resource>`` (`RESOURCES`), ``ttft_p90_s`` /
#: ``tpot_p90_s`` alias ``*_pct_s`` (the percentile is ``service.percentile``), the binding
#: resource is its index in `RESOURCES`, and the cost of the deployment is
#: ``serving_usd_per_s`` (capex amortised + electricity at the operating point; the
#: ``serving_chips`` = ``tp x pp x dp`` of each pool) and ``usd_per_million_good_requests`` (per request meeting both SLOs)
SERVICE_METRICS = (
    "goodput_rps", "throughput_rps", "arrival_rate_rps", "capacity_rps", "rate_margin_rps", "saturated",
    "utilisation", *(f"utilisations.{r}" for r in RESOURCES), "binding_resource_index", "percentile",
    "ttft_mean_s", "ttft_pct_s", "ttft_p90_s", "tpot_mean_s", "tpot_pct_s", "tpot_p90_s", "e2e_mean_s",
    "slo_attainment", "ttft_ok_fraction", "tpot_ok_fraction", "concurrency_per_replica", "step_s",
    "output_tokens_per_s", "serving_energy_j_per_token", "serving_chips", "serving_usd_per_s",
    "usd_per_million_good_requests",
)  # fmt: skip

#: added by a disaggregated design (a ``prefill`` `Pool`): the keys ``hwgrad serve --prefill-dp``
#: adds to its JSON, plus the prefill pool's utilisation
DISAGGREGATED_METRICS = (
    "prefill_capacity_rps", "decode_capacity_rps", "prefill_utilisation", "kv_transfer_s",
    "balanced_prefill_fraction",
)  # fmt: skip

#: the columns a sweep of a served design writes unless told otherwise
DEFAULT_SERVICE_METRICS = (
    "goodput_rps", "ttft_pct_s", "tpot_pct_s", "capacity_rps", "rate_margin_rps", "utilisation",
    "binding_resource_index", "usd_per_million_good_requests",
)  # fmt: skip

#: the optional roots of a design (`hwgrad.design`) that make it a served design
DESIGN_ROOTS = ("service", "engine", "prefill")


@spec
class Pool:
    """The prefill pool of a disaggregated deployment (a design's ``prefill`` root).

    The design's own ``system`` / ``workload`` are then the decode pool; the KV caches cross
    the decode system's ``scaleout`` network.

    Attributes:
      system: one prefill replica's chips (``workload.tp * workload.pp``) and network.
      workload: its parallelism; ``workload.dp`` prefill replicas (the M/G/c servers).
    """

    system: Any
    workload: Any


def metrics(result: ServiceResult) -> dict:
    """The `SERVICE_METRICS` of a result that a result alone defines (traceable; flat names).

    Args:
      result: a `ServiceResult` (batched or not).

    Returns:
      ``{name: array}`` (no cost metrics: those need the economics, `design_metrics`).
    """
    out = {
        "goodput_rps": result.goodput_rps,
        "throughput_rps": result.throughput_rps,
        "arrival_rate_rps": result.arrival_rate_rps,
        "capacity_rps": result.capacity_rps,
        "rate_margin_rps": result.rate_margin_rps,
        "saturated": result.saturated,
        "utilisation": result.utilisation,
    }
    util = jnp.asarray(result.utilisations)
    out.update({f"utilisations.{r}": util[..., i] for i, r in enumerate(RESOURCES)})
    out.update(
        binding_resource_index=jnp.asarray(result.binding, dtype=float),
        percentile=result.percentile,
        ttft_mean_s=result.ttft_mean_s,
        ttft_pct_s=result.ttft_pct_s,
        ttft_p90_s=result.ttft_pct_s,
        tpot_mean_s=result.tpot_mean_s,
        tpot_pct_s=result.tpot_pct_s,
        tpot_p90_s=result.tpot_pct_s,
        e2e_mean_s=result.e2e_mean_s,
        slo_attainment=result.slo_attainment,
        ttft_ok_fraction=result.ttft_ok_fraction,
        tpot_ok_fraction=result.tpot_ok_fraction,
        concurrency_per_replica=result.concurrency,
        step_s=result.step_s,
        output_tokens_per_s=result.output_tokens_per_s,
        serving_energy_j_per_token=result.energy_j_per_token,
    )
    return out


def capex_usd_per_s(system: System, economics, chips=None):
    """Capital cost of ``chips`` chips of ``system`` (default ``system.n_chips``) amortised per
    second of service, USD/s.

    `hwgrad.cost.capex_usd` (the capex of `hwgrad.evaluate`) over
    `hwgrad.cost.served_seconds`.
    """
    return capex_usd(system, economics, chips) / served_seconds(economics)


def _pool_chips(workload: Workload):
    """Chips of a pool: ``tp x pp`` per replica, ``dp`` replicas."""
    return workload.tp * workload.pp * workload.dp


def design_metrics(d, options: Options = Options()) -> dict:
    """`SERVICE_METRICS` (and `DISAGGREGATED_METRICS` with a ``prefill`` pool) of a design
    mapping with a ``service`` root, evaluated through `evaluate_service` /
    `evaluate_disaggregated`: the one binding of a served design for sweeps, sensitivities
    and co-design.

    Args:
      d: ``{system, model, workload, compression, efficiency, economics, service}`` plus
        optional ``engine`` (default `Engine`) and ``prefill`` (a `Pool`: disaggregated;
        the KV caches cross ``system.scaleout``).
      options: static evaluation options.

    Returns:
      ``{name: array}``, traceable (jit, vmap, jacfwd).
    """
    engine = d.get("engine") or Engine()
    service, econ = d["service"], d["economics"]
    system, wl = d["system"], d["workload"]
    pool = d.get("prefill")
    # the deployment is tp x pp x dp chips per pool (whatever system.n_chips says: a co-design
    # varies the replicas through workload.dp alone)
    chips = _pool_chips(wl)
    usd_s = capex_usd_per_s(system, econ, chips)
    if pool is None:
        res = evaluate_service(system, d["model"], wl, d["compression"], service, engine, d["efficiency"], options)
        out = metrics(res)
    else:
        dis = evaluate_disaggregated(
            pool.system, pool.workload, system, wl, d["model"], d["compression"], service, system.scaleout,
            engine, d["efficiency"], options,
        )  # fmt: skip
        res = dis.service
        out = metrics(res)
        out.update(
            prefill_capacity_rps=dis.prefill_capacity_rps,
            decode_capacity_rps=dis.decode_capacity_rps,
            prefill_utilisation=dis.prefill_utilisation,
            kv_transfer_s=dis.kv_transfer_s,
            balanced_prefill_fraction=dis.balanced_prefill_fraction,
        )
        usd_s = usd_s + capex_usd_per_s(pool.system, econ, _pool_chips(pool.workload))
        chips = chips + _pool_chips(pool.workload)
    power_w = res.energy_j_per_token * res.output_tokens_per_s
    usd_s = usd_s + power_w * econ.pue / units.KWH * econ.electricity_usd_per_kwh
    out["serving_chips"] = jnp.asarray(chips, dtype=float)
    out["serving_usd_per_s"] = usd_s
    # a design serving nobody within the SLOs costs "a lot" (finite: a co-design objective
    # must not see inf); 1e-9 req/s is a request every 30 years
    out["usd_per_million_good_requests"] = usd_s / jnp.maximum(res.goodput_rps, 1e-9) * 1e6
    return out


# ----------------------------------------------------------------------------- command line


#: service flags -> (root, field) of the served design, and the flag's help
_SERVICE_FLAGS = {
    "rate": ("service", "arrival_rate_rps", "arrival rate, requests/s over the system (serve: default 1)"),
    "input_cv": ("service", "input_cv", "coefficient of variation of prompt lengths (default 0)"),
    "output_cv": ("service", "output_cv", "coefficient of variation of output lengths (default 0)"),
    "ttft_slo_s": ("service", "ttft_slo_s", "TTFT SLO, s (default 1)"),
    "tpot_slo_s": ("service", "tpot_slo_s", "TPOT SLO, s (default 0.05)"),
    "percentile": ("service", "percentile", "SLO percentile in (0, 1) (default 0.9)"),
    "max_batched_tokens": ("engine", "max_batched_tokens", "token budget per step (chunk; default 8192)"),
    "max_num_seqs": ("engine", "max_num_seqs", "most sequences decoding at once (default 256)"),
    "spec_alpha": ("engine", "spec_acceptance", "speculative decoding acceptance in [0, 1) (default 0)"),
    "spec_k": ("engine", "spec_draft_tokens", "draft tokens per step (default 0 = off)"),
    "draft_cost_ratio": ("engine", "draft_cost_ratio", "draft cost per token / target step (default 0)"),
    "kv_offload_fraction": ("engine", "kv_offload_fraction", "KV cache share in tier 1 (default 0)"),
}


def add_service_arguments(p) -> None:
    """The flags of a served design (``hwgrad serve``, ``sweep``, ``sensitivity``; the keys of a
    sweep file's ``[design]``): ``--rate`` (or a ``[service]`` table in ``--config``) makes a
    design a served one; the others default to `Service` / `Engine`'s defaults."""
    g = p.add_argument_group(
        "service",
        "serving under a request rate (hwgrad.service): --rate, or a [service] table in the design file, makes "
        "the design a served one (metrics goodput_rps, ttft_pct_s, tpot_pct_s, ...; lengths default to "
        "--prompt-len / --output-len); hwgrad serve defaults to 1 req/s",
    )
    for flag, (_, _, text) in _SERVICE_FLAGS.items():
        g.add_argument("--" + flag.replace("_", "-"), type=float, help=text)
    g.add_argument(
        "--prefill-dp",
        type=int,
        help="disaggregate: this many prefill replicas of the decode replicas' shape (--dp decode replicas; the "
        "KV cache crosses the scale-out network)",
    )


def service_specs(args, base: dict, system: System, workload: Workload, force: bool = False) -> dict:
    """The ``service`` / ``engine`` / ``prefill`` roots a design gets from the service flags and
    the design file's ``[service]`` / ``[engine]`` tables (flags win); ``{}`` when neither
    asks for a service (unless ``force``, as ``hwgrad serve`` does).

    Mean lengths default to the workload's ``prompt_len`` / ``output_len``.
    """
    from .config import _override

    svc_t = dict(base.get("service_fields") or {})
    eng_t = dict(base.get("engine_fields") or {})
    for flag, (root, field, _) in _SERVICE_FLAGS.items():
        v = getattr(args, flag, None)
        if v is not None:
            (svc_t if root == "service" else eng_t)[field] = float(v)
    prefill_dp = getattr(args, "prefill_dp", None)
    if not (force or svc_t or eng_t or prefill_dp):
        return {}
    svc_t.setdefault("input_tokens", float(workload.prompt_len))
    svc_t.setdefault("output_tokens", float(workload.output_len))
    out = {
        "service": _override(Service(), Service, svc_t, "[service]"),
        "engine": _override(Engine(), Engine, eng_t, "[engine]"),
    }
    if prefill_dp is not None and prefill_dp < 0:
        raise ValueError(f"--prefill-dp = {prefill_dp}: give 0 (aggregated) or a number of prefill replicas")
    if prefill_dp:
        per_replica = float(workload.tp) * float(workload.pp)
        out["prefill"] = Pool(
            system=replace(system, n_chips=per_replica * prefill_dp),
            workload=replace(workload, dp=float(prefill_dp)),
        )
    return out


def validate_design_service(d: dict) -> None:
    """`validate_service` of a design's ``service`` / ``engine`` roots, and its ``prefill``
    pool's specs (`hwgrad.validate`); nothing without a service."""
    if d.get("service") is None:
        return
    validate_service(d["service"], d.get("engine") or Engine(), d["system"])
    pool = d.get("prefill")
    if pool is not None:
        from .validate import validate

        if not isinstance(pool, Pool):
            raise ValueError(f"prefill = {type(pool).__name__}: expected a hwgrad.service.Pool(system, workload)")
        validate(pool.system, d["model"], pool.workload, d["compression"])
        if d["system"].scaleout is None:
            raise ValueError(
                "system.scaleout = None: disaggregated prefill and decode pools need a network between them; "
                "give the system a scale-out network (hg.presets.scaleout('ib-ndr'))"
            )


def register_cli(subparsers) -> None:
    """``hwgrad serve``: goodput, TTFT/TPOT at the percentile, utilisation and the binding
    resource of one design under a request rate (``--json`` for the keys of `summary`)."""
    from .cli import add_design_arguments

    p = subparsers.add_parser(
        "serve",
        help="serving under a request rate: goodput, TTFT/TPOT at a percentile, the binding resource",
        description="Steady state of a continuous-batching deployment (hwgrad.service) under Poisson "
        "arrivals: --prompt-len / --output-len are the mean lengths, --dp the replicas sharing the rate.",
    )
    add_design_arguments(p)
    add_service_arguments(p)
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=_cmd_serve, serve_command=True)


def _cmd_serve(args) -> int:
    import json

    from .cli import design_from_args, enable_compile_cache

    enable_compile_cache()
    d = design_from_args(args)
    service, engine, pool = d["service"], d["engine"], d.get("prefill")
    wl = d["workload"]
    if pool is not None:
        fn = jax.jit(evaluate_disaggregated, static_argnames=("options",))
        out = fn(
            pool.system,
            pool.workload,
            d["system"],
            wl,
            d["model"],
            d["compression"],
            service,
            d["system"].scaleout,
            engine,
            d["efficiency"],
        )
        res = jax.device_get(out.service)
        extra = {
            "prefill_capacity_rps": float(out.prefill_capacity_rps),
            "decode_capacity_rps": float(out.decode_capacity_rps),
            "kv_transfer_s": float(out.kv_transfer_s),
            "balanced_prefill_fraction": float(out.balanced_prefill_fraction),
        }
    else:
        fn = jax.jit(evaluate_service, static_argnames=("options",))
        res = jax.device_get(
            fn(d["system"], d["model"], wl, d["compression"], service, engine, d["efficiency"])
        )
        extra = {}
    rep = {**summary(res), **extra}
    if args.json:
        print(json.dumps(rep, indent=2, allow_nan=False))
        return 0
    ttft_slo, tpot_slo = float(service.ttft_slo_s), float(service.tpot_slo_s)
    pct = f"p{rep['percentile'] * 100:g}"
    print(
        f"goodput {rep['goodput_rps']:.4g} req/s ({rep['slo_attainment']:.1%} within TTFT {pct} <= "
        f"{ttft_slo:g} s and TPOT {pct} <= {tpot_slo * 1e3:g} ms)"
    )
    print(
        f"TTFT {pct} {rep['ttft_pct_s']:.3g} s (mean {rep['ttft_mean_s']:.3g} s) | TPOT {pct} "
        f"{rep['tpot_pct_s'] * 1e3:.3g} ms (mean {rep['tpot_mean_s'] * 1e3:.3g} ms)"
    )
    print(
        f"throughput {rep['throughput_rps']:.4g} req/s, {rep['output_tokens_per_s']:.4g} tok/s | capacity "
        f"{rep['capacity_rps']:.4g} req/s | utilisation {rep['utilisation']:.0%} | "
        f"{rep['concurrency_per_replica']:.3g} sequences per replica"
    )
    b = rep["binding_resource"]
    print(
        f"binding resource: {b} ({rep['utilisations'][b]:.2f}); the step is bound by {rep['step_bound_by']}"
    )
    for k, v in extra.items():
        print(f"{k}: {v:.4g}")
    if rep["message"]:
        print(rep["message"])
    return 0
