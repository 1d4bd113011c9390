"""Forward and gradient throughput of the serving model (`hwgrad.evaluate_service`),
vmapped over design points.

Llama-3.1-70B on 8 x H100 (TP 8), fp8 weights and KV, continuous batching under Poisson
arrivals; each design point draws its own arrival rate (1-40 req/s), mean prompt (256-8192)
and output (64-1024) lengths, HBM bandwidth and peak FLOPS. Points are sharded over every
local device (one CPU device per usable core) and evaluated with ``jax.lax.map`` over
``vmap``-ed chunks: the layout of sweeps and ``bench_eval.py``
(`hwgrad.sweep.evaluate.sharded_map`). The gradient is that of log TTFT p90 + log TPOT p90
with respect to every leaf. ``core pass`` times one steady-state decode step of the cost model
(`hwgrad.cost.forward_pass`, the function the service evaluates ~a dozen times per point:
capacity and no-load steps, the Newton iterations' JVPs, the four steps at the operating
point) at the same points, so ``service = N core passes`` says where the time goes. Ends with
(``--skip-gradient`` on the 2-core development machine at load 2.5, 2026-12-02):

    forward 1.8e+05 points/s | gradient nan points/s | compile 8.43 s | core pass 4.3e+06 points/s

Usage: python benchmarks/bench_service.py [--points 20480] [--repeats 2] [--skip-gradient]
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from hwgrad.sweep import set_cpu_devices

set_cpu_devices()  # before jax starts: one CPU device per usable core (no-op if XLA_FLAGS sets it)

import hwgrad as hg  # noqa: E402
from hwgrad import cost  # noqa: E402
from hwgrad.sweep.evaluate import sharded_map  # noqa: E402


def design_points(n: int, seed: int = 0):
    """Stacked (system, service) pytrees with ``n`` random design points."""
    rng = np.random.default_rng(seed)
    base = hg.presets.system("h100-sxm", 8)
    u = lambda lo, hi: jnp.asarray(np.exp(rng.uniform(np.log(lo), np.log(hi), n)), jnp.float32)  # noqa: E731
    bcast = lambda tree: jax.tree_util.tree_map(  # noqa: E731
        lambda x: jnp.broadcast_to(jnp.asarray(x, jnp.float32), (n,)), tree
    )
    tier = bcast(hg.replace(base.chip.tiers[0], bandwidth_bytes_per_s=u(2e12, 8e12)))
    peak = u(5e14, 2e15)
    chip = bcast(
        hg.replace(
            base.chip, tiers=(tier,), peak_flops_bf16=peak, peak_flops_fp8=2 * peak, peak_flops_fp4=4 * peak
        )
    )
    system = bcast(hg.replace(base, chip=chip))
    service = bcast(
        hg.Service(
            arrival_rate_rps=u(1.0, 40.0), input_tokens=u(256.0, 8192.0), output_tokens=u(64.0, 1024.0)
        )
    )
    return system, service


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=20480, help="rounded up to devices x chunk")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--forward-chunk", type=int, default=512)
    ap.add_argument("--gradient-chunk", type=int, default=128)
    ap.add_argument(
        "--skip-gradient", action="store_true", help="forward only (the gradient compiles for minutes)"
    )
    args = ap.parse_args()
    model = hg.presets.model("llama-3.1-70b")
    comp = hg.compression("fp8", "fp8")
    wl = hg.Workload(tp=8.0)
    eff = hg.calibrated_efficiency()
    print(f"hwgrad {hg.__version__}, jax {jax.__version__}, {jax.device_count()} device(s)")
    print("model: llama-3.1-70b on 8 x h100-sxm, tp 8, fp8, continuous batching, rate 1-40 req/s")

    def value(system, service):
        return hg.evaluate_service(system, model, wl, comp, service, efficiency=eff).goodput_rps

    def objective(system, service):
        r = hg.evaluate_service(system, model, wl, comp, service, efficiency=eff)
        return jnp.log(r.ttft_pct_s) + jnp.log(r.tpot_pct_s)

    grad = jax.grad(objective, argnums=(0, 1))

    mesh = jax.sharding.Mesh(np.asarray(jax.devices()), ("sweep",))

    def core(system, service):
        wl_step = hg.replace(wl, batch=64.0)
        new_tokens = 1.0 + service.input_tokens / service.output_tokens
        ctx = service.input_tokens + service.output_tokens / 2.0
        return cost.forward_pass(system, model, wl_step, comp, eff, new_tokens, ctx, steady_state=True).time_s

    forward = sharded_map(value, mesh, args.forward_chunk)
    gradient = sharded_map(grad, mesh, args.gradient_chunk)
    core_pass = sharded_map(core, mesh, args.forward_chunk)
    step = len(jax.devices()) * max(args.forward_chunk, args.gradient_chunk)
    n = -(-args.points // step) * step
    pts = design_points(n)
    t = time.perf_counter()
    jax.block_until_ready(forward(*pts))
    compile_s = time.perf_counter() - t
    rates = {"gradient": float("nan")}
    todo = [("forward", forward), ("core pass", core_pass)]
    if not args.skip_gradient:
        todo.append(("gradient", gradient))
    for name, fn in todo:
        jax.block_until_ready(fn(*pts))  # compile (gradient, core) / warm
        best = min(_timed(fn, pts) for _ in range(args.repeats))
        rates[name] = n / best
        print(f"{name}: batch {n:,}: {best * 1e3:.1f} ms, {rates[name]:.3g} points/s")
    print(f"service = {rates['core pass'] / rates['forward']:.1f} core passes per point")
    finite = bool(np.all(np.isfinite(np.asarray(forward(*pts)))))
    print(f"all goodputs finite: {finite}")
    print(
        f"forward {rates['forward']:.2g} points/s | gradient {rates['gradient']:.2g} points/s | "
        f"compile {compile_s:.2f} s | core pass {rates['core pass']:.2g} points/s"
    )


def _timed(fn, pts) -> float:
    t = time.perf_counter()
    jax.block_until_ready(fn(*pts))
    return time.perf_counter() - t


if __name__ == "__main__":
    main()
