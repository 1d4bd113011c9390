"""Structured pruning as a co-design knob: per-layer keep gates + weight/KV bits for
Llama-3.1-70B decode, against quantisation-only and pruning-only.

Problem: Llama-3.1-70B on 4x H100-SXM (tp = 4), batch 8, 2048-token prompts, 256 output
tokens, speed-of-light efficiency. Minimise TPOT subject to Delta loss <= ``BUDGET_NATS``
(Wikitext-2, `hwgrad.accuracy.delta_loss` with the structured term). Variables: 80
layer keep gates (sigmoid of logits) and the weight and KV bit widths (GPTQ-class). Descent:
Adam on a quadratic penalty; then the gates are rounded to the ``round(sum)`` largest and the
bits to {3, 4, 5, 6, 8, 16}, and repaired (one more layer or one more bit until feasible);
the final point is re-evaluated with the hard roofline.

Which layers to drop is decided by an assumed layer-importance profile
(`hwgrad.codesign.default_layer_sensitivity`: first and last layers most sensitive);
``structured_pruning.csv`` gives layer counts, not which layers, so the study's choice of
layers follows that assumption (the fitted curve is read as dropping the least important
layers, see `hwgrad.accuracy.Structured.from_compression`). The depth data stop at 13B
and Llama-3 depth rows at 8B: the range warnings are recorded in the summary.

    python experiments/a14_structured_pruning.py [--quick] [--out DIR]
"""

from __future__ import annotations

from pathlib import Path

import common as c
import jax
import jax.numpy as jnp
import numpy as np
import optax

import hwgrad as hg
from hwgrad import accuracy as acc
from hwgrad import codesign as cd
from hwgrad import counts

NAME = "a14_structured_pruning"
BUDGET_NATS = 0.15
BITS = (3.0, 4.0, 5.0, 6.0, 8.0, 16.0)
SOL = hg.Efficiency.speed_of_light()


def _setup():
    model = hg.presets.model("llama-3.1-70b")
    system = hg.presets.system("h100-sxm", 4)
    workload = hg.Workload(batch=8, prompt_len=2048, output_len=256, tp=4)
    importance = cd.default_layer_sensitivity(int(model.n_layers))
    params_b = float(counts.param_count(model)) / 1e9
    return model, system, workload, importance, params_b


def _metrics(gates, wbits, kvbits, options=hg.Options()):
    model, system, workload, importance, params_b = _setup()
    comp = hg.replace(hg.compression("bf16"), weight_bits=wbits, kv_bits=kvbits, layer_keep_gates=gates)
    res = hg.evaluate(system, model, workload, comp, SOL, options=options)
    st = acc.Structured.from_compression(model, comp, layer_importance=importance, generation="llama-3")
    dl = acc.delta_loss(wbits, kvbits, 16.0, params_b=params_b, family="gptq", structured=st)
    return res.tpot_s, dl, st


def _decode(z, mode):
    n = z.shape[0] - 2
    gates = jax.nn.sigmoid(z[:n]) if mode != "quant" else jnp.ones(n)
    if mode == "prune":
        wbits = kvbits = jnp.asarray(16.0)
    else:
        wbits = 3.0 + 13.0 * jax.nn.sigmoid(z[n])
        kvbits = 3.0 + 13.0 * jax.nn.sigmoid(z[n + 1])
    return gates, wbits, kvbits


def descend(mode: str, steps: int):
    """Relaxed optimum for ``mode`` in {joint, quant, prune}; returns (gates, wbits, kvbits, n_evals)."""
    n = 80
    z0 = jnp.concatenate([jnp.full(n, 3.0), jnp.array([2.0, 2.0])])
    tpot0, _, _ = _metrics(*_decode(z0, "prune"))

    def loss(z, mu):
        t, dl, _ = _metrics(*_decode(z, mode))
        return jnp.log(t / tpot0) + mu * jax.nn.relu(dl / BUDGET_NATS - 1.0) ** 2

    opt = optax.adam(0.05)
    step = jax.jit(
        lambda z, s, mu: (lambda g: (lambda u: (optax.apply_updates(z, u[0]), u[1]))(opt.update(g, s, z)))(
            jax.grad(loss)(z, mu)
        )
    )
    z, state = z0, opt.init(z0)
    for i in range(steps):
        z, state = step(z, state, 10.0 * (1.0 + 9.0 * i / max(steps - 1, 1)))
    g, w, kv = _decode(z, mode)
    return np.asarray(g), float(w), float(kv), 3 * steps  # one gradient ~ 3 forward evaluations


