"""hwgrad against llm-analysis and GenZ (genz-llm) on the same configurations, in one run.

Configurations: Llama-3.1-70B on 8 x H100-SXM (80 GB), TP 8, bf16 weights and KV cache,
prompt 2048 tokens, output 512 tokens, batch 1 ... 128. Each tool predicts the time per
output token (TPOT) of each configuration; the table puts them side by side (hwgrad with
its calibrated efficiencies and at speed of light; the peers with their defaults).

Per-configuration cost: the peers are Python loops evaluating one configuration per call
(median of ``--repeats`` calls per configuration); hwgrad evaluates the same
configurations, replicated to ``--points`` points, as one sharded, vmapped sweep
(`hwgrad.sweep.Evaluator`, compile excluded), and, for reference, one jitted call
per point (dispatch-bound). Ends with one line:

    per-configuration speedup: llm-analysis 850x | genz 2.1e+05x

(each peer's cost over the hwgrad sweep's, all 8 default metrics per point, on one jax
device per CPU core; ``n/a`` when a peer is not installed or fails, with the reason
printed above). The peers are an optional extra:

    pip install -e '.[peers]'      # llm-analysis, genz-llm

Notes: llm-analysis cannot express a gated (SwiGLU) MLP, so Llama's three
``8192 x 28672`` matrices are given as an equivalent two-matrix MLP of width
``5.25 x 8192`` (same weights and FLOPs). GenZ is run with ``Bb=1`` (no beam search).

Usage: python benchmarks/bench_peers.py [--points 131072] [--repeats 20] [--genz-repeats 3]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time
import warnings

import numpy as np

BATCHES = (1, 8, 32, 64, 128)
PROMPT, OUTPUT, TP = 2048, 512, 8


# ----------------------------------------------------------------------------- peers


def llm_analysis_runner():
    """A function batch -> TPOT (s), or raise with the reason it cannot run."""
    import llm_analysis.analysis as la
    from llm_analysis.config import (
        ModelConfig,
        ParallelismConfig,
        get_dtype_config_by_name,
        get_gpu_config_by_name,
    )

    la.logger.setLevel(logging.ERROR)  # its INFO logging would dominate the timing
    model = ModelConfig(
        name="llama-3.1-70b", num_layers=80, n_head=64, hidden_dim=8192, vocab_size=128256,
        max_seq_len=131072, num_key_value_heads=8, expansion_ratio=5.25, model_type="llama",
    )  # fmt: skip
    gpu = get_gpu_config_by_name("h100-sxm-80gb")
    dtype = get_dtype_config_by_name("w16a16e16")

    def run(batch: int) -> float:
        analysis = la.LLMAnalysis(
            model, gpu, dtype, ParallelismConfig(tp_size=TP, pp_size=1, sp_size=TP, dp_size=1)
        )
        out = analysis.inference(batch_size_per_gpu=batch, seq_len=PROMPT, num_tokens_to_generate=OUTPUT)
        return float(out["decode_latency"])

    return run


def genz_runner():
    from GenZ import decode_moddeling

    def run(batch: int) -> float:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = decode_moddeling(
                model="meta-llama/Llama-3.1-70B", batch_size=batch, input_tokens=PROMPT, output_tokens=OUTPUT,
                system_name="H100_GPU", bits="bf16", tensor_parallel=TP, Bb=1,
            )  # fmt: skip
        return float(out["Latency"]) * 1e-3  # ms

    return run


def time_peer(run, repeats: int) -> tuple[dict[int, float], float]:
    """TPOT per batch and the median seconds per configuration."""
    tpot, times = {}, []
    for b in BATCHES:
        tpot[b] = run(b)  # first call: imports, caches
        for _ in range(repeats):
            t0 = time.perf_counter()
            run(b)
            times.append(time.perf_counter() - t0)
    return tpot, statistics.median(times)


# ----------------------------------------------------------------------------- hwgrad


def hwgrad_numbers(points: int, repeats: int) -> dict:
    import jax

    import hwgrad as hg
    from hwgrad import sweep as sw

    d = sw.design(
        hg.presets.system("h100-sxm", TP),
        hg.presets.model("llama-3.1-70b"),
        hg.Workload(batch=1.0, prompt_len=float(PROMPT), output_len=float(OUTPUT), tp=float(TP)),
        hg.compression("bf16"),
    )
    configs = np.asarray(BATCHES, dtype=float)[:, None]
    tpot = {}
    for label, eff in (("calibrated", None), ("speed of light", hg.Efficiency.speed_of_light())):
        dd = d if eff is None else dict(d, efficiency=eff)
        ev = sw.Evaluator(dd, ["workload.batch"], ("tpot_s",))
        tpot[label] = dict(zip(BATCHES, ev(configs)[:, 0].tolist(), strict=True))

    values = configs[np.arange(points) % len(BATCHES)]
    per_config = {}
    for label, metrics in (("all", sw.DEFAULT_METRICS), ("tpot", ("tpot_s",))):
        ev = sw.Evaluator(d, ["workload.batch"], metrics)
        ev(values)  # compile
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            ev(values)
            best = min(best, time.perf_counter() - t0)
        per_config[label] = best / points

    single = jax.jit(lambda s, m, w, c, e, x: hg.evaluate(s, m, w, c, e, x).tpot_s)
    args = [d[r] for r in sw.ROOTS]
    jax.block_until_ready(single(*args))
    t0 = time.perf_counter()
    for _ in range(200):
        jax.block_until_ready(single(*args))
    single_s = (time.perf_counter() - t0) / 200
    return dict(
        tpot=tpot, per_config_s=per_config["all"], tpot_only_s=per_config["tpot"], single_s=single_s,
        devices=jax.device_count(),
    )  # fmt: skip


# ----------------------------------------------------------------------------- report


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--points", type=int, default=131_072, help="hwgrad points (the configurations, replicated)"
    )
    ap.add_argument("--repeats", type=int, default=20, help="timed calls per configuration (llm-analysis)")
    ap.add_argument("--genz-repeats", type=int, default=3, help="timed calls per configuration (GenZ, slow)")
    ap.add_argument(
        "--cpu-devices", type=int, help="jax CPU devices (default: one per core; a device uses one core)"
    )
    args = ap.parse_args()

    from hwgrad.sweep import set_cpu_devices

    set_cpu_devices(args.cpu_devices)  # before jax starts

    import importlib.metadata as md

    import jax

    import hwgrad as hg

    def version(pkg):
        try:
            return md.version(pkg)
        except md.PackageNotFoundError:
            return None

    print(
        f"hwgrad {hg.__version__} (jax {jax.__version__}, {jax.device_count()} {jax.default_backend()} device(s)); "
        f"llm-analysis {version('llm-analysis') or 'not installed'}; genz-llm {version('genz-llm') or 'not installed'}"
    )
    print(
        f"llama-3.1-70b, 8 x h100-sxm, tp {TP}, bf16, prompt {PROMPT}, output {OUTPUT}, batch {', '.join(map(str, BATCHES))}"
    )
    print()

    hw = hwgrad_numbers(args.points, 3)
    peers = {}
    for name, pkg, factory, repeats in (
        ("llm-analysis", "llm-analysis", llm_analysis_runner, args.repeats),
        ("genz", "genz-llm", genz_runner, args.genz_repeats),
    ):
        if version(pkg) is None:
            print(f"{name}: not installed; pip install -e '.[peers]' (or pip install {pkg})")
            continue
        try:
            peers[name] = time_peer(factory(), repeats)
        except Exception as exc:  # a peer failing must not hide the others' numbers
            print(f"{name}: could not run ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})")

    print("predicted TPOT (ms)")
    cols = ["hwgrad calibrated", "hwgrad speed of light", *peers]
    print(f"  {'batch':>5}" + "".join(f"{c:>23}" for c in cols))
    for b in BATCHES:
        vals = [
            hw["tpot"]["calibrated"][b],
            hw["tpot"]["speed of light"][b],
            *(p[0][b] for p in peers.values()),
        ]
        print(f"  {b:>5}" + "".join(f"{v * 1e3:>23.3f}" for v in vals))
    print()
    print("time per configuration")
    print(
        f"  hwgrad, sweep of {args.points:,} points on {hw['devices']} device(s): {hw['per_config_s'] * 1e6:.3g} us "
        f"(8 metrics per point; {hw['tpot_only_s'] * 1e6:.3g} us for TPOT alone)"
    )
    print(f"  hwgrad, one jitted call per point (dispatch-bound): {hw['single_s'] * 1e6:.3g} us")
    ratios = {}
    for name, (_, per) in peers.items():
        ratios[name] = per / hw["per_config_s"]
        print(
            f"  {name}: {per * 1e3:.3g} ms per configuration -> ratio to the hwgrad sweep {ratios[name]:.3g}x "
            f"(TPOT alone {per / hw['tpot_only_s']:.3g}x), to one jitted hwgrad call {per / hw['single_s']:.3g}x"
        )
    fmt = lambda name: f"{ratios[name]:.3g}x" if name in ratios else "n/a"
    print(f"per-configuration speedup: llm-analysis {fmt('llm-analysis')} | genz {fmt('genz')}")


if __name__ == "__main__":
    main()
