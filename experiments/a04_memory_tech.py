"""Artifact 4 - Table 3: memory technologies with derived GB/s per W, GB per W, pJ/bit and
the time to read the whole device once (capacity / bandwidth).

    python experiments/a04_memory_tech.py [--quick] [--out DIR]
"""

from __future__ import annotations

from pathlib import Path

import common as c

import hwgrad as hg

NAME = "a04_memory_tech"
# Table 3 rows and the GBps/W the paper prints (memory_tech.csv notes)
PAPER_GBPS_PER_W = {"hbm4": 41.0, "hbf": 20.5, "ddr5": 4.0, "lpddr5": 17.0, "flash-card": 0.1}


def compute(out_dir: Path, quick: bool = False) -> dict:
    table = hg.presets.table("memory_tech")
    rows, records = [], []
    for name, paper in PAPER_GBPS_PER_W.items():
        r = table[name]
        cap, bw, w = (
            float(r[k]) for k in ("capacity_per_device_GB", "bandwidth_per_device_GBps", "power_per_device_W")
        )
        row = {
            "name": name,
            "capacity_GB": cap,
            "bandwidth_GBps": bw,
            "power_W": w,
            "GBps_per_W": bw / w,
            "GB_per_W": cap / w,
            "pJ_per_bit": w / (bw * 1e9 * 8) * 1e12,
            "catalogue_pJ_per_bit": float(r["energy_pJ_per_bit"]),
            "read_whole_device_s": cap / bw,
            "read_latency_ns": float(r["read_latency_ns"]),
            "bytes_per_read": float(r["bytes_per_read"]),
            "write_endurance": r["write_endurance"],
        }
        rows.append(row)
        bound = " (HBF: >, W is an upper bound)" if name == "hbf" else ""
        records.append(c.compare(f"{name} GB/s per W{bound}", paper, row["GBps_per_W"], verdict="input"))
    c.write_csv(out_dir / f"{NAME}.csv", rows)
    by = {r["name"]: r for r in rows}
    records.append(
        c.compare(
            "HBF / HBM4 capacity",
            "~10x",
            by["hbf"]["capacity_GB"] / by["hbm4"]["capacity_GB"],
            "x",
            verdict="input",
        )
    )
    summary = {"records": records}
    c.write_json(out_dir / f"{NAME}.json", summary)
    return summary


def plot(out_dir: Path) -> None:
    rows = c.read_csv(out_dir / f"{NAME}.csv")
    names = [r["name"] for r in rows]
    fig, axes = c.plt.subplots(1, 4, figsize=(15, 4.2))
    panels = [
        ("GBps_per_W", "bandwidth per watt (GB/s / W)"),
        ("GB_per_W", "capacity per watt (GB / W)"),
        ("pJ_per_bit", "energy per bit read (pJ/bit)"),
        ("read_whole_device_s", "time to read the whole device (s)"),
    ]
    for ax, (col, label) in zip(axes, panels, strict=True):
        ax.bar(names, [r[col] for r in rows], color=["C0", "C1", "C2", "C3", "C4"])
        ax.set_yscale("log")
        ax.set_ylabel(label)
        ax.tick_params(axis="x", rotation=30)
        ax.grid(True, axis="y", which="both", alpha=0.3)
    fig.suptitle("Table 3: memory technologies per device (derived columns)")
    c.save_fig(fig, out_dir / f"{NAME}.png")


main = c.main_for(NAME, compute, plot, __doc__)

if __name__ == "__main__":
    raise SystemExit(main())
