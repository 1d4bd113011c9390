"""Artifact 1 - the memory wall: peak FLOPS vs memory bandwidth vs capacity across
accelerator generations (``accelerator_generations.csv``), normalised growth, and the
2012->2022 NVIDIA FP64-FLOPS and bandwidth ratios beside the paper's 80x and 17x.

    python experiments/a01_memory_wall.py [--quick] [--out DIR]
"""

from __future__ import annotations

from pathlib import Path

import common as c

import hwgrad as hg

NAME = "a01_memory_wall"
PAPER_FP64_RATIO = 80.0  # Ma & Patterson: NVIDIA FP64 FLOPS x80, 2012-2022
PAPER_BW_RATIO = 17.0  # ... memory bandwidth x17
# The paper does not name its GPUs; the data README uses K20 (2012) -> H100 SXM (2022).
FIRST, LAST = "tesla-k20", "h100-sxm"
COLS = (
    "fp64_TFLOPS",
    "fp64_tensor_TFLOPS",
    "bf16_or_fp16_dense_TFLOPS",
    "memory_bandwidth_GBps",
    "memory_capacity_GB",
)


def _rows():
    out = []
    for name, r in hg.presets.table("accelerator_generations").items():
        row = {"name": name, "vendor": r["vendor"], "year": float(r["year"])}
        for col in COLS:
            row[col] = float(r[col]) if r[col].strip() else float("nan")
        out.append(row)
    return out


def compute(out_dir: Path, quick: bool = False) -> dict:
    rows = _rows()
    c.write_csv(out_dir / f"{NAME}.csv", rows)
    by = {r["name"]: r for r in rows}
    a, b = by[FIRST], by[LAST]
    fp64_vec = b["fp64_TFLOPS"] / a["fp64_TFLOPS"]
    fp64_best = max(b["fp64_TFLOPS"], b["fp64_tensor_TFLOPS"]) / a["fp64_TFLOPS"]
    bw = b["memory_bandwidth_GBps"] / a["memory_bandwidth_GBps"]
    cap = b["memory_capacity_GB"] / a["memory_capacity_GB"]
    # every NVIDIA 2012 -> 2022 pair, to show the range the paper's 80x could come from
    nv = [r for r in rows if r["vendor"] == "NVIDIA"]
    pairs = [
        (x["name"], y["name"], max(y["fp64_TFLOPS"], y["fp64_tensor_TFLOPS"]) / x["fp64_TFLOPS"])
        for x in nv
        if x["year"] == 2012
        for y in nv
        if y["year"] == 2022
    ]
    summary = {
        "pair": f"{FIRST} -> {LAST}",
        "records": [
            c.compare(f"FP64 FLOPS ratio {FIRST}->{LAST} (tensor)", PAPER_FP64_RATIO, fp64_best, "x"),
            c.compare(f"FP64 FLOPS ratio {FIRST}->{LAST} (vector)", PAPER_FP64_RATIO, fp64_vec, "x"),
            c.compare(f"memory bandwidth ratio {FIRST}->{LAST}", PAPER_BW_RATIO, bw, "x"),
            c.compare(f"memory capacity ratio {FIRST}->{LAST}", "-", cap, "x"),
        ],
        "fp64_ratio_range_2012_2022": [min(p[2] for p in pairs), max(p[2] for p in pairs)],
        "flops_per_bandwidth_growth": fp64_best / bw,
    }
    print(f"  FP64 ratio over all 2012->2022 NVIDIA pairs: {summary['fp64_ratio_range_2012_2022']}")
    c.write_json(out_dir / f"{NAME}.json", summary)
    return summary


def plot(out_dir: Path) -> None:
    rows = c.read_csv(out_dir / f"{NAME}.csv")
    fig, axes = c.plt.subplots(1, 2, figsize=(12, 4.8))
    nv = sorted((r for r in rows if r["vendor"] == "NVIDIA"), key=lambda r: r["year"])
    base = nv[0]
    series = [
        ("fp64_TFLOPS", "FP64 FLOPS (vector)", "o-"),
        ("bf16_or_fp16_dense_TFLOPS", "BF16/FP16 dense FLOPS", "s-"),
        ("memory_bandwidth_GBps", "memory bandwidth", "^-"),
        ("memory_capacity_GB", "memory capacity", "d-"),
    ]
    ax = axes[0]
    for col, label, style in series:
        pts = [(r["year"], r[col]) for r in nv if r[col] == r[col]]
        ref = pts[0][1] if col.startswith("bf16") else base[col]
        ax.plot([p[0] for p in pts], [p[1] / ref for p in pts], style, label=label)
    ax.set_yscale("log")
    ax.set_xlabel("year")
    ax.set_ylabel("growth vs first NVIDIA part in the series (x)")
    ax.set_title("NVIDIA datacenter GPUs: compute outgrows memory")
    ax.legend()
    ax.grid(True, which="both", alpha=0.3)

    ax = axes[1]
    for vendor, marker in (("NVIDIA", "o"), ("Google", "s"), ("AMD", "^")):
        pts = [
            r
            for r in rows
            if r["vendor"] == vendor and r["bf16_or_fp16_dense_TFLOPS"] == r["bf16_or_fp16_dense_TFLOPS"]
        ]
        ax.scatter(
            [r["year"] for r in pts],
            [r["bf16_or_fp16_dense_TFLOPS"] * 1e3 / r["memory_bandwidth_GBps"] for r in pts],
            marker=marker,
            label=vendor,
        )
    ax.set_yscale("log")
    ax.set_xlabel("year")
    ax.set_ylabel("machine balance: BF16 FLOP per byte of memory traffic")
    ax.set_title("Ridge point of the roofline rises (decode needs ~1-2 FLOP/B)")
    ax.legend()
    ax.grid(True, which="both", alpha=0.3)
    c.save_fig(fig, out_dir / f"{NAME}.png")


main = c.main_for(NAME, compute, plot, __doc__)

if __name__ == "__main__":
    raise SystemExit(main())
