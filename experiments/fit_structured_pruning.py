"""Fit the structured-pruning loss of `hwgrad.accuracy` to ``structured_pruning.csv``.

Every row becomes ``delta_loss = ln(ppl / ppl_dense)`` against the same source's dense value.
The model (``hwgrad.accuracy.structured_uncapped_loss``) is a power law in the removal odds
per kind, ``A O R^ft G^llama3 (N / 7)^-beta (r / (1 - r))^(k P^llama3)``, under the collapse
cap. The constants are fitted by robust (soft-L1) least squares on ``ln(delta + eps)``
(L-BFGS from several starts) with, besides the shipped constants, fit-only nuisance terms:

  * a log factor per source (random effect, prior sd ``SOURCE_SD``): sources that reproduce
    the same configuration disagree by ~0.2 nats, and one source's bias should not move the
    shared constants;
  * a log factor for 128-token evaluation windows (LLM-Pruner, FLAP), measured by the
    LLM-Pruner README, which evaluates the same pruned models at 128 and 2048 tokens: the
    factor's prior is centred on the mean log ratio of those pairs (sd ``CTX_SD``), 0 in a
    fold that holds the README out;
  * a log factor for SliceGPT calibrated on Alpaca instead of WikiText-2 (BlockPruner's
    re-run; free: only the comparison with SliceGPT's own rows measures it).

The shipped constants describe the reference protocol: WikiText-2 calibration and evaluation
with 2048-token windows, the typical source. Errors are reported on the fit itself and
leave-one-source-out (LOSO: refit without the source, predict its rows with its protocol
factors but without its source factor), per kind and per source, for all rows and for the
rows whose every factor (method family, fine-tuning, Llama-3 x kind, calibration protocol) is
measured by another source ("covered"). ``same_configuration`` lists the configurations that
several rows measure, i.e. how far repeated measurements of one configuration disagree.
Writes ``hwgrad/presets/data/structured_pruning_fit.json``.

    python experiments/fit_structured_pruning.py           # fit, report, write the JSON
    python experiments/fit_structured_pruning.py --quick   # smoke test: short fit, writes nothing

Row handling (also stored in the JSON):
  * ``c4_ppl`` rows are not fitted: no source in the file gives a dense C4 perplexity.
  * Wikitext-2 rows with a blank ``dense_baseline`` borrow the dense value another row of the
    file reports for the same model and evaluation context: SLEB-reproduction rows (2048
    tokens) take SliceGPT's 5.47 / 4.88 (Llama-2-7B / 13B) and the same repository's
    SliceGPT-README dense 6.24 (Llama-3.1-8B); SliceGPT's 4096-token rows take the Wanda
    README's 4096-token dense values 5.12 / 4.57 / 3.12 (compression_accuracy.csv).
  * Torch-Pruning's collapsed rows (ppl > 8000, no dense value) are censored: they only ask for
    a prediction of at least ``ln(100 / ppl_dense)`` (borrowed dense as above, 8192-token
    Llama-3-8B takes 6.14, LLM-Pruner's Llama-3-8B dense).
  * Amount: depth rows use ``layers_removed / n_layers``, or, for BlockPruner's sub-block
    rows, ``params_removed_fraction`` divided by the transformer-block share of the parameters;
    width rows use ``1 - hidden_kept_fraction`` (LLM-Pruner channel rows: the parameter
    fraction); mixed rows use ``params_removed_fraction``.
  * 128-token rows: the ``notes`` say "seq len 128" / "sequence length 128" / "128-token".
  * Leave-one-source-out groups: one per paper or README; the FLAP paper's numbers come from
    the same README as the FLAP reproduction and are grouped with it.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import time
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

from hwgrad import accuracy as acc  # noqa: E402
from hwgrad import counts, presets  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA_CSV = ROOT / "hwgrad" / "presets" / "data" / "structured_pruning.csv"
FIT_JSON = ROOT / "hwgrad" / "presets" / "data" / acc.STRUCTURED_FIT_FILE

EPS = 0.02  # nats: floor of the relative error, ~ a perplexity rounded to 0.1 near 5
ROBUST_SCALE = 0.5  # soft-L1 scale on ln(delta + eps) residuals (as experiments/fit_accuracy.py)
COLLAPSE_PPL = 100.0
# Priors (standard deviations of log factors; a term sd contributes (x / sd)^2 / 4 per term,
# the weight of a residual of x / (2 sd) on one row):
METHOD_SD = 1.0  # method offsets around their kind (an unseen method gets the kind's middle)
SOURCE_SD = 0.3  # source factors: repeated measurements of one configuration differ ~0.2 nats
CTX_SD = 0.05  # 128-token windows: prior centred on the paired README estimate (`ctx128_paired`)
OFFDOMAIN_SD = 10.0  # Alpaca-calibrated SliceGPT: effectively free
RIDGE = 1e-3  # pull of every parameter towards CENTRE (per fit, not per row)
N_STARTS = 6
N_STEPS = 400

# LLaMA-1 shapes equal LLaMA-2's at 7B/13B (Touvron et al. 2023, Table 2); sizes below are
# only used for the (N / 7)^-beta term.
SHAPES = {"llama-1-7b": "llama-2-7b", "llama-1-13b": "llama-2-13b", "llama-3.1-8b-instruct": "llama-3.1-8b"}
SHAPES.update({"llama-3-8b": "llama-3.1-8b", "llama-3-8b-instruct": "llama-3.1-8b"})

BORROWED = {  # (model, context) -> (dense ppl, where it comes from)
    ("llama-2-7b", "2048"): (5.47, "SliceGPT Table 1 dense (structured_pruning.csv)"),
    ("llama-2-13b", "2048"): (4.88, "SliceGPT Table 1 dense (structured_pruning.csv)"),
    ("llama-3.1-8b", "2048"): (6.24, "zlab SliceGPT README dense, same repository (structured_pruning.csv)"),
    ("llama-2-7b", "4096"): (5.12, "Wanda README 4096-token dense (compression_accuracy.csv)"),
    ("llama-2-13b", "4096"): (4.57, "Wanda README 4096-token dense (compression_accuracy.csv)"),
    ("llama-2-70b", "4096"): (3.12, "Wanda README 4096-token dense (compression_accuracy.csv)"),
    ("llama-3.1-8b", "4096"): (6.24, "2048-token zlab SliceGPT dense; only sets a censored row's floor"),
    ("llama-3-8b", "8192"): (6.14, "LLM-Pruner README Llama-3-8B dense (structured_pruning.csv)"),
}


def source_label(src: str) -> str:
    for prefix, label in (
        ("Ashkboos", "SliceGPT"),
        ("Ma, Fang", "LLM-Pruner"),
        ("github.com/horseee", "LLM-Pruner-README"),
        ("Zhong et al.", "BlockPruner"),
        ("github.com/Zephyr271828/llm-pruning-collection-fork pruning/SliceGPT", "zlab-SliceGPT"),
        ("github.com/Zephyr271828/llm-pruning-collection-fork pruning/SLEB", "zlab-SLEB"),
        ("github.com/Zephyr271828/llm-pruning-collection-fork pruning/FLAP", "FLAP"),
        ("An et al.", "FLAP"),
        ("Song et al.", "SLEB"),
        ("github.com/VainF", "Torch-Pruning"),
    ):
        if src.startswith(prefix):
            return label
    raise ValueError(f"unknown source {src[:60]!r}")


def method_family(kind: str, method: str) -> str:
    if kind == "depth":
        if method.startswith(("SLEB", "BlockPruner")):
            return "iterative"
        if method in ("ShortGPT", "LaCo"):
            return "one_shot"
        if method.startswith("Relative Magnitude"):
            return "magnitude"
    if kind == "width_hidden":
        return "slicegpt" if method.startswith("SliceGPT") else "llm_pruner"
    if kind == "mixed":
        if "L2" in method or method.startswith("Torch-Pruning"):
            return "magnitude"
        if "random" in method:
            return "random"
        if method.startswith("LLM-Pruner"):
            return "llm_pruner"
        if method.startswith("Wanda-sp"):
            return "wanda_sp"
        if method.startswith("FLAP"):
            return "flap"
    raise ValueError(f"no family for {kind} / {method}")


def _context(r: dict) -> str:
    if r["source"].startswith("github.com/VainF"):
        return "8192" if r["model"] == "llama-3-8b" else "4096"
    if "max seq len" in r["method"] or "per-layer varying" in r["method"]:
        return "4096"
    return "2048"


def load_rows(path: Path = DATA_CSV) -> tuple[list[dict], list[dict]]:
    with path.open(newline="", encoding="utf-8") as fh:
        raw = list(csv.DictReader(fh))
    rows, excluded = [], []
    for line, r in enumerate(raw, start=2):
        if r["metric"] != "wikitext2_ppl":
            excluded.append({"line": line, "why": "c4_ppl: no dense C4 value in the file"})
            continue
        model = presets.model(SHAPES.get(r["model"], r["model"]))
        n_layers = float(model.n_layers)
        block_share = float(1.0 - 2 * counts.embedding_params(model) / counts.param_count(model))
        kind = r["kind"]
        if kind == "depth":
            if r["layers_removed"]:
                removed = float(r["layers_removed"]) / n_layers
            else:
                removed = float(r["params_removed_fraction"]) / block_share
        elif kind == "width_hidden":
            removed = (
                1.0 - float(r["hidden_kept_fraction"])
                if r["hidden_kept_fraction"]
                else float(r["params_removed_fraction"])
            )
        else:
            removed = float(r["params_removed_fraction"])
        borrowed = None
        if r["dense_baseline"]:
            ppl0 = float(r["dense_baseline"])
        else:
            key = (
                SHAPES.get(r["model"], r["model"]) if r["model"] != "llama-3-8b" else r["model"],
                _context(r),
            )
            ppl0, borrowed = BORROWED[key]
        value = float(r["value"])
        censored = value > 1000 and r["source"].startswith("github.com/VainF")
        gen = "llama-3" if r["model"].startswith("llama-3") else "llama-2"
        ctx128 = bool(re.search(r"(seq(uence)? len(gth)? 128\b|128-token)", r["notes"]))
        rows.append(
            {
                "line": line,
                "model": r["model"],
                "kind": kind,
                "method": r["method"],
                "family": method_family(kind, r["method"]),
                "removed": removed,
                "finetuned": float(r["finetuned"]),
                "generation": gen,
                "params_b": float(counts.param_count(model)) / 1e9,
                "ppl0": ppl0,
                "delta_loss": float(np.log(value / ppl0)),
                "censored": censored,
                "source": source_label(r["source"]),
                "borrowed_baseline": borrowed,
                "offdomain": "Alpaca calibration" in r["method"],
                "ctx128": ctx128,
            }
        )
    return rows, excluded


def to_arrays(rows: list[dict]) -> dict:
    kinds = acc.STRUCTURED_KINDS
    removed = np.zeros((len(rows), 3))
    idx = np.zeros((len(rows), 3), dtype=int)
    defaults = {k: acc.STRUCTURED_METHODS[k][0] for k in kinds}
    for i, r in enumerate(rows):
        for j, k in enumerate(kinds):
            fam = r["family"] if r["kind"] == k else defaults[k]
            idx[i, j] = acc.structured_method_index(k, fam)
        removed[i, kinds.index(r["kind"])] = r["removed"]
    return {
        "removed": jnp.asarray(removed),
        "idx": jnp.asarray(idx),
        "finetuned": jnp.asarray([r["finetuned"] for r in rows]),
        "llama3": jnp.asarray([float(r["generation"] == "llama-3") for r in rows]),
        "params_b": jnp.asarray([r["params_b"] for r in rows]),
        "ppl0": jnp.asarray([r["ppl0"] for r in rows]),
        "delta_loss": jnp.asarray([r["delta_loss"] for r in rows]),
        "censored": jnp.asarray([float(r["censored"]) for r in rows]),
        "offdomain": jnp.asarray([float(r["offdomain"]) for r in rows]),
        "ctx128": jnp.asarray([float(r["ctx128"]) for r in rows]),
        "source": jnp.asarray([SOURCES.index(r["source"]) for r in rows]),
    }


SOURCES = (
    "BlockPruner",
    "FLAP",
    "LLM-Pruner",
    "LLM-Pruner-README",
    "SliceGPT",
    "Torch-Pruning",
    "zlab-SLEB",
    "zlab-SliceGPT",
)
# theta: shipped constants, then fit-only nuisance terms
LAYOUT = {
    "kind_log_amp": slice(0, 3),
    "method_log_offset": slice(3, 13),
    "log_kind_power": slice(13, 16),
    "llama3_power_log_mult": 16,
    "log_size_exp": slice(17, 20),
    "recovery_log_mult": 20,
    "llama3_log_mult": slice(21, 24),
    "ctx128_log_mult": 24,
    "offdomain_log_mult": 25,
    "source_log_mult": slice(26, 26 + len(SOURCES)),
}
N_THETA = 26 + len(SOURCES)
N_SHIPPED = 24
CENTRE = np.zeros(N_THETA)
CENTRE[LAYOUT["kind_log_amp"]] = -0.5
CENTRE[LAYOUT["log_kind_power"]] = np.log(1.2)
CENTRE[LAYOUT["log_size_exp"]] = np.log(0.1)


def unpack(theta) -> acc.StructuredFit:
    L = LAYOUT
    return acc.StructuredFit(
        kind_log_amp=theta[L["kind_log_amp"]],
        method_log_offset=theta[L["method_log_offset"]],
        kind_power=jnp.exp(theta[L["log_kind_power"]]),
        llama3_power_log_mult=theta[L["llama3_power_log_mult"]],
        size_exp=jnp.exp(theta[L["log_size_exp"]]),
        recovery_log_mult=theta[L["recovery_log_mult"]],
        llama3_log_mult=theta[L["llama3_log_mult"]],
    )


def predict(theta, cols, protocol: bool = True, source: bool = False):
    """Delta loss per row: the shipped model, times the row's protocol factors (128-token
    windows, Alpaca calibration) if ``protocol``, times its source factor if ``source``."""
    L = LAYOUT
    log_mult = jnp.zeros_like(cols["ctx128"])
    if protocol:
        log_mult = log_mult + theta[L["ctx128_log_mult"]] * cols["ctx128"]
        log_mult = log_mult + theta[L["offdomain_log_mult"]] * cols["offdomain"]
    if source:
        log_mult = log_mult + theta[L["source_log_mult"]][cols["source"]]
    u = acc._structured_u(
        unpack(theta),
        cols["removed"],
        cols["idx"],
        cols["finetuned"],
        cols["llama3"],
        cols["params_b"],
        log_mult[:, None],
    )
    return acc._noise_to_loss(jnp.zeros_like(u), 1.0, u)


def ctx128_paired(rows: list[dict], use: np.ndarray) -> float:
    """Mean ``ln(delta_128 / delta_2048)`` over the rows (``use``) that measure one pruned
    model at both window lengths (the LLM-Pruner README); 0 without such pairs."""
    by = {}
    for r, u in zip(rows, use, strict=True):
        if u and not r["censored"]:
            by.setdefault((r["source"], r["model"], r["method"], r["removed"]), {})[r["ctx128"]] = r
    logs = [np.log(p[True]["delta_loss"] / p[False]["delta_loss"]) for p in by.values() if len(p) == 2]
    return float(np.mean(logs)) if logs else 0.0


def objective(theta, cols, weights, ctx0=0.0):
    pred = jnp.log(predict(theta, cols, source=True) + EPS)
    obs = jnp.log(cols["delta_loss"] + EPS)
    floor = jnp.log(jnp.log(COLLAPSE_PPL / cols["ppl0"]) + EPS)
    r = jnp.where(cols["censored"] > 0, jax.nn.relu(floor - pred), pred - obs)
    rho = 2.0 * ROBUST_SCALE**2 * (jnp.sqrt(1.0 + (r / ROBUST_SCALE) ** 2) - 1.0)
    L = LAYOUT
    prior = 0.25 * (
        jnp.sum((theta[L["method_log_offset"]] / METHOD_SD) ** 2)
        + jnp.sum((theta[L["source_log_mult"]] / SOURCE_SD) ** 2)
        + ((theta[L["ctx128_log_mult"]] - ctx0) / CTX_SD) ** 2
        + (theta[L["offdomain_log_mult"]] / OFFDOMAIN_SD) ** 2
    )
    prior = prior + RIDGE * jnp.sum((theta - jnp.asarray(CENTRE)) ** 2)
    return (jnp.sum(weights * rho) + prior) / jnp.sum(weights)


def make_fitter(cols, n_steps: int):
    solver = optax.lbfgs()

    def run(theta0, weights, ctx0):
        loss = lambda t: objective(t, cols, weights, ctx0)
        value_and_grad = optax.value_and_grad_from_state(loss)

        def step(carry, _):
            theta, state = carry
            value, grad = value_and_grad(theta, state=state)
            updates, state = solver.update(grad, state, theta, value=value, grad=grad, value_fn=loss)
            return (optax.apply_updates(theta, updates), state), value

        (theta, _), _ = jax.lax.scan(step, (theta0, solver.init(theta0)), None, length=n_steps)
        return theta, loss(theta)

    run_many = jax.jit(jax.vmap(run, in_axes=(0, None, None)))

    def fit(thetas0, weights, ctx0):
        thetas, losses = run_many(thetas0, weights, ctx0)
        losses = jnp.where(jnp.isfinite(losses), losses, jnp.inf)
        best = int(jnp.argmin(losses))
        return thetas[best], float(losses[best])

    return fit


def errors(rows: list[dict], pred: np.ndarray) -> dict:
    obs = np.array([r["delta_loss"] for r in rows])
    ppl0 = np.array([r["ppl0"] for r in rows])
    cens = np.array([r["censored"] for r in rows], dtype=bool)
    sig = lambda x: float(f"{x:.4g}")
    out = {"n_rows": int((~cens).sum()), "n_censored": int(cens.sum())}
    if (~cens).any():
        e = np.abs(pred - obs)[~cens]
        e_ppl = np.abs(ppl0 * np.expm1(pred) - ppl0 * np.expm1(obs))[~cens]
        out.update(
            median_abs_err_delta_loss=sig(np.median(e)),
            p90_abs_err_delta_loss=sig(np.quantile(e, 0.9)),
            median_abs_err_delta_ppl=sig(np.median(e_ppl)),
            p90_abs_err_delta_ppl=sig(np.quantile(e_ppl, 0.9)),
        )
    if cens.any():
        out["censored_predicted_collapsed"] = sig(np.mean(pred[cens] >= np.log(COLLAPSE_PPL / ppl0[cens])))
    return out


def validity(rows: list[dict]) -> dict:
    fitted = [r for r in rows if not r["censored"]]
    by_kind = {
        k: [
            min(r["removed"] for r in fitted if r["kind"] == k),
            max(r["removed"] for r in fitted if r["kind"] == k),
        ]
        for k in acc.STRUCTURED_KINDS
    }
    by_size = {
        k: [
            min(r["params_b"] for r in rows if r["kind"] == k),
            max(r["params_b"] for r in rows if r["kind"] == k),
        ]
        for k in acc.STRUCTURED_KINDS
    }
    return {
        "removed_by_kind": by_kind,
        "params_b_by_kind": by_size,
        "generations_by_kind": {
            k: sorted({r["generation"] for r in rows if r["kind"] == k}) for k in acc.STRUCTURED_KINDS
        },
        "finetuned_kinds": sorted({r["kind"] for r in rows if r["finetuned"] > 0}),
        "methods_by_kind": {
            k: sorted({r["family"] for r in rows if r["kind"] == k}) for k in acc.STRUCTURED_KINDS
        },
        "models": sorted({r["model"] for r in rows}),
        "metric": "wikitext2 perplexity; delta vs the same source's dense model",
    }


def coverage(rows: list[dict]) -> list[list[str]]:
    """Per row, the factors that no other source measures (empty: the row is "covered" in
    leave-one-source-out): its method family, fine-tuning, Llama-3 for its kind, Alpaca
    calibration."""
    out = []
    for r in rows:
        others = [o for o in rows if o["source"] != r["source"] and not o["censored"]]
        missing = []
        if not any(o["kind"] == r["kind"] and o["family"] == r["family"] for o in others):
            missing.append(f"method {r['kind']}/{r['family']}")
        if r["finetuned"] and not any(o["finetuned"] for o in others):
            missing.append("recovery fine-tuning")
        if r["generation"] == "llama-3" and not any(
            o["generation"] == "llama-3" and o["kind"] == r["kind"] for o in others
        ):
            missing.append(f"llama-3 {r['kind']}")
        if r["offdomain"] and not any(o["offdomain"] for o in others):
            missing.append("Alpaca calibration")
        out.append(missing)
    return out


def same_configuration(rows: list[dict]) -> list[dict]:
    """Configurations that more than one row measures (same model, kind, method family,
    amount, recovery): the spread of their delta loss is the measurement disagreement that
    no model of the configuration can remove."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        if r["censored"]:
            continue
        key = (r["model"], r["kind"], r["family"], round(r["removed"], 3), r["finetuned"])
        groups.setdefault(key, []).append(r)
    out = []
    for key, g in groups.items():
        if len(g) < 2:
            continue
        d = [x["delta_loss"] for x in g]
        out.append(
            {
                "model": key[0],
                "kind": key[1],
                "family": key[2],
                "removed": key[3],
                "finetuned": key[4],
                "spread_delta_loss": round(max(d) - min(d), 4),
                "cross_source": len({x["source"] for x in g}) > 1,
                "rows": [
                    {
                        "line": x["line"],
                        "source": x["source"],
                        "method": x["method"],
                        "ctx128": x["ctx128"],
                        "delta_loss": round(x["delta_loss"], 4),
                    }
                    for x in g
                ],
            }
        )
    return sorted(out, key=lambda c: -c["spread_delta_loss"])


