"""Artifact 9 - 3D memory-logic stacking, judged at iso-SLO, and logic at lowered clock.

Designs (`hwgrad.presets.designs`), all with 8 HBM4 stacks per chip: plain HBM4 (no
stacked logic); compute on the HBM base die (same bandwidth, data-movement energy 2.5x lower,
thermal budget 40 W per stack = the stack's own power, ASSUMPTION); custom 3D (4x internal
bandwidth, 3x lower energy, ASSUMPTIONS: the paper says only "higher bandwidth per area").
Decode GEMV and attention run on the stacked logic, prefill on the host.

(a) iso-SLO: Llama-3.1-70B, static batch, 2k prompt, 256 output, fp8 (same quality for all),
exhaustive vmapped grid over batch 1-1024 x chips 1-16 (TP = chips); per TPOT budget
(10-100 ms) the cheapest feasible point of each design.
(b) DVFS under the thermal cap: base-die logic at clock fraction ``f`` of full speed gives
``f`` x the FLOP/s at ``f^2`` x the energy per FLOP (ASSUMPTION: voltage scales with
frequency, dynamic energy with V^2; no cited DVFS curve is in the data), at caps of 10 and
40 W per stack; 8 chips, TP=8, batch 256.

    python experiments/a09_stacking.py [--quick] [--out DIR]
"""

from __future__ import annotations

from pathlib import Path

import common as c

import hwgrad as hg
from hwgrad.presets import designs

NAME = "a09_stacking"
WORK = {"prompt_len": 2048.0, "output_len": 256.0}
DESIGNS = {
    "HBM4 (no stacked logic)": designs.hbm4_accelerator,
    "base die": designs.base_die_compute,
    "custom 3D": designs.custom_3d,
}
CAPTION = (
    "(left three) each design at its cheapest feasible point (grid: batch 1-1024 x chips 1-16, TP = chips) "
    "meeting the TPOT budget; Llama-3.1-70B, static batch, 2k prompt, 256 output, fp8; 40 W thermal cap per "
    "stack. (right) base-die logic at clock fraction f: f x FLOP/s at f^2 x J/FLOP (ASSUMPTION V ~ f)."
)


def _dvfs(f: float, cap_w: float):
    s = designs.base_die_compute(8, power_cap_w_per_stack=cap_w)
    t = s.chip.tiers[0]
    t = hg.replace(t, nmc_flops=t.nmc_flops * f, nmc_energy_j_per_flop=t.nmc_energy_j_per_flop * f * f)
    return hg.replace(s, chip=hg.replace(s.chip, tiers=(t,)))


