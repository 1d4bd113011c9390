"""Forward and gradient throughput of the full model, vmapped over design points.

Llama-3.1-70B on 8 x H100 (TP 8), fp8 weights and KV, batch 32, prompt 2048, output 512;
each design point draws its own memory bandwidth and capacity, peak FLOPS, link bandwidth
and latency, batch, and weight / KV bits. Points are sharded over every local device (the CPU
is split into one jax device per usable core, `hwgrad.sweep.set_cpu_devices`) and, on each
device, evaluated with ``jax.lax.map`` over ``vmap``-ed chunks (512 forward, 128 gradient), the
layout that keeps intermediates in cache: the one layout of sweeps, forward and gradient
(`hwgrad.sweep.evaluate.sharded_map`). Prints points/s for forward evaluation and for the
gradient of log TPOT + log $/M tokens with respect to every leaf, plus compile time and the
wall time of one `hwgrad.sensitivity` call, and ends with:

    forward 1.2e+06 points/s | gradient 3.4e+05 points/s | compile 1.10 s

Usage: python benchmarks/bench_eval.py [--points 100000] [--repeats 3]
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
from hwgrad.sensitivity import sensitivity  # noqa: E402
from hwgrad.sweep.evaluate import sharded_map  # noqa: E402


def design_points(n: int, seed: int = 0):
    """Stacked (system, workload, compression) pytrees with ``n`` random design points."""
    rng = np.random.default_rng(seed)
    # every leaf gets a leading axis of n (specs carry more numbers than the ones drawn here)
    stack = lambda tree: jax.tree_util.tree_map(
        lambda x: jnp.broadcast_to(jnp.asarray(x, jnp.float32), (n, *jnp.shape(x))), tree
    )
    base = stack(hg.presets.system("h100-sxm", 8))
    u = lambda lo, hi: jnp.asarray(np.exp(rng.uniform(np.log(lo), np.log(hi), n)), jnp.float32)
    tier = hg.replace(base.chip.tiers[0], bandwidth_bytes_per_s=u(1e12, 1e13), capacity_bytes=u(40e9, 300e9))
    peak = u(5e14, 5e15)
    chip = hg.replace(
        base.chip, tiers=(tier,), peak_flops_bf16=peak, peak_flops_fp8=2 * peak, peak_flops_fp4=4 * peak
    )
    net = hg.replace(base.network, link_bandwidth_bytes_per_s=u(1e11, 2e12), hop_latency_s=u(5e-8, 2e-6))
    system = hg.replace(base, chip=chip, network=net)
    workload = hg.replace(
        stack(hg.Workload(batch=1.0, prompt_len=2048.0, output_len=512.0, tp=8.0)), batch=jnp.round(u(1, 256))
    )
    comp = hg.replace(stack(hg.compression("fp8", "fp8")), weight_bits=u(3, 16), kv_bits=u(3, 16))
    return system, workload, comp


def cli_cold_start_s() -> tuple[float, float]:
    """Wall time of ``hwgrad eval`` in a fresh process: empty on-disk compile cache, then warm."""
    import os
    import subprocess
    import sys
    import tempfile

    argv = [sys.executable, "-m", "hwgrad.cli", *"eval --weight-dtype fp8 --kv-dtype fp8 --json".split()]
    times = []
    with tempfile.TemporaryDirectory() as cache:
        for _ in range(3):
            t0 = time.perf_counter()
            env = dict(os.environ, HWGRAD_CACHE_DIR=cache)
            subprocess.run(argv, env=env, check=True, capture_output=True)
            times.append(time.perf_counter() - t0)
    return times[0], min(times[1:])


def sensitivity_call_s(model, eff, econ, calls: int = 20) -> tuple[float, float, int]:
    """Wall time of `hwgrad.sensitivity` at the benchmark's design point: the first call
    (trace + compile) and the mean of later calls at other batch sizes (same structure)."""
    system = hg.presets.system("h100-sxm", 8)
    comp = hg.compression("fp8", "fp8")
    workload = lambda b: hg.Workload(batch=float(b), prompt_len=2048.0, output_len=512.0, tp=8.0)
    t0 = time.perf_counter()
    s = sensitivity(system, model, workload(32), comp, eff, econ)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    for b in range(1, calls + 1):
        sensitivity(system, model, workload(b), comp, eff, econ)
    return first, (time.perf_counter() - t0) / calls, len(s.knobs)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--forward-chunk", type=int, default=512, help="points per vmapped chunk (forward)")
    ap.add_argument("--gradient-chunk", type=int, default=128, help="points per vmapped chunk (gradient)")
    args = ap.parse_args()

    model = hg.presets.model("llama-3.1-70b")
    eff = hg.calibrated_efficiency()
    econ = hg.presets.default_economics()

    def objective(system, workload, comp):
        r = hg.evaluate(system, model, workload, comp, eff, econ)
        return jnp.log(r.tpot_s) + jnp.log(r.usd_per_million_tokens)

    point_value = lambda s, w, c: hg.evaluate(s, model, w, c, eff, econ).tpot_s
    point_grad = jax.grad(objective, argnums=(0, 1, 2))

    mesh = jax.sharding.Mesh(np.asarray(jax.devices()), ("sweep",))
    sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("sweep"))

    def chunked(fn, chunk):
        # shard over the devices, then vmap in cache-sized chunks: a 1e5-point vmap in one piece
        # is memory-bound on CPU; points are padded to a multiple of devices x chunk
        mapped = sharded_map(fn, mesh, chunk)
        step = mesh.size * chunk

        def run(*pts):
            n = jax.tree_util.tree_leaves(pts)[0].shape[0]
            total = -(-n // step) * step
            pad = lambda x: jax.device_put(jnp.concatenate([x, jnp.repeat(x[-1:], total - n, 0)]), sharding)
            return mapped(*jax.tree_util.tree_map(pad, pts))

        return run

    forward = chunked(point_value, args.forward_chunk)
    gradient = chunked(point_grad, args.gradient_chunk)

    print(
        f"hwgrad {hg.__version__}, jax {jax.__version__}, {jax.device_count()} {jax.default_backend()} device(s)"
    )
    print("model: llama-3.1-70b on 8 x h100-sxm, tp 8, fp8, batch 1-256, prompt 2048, output 512")

    one = design_points(1)
    t0 = time.perf_counter()
    single = jax.jit(lambda s, w, c: hg.evaluate(s, model, w, c, eff, econ).tpot_s)
    jax.block_until_ready(single(*jax.tree_util.tree_map(lambda x: x[0], one)))
    compile_s = time.perf_counter() - t0
    pt = jax.tree_util.tree_map(lambda x: x[0], one)
    t0 = time.perf_counter()
    for _ in range(100):
        jax.block_until_ready(single(*pt))
    single_s = (time.perf_counter() - t0) / 100
    print(f"single point: compile {compile_s:.2f} s, then {single_s * 1e6:.0f} us per call (dispatch-bound)")
    cold, warm = cli_cold_start_s()
    print(f"CLI cold start (hwgrad eval, new process): {warm:.2f} s, compile cache warm; {cold:.2f} s empty")

    first_s, per_call_s, n_knobs = sensitivity_call_s(model, eff, econ)
    print(
        f"sensitivity (hwgrad.sensitivity, one point, {n_knobs} knobs): first call {first_s:.2f} s, "
        f"then {per_call_s * 1e3:.1f} ms per call"
    )

    results = {}
    for name, fn in (("forward", forward), ("gradient", gradient)):
        print(f"{name}:")
        rate = 0.0
        for n in (1, 100, 10_000, args.points):
            pts = design_points(n)  # timed calls include padding and the transfer to the devices
            jax.block_until_ready(fn(*pts))  # compile for this shape
            best = float("inf")
            for _ in range(args.repeats if n >= 10_000 else 20):
                t0 = time.perf_counter()
                jax.block_until_ready(fn(*pts))
                best = min(best, time.perf_counter() - t0)
            rate = n / best
            print(f"  batch {n:>9,}: {best * 1e3:9.2f} ms  {rate:10.3g} points/s")
        results[name] = rate
    print(
        f"forward {results['forward']:.1e} points/s | gradient {results['gradient']:.1e} points/s | compile {compile_s:.2f} s"
    )


if __name__ == "__main__":
    main()
