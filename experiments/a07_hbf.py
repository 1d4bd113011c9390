"""Artifact 7 - High Bandwidth Flash: chips needed, TPOT, $/M tokens and energy for large
MoEs (DeepSeek-V3, and an illustrative ~1T-parameter Kimi-K2-shaped MoE built from it) on
HBM4-only chips (8 stacks, 384 GB) vs HBM4+HBF (4 + 4 stacks: 192 GB DRAM + 2 TB flash,
weights in flash, KV in DRAM); then sensitivity to the flash page size and read latency.

"Chips needed" is the smallest TP=EP degree whose per-tier capacity use fits (hwgrad's
``fits``). Read latency only matters with a bounded number of bytes in flight, so the latency
sweep sets ``prefetch_bytes`` = 16 MiB per chip (ASSUMPTION; the catalogue has none).

    python experiments/a07_hbf.py [--quick] [--out DIR]
"""

from __future__ import annotations

from pathlib import Path

import common as c
import numpy as np

import hwgrad as hg
from hwgrad.presets import designs

NAME = "a07_hbf"
PREFETCH_BYTES = 16 * 2**20


def models():
    ds = hg.presets.model("deepseek-v3")
    # Kimi-K2 shape (config.json: 384 experts, 64 heads, vocab 163840), illustrative only
    k2 = hg.replace(ds, n_experts=384.0, n_heads=64.0, vocab_size=163840.0)
    return {"deepseek-v3": ds, "moe-1t (illustrative)": k2}


def _work(tp):
    return hg.Workload(batch=32.0, prompt_len=4096.0, output_len=1024.0, tp=float(tp), ep=float(tp))


def compute(out_dir: Path, quick: bool = False) -> dict:
    comp = hg.compression("fp8", "fp8")
    tps = [1, 2, 4] if quick else [1, 2, 4, 8, 16, 32, 64]
    mods = models()
    if quick:
        mods = {"deepseek-v3": mods["deepseek-v3"]}
    rows = []
    for design, build in (
        ("HBM4 only", designs.hbm4_accelerator),
        ("HBM4 + HBF", designs.hbm4_hbf_accelerator),
    ):
        points = [(build(tp), m, _work(tp), comp) for m in mods.values() for tp in tps]
        res = c.evaluate_many(points)
        for i, ((mname, _), tp) in enumerate((mm, tp) for mm in mods.items() for tp in tps):
            rows.append(
                {
                    "design": design,
                    "model": mname,
                    "chips": tp,
                    "fits": res.fits[i],
                    "tpot_s": res.tpot_s[i],
                    "usd_per_million_tokens": res.usd_per_million_tokens[i],
                    "energy_j_per_token": res.energy_j_per_token[i],
                    "capacity_used_tier0_GB": res.capacity_used_bytes[i][0] / 1e9,
                }
            )
    c.write_csv(out_dir / f"{NAME}.csv", rows)
    best = {}
    for r in rows:
        key = (r["design"], r["model"])
        if r["fits"] == 1.0 and key not in best:
            best[key] = r
    records = []
    for mname in mods:
        a, b = best.get(("HBM4 only", mname)), best.get(("HBM4 + HBF", mname))
        if a and b:
            records.append(
                c.compare(
                    f"{mname}: chips needed HBM4-only / HBM4+HBF",
                    "fewer with HBF",
                    f"{a['chips']} / {b['chips']}",
                )
            )
            records.append(
                c.compare(
                    f"{mname}: $/M tokens at min chips, HBF / HBM",
                    "-",
                    b["usd_per_million_tokens"] / a["usd_per_million_tokens"],
                    "x",
                )
            )
            records.append(
                c.compare(f"{mname}: TPOT at min chips, HBF / HBM", "-", b["tpot_s"] / a["tpot_s"], "x")
            )

    # sensitivity of the HBF design at its minimum chip count (DeepSeek-V3)
    tp = best.get(("HBM4 + HBF", "deepseek-v3"), {"chips": 8})["chips"]
    model = mods["deepseek-v3"]
    base = designs.hbm4_hbf_accelerator(tp)
    pages = (
        [512.0, 4096.0, 65536.0]
        if quick
        else [512.0, 1024.0, 2048.0, 4096.0, 8192.0, 16384.0, 32768.0, 65536.0]
    )
    lats = [1e-6, 3e-6, 30e-6] if quick else [0.3e-6, 1e-6, 3e-6, 10e-6, 30e-6, 100e-6]
    sens, points = [], []
    for p in pages:
        hbf = hg.replace(base.chip.tiers[1], access_granularity_bytes=p)
        points.append(hg.replace(base, chip=hg.replace(base.chip, tiers=(base.chip.tiers[0], hbf))))
        sens.append({"knob": "page_bytes", "value": p})
    for lat in lats:
        hbf = hg.replace(base.chip.tiers[1], read_latency_s=lat, prefetch_bytes=float(PREFETCH_BYTES))
        points.append(hg.replace(base, chip=hg.replace(base.chip, tiers=(base.chip.tiers[0], hbf))))
        sens.append({"knob": "read_latency_s", "value": lat})
    res = c.evaluate_many([(s, model, _work(tp), comp) for s in points])
    for i, r in enumerate(sens):
        r.update(
            chips=tp,
            tpot_s=res.tpot_s[i],
            usd_per_million_tokens=res.usd_per_million_tokens[i],
            energy_j_per_token=res.energy_j_per_token[i],
        )
    c.write_csv(out_dir / f"{NAME}_sensitivity.csv", sens)
    summary = {
        "min_chips": {f"{k[0]} | {k[1]}": v["chips"] for k, v in best.items()},
        "records": records,
        "tpot_page_64k_over_4k": float(
            next(r["tpot_s"] for r in sens if r["value"] == 65536.0)
            / next(r["tpot_s"] for r in sens if r["value"] == 4096.0)
        ),
    }
    c.write_json(out_dir / f"{NAME}.json", summary)
    return summary


