"""Artifact 3 - memory cost trends: HBM vs DDR normalised $/GB and $/(GB/s) (the paper's
1.35x rise for HBM 2023->2025 vs DDR4's fall to 0.54x / 0.45x 2022->2025) and what they do
to the $/M tokens of a fixed decode workload (Llama-3.1-70B fp8 on 8x H100, batch 32).

hwgrad's capex is a chip price (``economics.csv``), not a bill of materials, so the memory
share is split out here: HBM $ = capacity x ``hbm3_price`` ($/GB); the rest of the chip
price is held fixed. The same is done on the manufacturing-cost basis (``mfg_cost_h100``),
where memory is a much larger share.

    python experiments/a03_memory_cost.py [--quick] [--out DIR]
"""

from __future__ import annotations

import re
from pathlib import Path

import common as c

import hwgrad as hg

NAME = "a03_memory_cost"
PAPER = {"hbm_usd_per_gb": 1.35, "hbm_usd_per_gbps": 1.35, "ddr4_usd_per_gb": 0.54, "ddr4_usd_per_gbps": 0.45}


def _paper_ratios_in_notes() -> dict:
    """The trend ratios as the catalogue's notes quote them (the data set's only record)."""
    mt = hg.presets.table("memory_tech")
    hbm = re.findall(r"rose ([0-9.]+)x", mt["hbm3e"]["notes"])
    ddr = re.findall(
        r"fell to ([0-9.]+)x and bandwidth cost to ([0-9.]+)x", mt["ddr4"]["source"] + mt["ddr4"]["notes"]
    )
    return {
        "hbm_usd_per_gb": float(hbm[0]),
        "hbm_usd_per_gbps": float(hbm[0]),
        "ddr4_usd_per_gb": float(ddr[0][0]),
        "ddr4_usd_per_gbps": float(ddr[0][1]),
    }


def compute(out_dir: Path, quick: bool = False) -> dict:
    ratios = _paper_ratios_in_notes()
    ev = hg.presets.economics_value
    mt = hg.presets.table("memory_tech")
    # catalogue counterpart: HBM3 (2022) -> HBM3E (2023-24) analyst $/GB and $/(GB/s) per stack
    per_gbps = {
        g: ev(f"{g}_price")
        * float(mt[g]["capacity_per_device_GB"])
        / float(mt[g]["bandwidth_per_device_GBps"])
        for g in ("hbm3", "hbm3e")
    }
    cat_gb = ev("hbm3e_price") / ev("hbm3_price")
    cat_gbps = per_gbps["hbm3e"] / per_gbps["hbm3"]

    system = hg.presets.system("h100-sxm", 8)
    model = hg.presets.model("llama-3.1-70b")
    work = hg.Workload(batch=32, prompt_len=2048, output_len=512, tp=8)
    comp = hg.compression("fp8", "fp8")
    hbm_gb = float(system.chip.tiers[0].capacity_bytes) / 1e9
    hbm_usd = hbm_gb * ev("hbm3_price")
    scenarios = [1.0, ratios["hbm_usd_per_gb"], ratios["ddr4_usd_per_gb"], 2.0, 4.0]
    if quick:
        scenarios = scenarios[:3]
    points, rows = [], []
    for basis, price in (
        ("sale price", float(system.chip.price_usd)),
        ("manufacturing cost", ev("mfg_cost_h100")),
    ):
        for mult in scenarios:
            chip = hg.replace(system.chip, price_usd=price + hbm_usd * (mult - 1.0))
            points.append((hg.replace(system, chip=chip), model, work, comp))
            rows.append(
                {"basis": basis, "memory_price_multiple": mult, "chip_usd": price + hbm_usd * (mult - 1.0)}
            )
    res = c.evaluate_many(points)
    for i, r in enumerate(rows):
        r["usd_per_million_tokens"] = float(res.usd_per_million_tokens[i])
        r["memory_share_of_chip"] = hbm_usd * r["memory_price_multiple"] / r["chip_usd"]
    for basis in ("sale price", "manufacturing cost"):
        ref = next(r for r in rows if r["basis"] == basis and r["memory_price_multiple"] == 1.0)
        for r in rows:
            if r["basis"] == basis:
                r["usd_per_m_vs_2023"] = r["usd_per_million_tokens"] / ref["usd_per_million_tokens"]
    c.write_csv(out_dir / f"{NAME}.csv", rows)
    hbm_up = {
        r["basis"]: r["usd_per_m_vs_2023"]
        for r in rows
        if r["memory_price_multiple"] == ratios["hbm_usd_per_gb"]
    }
    summary = {
        "ratios_in_catalogue_notes": ratios,
        "records": [
            c.compare(
                "HBM $/GB 2023->2025", PAPER["hbm_usd_per_gb"], ratios["hbm_usd_per_gb"], "x", verdict="input"
            ),
            c.compare(
                "DDR4 $/GB 2022->2025",
                PAPER["ddr4_usd_per_gb"],
                ratios["ddr4_usd_per_gb"],
                "x",
                verdict="input",
            ),
            c.compare(
                "DDR4 $/(GB/s) 2022->2025",
                PAPER["ddr4_usd_per_gbps"],
                ratios["ddr4_usd_per_gbps"],
                "x",
                verdict="input",
            ),
            c.compare("catalogue HBM3->HBM3E $/GB (analyst prices)", PAPER["hbm_usd_per_gb"], cat_gb, "x"),
            c.compare("catalogue HBM3->HBM3E $/(GB/s)", PAPER["hbm_usd_per_gbps"], cat_gbps, "x"),
            c.compare("HBM x1.35 -> $/M tokens, sale-price capex", "-", hbm_up["sale price"], "x"),
            c.compare("HBM x1.35 -> $/M tokens, mfg-cost capex", "-", hbm_up["manufacturing cost"], "x"),
        ],
        "hbm_usd_per_chip_2023": hbm_usd,
    }
    c.write_json(out_dir / f"{NAME}.json", summary)
    return summary


