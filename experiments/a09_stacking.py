"""Artifact 9 - 3D stacking: decode throughput and energy vs the thermal cap of the logic
on the HBM base die (:func:`hwgrad.presets.designs.base_die_compute`) and in a custom 3D
stack (4x internal bandwidth), vs batch; where the cap binds (throughput within 1 % of the
uncapped design means the cap does not bind). Llama-3.1-70B fp8 on 8 chips, TP=8.

    python experiments/a09_stacking.py [--quick] [--out DIR]
"""

from __future__ import annotations

from pathlib import Path

import common as c

import hwgrad as hg
from hwgrad.presets import designs

NAME = "a09_stacking"
UNCAPPED = 1e6  # W per stack: effectively no thermal limit


def compute(out_dir: Path, quick: bool = False) -> dict:
    model = hg.presets.model("llama-3.1-70b")
    comp = hg.compression("fp8", "fp8")
    caps = [5.0, 40.0, UNCAPPED] if quick else [2.5, 5.0, 10.0, 20.0, 40.0, 80.0, UNCAPPED]
    batches = [1, 256] if quick else [1, 4, 16, 64, 256, 1024]
    rows, points = [], []
    for design, build in (("base die", designs.base_die_compute), ("custom 3D", designs.custom_3d)):
        for cap in caps:
            for b in batches:
                points.append(
                    (
                        build(8, power_cap_w_per_stack=cap),
                        model,
                        hg.Workload(batch=float(b), prompt_len=2048.0, output_len=256.0, tp=8.0),
                        comp,
                    )
                )
                rows.append({"design": design, "cap_w_per_stack": cap, "batch": b})
    res = c.evaluate_many(points)
    for i, r in enumerate(rows):
        r.update(
            decode_tokens_per_s=res.decode_tokens_per_s[i],
            energy_j_per_token=res.energy_j_per_token[i],
            tpot_s=res.tpot_s[i],
        )
    for r in rows:
        free = next(
            x
            for x in rows
            if x["design"] == r["design"] and x["batch"] == r["batch"] and x["cap_w_per_stack"] == UNCAPPED
        )
        r["throughput_vs_uncapped"] = r["decode_tokens_per_s"] / free["decode_tokens_per_s"]
        r["cap_binds"] = int(r["throughput_vs_uncapped"] < 0.99)
    c.write_csv(out_dir / f"{NAME}.csv", rows)
    at40 = [r for r in rows if r["design"] == "base die" and r["cap_w_per_stack"] == 40.0]
    binds_from = next((r["batch"] for r in at40 if r["cap_binds"]), float("nan"))
    summary = {
        "records": [
            c.compare(
                "base die, 40 W/stack: smallest batch where the cap binds",
                "binds (heat limits logic)",
                binds_from,
            ),
            c.compare(
                "base die, 40 W/stack: throughput vs uncapped at max batch",
                "-",
                at40[-1]["throughput_vs_uncapped"],
                "x",
            ),
            c.compare(
                "base die, 40 W/stack: throughput vs uncapped at batch 1",
                "-",
                at40[0]["throughput_vs_uncapped"],
                "x",
            ),
        ],
        "binds_from_batch": binds_from,
    }
    c.write_json(out_dir / f"{NAME}.json", summary)
    return summary


def plot(out_dir: Path) -> None:
    rows = c.read_csv(out_dir / f"{NAME}.csv")
    fig, axes = c.plt.subplots(1, 2, figsize=(13, 4.6))
    for ax, col, label in (
        (axes[0], "decode_tokens_per_s", "decode throughput (tokens/s)"),
        (axes[1], "energy_j_per_token", "energy per output token (J)"),
    ):
        for j, design in enumerate(("base die", "custom 3D")):
            for k, b in enumerate(sorted({r["batch"] for r in rows})):
                pts = sorted(
                    (r for r in rows if r["design"] == design and r["batch"] == b),
                    key=lambda r: r["cap_w_per_stack"],
                )
                pts = [r for r in pts if r["cap_w_per_stack"] < UNCAPPED]
                ax.plot(
                    [r["cap_w_per_stack"] for r in pts],
                    [r[col] for r in pts],
                    "o-" if j == 0 else "s--",
                    color=f"C{k}",
                    label=f"{design}, batch {b:.0f}",
                )
        ax.axvline(40.0, color="grey", ls=":", label="HBM4 stack power (40 W)")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("thermal cap of stacked logic (W per stack)")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=6, ncol=2)
    fig.suptitle("3D stacking: Llama-3.1-70B fp8, 8 chips x 8 HBM4 stacks (flat lines = cap not binding)")
    c.save_fig(fig, out_dir / f"{NAME}.png")


main = c.main_for(NAME, compute, plot, __doc__)

if __name__ == "__main__":
    raise SystemExit(main())
