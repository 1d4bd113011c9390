"""Artifact 2 - Table 1: HBM generations; stack bandwidth from bus width x pin rate, and
capacity per stack.

    python experiments/a02_hbm_generations.py [--quick] [--out DIR]
"""

from __future__ import annotations

from pathlib import Path

import common as c

import hwgrad as hg

NAME = "a02_hbm_generations"
PAPER_ENDPOINTS = {"bandwidth_GBps": (128.0, 2048.0), "capacity_GB": (4.0, 64.0)}  # HBM 2013 -> HBM4 2026


def compute(out_dir: Path, quick: bool = False) -> dict:
    rows = []
    for gen, r in hg.presets.table("hbm_generations").items():
        width, rate = float(r["bus_width_bits"]), float(r["pin_rate_Gbps"])
        rows.append(
            {
                "generation": gen,
                "year": float(r["year"]),
                "bus_width_bits": width,
                "pin_rate_Gbps": rate,
                "bandwidth_from_width_x_rate_GBps": width * rate / 8.0,
                "table_bandwidth_GBps": float(r["stack_bandwidth_GBps"]),
                "max_capacity_GB": float(r["max_capacity_GB"]),
            }
        )
    c.write_csv(out_dir / f"{NAME}.csv", rows)
    first, last = rows[0], rows[-1]
    years = last["year"] - first["year"]
    bw_x = last["bandwidth_from_width_x_rate_GBps"] / first["bandwidth_from_width_x_rate_GBps"]
    cap_x = last["max_capacity_GB"] / first["max_capacity_GB"]
    summary = {
        "max_width_x_rate_error_GBps": max(
            abs(r["bandwidth_from_width_x_rate_GBps"] - r["table_bandwidth_GBps"]) for r in rows
        ),
        "records": [
            c.compare(
                "HBM4 stack bandwidth (width x rate)",
                2048.0,
                last["bandwidth_from_width_x_rate_GBps"],
                " GB/s",
                verdict="input",
            ),
            c.compare("HBM -> HBM4 bandwidth growth", 2048.0 / 128.0, bw_x, "x"),
            c.compare("HBM -> HBM4 capacity growth", 64.0 / 4.0, cap_x, "x"),
            c.compare("bandwidth CAGR 2013->2026", "-", 100 * (bw_x ** (1 / years) - 1), " %/yr"),
            c.compare("capacity CAGR 2013->2026", "-", 100 * (cap_x ** (1 / years) - 1), " %/yr"),
        ],
    }
    c.write_json(out_dir / f"{NAME}.json", summary)
    return summary


def plot(out_dir: Path) -> None:
    rows = c.read_csv(out_dir / f"{NAME}.csv")
    fig, ax = c.plt.subplots(figsize=(7.5, 4.8))
    years = [r["year"] for r in rows]
    ax.plot(
        years, [r["bandwidth_from_width_x_rate_GBps"] for r in rows], "o-", label="stack bandwidth (GB/s)"
    )
    ax.plot(years, [r["max_capacity_GB"] for r in rows], "s-", label="max stack capacity (GB)")
    for r in rows:
        ax.annotate(
            f"{r['generation']}\n{int(r['bus_width_bits'])}b x {r['pin_rate_Gbps']:g} Gb/s",
            (r["year"], r["bandwidth_from_width_x_rate_GBps"]),
            textcoords="offset points",
            xytext=(0, 8),
            ha="center",
            fontsize=7,
        )
    ax.set_yscale("log")
    ax.set_xlabel("year")
    ax.set_ylabel("GB/s per stack  |  GB per stack")
    ax.set_title("Table 1: HBM generations (bandwidth = bus width x pin rate / 8)")
    ax.legend(loc="lower right")
    ax.grid(True, which="both", alpha=0.3)
    c.save_fig(fig, out_dir / f"{NAME}.png")


main = c.main_for(NAME, compute, plot, __doc__)

if __name__ == "__main__":
    raise SystemExit(main())