def compute(
    quick: bool = False, out: Path | None = FIT_JSON, verbose: bool = True, loso: bool = True
) -> dict:
    """Fit, report and (unless ``quick`` or ``out=None``) write the JSON; ``loso=False`` skips
    the leave-one-source-out refits (the shipped constants do not depend on them)."""
    t0 = time.perf_counter()
    rows, excluded = load_rows()
    assert {r["source"] for r in rows} <= set(SOURCES)
    cols = to_arrays(rows)
    n_starts, n_steps = (2, 60) if quick else (N_STARTS, N_STEPS)
    fitter = make_fitter(cols, n_steps)
    key = jax.random.PRNGKey(0)
    thetas0 = jnp.asarray(CENTRE)[None] + (jax.random.normal(key, (n_starts, N_THETA)) * 0.5).at[0].set(0.0)
    ctx0 = ctx128_paired(rows, np.ones(len(rows), bool))
    theta, train_loss = fitter(thetas0, jnp.ones(len(rows)), ctx0)
    pred = np.asarray(predict(theta, cols))
    shipped = np.asarray(predict(theta, cols, protocol=False))
    kinds = np.array([r["kind"] for r in rows])
    groups = np.array([r["source"] for r in rows])

    def subset(mask, p):
        return errors([r for r, m in zip(rows, mask, strict=True) if m], p[mask])

    report = {"train": errors(rows, pred)}
    report["train_by_kind"] = {k: subset(kinds == k, pred) for k in acc.STRUCTURED_KINDS}
    missing = coverage(rows)
    covered = np.array([not m for m in missing])
    held_out = not quick and loso
    if held_out:
        loso = np.zeros(len(rows))
        for g in SOURCES:
            ctx_g = ctx128_paired(rows, groups != g)
            theta_g, _ = fitter(thetas0, jnp.asarray((groups != g).astype(float)), ctx_g)
            loso[groups == g] = np.asarray(predict(theta_g, cols))[groups == g]
        report["leave_one_source_out"] = errors(rows, loso)
        report["leave_one_source_out_by_kind"] = {k: subset(kinds == k, loso) for k in acc.STRUCTURED_KINDS}
        report["leave_one_source_out_covered"] = subset(covered, loso)
        report["leave_one_source_out_covered_by_kind"] = {
            k: subset(covered & (kinds == k), loso) for k in acc.STRUCTURED_KINDS
        }
        report["leave_one_source_out_uncovered"] = subset(~covered, loso)
        fam = np.array([f"{r['kind']}/{r['family']}" for r in rows])
        seen = np.array([np.any((fam == f) & (groups != g)) for f, g in zip(fam, groups, strict=True)])
        report["leave_one_source_out_seen_methods"] = subset(seen, loso)
        report["leave_one_source_out_by_source"] = {g: subset(groups == g, loso) for g in SOURCES}
        report["leave_one_source_out_by_source_covered"] = {
            g: subset((groups == g) & covered, loso) for g in SOURCES
        }
    L = LAYOUT
    report["nuisance"] = {
        "ctx128_log_mult": float(theta[L["ctx128_log_mult"]]),
        "ctx128_paired_estimate": ctx0,
        "offdomain_calibration_log_mult": float(theta[L["offdomain_log_mult"]]),
        "source_log_mult": dict(zip(SOURCES, np.asarray(theta[L["source_log_mult"]]).tolist(), strict=True)),
    }
    fit = unpack(theta)
    result = {
        "description": (
            "Constants of hwgrad.accuracy.structured_delta_loss (delta loss = ln(ppl / ppl_dense) on "
            "Wikitext-2, WikiText-2 calibration, 2048-token windows), fitted by "
            "experiments/fit_structured_pruning.py on structured_pruning.csv"
        ),
        "constants": fit.to_dict(),
        "n_parameters": {
            "shipped": N_SHIPPED,
            "fit_only_nuisance": N_THETA - N_SHIPPED,
            "nuisance_terms": "128-token windows, Alpaca calibration, one factor per source",
        },
        "priors": {
            "method_sd": METHOD_SD,
            "source_sd": SOURCE_SD,
            "ctx128_sd": CTX_SD,
            "offdomain_sd": OFFDOMAIN_SD,
            "ridge": RIDGE,
            "robust_scale": ROBUST_SCALE,
            "eps": EPS,
        },
        "errors": report,
        "validity": validity(rows),
        "train_objective": train_loss,
        "excluded_lines": excluded,
        "baseline_substitutions": {
            str(r["line"]): r["borrowed_baseline"] for r in rows if r["borrowed_baseline"]
        },
        "same_configuration": same_configuration(rows),
        "rows": {
            str(r["line"]): {
                k: r[k]
                for k in (
                    "kind",
                    "family",
                    "removed",
                    "finetuned",
                    "generation",
                    "source",
                    "censored",
                    "ctx128",
                    "offdomain",
                )
            }
            | {
                "pred_delta_loss": round(float(p), 4),
                "pred_protocol": round(float(q), 4),
                "delta_loss": round(r["delta_loss"], 4),
                "uncovered": m,
            }
            | ({"loso_pred": round(float(loso[i]), 4)} if held_out else {})
            for i, (r, p, q, m) in enumerate(zip(rows, shipped, pred, missing, strict=True))
        },
    }
    if verbose:
        print(json.dumps({"constants": result["constants"], "errors": report}, indent=1))
        print(f"{len(rows)} rows, {len(excluded)} excluded, {time.perf_counter() - t0:.0f} s")
    if out is not None and held_out:
        out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    return result


