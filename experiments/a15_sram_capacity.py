"""Artifact 15 - SRAM-only designs run out of capacity: chips needed vs model size.

The paper argues that SRAM-only accelerators (Groq, Cerebras) cannot hold today's models on
a few chips. For every model shape in ``models.csv`` this counts the chips whose memory holds
the weights plus the KV cache of one 4k-token sequence (``hwgrad.counts``: weight bytes at
tp = 1, MLA/GQA-aware KV bytes), at 16-bit and 8-bit weights and KV, and divides by the
per-chip capacity of ``hardware.csv``: Groq LPU 230 MB SRAM, Cerebras WSE-3 44 GB SRAM,
H100 80 GB HBM3, B200 180 GB HBM3e. ``chips = ceil(bytes / capacity)``: a lower bound (no
activation workspace, no replication for throughput, 100 % of memory usable).
Pure arithmetic on the shipped data: no fitted parameter enters.

    python experiments/a15_sram_capacity.py [--quick] [--out DIR]
"""

from __future__ import annotations

import math
from pathlib import Path

import common as c

import hwgrad as hg
from hwgrad import counts

NAME = "a15_sram_capacity"
CONTEXT = 4096.0
CHIPS = {  # label -> (hardware.csv slug, column, bytes per MB/GB)
    "Groq LPU (230 MB SRAM)": ("groq-lpu", "sram_MB", 1e6),
    "Cerebras WSE-3 (44 GB SRAM)": ("cerebras-wse3", "sram_MB", 1e6),
    "H100 (80 GB HBM3)": ("h100-sxm", "memory_capacity_GB", 1e9),
    "B200 (180 GB HBM3e)": ("b200", "memory_capacity_GB", 1e9),
}


def capacity_bytes(label: str) -> float:
    slug, col, scale = CHIPS[label]
    return float(hg.presets.table("hardware")[slug][col]) * scale


def compute(out_dir: Path, quick: bool = False) -> dict:
    names = ["llama-3.1-8b", "llama-3.1-70b", "deepseek-v3"] if quick else hg.presets.names("models")
    rows = []
    for m in names:
        model = hg.presets.model(m)
        params_b = float(hg.presets.table("models")[m]["params_total_B"])
        for dtype in ("bf16", "fp8"):
            comp = hg.compression(dtype, dtype)
            weights = float(counts.weight_bytes_resident(model, comp, hg.Workload(tp=1.0)))
            kv = float(counts.kv_cache_bytes(model, comp, 1.0, CONTEXT))
            row = {"model": m, "params_total_B": params_b, "dtype": dtype, "weights_GB": weights / 1e9}
            row["kv_4k_GB"] = kv / 1e9
            for label in CHIPS:
                row[label] = math.ceil((weights + kv) / capacity_bytes(label))
            rows.append(row)
    c.write_csv(out_dir / f"{NAME}.csv", rows)
    by = {(r["model"], r["dtype"]): r for r in rows}
    records = []
    for m in ("llama-3.1-70b", "deepseek-v3"):
        r = by[(m, "fp8")]
        records.append(
            c.compare(
                f"{m} fp8 + 4k KV: chips needed Groq / Cerebras / H100 / B200",
                "SRAM-only runs out of capacity",
                " / ".join(str(r[k]) for k in CHIPS),
                verdict=c.verdict(r["Groq LPU (230 MB SRAM)"] > 100, "the model fits on few SRAM chips"),
            )
        )
    summary = {"records": records, "chips_fp8": {m: {k: by[(m, "fp8")][k] for k in CHIPS} for m, _ in by}}
    c.write_json(out_dir / f"{NAME}.json", summary)
    return summary


def plot(out_dir: Path) -> None:
    rows = [r for r in c.read_csv(out_dir / f"{NAME}.csv") if r["dtype"] == "fp8"]
    rows.sort(key=lambda r: r["params_total_B"])
    fig, ax = c.figure(width_in=7.5, height_in=4.2)
    for j, label in enumerate(CHIPS):
        ax.plot(
            [r["params_total_B"] for r in rows], [r[label] for r in rows], "o", color=f"C{j}", label=label
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    c.plotting.readable_log_ticks(ax)
    ax.set_xlabel(c.plotting.axis_label("model size, total parameters", "billions"))
    ax.set_ylabel(c.plotting.axis_label("chips to hold weights + one 4k KV cache", "-"))
    c.plotting.legend_outside(ax)
    c.caption(
        fig,
        "fp8 weights and KV, every model of models.csv; chips = ceil(bytes / per-chip memory, hardware.csv); "
        "a lower bound: no activations, no replicas, all memory usable.",
    )
    c.save_fig(fig, out_dir / f"{NAME}.png")


main = c.main_for(NAME, compute, plot, __doc__)

if __name__ == "__main__":
    raise SystemExit(main())