def compute(out_dir: Path, quick: bool = False) -> dict:
    model = hg.presets.model("llama-3.1-70b")
    comp = hg.compression("fp8", "fp8")
    grid = (
        dict(chips=(2, 8), batches=(1, 32, 256)) if quick else dict(chips=(1, 2, 4, 8, 16), batches=c.BATCHES)
    )
    grids = {k: c.operating_grid(b, model, comp, WORK, **grid) for k, b in DESIGNS.items()}
    iso = c.iso_slo(grids)
    c.write_csv(out_dir / f"{NAME}.csv", iso)

    fs = (0.25, 1.0) if quick else (0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875, 1.0)
    caps = (10.0, 40.0)
    w = hg.Workload(batch=256.0, tp=8.0, **WORK)
    cases = [(cap, f) for cap in caps for f in fs]
    res = c.evaluate_many([(_dvfs(f, cap), model, w, comp) for cap, f in cases])
    dvfs = [
        {
            "cap_w_per_stack": cap,
            "clock_fraction": f,
            "decode_tokens_per_s": float(res.decode_tokens_per_s[i]),
            "energy_j_per_token": float(res.energy_j_per_token[i]),
            "tpot_s": float(res.tpot_s[i]),
        }
        for i, (cap, f) in enumerate(cases)
    ]
    c.write_csv(out_dir / f"{NAME}_dvfs.csv", dvfs)

    def at(k, t):
        return next(r for r in iso if r["design"] == k and r["tpot_budget_s"] == t)

    records, ratios = [], {}
    for t in c.TPOT_BUDGETS_S:
        base = at("HBM4 (no stacked logic)", t)
        for k in ("base die", "custom 3D"):
            r = at(k, t)
            if base["feasible"] and r["feasible"]:
                usd = r["usd_per_million_tokens"] / base["usd_per_million_tokens"]
                joule = r["energy_j_per_token"] / base["energy_j_per_token"]
                ratios[f"{k} | {t * 1e3:.0f} ms"] = {"usd": usd, "energy": joule}
                ours = f"$ {usd:.2f}x, J {joule:.2f}x"
                v = c.verdict(
                    joule <= 0.5,
                    "only the memory data-movement energy drops 2-3x; host compute, idle and network "
                    "energy per token stay",
                )
            else:
                ours = f"{k} {'ok' if r['feasible'] else 'infeasible'}, HBM4 {'ok' if base['feasible'] else 'infeasible'}"
                v = "differs, because a design has no feasible point"
            records.append(
                c.compare(
                    f"llama-3.1-70b: {k} / HBM4 at TPOT <= {t * 1e3:.0f} ms",
                    "2-3x lower power",
                    ours,
                    verdict=v,
                )
            )
    best = {
        cap: max((r for r in dvfs if r["cap_w_per_stack"] == cap), key=lambda r: r["decode_tokens_per_s"])
        for cap in caps
    }
    for cap, r in best.items():
        records.append(
            c.compare(
                f"base die, {cap:g} W/stack, batch 256: clock fraction with the highest throughput",
                "logic runs at low clock / voltage",
                r["clock_fraction"],
                verdict=c.verdict(r["clock_fraction"] < 1.0, "at this cap the logic is not power-limited"),
            )
        )
    summary = {
        "records": records,
        "iso_slo_vs_hbm4": ratios,
        "best_clock_fraction": {f"{cap:g} W": r["clock_fraction"] for cap, r in best.items()},
    }
    c.write_json(out_dir / f"{NAME}.json", summary)
    return summary


def plot(out_dir: Path) -> None:
    iso = c.read_csv(out_dir / f"{NAME}.csv")
    dvfs = c.read_csv(out_dir / f"{NAME}_dvfs.csv")
    fig, axes = c.figure(1, 4, width_in=17.0, height_in=3.9)
    c.plot_iso_slo(axes[:3], iso, designs=list(DESIGNS))
    axes[0].set_title("Llama-3.1-70B: cost at iso-TPOT")
    axes[1].set_title("energy at that point")
    axes[2].set_title("chips chosen")
    ax = axes[3]
    for j, cap in enumerate(sorted({r["cap_w_per_stack"] for r in dvfs})):
        pts = sorted((r for r in dvfs if r["cap_w_per_stack"] == cap), key=lambda r: r["clock_fraction"])
        ax.plot(
            [r["clock_fraction"] for r in pts],
            [r["decode_tokens_per_s"] / 1e3 for r in pts],
            "o-",
            color=f"C{j + 3}",
            label=f"base die, {cap:g} W/stack cap",
        )
    ax.set_xlabel(c.plotting.axis_label("logic clock / full clock", "-"))
    ax.set_ylabel(c.plotting.axis_label("decode throughput, 8 chips, batch 256", "k tokens/s"))
    ax.set_title("DVFS under the thermal cap")
    h1, l1 = axes[2].get_legend_handles_labels()
    h2, l2 = ax.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
    c.caption(fig, CAPTION)
    c.save_fig(fig, out_dir / f"{NAME}.png")


main = c.main_for(NAME, compute, plot, __doc__)

if __name__ == "__main__":
    raise SystemExit(main())
