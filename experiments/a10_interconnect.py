"""Artifact 10 - interconnect: "latency trumps bandwidth" for small-batch TP decode.

(a) TPOT of Llama-3.1-70B (fp8, TP=8, batch 1 and 64, H100 on an NVLink switch) when the
per-hop + endpoint latency or the link bandwidth is scaled 0.1x-10x. (b) All-reduce time vs
message size for ring, 2D torus, switch, dragonfly and a tree with in-network reduction
(`hwgrad.network.allreduce_s`, 64 chips), and the TPOT each topology gives: the
switch-network TPOT with its all-reduce time replaced by the topology's (exact here:
``comm_overlap`` = 0, no pipeline). (c) iso-SLO: the same B200-class HBM4 chip on today's
NVLink-5 switch (300 ns hops, 0.3 us endpoints) and on the paper's low-latency fabric
(`hwgrad.presets.designs.tree_network`: a switch tree with in-network reduction, 100 ns
hops, 0.1 us endpoints - packets landing in SRAM, ASSUMPTION), each at its cheapest feasible
point (exhaustive vmapped grid over batch 1-1024 x chips 1-32, TP = chips; Llama-3.1-70B,
static batch, 1k prompt, 128 output, fp8: the same quality for both) per TPOT budget
10-100 ms. A lower latency lets a design use more chips per replica at a tight budget.

    python experiments/a10_interconnect.py [--quick] [--out DIR]
"""

from __future__ import annotations

from pathlib import Path

import common as c
import numpy as np

import hwgrad as hg
from hwgrad import network
from hwgrad.presets import designs

NAME = "a10_interconnect"
TOPOLOGIES = {
    "ring": dict(topology="ring"),
    "torus 2D": dict(topology="torus", torus_dims=2),
    "switch": dict(topology="switch"),
    "dragonfly": dict(topology="dragonfly"),
    "tree + in-network": dict(topology="tree", in_network_reduction=True),
}


