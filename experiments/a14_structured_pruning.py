"""Structured pruning as a co-design knob: per-layer keep gates + bits + hardware for
Llama-3.1-70B decode, against quantisation-only and pruning-only.

Problem (issue 19, item 4): the built-in co-design study's chip (HBM3e stacks, an N5 logic
die, NVLink4 links, `hwgrad.codesign.technology`), chip count (= TP) and batch are free in
every mode; prompt 2048, output 512; minimise $/M tokens subject to TPOT <= 30 ms, Delta
loss <= ``BUDGET_NATS`` (Wikitext-2, `hwgrad.accuracy.delta_loss` with the structured
term), capacity and chip TDP <= 1 kW; the dense base model is bf16 (weights, KV,
activations). Modes:

* ``quant``: weight and KV bits ({2, 3, 4, 6, 8, 16}) + hardware;
* ``prune``: 80 per-layer keep gates in [0, 1] (rounded to {0, 1}) + hardware, bf16 kept;
* ``joint``: gates + bits + hardware.

Each mode runs the co-design optimiser (`hwgrad.codesign.optimize`, augmented-Lagrangian
Adam) from the base design, then `hwgrad.codesign.round_and_repair` (hard roofline; the same
feasibility rule as every co-design output). The joint problem contains both single-knob
problems, so it also starts from their rounded designs (three starts in parallel) and keeps
the cheapest feasible design among the rounded descents and those two designs.

Which layers to drop is decided by an ASSUMED layer-importance profile
(`hwgrad.codesign.default_layer_sensitivity`: the first and last layers most sensitive,
flat in between): ``structured_pruning.csv`` gives layer counts, not which layers, so the
fitted depth curve is read as the loss of dropping the least important layers
(`hwgrad.accuracy.Structured.from_compression`). The comparison with ShortGPT's published
layer importance (Men et al. 2024, "ShortGPT: Layers in Large Language Models are More
Redundant Than You Expect", arXiv:2403.03853: the middle-to-late layers have the lowest
Block Influence, the first and last layers the highest) therefore tests the assumption's
shape, not data: within the flat middle of the profile the choice among layers is a tie.
The depth data stop at 13B and the Llama-3 depth rows at 8B: the range warnings are
recorded in the summary.

    python experiments/a14_structured_pruning.py [--quick] [--out DIR]
"""

from __future__ import annotations

from pathlib import Path

import common as c
import jax.numpy as jnp
import numpy as np

from hwgrad import accuracy as acc
from hwgrad import codesign as cd

NAME = "a14_structured_pruning"
BUDGET_NATS = 0.15
BITS = [2, 3, 4, 6, 8, 16]
MODES = ("quant", "prune", "joint")
#: ShortGPT's cheapest layers to drop: the middle-to-late part of the stack (relative depth)
SHORTGPT_DEPTH = (0.4, 0.95)


def study_doc(mode: str) -> dict:
    """The co-design study of ``mode`` (a study-file dict, `hwgrad.codesign.study_from_dict`)."""
    doc = cd.default_study_dict()
    doc["study"] = {**doc["study"], "name": f"a14 {mode}", "compare": []}
    doc["base"] = {
        **doc["base"],
        "weight_dtype": "bf16",
        "kv_dtype": "bf16",
        "act_dtype": "bf16",
        "sparsity": 0.0,
    }
    variables = [v for v in doc["variables"] if not str(v["path"]).startswith("compression.")]
    if mode in ("quant", "joint"):
        variables += [
            {"path": "compression.weight_bits", "min": 2, "max": 16, "values": BITS},
            {"path": "compression.kv_bits", "min": 2, "max": 16, "values": BITS},
        ]
    if mode in ("prune", "joint"):
        variables.append(
            {
                "path": "compression.layer_keep_gates",
                "min": 0.0,
                "max": 1.0,
                "scale": "linear",
                "values": [0, 1],
                "per_layer": True,
            }
        )
    doc["variables"] = variables
    doc["constraints"] = [
        {"metric": "tpot_s", "max": 0.030},
        {"metric": "delta_loss", "max": BUDGET_NATS},
        {"metric": "capacity"},
        {"metric": "system.chip.tdp_w", "max": 1000.0},
    ]
    doc.pop("pareto", None)
    return doc


def shortgpt_verdict(dropped: list[int], n_layers: int) -> str:
    """Do the dropped layers lie where ShortGPT finds the least important ones?"""
    if not dropped:
        return "no layer dropped"
    depth = (np.asarray(dropped) + 0.5) / n_layers
    lo, hi = SHORTGPT_DEPTH
    if np.all((depth >= lo) & (depth < hi)):
        return "agrees (middle-to-late layers, none of the first or last)"
    if np.all((depth >= 0.1) & (depth < hi)):
        return "partly (middle layers, not the first or last; some before ShortGPT's range)"
    return "disagrees (drops early or final layers)"


