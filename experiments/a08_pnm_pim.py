"""Artifact 8 - PNM vs PIM (Table 4): shard counts, bandwidth per watt, decode energy and
latency for 8B-405B Llama models on an HBM4 chip (8 stacks) without near-memory compute,
with processing-near-memory (2-5x bandwidth/W, 16-32 GB shards) and with
processing-in-memory (5-10x, 32-64 MB shards); ranges taken at their geometric means
(:mod:`hwgrad.presets.designs`). Batch 1, 2k prompt, fp8.

    python experiments/a08_pnm_pim.py [--quick] [--out DIR]
"""

from __future__ import annotations

from pathlib import Path

import common as c
import numpy as np

import hwgrad as hg
from hwgrad.presets import designs

NAME = "a08_pnm_pim"
MODELS = {"llama-3.1-8b": 1, "llama-3.1-70b": 1, "llama-3.1-405b": 2}  # model -> TP (fp8 fits 384 GB/chip)


def _system(kind, tp):
    s = designs.hbm4_accelerator(tp)
    if kind == "none":
        return s
    tier = (designs.pim_tier if kind == "PIM" else designs.pnm_tier)(s.chip.tiers[0])
    return hg.replace(s, chip=hg.replace(s.chip, tiers=(tier,)))


def compute(out_dir: Path, quick: bool = False) -> dict:
    comp = hg.compression("fp8", "fp8")
    mods = dict(list(MODELS.items())[:2]) if quick else MODELS
    rows = []
    for kind in ("none", "PNM", "PIM"):
        cases = [
            (
                _system(kind, tp),
                hg.presets.model(m),
                hg.Workload(batch=1.0, prompt_len=2048.0, output_len=256.0, tp=float(tp)),
                comp,
            )
            for m, tp in mods.items()
        ]
        res = c.evaluate_many(cases)
        for i, (m, tp) in enumerate(mods.items()):
            s, model, w, _ = cases[i]
            tier = s.chip.tiers[0]
            shards = (
                float(np.asarray(hg.memory.shard_counts(s, model, w, comp))[0]) if kind != "none" else 0.0
            )
            rows.append(
                {
                    "memory": kind,
                    "model": m,
                    "tp": tp,
                    "shards_per_chip": shards,
                    "bandwidth_per_watt_vs_standard": float(
                        tier.energy_j_per_byte / tier.nmc_energy_j_per_byte
                    )
                    if kind != "none"
                    else 1.0,
                    "tpot_s": res.tpot_s[i],
                    "energy_j_per_token": res.energy_j_per_token[i],
                    "memory_energy_j_per_token": res.decode.energy_memory_j[i],
                }
            )
    c.write_csv(out_dir / f"{NAME}.csv", rows)
    by = {(r["memory"], r["model"]): r for r in rows}
    m0 = "llama-3.1-70b"
    summary = {
        "records": [
            c.compare(
                "PIM bandwidth/W vs standard", "5-10x", by[("PIM", m0)]["bandwidth_per_watt_vs_standard"], "x"
            ),
            c.compare(
                "PNM bandwidth/W vs standard", "2-5x", by[("PNM", m0)]["bandwidth_per_watt_vs_standard"], "x"
            ),
            c.compare(
                f"{m0} shards per chip PIM / PNM",
                "-",
                f"{by[('PIM', m0)]['shards_per_chip']:.0f} / {by[('PNM', m0)]['shards_per_chip']:.1f}",
            ),
            c.compare(
                f"{m0} TPOT: PNM / none", "-", by[("PNM", m0)]["tpot_s"] / by[("none", m0)]["tpot_s"], "x"
            ),
            c.compare(
                f"{m0} TPOT: PIM / none", "-", by[("PIM", m0)]["tpot_s"] / by[("none", m0)]["tpot_s"], "x"
            ),
            c.compare(
                f"{m0} energy/token: PNM / none",
                "-",
                by[("PNM", m0)]["energy_j_per_token"] / by[("none", m0)]["energy_j_per_token"],
                "x",
            ),
            c.compare(
                f"{m0} energy/token: PIM / none",
                "-",
                by[("PIM", m0)]["energy_j_per_token"] / by[("none", m0)]["energy_j_per_token"],
                "x",
            ),
        ]
    }
    c.write_json(out_dir / f"{NAME}.json", summary)
    return summary


def plot(out_dir: Path) -> None:
    rows = c.read_csv(out_dir / f"{NAME}.csv")
    models = list(dict.fromkeys(r["model"] for r in rows))
    fig, axes = c.plt.subplots(1, 3, figsize=(15, 4.4))
    x = np.arange(len(models))
    for ax, col, label in (
        (axes[0], "shards_per_chip", "near-memory shards per chip"),
        (axes[1], "tpot_s", "TPOT (s), batch 1"),
        (axes[2], "energy_j_per_token", "energy per output token (J)"),
    ):
        for j, kind in enumerate(("none", "PNM", "PIM")):
            vals = [next(r[col] for r in rows if r["memory"] == kind and r["model"] == m) for m in models]
            ax.bar(
                x + (j - 1) * 0.27,
                np.maximum(vals, 1e-9) if col == "shards_per_chip" else vals,
                0.27,
                label=kind,
            )
        ax.set_xticks(x, models)
        ax.set_yscale("log")
        ax.set_ylabel(label)
        ax.grid(True, axis="y", which="both", alpha=0.3)
    axes[0].set_ylim(bottom=0.5)
    axes[0].legend()
    fig.suptitle("PNM vs PIM on an 8-stack HBM4 chip (fp8, batch 1, 2k prompt)")
    c.save_fig(fig, out_dir / f"{NAME}.png")


main = c.main_for(NAME, compute, plot, __doc__)

if __name__ == "__main__":
    raise SystemExit(main())