def compute(out_dir: Path, quick: bool = False) -> dict:
    model = hg.presets.model("llama-3.1-70b")
    comp = hg.compression("fp8", "fp8")
    base = hg.presets.system("h100-sxm", 8)
    net = base.network
    scales = [0.1, 1.0, 10.0] if quick else [0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0]
    rows, points = [], []
    for b in (1, 64):
        w = hg.Workload(batch=float(b), prompt_len=1024.0, output_len=128.0, tp=8.0)
        for knob in ("latency", "bandwidth"):
            for s in scales:
                n = (
                    hg.replace(
                        net,
                        hop_latency_s=net.hop_latency_s * s,
                        endpoint_overhead_s=net.endpoint_overhead_s * s,
                    )
                    if knob == "latency"
                    else hg.replace(net, link_bandwidth_bytes_per_s=net.link_bandwidth_bytes_per_s * s)
                )
                points.append((hg.replace(base, network=n), model, w, comp))
                rows.append({"batch": b, "knob": knob, "scale": s})
    res = c.evaluate_many(points)
    for i, r in enumerate(rows):
        r.update(tpot_s=res.tpot_s[i], communication_s=res.decode.communication_s[i])
    c.write_csv(out_dir / f"{NAME}_sweep.csv", rows)

    # topologies: all-reduce vs message size, and the TPOT each gives at TP=8
    sizes = np.logspace(3, 9, 4 if quick else 25)
    topo_rows, tpot_rows = [], []
    eff = hg.calibrated_efficiency()
    for name, kw in TOPOLOGIES.items():
        n = hg.replace(net, **kw)
        t64 = np.asarray(network.allreduce_s(n, sizes, 64.0))
        for sz, t in zip(sizes, t64, strict=True):
            topo_rows.append({"topology": name, "message_bytes": sz, "allreduce_s_64_chips": t})
        for b in (1, 64):
            i = next(
                j
                for j, r in enumerate(rows)
                if r["batch"] == b and r["knob"] == "latency" and r["scale"] == 1.0
            )
            ops, comm = hg.counts.forward_counts(
                model, comp, hg.Workload(batch=float(b), tp=8.0), 1.0, 1024.0
            )
            calls, nbytes = float(comm.tp_allreduce_calls), float(comm.tp_allreduce_bytes)
            t_comm = calls * (float(network.allreduce_s(n, nbytes, 8.0)) + eff.collective_overhead_s)
            tpot_rows.append(
                {
                    "topology": name,
                    "batch": b,
                    "allreduce_bytes": nbytes,
                    "tpot_s": float(res.tpot_s[i] - res.decode.communication_s[i] + t_comm),
                    "communication_s": t_comm,
                }
            )
    c.write_csv(out_dir / f"{NAME}_topologies.csv", topo_rows)
    c.write_csv(out_dir / f"{NAME}_topology_tpot.csv", tpot_rows)

    def el(b, knob):  # d log TPOT / d log knob, finite difference over the sweep ends
        pts = sorted((r for r in rows if r["batch"] == b and r["knob"] == knob), key=lambda r: r["scale"])
        return float(
            np.log(pts[-1]["tpot_s"] / pts[0]["tpot_s"]) / np.log(pts[-1]["scale"] / pts[0]["scale"])
        )

    # (c) iso-SLO: switch vs low-latency tree
    grid = dict(chips=(2, 8), batches=(1, 32, 256)) if quick else dict(chips=c.CHIPS, batches=c.BATCHES)
    work = {"prompt_len": 1024.0, "output_len": 128.0}
    fabrics = {
        "NVLink-5 switch": designs.hbm4_accelerator,
        "low-latency tree": lambda n: hg.replace(designs.hbm4_accelerator(n), network=designs.tree_network()),
    }
    iso = c.iso_slo({k: c.operating_grid(b, model, comp, work, **grid) for k, b in fabrics.items()})
    c.write_csv(out_dir / f"{NAME}_iso_slo.csv", iso)
    iso_recs, iso_ratio = [], {}
    for t in c.TPOT_BUDGETS_S:
        a, b = (next(r for r in iso if r["design"] == k and r["tpot_budget_s"] == t) for k in fabrics)
        if a["feasible"] and b["feasible"]:
            iso_ratio[f"{t * 1e3:.0f} ms"] = b["usd_per_million_tokens"] / a["usd_per_million_tokens"]
            ours = f"{iso_ratio[f'{t * 1e3:.0f} ms']:.2f}x ({b['chips']:.0f} vs {a['chips']:.0f} chips)"
            v = c.verdict(
                iso_ratio[f"{t * 1e3:.0f} ms"] < 0.99,
                "at this budget the best point uses few chips, where collectives are a small share",
            )
        else:
            ours = f"switch {'ok' if a['feasible'] else 'infeasible'}, tree {'ok' if b['feasible'] else 'infeasible'}"
            v = c.verdict(bool(b["feasible"] and not a["feasible"]), "neither fabric meets this budget")
        iso_recs.append(
            c.compare(
                f"70B: $/M tree / switch at TPOT <= {t * 1e3:.0f} ms",
                "latency trumps bandwidth",
                ours,
                verdict=v,
            )
        )

    small = {r["topology"]: r["allreduce_s_64_chips"] for r in topo_rows if r["message_bytes"] == sizes[0]}
    xover = float(network.allreduce_crossover_bytes(hg.replace(net, **TOPOLOGIES["tree + in-network"]), 64.0))
    summary = {
        "elasticity": {f"batch {b} {k}": el(b, k) for b in (1, 64) for k in ("latency", "bandwidth")},
        "records": [
            c.compare(
                "batch 1: d log TPOT / d log latency",
                "latency trumps bandwidth",
                el(1, "latency"),
                verdict=c.verdict(el(1, "latency") > abs(el(1, "bandwidth")), "bandwidth matters more"),
            ),
            c.compare("batch 1: d log TPOT / d log (1/bandwidth)", "(smaller)", -el(1, "bandwidth")),
            c.compare(
                "1 KB all-reduce, 64 chips: ring / tree+in-network",
                "-",
                small["ring"] / small["tree + in-network"],
                "x",
            ),
            c.compare("ring beats in-network above (bytes)", "-", xover),
            *iso_recs,
        ],
        "iso_slo_usd_tree_over_switch": iso_ratio,
        "small_message_allreduce_s": small,
    }
    c.write_json(out_dir / f"{NAME}.json", summary)
    return summary


