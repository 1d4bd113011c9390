"""Artifact 6 - prefill vs decode: arithmetic intensity (FLOP per byte moved, from
`hwgrad.counts.forward_counts`) vs batch and context, against the roofline ridge
points of today's chips. Llama-3.1-70B, bf16, one chip's share at TP=8.

    python experiments/a06_prefill_decode.py [--quick] [--out DIR]
"""

from __future__ import annotations

from pathlib import Path

import common as c
import jax
import jax.numpy as jnp

import hwgrad as hg

NAME = "a06_prefill_decode"
CHIPS = ("h100-sxm", "b200", "tpu-v6e")


@jax.jit
def _intensity(model, work, comp, new_tokens, context):
    ops, _ = hg.counts.forward_counts(model, comp, work, new_tokens, context)
    return jnp.sum(ops.flops) / jnp.sum(hg.counts.bytes_moved(ops))


def compute(out_dir: Path, quick: bool = False) -> dict:
    model = hg.presets.model("llama-3.1-70b")
    comp = hg.compression("bf16")
    batches = [1, 8, 64, 512] if quick else [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]
    contexts = [1024, 32768] if quick else [1024, 8192, 32768, 131072]
    rows = []
    for ctx in contexts:
        for b in batches:
            w = hg.Workload(batch=float(b), tp=8.0)
            rows.append(
                {
                    "phase": "decode",
                    "batch": b,
                    "tokens": float(ctx),
                    "intensity_flop_per_byte": float(_intensity(model, w, comp, 1.0, float(ctx))),
                }
            )
    for prompt in [128, 2048] if quick else [32, 128, 512, 2048, 8192, 32768]:
        w = hg.Workload(batch=1.0, tp=8.0)
        rows.append(
            {
                "phase": "prefill",
                "batch": 1,
                "tokens": float(prompt),
                "intensity_flop_per_byte": float(_intensity(model, w, comp, float(prompt), 0.0)),
            }
        )
    c.write_csv(out_dir / f"{NAME}.csv", rows)
    ridge = {}
    for name in CHIPS:
        ch = hg.presets.chip(name)
        ridge[name] = float(ch.peak_flops_bf16 / ch.tiers[0].bandwidth_bytes_per_s)
    c.write_json(out_dir / f"{NAME}_ridge.json", ridge)
    d1 = next(r for r in rows if r["phase"] == "decode" and r["batch"] == 1)["intensity_flop_per_byte"]
    pre = max(r["intensity_flop_per_byte"] for r in rows if r["phase"] == "prefill")
    dec = [r for r in rows if r["phase"] == "decode" and r["tokens"] == contexts[0]]
    cross = next((r["batch"] for r in dec if r["intensity_flop_per_byte"] >= ridge["h100-sxm"]), float("nan"))
    summary = {
        "ridge_flop_per_byte": ridge,
        "decode_batch1": d1,
        "prefill_max": pre,
        "records": [
            c.compare("decode intensity, batch 1 (FLOP/B)", "~1", d1),
            c.compare("H100 ridge point (bf16 FLOP/B)", "-", ridge["h100-sxm"]),
            c.compare(f"first batch where decode (ctx {contexts[0]}) passes H100 ridge", "-", cross),
            c.compare("prefill intensity, longest prompt (FLOP/B)", ">> ridge", pre),
        ],
    }
    c.write_json(out_dir / f"{NAME}.json", summary)
    return summary


def plot(out_dir: Path) -> None:
    rows = c.read_csv(out_dir / f"{NAME}.csv")
    ridge = c.read_json(out_dir / f"{NAME}_ridge.json")
    fig, axes = c.plt.subplots(1, 2, figsize=(12, 4.6))
    ax = axes[0]
    for ctx in sorted({r["tokens"] for r in rows if r["phase"] == "decode"}):
        pts = [r for r in rows if r["phase"] == "decode" and r["tokens"] == ctx]
        ax.plot(
            [r["batch"] for r in pts],
            [r["intensity_flop_per_byte"] for r in pts],
            "o-",
            label=f"decode, context {ctx:.0f}",
        )
    for i, (name, v) in enumerate(ridge.items()):
        ax.axhline(v, ls="--", color=f"C{5 + i}", label=f"{name} ridge ({v:.0f} FLOP/B)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("decode batch (sequences)")
    ax.set_ylabel("arithmetic intensity (FLOP / byte)")
    ax.set_title("Decode: KV reads keep intensity low as context grows")
    ax.legend(fontsize=7)
    ax.grid(True, which="both", alpha=0.3)
    ax = axes[1]
    pts = [r for r in rows if r["phase"] == "prefill"]
    ax.plot(
        [r["tokens"] for r in pts],
        [r["intensity_flop_per_byte"] for r in pts],
        "s-",
        label="prefill, batch 1",
    )
    for i, (name, v) in enumerate(ridge.items()):
        ax.axhline(v, ls="--", color=f"C{5 + i}", label=f"{name} ridge")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("prompt length (tokens)")
    ax.set_ylabel("arithmetic intensity (FLOP / byte)")
    ax.set_title("Prefill is compute-bound beyond a few hundred tokens")
    ax.legend(fontsize=7)
    ax.grid(True, which="both", alpha=0.3)
    fig.suptitle("Llama-3.1-70B bf16, per chip at TP=8")
    c.save_fig(fig, out_dir / f"{NAME}.png")


main = c.main_for(NAME, compute, plot, __doc__)

if __name__ == "__main__":
    raise SystemExit(main())