def _cell(e: dict) -> str:
    if not e.get("n_rows"):
        return "-"
    return f"{e['median_abs_err_delta_loss']:.3f} / {e['p90_abs_err_delta_loss']:.2f} ({e['n_rows']})"


def markdown(result: dict) -> str:
    """The constants and error tables of docs/accuracy.md (structured pruning), from a result
    of `compute` or the shipped JSON (``--markdown``); tests check the page contains them."""
    c, e = result["constants"], result["errors"]
    kinds = acc.STRUCTURED_KINDS
    f3 = lambda xs: " | ".join(f"{x:.3f}" for x in xs)
    lines = [
        "| constant | depth | width_hidden | mixed |",
        "|---|---|---|---|",
        f"| ln A (loss at 50 % removed, 7B) | {f3(c['kind_log_amp'])} |",
        f"| k (odds exponent, LLaMA-1/2) | {f3(c['kind_power'])} |",
        f"| beta (size) | {f3(c['size_exp'])} |",
        f"| ln G (Llama-3 amplitude) | {f3(c['llama3_log_mult'])} |",
        "",
        "Method offsets ln O: "
        + "; ".join(
            f"{k} "
            + ", ".join(
                f"{m} {c['method_log_offset'][acc.structured_method_index(k, m)]:+.2f}"
                for m in acc.STRUCTURED_METHODS[k]
            )
            for k in kinds
        )
        + f". Shared: ln R (LoRA recovery) = {c['recovery_log_mult']:.3f}, ln P (Llama-3 exponent "
        f"ratio) = {c['llama3_power_log_mult']:.3f}. Fit-only protocol factors: 128-token windows "
        f"{e['nuisance']['ctx128_log_mult']:+.3f} (paired README estimate "
        f"{e['nuisance']['ctx128_paired_estimate']:+.3f}), Alpaca-calibrated SliceGPT "
        f"{e['nuisance']['offdomain_calibration_log_mult']:+.3f}. Parameters: "
        f"{result['n_parameters']['shipped']} shipped, {result['n_parameters']['fit_only_nuisance']} fit-only.",
        "",
        "| errors (median / p90 \\|Δ loss\\| nats, rows) | all | depth | width_hidden | mixed |",
        "|---|---|---|---|---|",
        f"| fit (all rows) | {_cell(e['train'])} | "
        + " | ".join(_cell(e["train_by_kind"][k]) for k in kinds)
        + " |",
        f"| leave-one-source-out | {_cell(e['leave_one_source_out'])} | "
        + " | ".join(_cell(e["leave_one_source_out_by_kind"][k]) for k in kinds)
        + " |",
        f"| leave-one-source-out, covered rows | {_cell(e['leave_one_source_out_covered'])} | "
        + " | ".join(_cell(e["leave_one_source_out_covered_by_kind"][k]) for k in kinds)
        + " |",
        f"| leave-one-source-out, uncovered rows | {_cell(e['leave_one_source_out_uncovered'])} | | | |",
        f"| leave-one-source-out, method seen in another source | "
        f"{_cell(e['leave_one_source_out_seen_methods'])} | | | |",
        "",
        "| source left out | all rows | covered rows |",
        "|---|---|---|",
    ]
    for g in SOURCES:
        if e["leave_one_source_out_by_source"][g].get("n_rows"):
            lines.append(
                f"| {g} | {_cell(e['leave_one_source_out_by_source'][g])} | "
                f"{_cell(e['leave_one_source_out_by_source_covered'][g])} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="short fit, writes nothing")
    ap.add_argument(
        "--markdown", action="store_true", help="print the docs tables from the shipped JSON (no fit)"
    )
    ap.add_argument(
        "--check",
        action="store_true",
        help="refit (no held-out refits), exit 1 unless the shipped constants equal the fit",
    )
    args = ap.parse_args()
    if args.markdown:
        print(markdown(json.loads(FIT_JSON.read_text(encoding="utf-8"))), end="")
        return
    if args.check:
        raise SystemExit(check())
    compute(quick=args.quick)


def check(tol: float = 1e-3) -> int:
    """0 when ``structured_pruning_fit.json``'s constants and per-row predictions equal a refit
    to ``tol`` (absolute; the fit's flat directions, e.g. a size exponent near 0, move by
    ~1e-5 between XLA builds and compiler flags)."""
    shipped = json.loads(FIT_JSON.read_text(encoding="utf-8"))
    new = compute(out=None, verbose=False, loso=False)
    bad = [
        f"{k}: shipped {shipped['constants'][k]} != fitted {v}"
        for k, v in new["constants"].items()
        if not np.allclose(shipped["constants"].get(k, np.nan), v, rtol=0.0, atol=tol)
    ]
    for line, r in new["rows"].items():
        old = shipped["rows"].get(line, {})
        for k in ("pred_delta_loss", "pred_protocol"):
            if abs(old.get(k, np.inf) - r[k]) > tol:
                bad.append(f"row {line} {k}: shipped {old.get(k)} != fitted {r[k]}")
    print("\n".join(bad) if bad else f"{FIT_JSON.name} equals the fit")
    return 1 if bad else 0


if __name__ == "__main__":
    main()