def plot(out_dir: Path) -> None:
    rows = c.read_csv(out_dir / f"{NAME}_sweep.csv")
    topo = c.read_csv(out_dir / f"{NAME}_topologies.csv")
    tp = c.read_csv(out_dir / f"{NAME}_topology_tpot.csv")
    iso = c.read_csv(out_dir / f"{NAME}_iso_slo.csv")
    fig, axes = c.figure(1, 4, width_in=20.0, height_in=4.4)
    ax = axes[0]
    for b, color in ((1, "C0"), (64, "C1")):
        for knob, style in (("latency", "o-"), ("bandwidth", "s--")):
            pts = sorted((r for r in rows if r["batch"] == b and r["knob"] == knob), key=lambda r: r["scale"])
            x = [r["scale"] if knob == "latency" else 1.0 / r["scale"] for r in pts]
            ax.plot(
                x,
                [r["tpot_s"] * 1e3 for r in pts],
                style,
                color=color,
                label=f"batch {b}: scale {'latency' if knob == 'latency' else '1 / bandwidth'}",
            )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("latency multiple, or 1 / bandwidth multiple (x of H100 NVLink)")
    ax.set_ylabel("TPOT (ms)")
    ax.set_title("Llama-3.1-70B fp8, TP=8: latency trumps bandwidth")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    ax = axes[1]
    for name in TOPOLOGIES:
        pts = [r for r in topo if r["topology"] == name]
        ax.plot([r["message_bytes"] for r in pts], [r["allreduce_s_64_chips"] * 1e6 for r in pts], label=name)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("all-reduce message (bytes per chip)")
    ax.set_ylabel("all-reduce time, 64 chips (us)")
    ax.set_title("Topologies (same link bandwidth and hop latency)")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    ax = axes[2]
    names = list(TOPOLOGIES)
    x = np.arange(len(names))
    for j, b in enumerate((1, 64)):
        ax.bar(
            x + (j - 0.5) * 0.4,
            [next(r["tpot_s"] * 1e3 for r in tp if r["topology"] == n and r["batch"] == b) for n in names],
            0.4,
            label=f"batch {b}",
        )
    ax.set_xticks(x, names, rotation=20)
    ax.set_ylabel("TPOT (ms), TP=8")
    ax.set_title("Decode TPOT by topology")
    ax.legend()
    ax.grid(True, axis="y", alpha=0.3)
    ax = axes[3]
    for j, name in enumerate(dict.fromkeys(r["design"] for r in iso)):
        pts = [r for r in iso if r["design"] == name and r["feasible"] == 1]
        ax.plot(
            [r["tpot_budget_s"] * 1e3 for r in pts],
            [r["usd_per_million_tokens"] for r in pts],
            "o-",
            color=f"C{j}",
            label=name,
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(c.plotting.axis_label("TPOT budget", "ms"))
    ax.set_ylabel(c.plotting.axis_label("cost per million output tokens", "USD"))
    ax.set_title("iso-SLO: best point per fabric (70B, HBM4)")
    c.plotting.legend_outside(ax)
    for a in axes:
        c.plotting.readable_log_ticks(a)
    c.caption(
        fig,
        "(a) H100 x 8 on NVLink, TP=8, scaling latency or 1/bandwidth; (b) 64-chip all-reduce, same link and "
        "hop latency; (c) switch-network TPOT with each topology's all-reduce; (d) each fabric at its cheapest "
        "point (batch 1-1024 x chips 1-32) meeting the TPOT budget, fp8.",
        y=-0.42,
    )
    c.save_fig(fig, out_dir / f"{NAME}.png")


main = c.main_for(NAME, compute, plot, __doc__)

if __name__ == "__main__":
    raise SystemExit(main())
