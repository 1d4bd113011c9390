"""Artifact 12 (mobile study) - 3B-8B models on an LPDDR5X phone SoC (4 x16 channels, 16
GB) without near-memory compute, with processing-in-memory (Table 4: 7.07x bandwidth/W, 45 MB
bank shards, weak logic) and with processing-near-memory (3.16x, 22.6 GB shards - on a 16 GB
phone one shard: the whole DRAM) on the LPDDR: TPOT, memory energy per token, memory power
and capacity. Phone power budgets: no cited figure is in the data, so the memory power is
reported in W for the reader to set against one.
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
    for pim in (0, 1, 2):  # 0: none, 1: PIM, 2: PNM
        soc = designs.mobile_soc(pim=pim == 1)
        if pim == 2:
            base = designs.mobile_soc()
            soc = hg.replace(base, chip=hg.replace(base.chip, tiers=(designs.pnm_tier(base.chip.tiers[0]),)))
        cases, meta = [], []
        for mname, m in models().items():
            for ctx in ctxs:
                cases.append(
                    (
                        soc,
                        m,
                        hg.Workload(batch=1.0, prompt_len=ctx, output_len=128.0),
                        comp,
                    )
                )
                meta.append(
                    {
                        "pim": pim,
                        "design": ("LPDDR5X", "LPDDR5X + PIM", "LPDDR5X + PNM")[pim],
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
                memory_power_w=res.energy_j_per_token[i] / res.tpot_s[i],
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
                verdict=c.verdict(
                    get(1, m8, ctx)["tokens_per_s"] > get(0, m8, ctx)["tokens_per_s"],
                    "PIM is not faster here",
                ),
            ),
            c.compare(
                f"{m8} speed-up with PNM",
                "bandwidth/W 2-5x",
                get(2, m8, ctx)["tokens_per_s"] / get(0, m8, ctx)["tokens_per_s"],
                "x",
                verdict=c.verdict(
                    get(2, m8, ctx)["tokens_per_s"] > get(0, m8, ctx)["tokens_per_s"],
                    "PNM is not faster here",
                ),
            ),
            c.compare(
                f"{m8} memory power at batch 1 (W), none / PIM / PNM",
                "phone power budget (no cited figure in the data)",
                " / ".join(f"{get(k, m8, ctx)['memory_power_w']:.2f}" for k in (0, 1, 2)),
            ),
            c.compare(
                f"{m8} memory energy/token, PIM / none",
                "-",
                get(1, m8, ctx)["energy_j_per_token"] / get(0, m8, ctx)["energy_j_per_token"],
                "x",
                verdict=c.verdict(
                    get(1, m8, ctx)["energy_j_per_token"] < get(0, m8, ctx)["energy_j_per_token"],
                    "PIM's partial sums cost more than it saves",
                ),
            ),
        ]
    }
    c.write_json(out_dir / f"{NAME}.json", summary)
    return summary


def plot(out_dir: Path) -> None:
    rows = c.read_csv(out_dir / f"{NAME}.csv")
    fig, axes = c.figure(1, 2, width_in=12.0, height_in=4.2)
    for ax, col, label in (
        (axes[0], "tokens_per_s", "decode speed (tokens/s), batch 1"),
        (axes[1], "energy_j_per_token", "memory energy per token (J)"),
    ):
        for j, m in enumerate(dict.fromkeys(r["model"] for r in rows)):
            for pim, style in ((0, "o-"), (1, "s--"), (2, "^:")):
                pts = [r for r in rows if r["model"] == m and r["pim"] == pim]
                ax.plot(
                    [r["context"] for r in pts],
                    [r[col] for r in pts],
                    style,
                    color=f"C{j}",
                    label=f"{m}, {('LPDDR5X', '+ PIM', '+ PNM')[int(pim)]}",
                )
        ax.set_xscale("log")
        ax.set_yscale("log")
        c.plotting.readable_log_ticks(ax)
        ax.set_xlabel(c.plotting.axis_label("context", "tokens"))
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
    c.plotting.legend_outside(axes[1])
    c.caption(
        fig,
        "Phone SoC, 4 x16 LPDDR5X channels (68 GB/s, 16 GB), q4_0 weights, fp16 KV, batch 1; PIM 7.07x and "
        "PNM 3.16x bandwidth/W (Table 4 geometric means); NPU compute not modelled (no data): memory energy only.",
    )
    c.save_fig(fig, out_dir / f"{NAME}.png")


main = c.main_for(NAME, compute, plot, __doc__)

if __name__ == "__main__":
    raise SystemExit(main())
