"""Artifact 10 - interconnect: "latency trumps bandwidth" for small-batch TP decode.

(a) TPOT of Llama-3.1-70B (fp8, TP=8, batch 1 and 64, H100 on an NVLink switch) when the
per-hop + endpoint latency or the link bandwidth is scaled 0.1x-10x. (b) All-reduce time vs
message size for ring, 2D torus, switch, dragonfly and a tree with in-network reduction
(:func:`hwgrad.network.allreduce_s`, 64 chips), and the TPOT each topology gives: the
switch-network TPOT with its all-reduce time replaced by the topology's (exact here:
``comm_overlap`` = 0, no pipeline).

    python experiments/a10_interconnect.py [--quick] [--out DIR]
"""

from __future__ import annotations

from pathlib import Path

import common as c
import numpy as np

import hwgrad as hg
from hwgrad import network

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

    small = {r["topology"]: r["allreduce_s_64_chips"] for r in topo_rows if r["message_bytes"] == sizes[0]}
    xover = float(network.allreduce_crossover_bytes(hg.replace(net, **TOPOLOGIES["tree + in-network"]), 64.0))
    summary = {
        "elasticity": {f"batch {b} {k}": el(b, k) for b in (1, 64) for k in ("latency", "bandwidth")},
        "records": [
            c.compare("batch 1: d log TPOT / d log latency", "latency trumps bandwidth", el(1, "latency")),
            c.compare("batch 1: d log TPOT / d log (1/bandwidth)", "(smaller)", -el(1, "bandwidth")),
            c.compare(
                "1 KB all-reduce, 64 chips: ring / tree+in-network",
                "-",
                small["ring"] / small["tree + in-network"],
                "x",
            ),
            c.compare("ring beats in-network above (bytes)", "-", xover),
        ],
        "small_message_allreduce_s": small,
    }
    c.write_json(out_dir / f"{NAME}.json", summary)
    return summary


def plot(out_dir: Path) -> None:
    rows = c.read_csv(out_dir / f"{NAME}_sweep.csv")
    topo = c.read_csv(out_dir / f"{NAME}_topologies.csv")
    tp = c.read_csv(out_dir / f"{NAME}_topology_tpot.csv")
    fig, axes = c.plt.subplots(1, 3, figsize=(17, 4.6))
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
    ax.legend(fontsize=7)
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
    ax.legend(fontsize=7)
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
    c.save_fig(fig, out_dir / f"{NAME}.png")


main = c.main_for(NAME, compute, plot, __doc__)

if __name__ == "__main__":
    raise SystemExit(main())
