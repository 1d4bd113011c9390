"""Artifact 16 (beyond the paper) - what should a decode-only chip look like?

Disaggregated serving (``Workload(batching="disaggregated")``, `hwgrad.cost.serve`):
prefill runs on its own pool and the decode pool's steps carry no prefill, so the decode
chip can be sized for decode alone. Candidates: today's H100, H200 and B200 (presets), and
decode chips built on the B200-class die of `hwgrad.presets.designs.hbm4_accelerator`
with 4, 8 or 12 HBM4 stacks (192-576 GB, 6.6-19.7 TB/s) and 100 %, 50 % or 25 % of its
dense compute (peak FLOP/s scaled; energy per FLOP, TDP and idle power unchanged).

ASSUMPTION, stated because it decides the $ column: no cited price model for a custom die
exists in the data, so every B200-class variant carries the B200's price; its $/M tokens
therefore shows what bandwidth and capacity buy at a fixed chip price, and the energy
column what the smaller compute saves. (The co-design package's technology variables are
where die area and stacks get prices.)

Method: Llama-3.1-70B and DeepSeek-V3 (full run; the smoke test runs 70B only), 2k prompt,
512 output, fp8 (same quality for all), exhaustive vmapped grid over concurrency 1-1024 x
chips 1-16 (TP = chips, EP = chips for the MoE); for each TPOT budget the cheapest feasible
decode point. Prefill-pool cost is not in $/M (the decode pool's chips only); its energy is.

    python experiments/a16_decode_chip.py [--quick] [--out DIR]
"""

from __future__ import annotations

from pathlib import Path

import common as c

import hwgrad as hg
from hwgrad.presets import designs

NAME = "a16_decode_chip"
WORK = {"prompt_len": 2048.0, "output_len": 512.0}
BUDGETS_S = (0.015, 0.030, 0.050)


def decode_chip(stacks: int, compute: float):
    def make(n):
        s = designs.hbm4_accelerator(n, hbm_stacks=stacks)
        ch = s.chip
        ch = hg.replace(
            ch,
            peak_flops_bf16=ch.peak_flops_bf16 * compute,
            peak_flops_fp8=ch.peak_flops_fp8 * compute,
            peak_flops_fp4=ch.peak_flops_fp4 * compute,
        )
        return hg.replace(s, chip=ch)

    return make


def candidates(quick: bool) -> dict:
    if quick:
        return {
            "H200": lambda n: hg.presets.system("h200-sxm", n),
            "HBM4 x8, 50 % compute": decode_chip(8, 0.5),
        }
    out = {
        "H100": lambda n: hg.presets.system("h100-sxm", n),
        "H200": lambda n: hg.presets.system("h200-sxm", n),
        "B200": lambda n: hg.presets.system("b200", n),
    }
    for stacks in (4, 8, 12):
        for f in (1.0, 0.5, 0.25):
            out[f"HBM4 x{stacks}, {f:.0%} compute"] = decode_chip(stacks, f)
    return out


def compute(out_dir: Path, quick: bool = False) -> dict:
    comp = hg.compression("fp8", "fp8")
    grid = (
        dict(chips=(2, 8), batches=(1, 32, 256)) if quick else dict(chips=(1, 2, 4, 8, 16), batches=c.BATCHES)
    )
    names = ["llama-3.1-70b"] if quick else ["llama-3.1-70b", "deepseek-v3"]
    work = {**WORK}
    rows = []
    for m in names:
        model = hg.presets.model(m)
        moe = float(model.n_experts) > 0
        grids = {}
        for k, build in candidates(quick).items():
            g = c.operating_grid(build, model, comp, work, moe=moe, batching="disaggregated", **grid)
            grids[k] = g
        rows += [{**r, "model": m} for r in c.iso_slo(grids, budgets=BUDGETS_S)]
    c.write_csv(out_dir / f"{NAME}.csv", rows)
    records = []
    for m in names:
        for t in BUDGETS_S:
            pts = [r for r in rows if r["model"] == m and r["tpot_budget_s"] == t and r["feasible"]]
            if not pts:
                records.append(
                    c.compare(f"{m}, TPOT <= {t * 1e3:.0f} ms: cheapest decode chip", "-", "none feasible")
                )
                continue
            best = min(pts, key=lambda r: r["usd_per_million_tokens"])
            lean = min(pts, key=lambda r: r["energy_j_per_token"])
            records.append(
                c.compare(
                    f"{m}, TPOT <= {t * 1e3:.0f} ms: cheapest / lowest-energy decode chip",
                    "-",
                    f"{best['design']} ({best['usd_per_million_tokens']:.3g} $/M, {best['chips']:.0f} chips) / "
                    f"{lean['design']} ({lean['energy_j_per_token']:.3g} J/token)",
                )
            )
    summary = {"records": records}
    c.write_json(out_dir / f"{NAME}.json", summary)
    return summary


def plot(out_dir: Path) -> None:
    rows = [r for r in c.read_csv(out_dir / f"{NAME}.csv") if r["tpot_budget_s"] == 0.030]
    models = list(dict.fromkeys(r["model"] for r in rows))
    fig, axes = c.figure(1, len(models), width_in=6.5 * len(models), height_in=4.2, squeeze=False)
    for ax, m in zip(axes[0], models, strict=True):
        pts = [r for r in rows if r["model"] == m and r["feasible"] == 1]
        for j, r in enumerate(pts):
            ax.scatter(
                r["energy_j_per_token"], r["usd_per_million_tokens"], color=f"C{j % 10}", label=r["design"]
            )
        ax.set_xlabel(c.plotting.axis_label("energy per output token", "J"))
        ax.set_ylabel(c.plotting.axis_label("cost per million output tokens", "USD"))
        ax.set_title(f"{m}: decode pool at TPOT <= 30 ms")
        c.plotting.legend_outside(ax)
    c.caption(
        fig,
        "Disaggregated decode pool, each chip at its cheapest feasible point (concurrency 1-1024 x chips 1-16) "
        "meeting TPOT <= 30 ms; 2k prompt, 512 output, fp8. B200-class variants priced as a B200 (ASSUMPTION).",
    )
    c.save_fig(fig, out_dir / f"{NAME}.png")


main = c.main_for(NAME, compute, plot, __doc__)

if __name__ == "__main__":
    raise SystemExit(main())
