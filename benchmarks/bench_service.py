"""Forward and gradient throughput of the serving model (`hwgrad.evaluate_service`),
vmapped over design points.

Llama-3.1-70B on 8 x H100 (TP 8), fp8 weights and KV, continuous batching under Poisson
arrivals; each design point draws its own arrival rate (1-40 req/s), mean prompt (256-8192)
and output (64-1024) lengths, HBM bandwidth and peak FLOPS. Points are evaluated with
``jax.lax.map`` over ``vmap``-ed chunks (the layout of ``bench_eval.py``). The gradient is
that of log TTFT p90 + log TPOT p90 with respect to every leaf. Ends with:

    forward 1.2e+05 points/s | gradient 3.4e+04 points/s | compile 10.1 s

Usage: python benchmarks/bench_service.py [--points 20000] [--repeats 2]
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

import hwgrad as hg


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
    ap.add_argument("--points", type=int, default=20000)
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
    print(f"hwgrad {hg.__version__}, jax {jax.__version__}, {jax.device_count()} cpu device(s)")
    print("model: llama-3.1-70b on 8 x h100-sxm, tp 8, fp8, continuous batching, rate 1-40 req/s")

    def value(system, service):
        return hg.evaluate_service(system, model, wl, comp, service, efficiency=eff).goodput_rps

    def objective(system, service):
        r = hg.evaluate_service(system, model, wl, comp, service, efficiency=eff)
        return jnp.log(r.ttft_pct_s) + jnp.log(r.tpot_pct_s)

    grad = jax.grad(objective, argnums=(0, 1))

    def chunked(fn, chunk):
        return jax.jit(lambda *pts: jax.lax.map(lambda p: fn(*p), pts, batch_size=chunk))

    forward = chunked(value, args.forward_chunk)
    gradient = chunked(grad, args.gradient_chunk)
    pts = design_points(args.points)
    t = time.perf_counter()
    jax.block_until_ready(forward(*pts))
    compile_s = time.perf_counter() - t
    rates = {"gradient": float("nan")}
    todo = (("forward", forward),) if args.skip_gradient else (("forward", forward), ("gradient", gradient))
    for name, fn in todo:
        jax.block_until_ready(fn(*pts))  # compile (gradient) / warm
        best = min(_timed(fn, pts) for _ in range(args.repeats))
        rates[name] = args.points / best
        print(f"{name}: batch {args.points:,}: {best * 1e3:.1f} ms, {rates[name]:.3g} points/s")
    finite = bool(np.all(np.isfinite(np.asarray(forward(*pts)))))
    print(f"all goodputs finite: {finite}")
    print(
        f"forward {rates['forward']:.2g} points/s | gradient {rates['gradient']:.2g} points/s | "
        f"compile {compile_s:.2f} s"
    )


def _timed(fn, pts) -> float:
    t = time.perf_counter()
    jax.block_until_ready(fn(*pts))
    return time.perf_counter() - t


if __name__ == "__main__":
    main()