_HARD = jax.jit(lambda g, w, kv: _metrics(g, w, kv, hg.Options(roofline="hard"))[:2])


def round_and_repair(gates, wbits, kvbits, mode):
    """Keep the ``k`` largest gates; search k near ``round(sum)`` and the bit levels near the
    relaxed ones on the hard roofline; return the fastest feasible point."""
    k0 = int(round(gates.sum()))
    order = np.argsort(-gates, kind="stable")
    near = lambda b: [x for x in BITS if x >= b - 1.01][:3]
    w_opts, kv_opts = ([16.0], [16.0]) if mode == "prune" else (near(wbits), near(kvbits))
    k_opts = [k0] if mode == "quant" else range(max(1, k0 - 2), min(len(gates), k0 + 12) + 1)
    best = None
    for k in k_opts:
        g = np.zeros_like(gates)
        g[order[:k]] = 1.0
        for wb in w_opts:
            for kb in kv_opts:
                t, dl = (float(x) for x in _HARD(jnp.asarray(g), wb, kb))
                if dl <= BUDGET_NATS and (best is None or t < best[3]):
                    best = (g, wb, kb, t, dl)
    if best is None:
        raise RuntimeError(f"{mode}: no feasible rounding near the relaxed point; raise BUDGET_NATS")
    g, wb, kb, t, dl = best
    _, _, st = _metrics(jnp.asarray(g), wb, kb)
    return g, wb, kb, t, dl, st


def compute(out_dir: Path, quick: bool = False) -> dict:
    steps = 40 if quick else 400
    rows, warnings = [], []
    dense_t, _, _ = _metrics(jnp.ones(80), 16.0, 16.0, hg.Options(roofline="hard"))
    for mode in ("quant", "prune", "joint"):
        g, w, kv, evals = descend(mode, steps)
        gh, wb, kb, t, dl, st = round_and_repair(g, w, kv, mode)
        dropped = [int(i) for i in np.flatnonzero(gh == 0)]
        warnings += [f"{mode}: {m}" for m in acc.structured_range_warnings(st, 70.554)]
        rows.append(
            {
                "mode": mode,
                "layers_kept": int(gh.sum()),
                "layers_dropped": " ".join(map(str, dropped)),
                "weight_bits": wb,
                "kv_bits": kb,
                "tpot_ms": 1e3 * t,
                "speedup_vs_bf16": float(dense_t) / t,
                "delta_loss_nats": dl,
                "relaxed_weight_bits": w,
                "relaxed_kv_bits": kv,
                "relaxed_gate_sum": float(g.sum()),
                "gradient_evaluations": evals,
            }
        )
    c.write_csv(out_dir / f"{NAME}.csv", rows)
    summary = {
        "budget_nats": BUDGET_NATS,
        "dense_tpot_ms": 1e3 * float(dense_t),
        "rows": rows,
        "warnings": warnings,
    }
    c.write_json(out_dir / f"{NAME}.json", summary)
    return summary


def plot(out_dir: Path) -> None:
    import matplotlib.pyplot as plt

    rows = c.read_csv(out_dir / f"{NAME}.csv")
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(10, 3.5))
    for i, r in enumerate(rows):
        dropped = [int(x) for x in str(r["layers_dropped"]).split()] if r["layers_dropped"] else []
        ax0.scatter(dropped, [i] * len(dropped), marker="s", s=12)
    ax0.set_yticks(range(len(rows)), [r["mode"] for r in rows])
    ax0.set_xlim(-1, 80)
    ax0.set_xlabel("dropped layer index (Llama-3.1-70B)")
    ax1.bar([r["mode"] for r in rows], [float(r["tpot_ms"]) for r in rows])
    ax1.set_ylabel(f"TPOT (ms) at delta loss <= {BUDGET_NATS} nats")
    c.save_fig(fig, out_dir / f"{NAME}.png")


main = c.main_for(NAME, compute, plot, __doc__)

if __name__ == "__main__":
    raise SystemExit(main())