def compute(out_dir: Path, quick: bool = False) -> dict:
    steps = 60 if quick else 400
    rows, warnings, records, designs = [], [], [], {}
    for mode in MODES:
        study = cd.study_from_dict(study_doc(mode), NAME)
        p = study.problem
        starts = [p.project(p.z0)]
        if mode == "joint":
            # the joint problem contains both single-knob designs: they are two more starts
            for other in ("quant", "prune"):
                vals = dict(p.start_values)
                vals.update({k: jnp.asarray(v) for k, v in designs[other].items() if k in vals})
                starts.append(p.project(p.to_z(vals)))
        run = cd.optimize(
            p,
            steps,
            len(starts),
            lr=study.lr,
            seed=0,
            inner_steps=study.inner_steps,
            z_init=jnp.stack(starts),
        )
        # round every start and keep the cheapest feasible design (the same rule as a study)
        cands = [cd.round_and_repair(p, p.from_z(run.z[i])) for i in range(len(starts))]
        # ... and the single-knob designs themselves (descent from them may not improve them)
        cands += [cd.round_and_repair(p, p.from_z(starts[i])) for i in range(1, len(starts))]
        best = min(range(len(cands)), key=lambda i: (not cands[i].feasible, cands[i].objective))
        d = cands[best]
        designs[mode] = d.values
        n = p.n_layers
        gates = np.asarray(d.values.get("compression.layer_keep_gates", np.ones(n)), dtype=float)
        dropped = [int(i) for i in np.flatnonzero(gates < 0.5)]
        relaxed = p.from_z(run.z[best] if best < len(starts) else starts[best - len(starts) + 1])
        relaxed_gates = np.asarray(relaxed.get("compression.layer_keep_gates", np.ones(n)))
        if mode != "quant":
            specs, _ = p.specs_at({k: np.asarray(v) for k, v in d.values.items()})
            st = acc.Structured.from_compression(
                specs["model"], specs["compression"], layer_importance=p.layer_sensitivity
            )
            warnings += [f"{mode}: {w}" for w in acc.structured_range_warnings(st, p.params_b)]
        wb = float(d.values.get("compression.weight_bits", 16.0))
        kb = float(d.values.get("compression.kv_bits", 16.0))
        row = {
            "mode": mode,
            "feasible": d.feasible,
            "usd_per_million_tokens": float(d.metrics["usd_per_million_tokens"]),
            "tpot_ms": 1e3 * float(d.metrics["tpot_s"]),
            "delta_loss_nats": float(d.metrics["delta_loss"]),
            "layers_kept": int(n - len(dropped)),
            "layers_dropped": " ".join(map(str, dropped)),
            "weight_bits": wb,
            "kv_bits": kb,
            "chips": float(d.values["chips (= tp)"]),
            "batch": float(d.values["workload.batch"]),
            "memory_stacks": float(d.values["technology.memory_stacks"]),
            "relaxed_gate_sum": float(relaxed_gates.sum()),
            "gradient_steps": steps,
            "starts": len(starts),
            "chosen": [
                "descent from base",
                "descent from quant",
                "descent from prune",
                "quant design",
                "prune design",
            ][best],
            "report": d.report,
        }
        rows.append(row)
        print(
            f"  {mode}: {row['usd_per_million_tokens']:.4g} $/M tokens, TPOT {row['tpot_ms']:.3g} ms, "
            f"delta loss {row['delta_loss_nats']:.3g} nats, {row['layers_kept']} of {n} layers kept "
            f"(dropped: {row['layers_dropped'] or 'none'}), {wb:g}-bit weights, {kb:g}-bit KV; {d.report}",
            flush=True,
        )
        records.append(
            c.compare(
                f"{mode}: $/M tokens at delta loss <= {BUDGET_NATS} nats",
                "-",
                row["usd_per_million_tokens"],
                " $/M",
            )
        )
        records.append(c.compare(f"{mode}: layers kept of {n}", "-", row["layers_kept"]))
    verdict = {}
    for row in rows:
        if row["mode"] == "quant":
            continue
        dropped = [int(x) for x in row["layers_dropped"].split()]
        verdict[row["mode"]] = shortgpt_verdict(dropped, 80)
        depth = (
            f" (relative depth {(min(dropped) + 0.5) / 80:.2f}-{(max(dropped) + 0.5) / 80:.2f})"
            if dropped
            else ""
        )
        records.append(
            c.compare(
                f"{row['mode']}: dropped layers vs ShortGPT (middle-to-late cheapest)",
                "middle-to-late",
                f"{verdict[row['mode']]}{depth}; follows the assumed importance profile, not data",
            )
        )
    c.write_csv(out_dir / f"{NAME}.csv", rows)
    summary = {
        "budget_nats": BUDGET_NATS,
        "rows": rows,
        "shortgpt_verdict": verdict,  # mode -> verdict (modes with keep gates)
        "warnings": sorted(set(warnings)),
        "records": records,
    }
    c.write_json(out_dir / f"{NAME}.json", summary)
    return summary


def plot(out_dir: Path) -> None:
    rows = c.read_csv(out_dir / f"{NAME}.csv")
    fig, (ax0, ax1) = c.plt.subplots(1, 2, figsize=(11, 3.8))
    for i, r in enumerate(rows):
        dropped = [int(x) for x in str(r["layers_dropped"]).split()] if r["layers_dropped"] else []
        ax0.scatter(dropped, [i] * len(dropped), marker="s", s=14)
    lo, hi = SHORTGPT_DEPTH
    ax0.axvspan(80 * lo, 80 * hi, color="0.9", zorder=0, label="ShortGPT: cheapest to drop")
    ax0.set_yticks(range(len(rows)), [r["mode"] for r in rows])
    ax0.set_xlim(-1, 80)
    ax0.set_xlabel("dropped layer index (Llama-3.1-70B, 80 layers)")
    ax0.legend(loc="upper left", fontsize=8)
    ax1.bar([r["mode"] for r in rows], [float(r["usd_per_million_tokens"]) for r in rows])
    ax1.set_ylabel(f"$ per million tokens at delta loss <= {BUDGET_NATS} nats")
    fig.suptitle("Structured pruning + bits + hardware (TPOT <= 30 ms)")
    c.save_fig(fig, out_dir / f"{NAME}.png")


main = c.main_for(NAME, compute, plot, __doc__)

if __name__ == "__main__":
    raise SystemExit(main())
