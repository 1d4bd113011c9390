"""Artifact 11 - perf/TCO, perf/W and perf/CO2e (tokens per $, per J, per gCO2e) of
today's systems vs the paper's designs, normalised to 8x H100. Llama-3.1-70B fp8 (batch
32, 2k prompt, 512 output, TP=8) on single-tier and stacked-logic designs; DeepSeek-V3 for
the HBF design (weights in flash need a model whose size justifies it).

    python experiments/a11_perf_metrics.py [--quick] [--out DIR]
"""

from __future__ import annotations

from pathlib import Path

import common as c
import numpy as np

import hwgrad as hg
from hwgrad.presets import designs

NAME = "a11_perf_metrics"


def compute(out_dir: Path, quick: bool = False) -> dict:
    comp = hg.compression("fp8", "fp8")
    llama, ds = hg.presets.model("llama-3.1-70b"), hg.presets.model("deepseek-v3")
    w70 = hg.Workload(batch=32.0, prompt_len=2048.0, output_len=512.0, tp=8.0)
    wds = hg.Workload(batch=32.0, prompt_len=2048.0, output_len=512.0, tp=8.0, ep=8.0)
    groups = [
        [
            ("H100 x8", hg.presets.system("h100-sxm", 8), llama, w70),
            ("H200 x8", hg.presets.system("h200-sxm", 8), llama, w70),
            ("B200 x8", hg.presets.system("b200", 8), llama, w70),
            ("HBM4 x8", designs.hbm4_accelerator(8), llama, w70),
        ],
        [
            ("HBM4 base-die x8", designs.base_die_compute(8), llama, w70),
            ("custom 3D x8", designs.custom_3d(8), llama, w70),
        ],
    ]
    if not quick:
        groups.append(
            [
                ("H200 x8 (DeepSeek-V3)", hg.presets.system("h200-sxm", 8), ds, wds),
                ("HBM4 x8 (DeepSeek-V3)", designs.hbm4_accelerator(8), ds, wds),
            ]
        )
        groups.append([("HBM4+HBF x8 (DeepSeek-V3)", designs.hbm4_hbf_accelerator(8), ds, wds)])
    rows = []
    for g in groups:
        res = c.evaluate_many([(s, m, w, comp) for _, s, m, w in g])
        for i, (label, *_rest) in enumerate(g):
            rows.append(
                {
                    "system": label,
                    "tokens_per_usd": 1e6 / res.usd_per_million_tokens[i],
                    "tokens_per_joule": 1.0 / res.energy_j_per_token[i],
                    "tokens_per_gco2e": 1.0 / res.gco2e_per_token[i],
                    "tpot_s": res.tpot_s[i],
                    "fits": res.fits[i],
                }
            )
    ref = rows[0]
    for r in rows:
        for k in ("tokens_per_usd", "tokens_per_joule", "tokens_per_gco2e"):
            r[f"{k}_vs_h100"] = r[k] / ref[k]
    c.write_csv(out_dir / f"{NAME}.csv", rows)
    by = {r["system"]: r for r in rows}
    recs = [
        c.compare(
            f"{s}: perf/TCO, perf/W, perf/CO2e vs H100",
            "-",
            f"{by[s]['tokens_per_usd_vs_h100']:.2f} / {by[s]['tokens_per_joule_vs_h100']:.2f} / {by[s]['tokens_per_gco2e_vs_h100']:.2f}",
        )
        for s in by
        if s != "H100 x8"
    ]
    summary = {"records": recs}
    c.write_json(out_dir / f"{NAME}.json", summary)
    return summary


def plot(out_dir: Path) -> None:
    rows = c.read_csv(out_dir / f"{NAME}.csv")
    fig, ax = c.plt.subplots(figsize=(12, 4.8))
    x = np.arange(len(rows))
    for j, (k, label) in enumerate(
        (
            ("tokens_per_usd_vs_h100", "perf / TCO (tokens per $)"),
            ("tokens_per_joule_vs_h100", "perf / W (tokens per J)"),
            ("tokens_per_gco2e_vs_h100", "perf / CO2e (tokens per g)"),
        )
    ):
        ax.bar(x + (j - 1) * 0.27, [r[k] for r in rows], 0.27, label=label)
    ax.axhline(1.0, color="grey", lw=0.8)
    ax.set_xticks(x, [r["system"] for r in rows], rotation=20, fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("relative to 8x H100 on Llama-3.1-70B (x)")
    ax.set_title("Figures of merit: today's systems vs the paper's designs (fp8, batch 32)")
    ax.legend()
    ax.grid(True, axis="y", which="both", alpha=0.3)
    c.save_fig(fig, out_dir / f"{NAME}.png")


main = c.main_for(NAME, compute, plot, __doc__)

if __name__ == "__main__":
    raise SystemExit(main())