def plot(out_dir: Path) -> None:
    s = c.read_json(out_dir / f"{NAME}.json")
    rows = c.read_csv(out_dir / f"{NAME}.csv")
    r = s["ratios_in_catalogue_notes"]
    fig, axes = c.plt.subplots(1, 2, figsize=(12, 4.6))
    ax = axes[0]
    ax.plot([2023, 2025], [1.0, r["hbm_usd_per_gb"]], "o-", label="HBM $/GB (2023=1)")
    ax.plot([2023, 2025], [1.0, r["hbm_usd_per_gbps"]], "s--", label="HBM $/(GB/s) (2023=1)")
    ax.plot([2022, 2025], [1.0, r["ddr4_usd_per_gb"]], "o-", label="DDR4 $/GB (2022=1)")
    ax.plot([2022, 2025], [1.0, r["ddr4_usd_per_gbps"]], "s--", label="DDR4 $/(GB/s) (2022=1)")
    ax.set_xlabel("year")
    ax.set_ylabel("normalised price (x of start year)")
    ax.set_title("Memory price trends quoted by the paper")
    ax.legend()
    ax.grid(True, alpha=0.3)
    ax = axes[1]
    for basis, style in (("sale price", "o-"), ("manufacturing cost", "s-")):
        pts = sorted((x for x in rows if x["basis"] == basis), key=lambda x: x["memory_price_multiple"])
        ax.plot(
            [p["memory_price_multiple"] for p in pts],
            [p["usd_per_million_tokens"] for p in pts],
            style,
            label=f"capex = chip {basis}",
        )
    ax.axvline(r["hbm_usd_per_gb"], color="grey", ls=":", label="HBM 2025 (x1.35)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("HBM $/GB multiple vs 2023 analyst price (x)")
    ax.set_ylabel("$ per million output tokens")
    ax.set_title("Llama-3.1-70B fp8, 8x H100, batch 32: $/M tokens")
    ax.legend()
    ax.grid(True, which="both", alpha=0.3)
    c.save_fig(fig, out_dir / f"{NAME}.png")


main = c.main_for(NAME, compute, plot, __doc__)

if __name__ == "__main__":
    raise SystemExit(main())
