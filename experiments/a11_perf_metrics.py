"""Artifact 11 - perf/TCO, perf/W and perf/CO2e at iso-SLO: each system at its own best point.

Systems: today's H100, H200, B200 (presets) and the paper's designs on a B200-class die
(`hwgrad.presets.designs`: 8 x HBM4, HBM4 base-die compute, custom 3D), serving
Llama-3.1-70B; DeepSeek-V3 on H200, HBM4 and HBM4+HBF (full run only: weights in flash need
a model whose size justifies it). Method: static batch, 2k prompt, 512 output, fp8 weights
and KV (the same quality for every system), exhaustive vmapped grid over batch 1-1024 x
chips 1-16 (TP = chips, EP = chips for the MoE); at each TPOT budget (20 and 50 ms) every
system's cheapest feasible point ($/M tokens) is taken, and its tokens per $ (TCO: capex
amortised over 5 years + electricity), per J and per gCO2e (operational + embodied) are
divided by those of H100 at its own best point for the same model and budget.

    python experiments/a11_perf_metrics.py [--quick] [--out DIR]
"""

from __future__ import annotations

from pathlib import Path

import common as c
import numpy as np

import hwgrad as hg
from hwgrad.presets import designs

NAME = "a11_perf_metrics"
WORK = {"prompt_len": 2048.0, "output_len": 512.0}
BUDGETS_S = (0.020, 0.050)
METRICS = (
    ("tokens_per_usd", "perf / TCO (tokens per $)"),
    ("tokens_per_joule", "perf / W (tokens per J)"),
    ("tokens_per_gco2e", "perf / CO2e (tokens per g)"),
)


def _groups(quick: bool):
    llama = ("llama-3.1-70b", hg.presets.model("llama-3.1-70b"), False)
    if quick:
        return [
            (
                llama,
                {
                    "H100": lambda n: hg.presets.system("h100-sxm", n),
                    "HBM4": designs.hbm4_accelerator,
                    "HBM4 base-die": designs.base_die_compute,
                },
            )
        ]
    ds = ("deepseek-v3", hg.presets.model("deepseek-v3"), True)
    return [
        (
            llama,
            {
                "H100": lambda n: hg.presets.system("h100-sxm", n),
                "H200": lambda n: hg.presets.system("h200-sxm", n),
                "B200": lambda n: hg.presets.system("b200", n),
                "HBM4": designs.hbm4_accelerator,
                "HBM4 base-die": designs.base_die_compute,
                "custom 3D": designs.custom_3d,
            },
        ),
        (
            ds,
            {
                "H100": lambda n: hg.presets.system("h100-sxm", n),
                "H200": lambda n: hg.presets.system("h200-sxm", n),
                "HBM4": designs.hbm4_accelerator,
                "HBM4+HBF": designs.hbm4_hbf_accelerator,
            },
        ),
    ]


def compute(out_dir: Path, quick: bool = False) -> dict:
    comp = hg.compression("fp8", "fp8")
    grid = (
        dict(chips=(2, 8), batches=(1, 32, 256)) if quick else dict(chips=(1, 2, 4, 8, 16), batches=c.BATCHES)
    )
    rows = []
    for (mname, model, moe), systems in _groups(quick):
        grids = {k: c.operating_grid(b, model, comp, WORK, moe=moe, **grid) for k, b in systems.items()}
        iso = c.iso_slo(grids, budgets=BUDGETS_S)
        for t in BUDGETS_S:
            ref = next(r for r in iso if r["design"] == "H100" and r["tpot_budget_s"] == t)
            for r in (x for x in iso if x["tpot_budget_s"] == t):
                row = {"model": mname, **r}
                row["tokens_per_usd"] = 1e6 / r["usd_per_million_tokens"]
                row["tokens_per_joule"] = 1.0 / r["energy_j_per_token"]
                row["tokens_per_gco2e"] = 1.0 / r["gco2e_per_token"]
                for k, _ in METRICS:
                    ref_v = 1e6 / ref["usd_per_million_tokens"] if k == "tokens_per_usd" else None
                    if k == "tokens_per_joule":
                        ref_v = 1.0 / ref["energy_j_per_token"]
                    if k == "tokens_per_gco2e":
                        ref_v = 1.0 / ref["gco2e_per_token"]
                    row[f"{k}_vs_h100"] = row[k] / ref_v if ref["feasible"] else float("nan")
                rows.append(row)
    c.write_csv(out_dir / f"{NAME}.csv", rows)
    records = []
    for r in rows:
        if r["design"] == "H100":
            continue
        label = f"{r['model']}, TPOT <= {r['tpot_budget_s'] * 1e3:.0f} ms, {r['design']}: perf/TCO, /W, /CO2e vs H100"
        ours = (
            f"{r['tokens_per_usd_vs_h100']:.2f} / {r['tokens_per_joule_vs_h100']:.2f} / {r['tokens_per_gco2e_vs_h100']:.2f}"
            f" (b{r['batch']:.0f}, {r['chips']:.0f} chips)"
            if r["feasible"] and np.isfinite(r["tokens_per_usd_vs_h100"])
            else "no feasible point"
        )
        records.append(c.compare(label, "judge by perf/TCO, /W, /CO2e", ours))
    summary = {"records": records}
    c.write_json(out_dir / f"{NAME}.json", summary)
    return summary


def plot(out_dir: Path) -> None:
    rows = [r for r in c.read_csv(out_dir / f"{NAME}.csv") if r["tpot_budget_s"] == 0.05]
    labels = [f"{r['design']} ({r['model']})" for r in rows]
    fig, axes = c.figure(1, 3, width_in=14.0, height_in=0.35 * len(rows) + 1.6, sharey=True)
    y = np.arange(len(rows))
    for ax, (k, title) in zip(axes, METRICS, strict=True):
        vals = [r[f"{k}_vs_h100"] if r["feasible"] else 0.0 for r in rows]
        ax.barh(y, vals, color=[f"C{i % 10}" for i in range(len(rows))])
        ax.axvline(1.0, color="grey", lw=0.8)
        ax.set_xlabel(c.plotting.axis_label(f"{title} / H100's", "x"))
        ax.set_title(title)
        ax.grid(True, axis="x", alpha=0.3)
        ax.grid(False, axis="y")
    axes[0].set_yticks(y, labels)
    axes[0].invert_yaxis()
    c.caption(
        fig,
        "Each system at its cheapest feasible point (batch 1-1024 x chips 1-16) meeting TPOT <= 50 ms, fp8, "
        "2k prompt, 512 output; each ratio is to H100 at its own best point for the same model. "
        "A missing bar: no feasible point.",
    )
    c.save_fig(fig, out_dir / f"{NAME}.png")


main = c.main_for(NAME, compute, plot, __doc__)

if __name__ == "__main__":
    raise SystemExit(main())