def plot(out_dir: Path) -> None:
    rows = c.read_csv(out_dir / f"{NAME}.csv")
    sens = c.read_csv(out_dir / f"{NAME}_sensitivity.csv")
    fig, axes = c.plt.subplots(1, 4, figsize=(18, 4.4))
    for col, ax, label in (
        ("tpot_s", axes[0], "TPOT (s)"),
        ("usd_per_million_tokens", axes[1], "$ per million output tokens"),
        ("energy_j_per_token", axes[2], "energy per output token (J)"),
    ):
        for j, (design, model) in enumerate(sorted({(r["design"], r["model"]) for r in rows})):
            pts = [r for r in rows if r["design"] == design and r["model"] == model]
            fit = [r for r in pts if r["fits"] == 1.0]
            line = ax.plot([r["chips"] for r in pts], [r[col] for r in pts], ":", color=f"C{j}")[0]
            ax.plot(
                [r["chips"] for r in fit],
                [r[col] for r in fit],
                "o-",
                color=line.get_color(),
                label=f"{design}, {model}",
            )
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("chips (TP = EP); dotted = does not fit")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=7)
    ax = axes[3]
    for knob, marker, label in (
        ("page_bytes", "o-", "flash page size (bytes)"),
        ("read_latency_s", "s-", "read latency (s), 16 MiB in flight"),
    ):
        pts = [r for r in sens if r["knob"] == knob]
        x = np.array([r["value"] for r in pts])
        x = x / x[0]
        ax.plot(x, [r["tpot_s"] for r in pts], marker, label=f"{label}, from {pts[0]['value']:g}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("knob / smallest value swept (x)")
    ax.set_ylabel("TPOT (s), DeepSeek-V3 on HBM4+HBF")
    ax.set_title("HBF sensitivity")
    ax.legend(fontsize=7)
    ax.grid(True, which="both", alpha=0.3)
    fig.suptitle("HBF vs HBM-only: batch 32, 4k prompt, 1k output, fp8")
    c.save_fig(fig, out_dir / f"{NAME}.png")


main = c.main_for(NAME, compute, plot, __doc__)

if __name__ == "__main__":
    raise SystemExit(main())
