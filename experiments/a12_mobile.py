"""Artifact 12 (mobile study) - 3B-8B models on an LPDDR5X phone SoC (4 x16 channels, 16
GB) with and without processing-in-memory: TPOT, memory energy per token and capacity.
Models: Llama-3.1-8B (models.csv) and an illustrative ~3B Llama-3.2-3B-shaped model (not in
the catalogue; built here, embeddings untied). int4 (q4_0) weights, fp16 KV, batch 1.

    python experiments/a12_mobile.py [--quick] [--out DIR]
"""

from __future__ import annotations

from pathlib import Path

import common as c

import hwgrad as hg
from hwgrad.presets import designs

NAME = "a12_mobile"


def models():
    base = hg.presets.model("llama-3.1-8b")
    llama3b = hg.replace(
        base, n_layers=28.0, n_dense_layers=28.0, d_model=3072.0, n_heads=24.0, n_kv_heads=8.0, d_ff=8192.0
    )
    return {"llama-3b (illustrative)": llama3b, "llama-3.1-8b": base}


def compute(out_dir: Path, quick: bool = False) -> dict:
    comp = hg.compression("q4_0", "fp16")
    ctxs = [512.0, 8192.0] if quick else [256.0, 1024.0, 4096.0, 16384.0]
    rows = []
    for pim in (False, True):
        cases, meta = [], []
        for mname, m in models().items():
            for ctx in ctxs:
                cases.append(
                    (
                        designs.mobile_soc(pim=pim),
                        m,
                        hg.Workload(batch=1.0, prompt_len=ctx, output_len=128.0),
                        comp,
                    )
                )
                meta.append(
                    {
                        "pim": int(pim),
                        "model": mname,
                        "context": ctx,
                        "params_B": float(hg.counts.param_count(m)) / 1e9,
                    }
                )
        res = c.evaluate_many(cases)
        for i, r in enumerate(meta):
            r.update(
                tpot_s=res.tpot_s[i],
                tokens_per_s=1.0 / res.tpot_s[i],
                energy_j_per_token=res.energy_j_per_token[i],
                capacity_used_GB=res.capacity_used_bytes[i][0] / 1e9,
                fits=res.fits[i],
            )
            rows.append(r)
    c.write_csv(out_dir / f"{NAME}.csv", rows)

    def get(pim, m, ctx):
        return next(r for r in rows if r["pim"] == pim and r["model"] == m and r["context"] == ctx)

    m8, ctx = "llama-3.1-8b", ctxs[0]
    summary = {
        "records": [
            c.compare(f"{m8} tokens/s, LPDDR5X, ctx {ctx:.0f}", "-", get(0, m8, ctx)["tokens_per_s"]),
            c.compare(
                f"{m8} speed-up with PIM",
                "bandwidth/W 5-10x",
                get(1, m8, ctx)["tokens_per_s"] / get(0, m8, ctx)["tokens_per_s"],
                "x",
            ),
            c.compare(
                f"{m8} memory energy/token, PIM / none",
                "-",
                get(1, m8, ctx)["energy_j_per_token"] / get(0, m8, ctx)["energy_j_per_token"],
                "x",
            ),
        ]
    }
    c.write_json(out_dir / f"{NAME}.json", summary)
    return summary


def plot(out_dir: Path) -> None:
    rows = c.read_csv(out_dir / f"{NAME}.csv")
    fig, axes = c.plt.subplots(1, 2, figsize=(12, 4.6))
    for ax, col, label in (
        (axes[0], "tokens_per_s", "decode speed (tokens/s), batch 1"),
        (axes[1], "energy_j_per_token", "memory energy per token (J)"),
    ):
        for j, m in enumerate(dict.fromkeys(r["model"] for r in rows)):
            for pim, style in ((0, "o-"), (1, "s--")):
                pts = [r for r in rows if r["model"] == m and r["pim"] == pim]
                ax.plot(
                    [r["context"] for r in pts],
                    [r[col] for r in pts],
                    style,
                    color=f"C{j}",
                    label=f"{m}, {'PIM' if pim else 'LPDDR5X'}",
                )
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("context (tokens)")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle("Phone SoC, 4 x16 LPDDR5X channels (68 GB/s), q4_0 weights: with and without PIM")
    c.save_fig(fig, out_dir / f"{NAME}.png")


main = c.main_for(NAME, compute, plot, __doc__)

if __name__ == "__main__":
    raise SystemExit(main())
