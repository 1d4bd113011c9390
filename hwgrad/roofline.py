"""The per-op roofline of one design point: data and figure (``hwgrad eval --plot FILE``).

Each op of a forward pass (the entries of `hwgrad.counts.OP_NAMES`) does
``F`` FLOPs and moves ``B = sum_t B_t`` bytes, ``B_t`` from memory tier ``t`` (the placement
fractions split weights, KV cache and activations over the tiers). Its arithmetic intensity is
``I = F / B`` (FLOP/byte) and its attainable rate on the chip's roofline is

$$
P(I) = \\min\\Big(P_\\text{peak},\\; \\frac{F}{\\max_t B_t / \\beta_t}\\Big),
$$

with ``P_peak`` the dense tensor peak at the activation width and ``beta_t`` the peak read
bandwidth of tier ``t`` (tiers are read in parallel). Each tier draws its own ceiling
``I beta_t``. The numbers are per chip of a tensor-parallel group and use datasheet peaks
(no fitted efficiencies), so the figure shows where each op sits against the hardware; the
time and energy panels show what [`hwgrad.evaluate`][hwgrad.cost.evaluate] charges.

Reference: S. Williams, A. Waterman, D. Patterson, "Roofline: an insightful visual
performance model for multicore architectures", CACM 52(4), 2009.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

__all__ = ["op_points", "plot"]

_KEYS = ("system", "model", "workload", "compression", "efficiency", "economics")


def _specs(design: dict) -> dict:
    from .calibrated import calibrated_efficiency
    from .presets import default_economics
    from .specs import Compression

    d = {k: design.get(k) for k in _KEYS}
    d["compression"] = d["compression"] or Compression()
    d["efficiency"] = d["efficiency"] or calibrated_efficiency()
    d["economics"] = d["economics"] or default_economics()
    return d


def op_points(design: dict) -> dict:
    """The roofline data of the decode step and of the prefill, per op, per chip.

    Args:
      design: a mapping with ``system``, ``model``, ``workload`` and optionally
        ``compression``, ``efficiency``, ``economics`` (e.g. what
        [`hwgrad.cli.design_from_args`][hwgrad.cli.design_from_args] returns).

    Returns:
      ``{"peak_flops_per_s": P, "tier_bandwidth_bytes_per_s": [beta_t, ...],
      "decode_step": [op, ...], "prefill": [op, ...]}``, each op a dict with ``name``,
      ``flops``, ``bytes``, ``bytes_per_tier``, ``intensity_flop_per_byte`` and
      ``attainable_flops_per_s``. Ops that do no FLOPs or move no bytes are left out. The decode
      step is taken at the mean context, ``prompt_len + output_len / 2``.
    """
    import jax.numpy as jnp

    from . import counts, memory, pruning
    from .cost import seconds_per_flop

    d = _specs(design)
    system, wl = d["system"], d["workload"]
    model, comp = pruning.resolve(d["model"], d["compression"])
    frac = np.asarray(memory.class_fractions(system))  # (C, T)
    bw = np.array([float(t.bandwidth_bytes_per_s) for t in system.chip.tiers])
    peak = 1.0 / float(seconds_per_flop(system, comp))
    # per op: a weight kept in a wider format than the activations multiplies at its width
    op_peak = 1.0 / np.asarray(seconds_per_flop(system, comp, counts.op_compute_bits(comp)), float)
    passes = {
        "decode_step": (1.0, float(wl.prompt_len) + float(wl.output_len) / 2.0),
        "prefill": (float(wl.prompt_len), 0.0),
    }
    out = {"peak_flops_per_s": peak, "tier_bandwidth_bytes_per_s": bw.tolist()}
    for name, (new_tokens, context) in passes.items():
        ops, _ = counts.forward_counts(model, comp, wl, new_tokens, context)
        kv = counts.kv_bytes_moved(ops, model, wl, d["efficiency"].kv_group_reuse, new_tokens)
        cls = np.stack(
            [
                np.asarray(ops.weight_bytes, float),
                np.asarray(kv, float),
                np.asarray(ops.act_bytes, float),
                np.zeros(len(counts.OP_NAMES)),
            ]
        )  # (C, O)
        per_tier = frac[: cls.shape[0]].T @ cls  # (T, O)
        flops = np.asarray(jnp.asarray(ops.flops), float)
        rows = []
        for j, op in enumerate(counts.OP_NAMES):
            b = float(per_tier[:, j].sum())
            if not (flops[j] > 0 and b > 0):
                continue
            t_mem = float(np.max(per_tier[:, j] / bw))
            rows.append(
                {
                    "name": op,
                    "flops": float(flops[j]),
                    "bytes": b,
                    "bytes_per_tier": per_tier[:, j].tolist(),
                    "intensity_flop_per_byte": float(flops[j]) / b,
                    "attainable_flops_per_s": min(op_peak[j], float(flops[j]) / t_mem) if t_mem > 0 else op_peak[j],
                }
            )
        out[name] = rows
    return out


def plot(design: dict, result=None, path: str | Path | None = None, title: str | None = None):
    """The roofline of every op (decode step and prefill) and the time / energy breakdown.

    Left: arithmetic intensity (FLOP/byte) against attainable FLOP/s per chip, one marker per
    op and pass, the compute peak and one bandwidth ceiling per memory tier. Right: each
    pass's time by component and energy by component, as shares of the pass (totals in the
    labels).

    Args:
      design: the design mapping (see [`op_points`][hwgrad.roofline.op_points]).
      result: its [`Result`][hwgrad.cost.Result] (evaluated here if ``None``).
      path: where to save; the suffix picks the format (``.png``, ``.pdf``, ``.svg``) and only
        that file is written. ``None`` returns the figure instead.
      title: figure title (default: model, chips and hardware when the design names them).

    Returns:
      The list of written paths, or ``(fig, axes)`` when ``path`` is ``None``.
    """
    import jax

    from . import plotting
    from .cost import COMPONENTS, evaluate_jit

    d = _specs(design)
    if result is None:
        result = jax.device_get(evaluate_jit(*(d[k] for k in _KEYS)))
    pts = op_points(d)
    fig, axes = plotting.figure(1, 3, width_in=12.0, height_in=4.2, gridspec_kw={"width_ratios": [2.2, 1, 1]})
    ax = axes[0]

    peak = pts["peak_flops_per_s"]
    intensities = [p["intensity_flop_per_byte"] for k in ("decode_step", "prefill") for p in pts[k]]
    lo = 10 ** math.floor(math.log10(max(min(intensities), 1e-3)) - 0.5)
    hi = 10 ** math.ceil(math.log10(max(intensities)) + 0.5)
    x = np.geomspace(lo, hi, 200)
    ax.plot(x, np.full_like(x, peak / 1e12), color="black", lw=1.5, label=f"compute peak {peak / 1e12:.4g} TFLOP/s")
    styles = ("-", "--", ":", "-.")
    for t, bw in enumerate(pts["tier_bandwidth_bytes_per_s"]):
        if not (bw > 0 and math.isfinite(bw)):
            continue
        ax.plot(
            x,
            np.minimum(x * bw, peak) / 1e12,
            color="0.35",
            ls=styles[t % len(styles)],
            lw=1.2,
            label=f"tier {t} {bw / 1e12:.3g} TB/s",
        )
    markers = {"decode_step": "o", "prefill": "s"}
    colors = plotting_colors(len({p["name"] for k in markers for p in pts[k]}))
    names = list(dict.fromkeys(p["name"] for k in markers for p in pts[k]))
    for kind, marker in markers.items():
        for p in pts[kind]:
            ax.scatter(
                p["intensity_flop_per_byte"],
                p["attainable_flops_per_s"] / 1e12,
                marker=marker,
                s=90 if kind == "decode_step" else 35,
                color=colors[names.index(p["name"])],
                edgecolor="black",
                linewidth=0.5,
                zorder=3,
            )
    from matplotlib.lines import Line2D

    handles, _ = ax.get_legend_handles_labels()
    handles += [Line2D([], [], ls="", marker=m, color="0.5", label=k.replace("_", " ")) for k, m in markers.items()]
    handles += [Line2D([], [], ls="", marker="o", color=colors[i], label=n) for i, n in enumerate(names)]
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo, hi)
    ax.set_xlabel(plotting.axis_label("arithmetic intensity", "FLOP/byte"))
    ax.set_ylabel(plotting.axis_label("attainable rate per chip", "TFLOP/s"))
    plotting.readable_log_ticks(ax)
    ax.legend(handles=handles, loc="lower right", fontsize=7, framealpha=0.9)
    ax.set_title("per-op roofline (datasheet peaks)")

    passes = {"decode step": result.decode, "prefill": result.prefill}
    comp_names = list(COMPONENTS)
    energy_names = ("memory", "compute", "network", "static")
    comp_colors = plotting_colors(len(comp_names), "Set2")
    for axb, what in ((axes[1], "time"), (axes[2], "energy")):
        labels = []
        for i, (name, pc) in enumerate(passes.items()):
            if what == "time":
                vals = np.asarray(pc.component_times(), float)
                total = float(pc.time_s)
                labels.append(f"{name}\n{_fmt(total, 's')}")
                keys = comp_names
            else:
                vals = np.array(
                    [float(getattr(pc, f"energy_{k}_j")) for k in energy_names], dtype=float
                )
                total = float(np.nansum(vals))
                labels.append(f"{name}\n{_fmt(total, 'J') if np.all(np.isfinite(vals)) else 'unknown'}")
                keys = energy_names
            shares = np.nan_to_num(vals) / (np.nansum(vals) or 1.0) * 100.0
            bottom = 0.0
            for k, v in enumerate(shares):
                axb.bar(i, v, bottom=bottom, color=comp_colors[k], edgecolor="white", label=keys[k] if i == 0 else None)
                bottom += v
        axb.set_xticks(range(len(passes)), labels)
        axb.set_ylim(0, 100)
        axb.set_ylabel(
            plotting.axis_label("share of the components' sum" if what == "time" else "share of the pass energy", "%")
        )
        axb.set_title(
            "time by component (overlapping)" if what == "time" else "energy by component (PUE excluded)"
        )
        axb.legend(loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=2, fontsize=7, frameon=False)
        axb.grid(axis="x", visible=False)
    if title is None:
        model = design.get("model_name")
        hw = design.get("hardware_name")
        n = int(float(d["system"].n_chips))
        wl = d["workload"]
        title = (
            f"{model or 'custom model'} on {n} x {hw or 'custom chip'}, batch {float(wl.batch):g}, "
            f"prompt {float(wl.prompt_len):g}, output {float(wl.output_len):g}"
        )
    fig.suptitle(title, fontsize=11)
    if path is None:
        return fig, axes
    return plotting.save(fig, path, formats=())


def plotting_colors(n: int, name: str = "tab10") -> list:
    """``n`` distinguishable colours of a qualitative matplotlib colormap."""
    import matplotlib

    cmap = matplotlib.colormaps[name]
    return [cmap(i % cmap.N) for i in range(n)]


def _fmt(v: float, unit: str) -> str:
    if not math.isfinite(v):
        return "n/a"
    for scale, prefix in ((1.0, ""), (1e-3, "m"), (1e-6, "u")):
        if abs(v) >= scale:
            return f"{v / scale:.3g} {prefix}{unit}"
    return f"{v:.3g} {unit}"
