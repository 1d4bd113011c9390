"""Fit the compression -> accuracy model to the published perplexity tables.

Reads ``hwgrad/presets/data/compression_accuracy.csv``, turns every row into a delta loss
``ln(ppl / ppl_dense)`` against the same source's dense baseline, fits the constants of
`hwgrad.accuracy` on a deterministic 80 % of the rows (robust least squares on
``ln(delta_loss + eps)``, L-BFGS from several starts), reports the error on the held-out 20 %,
in a 5-fold cross-validation and leave-one-source-out, and writes
``hwgrad/presets/data/accuracy_fit.json`` (constants, errors, range of validity, row handling).

    python experiments/fit_accuracy.py            # fit, report, write the JSON
    python experiments/fit_accuracy.py --quick    # smoke test: short fit, writes nothing
    python experiments/fit_accuracy.py --plot     # also draw experiments/out/fit_accuracy.png

Row handling (see docs/accuracy.md):
  * ``fp16-baseline`` rows are Delta = 0 by definition and are not fitted or scored.
  * LLM-QAT rows are excluded (quantisation-aware training is not one of the PTQ families).
  * AQLM rows carry no baseline; Llama-2 ones take the dense value that another source in the
    file reports for the same model at the same 4096-token context (Wanda README); Llama-3
    ones (8192-token context, no such baseline) are excluded.
  * The OWL README's LLaMA-65B dense perplexity 4.77 is replaced by 3.53 (AWQ and BESA, same
    2048-token evaluation as OWL's other dense values, which match them exactly).
  * Rows whose notes say the source prints only an order of magnitude (SpinQuant "1e5") are
    censored: they only ask for a prediction of at least ``ln(100 / ppl_dense)``.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import math
import time
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

from hwgrad import accuracy as acc  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA_CSV = ROOT / "hwgrad" / "presets" / "data" / "compression_accuracy.csv"
FIT_JSON = ROOT / "hwgrad" / "presets" / "data" / acc.FIT_FILE
OUT_DIR = ROOT / "experiments" / "out"

EPS = 0.02  # nats; about the rounding noise of a 0.1-rounded perplexity near 5
ROBUST_SCALE = 0.5  # soft-L1 scale on ln(delta + eps) residuals
COLLAPSE_PPL = 100.0  # censored rows ask for ppl >= this
RIDGE = 1e-4  # pull towards CENTRE for parameters the training rows do not constrain
HOLDOUT_MOD = 5  # one row in five (by hash) is held out
N_STARTS = 4
N_STEPS = 200

# Parameter counts (billions). LLaMA-1: Touvron et al. 2023, "LLaMA", Table 2 (6.7/13.0/32.5/
# 65.2B); the rest from hwgrad/presets/data/models.csv (computed from config.json).
PARAMS_B = {
    "llama-1-7b": 6.7,
    "llama-1-13b": 13.0,
    "llama-1-30b": 32.5,
    "llama-1-65b": 65.2,
    "llama-2-7b": 6.738,
    "llama-2-13b": 13.016,
    "llama-2-70b": 68.977,
    "llama-3-8b": 8.03,
    "llama-3-70b": 70.554,
    "llama-3.1-8b-instruct": 8.03,
}

# method -> (quantiser family, pruner). Per-channel weight scales (no groups) are marked by
# source below. KV-only and pruning rows keep 16-bit weights, so their quantiser family only
# selects the KV term (rtn = per-token uniform int; the others = calibrated schemes).
METHODS = {
    "RTN": ("rtn", None),
    "GPTQ": ("gptq", None),
    "GPTQ-R": ("gptq", None),
    "AWQ": ("gptq", None),
    "OPTQ(GPTQ)": ("gptq", None),
    "SmoothQuant": ("gptq", None),
    "QuaRot": ("rotation", None),
    "SpinQuant": ("rotation", None),
    "QuIP": ("rotation", None),
    "QuIP# (E8P)": ("vector", None),
    "int4 (per-token, uniform)": ("rtn", None),
    "int3": ("rtn", None),
    "int2": ("rtn", None),
    "ATOM-4bit (g128)": ("gptq", None),
    "Magnitude": ("gptq", "magnitude"),
    "Wanda": ("gptq", "wanda"),
    "SparseGPT": ("gptq", "sparsegpt"),
    "OWL w. Wanda": ("gptq", "owl"),
    "OWL w. SparseGPT": ("gptq", "owl"),
    "BESA (layer-wise)": ("gptq", "owl"),
    "BESA (row-wise)": ("gptq", "owl"),
}
# In the SpinQuant table, GPTQ and SmoothQuant quantise the KV cache with per-token RTN, and
# "GPTQ" W4A4 rows use RTN activations: those tensors take the rtn terms.
COMPONENT_OVERRIDES = {"GPTQ": {"act": "rtn", "kv": "rtn"}, "SmoothQuant": {"kv": "rtn"}}
EXCLUDED_METHODS = {"fp16-baseline": "dense baseline (delta = 0 by definition)", "LLM-QAT": "QAT, not PTQ"}
# Weight-only baselines without groups: the SpinQuant table (per-channel W4) and the QuIP#
# README's OPTQ rows (ASSUMES per-channel, as in the QuIP papers' baselines).
PER_CHANNEL_SOURCES = ("facebookresearch/SpinQuant", "quip-sharp")

SOURCE_LABELS = {
    "Lin et al., 'AWQ": "AWQ",
    "quip-sharp": "QuIP#",
    "Vahe1994/AQLM": "AQLM",
    "facebookresearch/SpinQuant": "SpinQuant",
    "Hooper et al., 'KVQuant'": "KVQuant",
    "third-party KVQuant": "KVQuant-repro",
    "locuslab/wanda": "Wanda",
    "BESA (Xu et al.": "BESA",
    "luuyin/OWL": "OWL",
}


def source_label(source: str) -> str:
    for key, label in SOURCE_LABELS.items():
        if key in source:
            return label
    raise KeyError(f"unknown source {source[:60]!r}: add it to SOURCE_LABELS")


def family_of(method: str) -> tuple[str, str]:
    if method.startswith("AQLM"):
        return "vector", "sparsegpt"
    if method.startswith("KVQuant"):
        return "rotation", "sparsegpt"
    fam, pruner = METHODS[method]
    return fam, pruner or "sparsegpt"


def row_key(r: dict[str, str]) -> str:
    fields = ("model", "method", "weight_bits", "kv_bits", "act_bits", "sparsity", "pattern", "source")
    return "|".join(r[f] for f in fields)


def fold_of(r: dict[str, str]) -> int:
    """Deterministic fold in 0..HOLDOUT_MOD-1 from a hash of the row's identifying cells."""
    return int(hashlib.sha256(row_key(r).encode()).hexdigest(), 16) % HOLDOUT_MOD


def kind_of(w: float, kv: float, a: float, s: float) -> str:
    if s > 0:
        return "sparsity"
    if a < 16:
        return "weight+act(+kv)"
    if w < 16:
        return "weight-only"
    return "kv-only"


def load_rows(path: Path = DATA_CSV) -> tuple[list[dict], list[dict]]:
    """Rows usable for the fit (with targets) and the excluded ones (with reasons)."""
    with path.open(newline="", encoding="utf-8") as fh:
        raw = list(csv.DictReader(fh))
    # Dense baselines by (model, context) from any source, for rows that lack their own.
    dense = {}
    for r in raw:
        if r["method"] == "fp16-baseline" and r["context_len"]:
            dense.setdefault((r["model"], r["context_len"]), float(r["value"]))
    rows, excluded = [], []
    for line, r in enumerate(raw, start=2):
        label = source_label(r["source"])
        base = dict(line=line, model=r["model"], method=r["method"], source=label)
        if r["method"] in EXCLUDED_METHODS:
            excluded.append({**base, "reason": EXCLUDED_METHODS[r["method"]]})
            continue
        ppl0, baseline_note = r["fp16_baseline"], ""
        if not ppl0:
            ppl0 = dense.get((r["model"], r["context_len"]))
            if ppl0 is None:
                excluded.append({**base, "reason": f"no dense baseline at context {r['context_len']}"})
                continue
            baseline_note = "imputed from another source at the same context"
        ppl0 = float(ppl0)
        if label == "OWL" and r["model"] == "llama-1-65b":
            ppl0, baseline_note = 3.53, "OWL README dense 4.77 replaced by 3.53 (AWQ, BESA)"
        family, pruner = family_of(r["method"])
        pattern = r["pattern"] if r["pattern"] != "dense" else "unstructured"
        per_channel = family in ("rtn", "gptq") and any(s in r["source"] for s in PER_CHANNEL_SOURCES)
        value = float(r["value"])
        censored = "order of magnitude" in r["notes"]
        rows.append(
            {
                **base,
                "weight_bits": float(r["weight_bits"]),
                "kv_bits": float(r["kv_bits"]),
                "act_bits": float(r["act_bits"]),
                "sparsity": float(r["sparsity"]),
                "pattern": pattern,
                "family": family,
                "act_family": COMPONENT_OVERRIDES.get(r["method"], {}).get("act", family),
                "kv_family": COMPONENT_OVERRIDES.get(r["method"], {}).get("kv", family),
                "pruner": pruner,
                "per_channel": per_channel,
                "params_b": PARAMS_B[r["model"]],
                "ppl": value,
                "ppl0": ppl0,
                "delta_loss": max(math.log(value / ppl0), 0.0),
                "censored": censored,
                "fold": fold_of(r),
                "holdout": fold_of(r) == 0,
                "kind": kind_of(*(float(r[k]) for k in ("weight_bits", "kv_bits", "act_bits", "sparsity"))),
                "baseline_note": baseline_note,
            }
        )
    return rows, excluded


def to_arrays(rows: list[dict]) -> dict[str, jnp.ndarray]:
    """Column arrays; family/pruner/pattern become the integer levels used by the model."""
    idx = [
        (
            acc._WEIGHT_LEVEL[r["family"]],
            acc._ACT_LEVEL[r["act_family"]],
            acc._KV_LEVEL[r["kv_family"]],
            acc._PRUNER_LEVEL[r["pruner"]],
            acc._PATTERN_LEVEL[r["pattern"]],
        )
        for r in rows
    ]
    cols = {
        k: jnp.asarray([r[k] for r in rows], dtype=float)
        for k in ("weight_bits", "kv_bits", "act_bits", "sparsity", "params_b", "ppl0", "delta_loss")
    }
    cols["per_channel"] = jnp.asarray([float(r["per_channel"]) for r in rows])
    cols["censored"] = jnp.asarray([float(r["censored"]) for r in rows])
    cols["idx"] = tuple(jnp.asarray(col) for col in zip(*idx, strict=True))
    return cols


# ----------------------------------------------------------------------------- parameters

# Unconstrained parameter vector -> AccuracyFit. Positivity by exp; k = 1 + exp(.) keeps the
# sparsity term's gradient finite at s = 0; softplus keeps every size exponent >= 0, so the
# loss never grows with model size (a prior: the data are flat-to-improving with size and an
# unconstrained fit trades noise growth against a later break-down, which extrapolates badly).
_SHAPES = {
    "weight_log_amp": 4,
    "act_log_amp": 3,
    "kv_log_amp": 2,
    "sparsity_log_amp": 4,
    "pattern_log_mult": 2,
    "log_bits_scale": 1,
    "log_kv_bits_scale": 1,
    "weight_size_exp": 1,
    "act_size_exp": 1,
    "sparsity_size_exp": 1,
    "log_sparsity_power_m1": 1,
    "log_blowup_noise": 1,
    "blowup_size_exp": 1,
    "per_channel_log_mult": 1,
}


def unpack(theta: jnp.ndarray, baseline=(0.0, 0.0)) -> acc.AccuracyFit:
    parts, i = {}, 0
    for name, n in _SHAPES.items():
        parts[name] = theta[i : i + n] if n > 1 else theta[i]
        i += n
    return acc.AccuracyFit(
        weight_log_amp=parts["weight_log_amp"],
        act_log_amp=parts["act_log_amp"],
        kv_log_amp=parts["kv_log_amp"],
        sparsity_log_amp=parts["sparsity_log_amp"],
        pattern_log_mult=jnp.concatenate([jnp.zeros(1), parts["pattern_log_mult"]]),
        bits_scale=jnp.exp(parts["log_bits_scale"]),
        kv_bits_scale=jnp.exp(parts["log_kv_bits_scale"]),
        weight_size_exp=jax.nn.softplus(parts["weight_size_exp"]),
        act_size_exp=jax.nn.softplus(parts["act_size_exp"]),
        sparsity_size_exp=jax.nn.softplus(parts["sparsity_size_exp"]),
        sparsity_power=1.0 + jnp.exp(parts["log_sparsity_power_m1"]),
        blowup_noise=jnp.exp(parts["log_blowup_noise"]),
        blowup_size_exp=jax.nn.softplus(parts["blowup_size_exp"]),
        per_channel_log_mult=parts["per_channel_log_mult"],
        baseline_log_ppl_7b=jnp.asarray(baseline[0]),
        baseline_size_exp=jnp.asarray(baseline[1]),
    )


N_THETA = sum(_SHAPES.values())


# A physically sensible centre: 4-bit weight noise ~0.05 nats, gamma = 1 / ln 4 (ideal scalar
# quantiser), 50 % sparsity ~0.2 nats, k = 2, z_c = 2, size exponents ~0.05 (z_c: ~1).
CENTRE = np.concatenate(
    [
        np.full(4, math.log(0.05)),
        np.full(3, math.log(0.5)),
        np.full(2, math.log(0.02)),
        np.full(4, math.log(0.2)),
        np.zeros(2),
        [math.log(1 / math.log(4))] * 2 + [-3.0, -3.0, -3.0, 0.0, math.log(2.0), 0.5, 0.5],
    ]
)
assert CENTRE.shape == (N_THETA,)


def initial_thetas(key, n: int) -> jnp.ndarray:
    """The centre plus ``n - 1`` Gaussian-jittered copies."""
    jitter = jax.random.normal(key, (n, N_THETA)) * 0.5
    return jnp.asarray(CENTRE)[None] + jitter.at[0].set(0.0)


def predict(theta, cols) -> jnp.ndarray:
    return model_loss(unpack(theta), cols)


def model_loss(fit: acc.AccuracyFit, cols) -> jnp.ndarray:
    """The library's delta loss for every row (row-wise family levels)."""
    return acc._loss(
        fit,
        cols["weight_bits"],
        cols["kv_bits"],
        cols["act_bits"],
        cols["sparsity"],
        cols["params_b"],
        cols["idx"],
        cols["per_channel"],
    )


def objective(theta, cols, weights) -> jnp.ndarray:
    """Soft-L1 on ln(delta + eps); censored rows are one-sided (hinge at ppl = 100)."""
    pred = jnp.log(predict(theta, cols) + EPS)
    obs = jnp.log(cols["delta_loss"] + EPS)
    floor = jnp.log(jnp.log(COLLAPSE_PPL / cols["ppl0"]) + EPS)
    r = jnp.where(cols["censored"] > 0, jax.nn.relu(floor - pred), pred - obs)
    rho = 2.0 * ROBUST_SCALE**2 * (jnp.sqrt(1.0 + (r / ROBUST_SCALE) ** 2) - 1.0)
    # A weak ridge keeps parameters that no training row constrains (e.g. in a
    # leave-one-source-out fold) near the starting centre instead of drifting.
    return jnp.sum(weights * rho) / jnp.sum(weights) + RIDGE * jnp.sum((theta - CENTRE) ** 2)


def make_fitter(cols, n_steps: int):
    solver = optax.lbfgs()

    def run(theta0, weights):
        loss = lambda t: objective(t, cols, weights)
        value_and_grad = optax.value_and_grad_from_state(loss)

        def step(carry, _):
            theta, state = carry
            value, grad = value_and_grad(theta, state=state)
            updates, state = solver.update(grad, state, theta, value=value, grad=grad, value_fn=loss)
            return (optax.apply_updates(theta, updates), state), value

        (theta, _), _ = jax.lax.scan(step, (theta0, solver.init(theta0)), None, length=n_steps)
        return theta, loss(theta)

    # Multi-start: vmap over starting points, keep the best.
    run_many = jax.jit(jax.vmap(run, in_axes=(0, None)))

    def fit(thetas0, weights):
        thetas, losses = run_many(thetas0, weights)
        losses = jnp.where(jnp.isfinite(losses), losses, jnp.inf)
        best = int(jnp.argmin(losses))
        return thetas[best], float(losses[best])

    return fit


def fit_baseline(rows_raw: list[dict]) -> tuple[float, float]:
    """ln ppl0 = c - e ln(N / 7) over LLaMA-1/2 dense Wikitext-2 values at 2048 context."""
    pts = {}
    for r in rows_raw:
        if (
            r["method"] == "fp16-baseline"
            and r["context_len"] == "2048"
            and r["model"].startswith(("llama-1", "llama-2"))
        ):
            pts.setdefault(r["model"], float(r["value"]))
    x = np.log(np.array([PARAMS_B[m] for m in pts]) / acc.REFERENCE_PARAMS_B)
    y = np.log(np.array(list(pts.values())))
    slope, intercept = np.polyfit(x, y, 1)
    return float(intercept), float(-slope)


# ----------------------------------------------------------------------------- errors


def errors(rows: list[dict], pred_loss: np.ndarray) -> dict:
    """Median / p90 absolute errors on uncensored rows; hit rate on censored ones."""
    obs = np.array([r["delta_loss"] for r in rows])
    ppl0 = np.array([r["ppl0"] for r in rows])
    cens = np.array([r["censored"] for r in rows], dtype=bool)
    out = {"n_rows": int((~cens).sum()), "n_censored": int(cens.sum())}
    sig = lambda x: float(f"{x:.4g}")
    if (~cens).any():
        e_log = np.abs(pred_loss - obs)[~cens]
        e_ppl = np.abs(ppl0 * np.expm1(pred_loss) - ppl0 * np.expm1(obs))[~cens]
        out.update(
            median_abs_err_delta_loss=sig(np.median(e_log)),
            p90_abs_err_delta_loss=sig(np.quantile(e_log, 0.9)),
            median_abs_err_delta_ppl=sig(np.median(e_ppl)),
            p90_abs_err_delta_ppl=sig(np.quantile(e_ppl, 0.9)),
        )
    if cens.any():
        floor = np.log(COLLAPSE_PPL / ppl0[cens])
        out["censored_predicted_collapsed"] = sig(np.mean(pred_loss[cens] >= floor))
    return out


def validity(rows: list[dict]) -> dict:
    fitted = [r for r in rows if not r["censored"]]

    def rng(key, subset=fitted):
        vals = [r[key] for r in subset]
        return [min(vals), max(vals)]

    return {
        "weight_bits": rng("weight_bits"),
        "kv_bits": rng("kv_bits"),
        "act_bits": rng("act_bits"),
        "sparsity": rng("sparsity"),
        "params_b": rng("params_b"),
        "weight_bits_by_family": {
            f: rng("weight_bits", [r for r in fitted if r["family"] == f and r["weight_bits"] < 16])
            for f in acc.FAMILIES
        },
        "sparsity_levels": sorted({r["sparsity"] for r in fitted}),
        "models": sorted({r["model"] for r in rows}),
        "metric": "wikitext2 perplexity; delta vs the same source's dense model",
    }


# ----------------------------------------------------------------------------- main


def compute(quick: bool = False, out: Path | None = FIT_JSON, verbose: bool = True) -> dict:
    t0 = time.perf_counter()
    with DATA_CSV.open(newline="", encoding="utf-8") as fh:
        raw = list(csv.DictReader(fh))
    rows, excluded = load_rows()
    cols = to_arrays(rows)
    train_w = jnp.asarray([0.0 if r["holdout"] else 1.0 for r in rows])
    n_starts, n_steps = (2, 100) if quick else (N_STARTS, N_STEPS)
    fitter = make_fitter(cols, n_steps)
    thetas0 = initial_thetas(jax.random.PRNGKey(0), n_starts)

    theta, train_loss = fitter(thetas0, train_w)
    pred = np.asarray(predict(theta, cols))
    hold = np.array([r["holdout"] for r in rows])
    report = {
        "train": errors([r for r in rows if not r["holdout"]], pred[~hold]),
        "holdout": errors([r for r in rows if r["holdout"]], pred[hold]),
    }

    def cross_validate(groups: np.ndarray) -> np.ndarray:
        """Prediction for every row from a fit that did not see its group."""
        out = np.zeros(len(rows))
        for g in np.unique(groups):
            theta_g, _ = fitter(thetas0, jnp.asarray((groups != g).astype(float)))
            out[groups == g] = np.asarray(predict(theta_g, cols))[groups == g]
        return out

    def by(key: str, pred_all: np.ndarray) -> dict:
        labels = np.array([r[key] for r in rows])
        return {
            k: errors([r for r, m in zip(rows, labels == k, strict=True) if m], pred_all[labels == k])
            for k in sorted(set(labels))
        }

    if not quick:
        pred_cv = cross_validate(np.array([r["fold"] for r in rows]))
        report["cv5"] = errors(rows, pred_cv)
        report["cv5_by_kind"] = by("kind", pred_cv)
        report["cv5_by_source"] = by("source", pred_cv)
        report["leave_one_source_out"] = by("source", cross_validate(np.array([r["source"] for r in rows])))
    baseline = fit_baseline(raw)
    fit = unpack(theta, baseline)
    result = {
        "description": (
            "Constants of hwgrad.accuracy (delta loss = ln(ppl / ppl_dense) on Wikitext-2), fitted by "
            "experiments/fit_accuracy.py on the non-held-out rows of compression_accuracy.csv"
        ),
        "constants": fit.to_dict(),
        "fixed": {
            "collapse_loss_nats": acc.COLLAPSE_LOSS_NATS,
            "reference_bits": acc.REFERENCE_BITS,
            "reference_params_b": acc.REFERENCE_PARAMS_B,
            "eps_nats": EPS,
            "robust_scale": ROBUST_SCALE,
            "censored_collapse_ppl": COLLAPSE_PPL,
        },
        "errors": report,
        "validity": validity(rows),
        "holdout_lines": [r["line"] for r in rows if r["holdout"]],
        "excluded_lines": excluded,
        "baseline_substitutions": [
            {"line": r["line"], "ppl0": r["ppl0"], "note": r["baseline_note"]}
            for r in rows
            if r["baseline_note"]
        ],
        "rows": {
            str(r["line"]): {
                k: r[k]
                for k in (
                    "family",
                    "act_family",
                    "kv_family",
                    "pruner",
                    "pattern",
                    "per_channel",
                    "censored",
                    "params_b",
                    "ppl0",
                    "fold",
                    "kind",
                )
            }
            for r in rows
        },
        "train_objective": train_loss,
    }
    seconds = time.perf_counter() - t0
    if verbose:
        print(json.dumps({"constants": result["constants"], "errors": result["errors"]}, indent=1))
        print(
            f"fit in {seconds:.1f} s; {len(rows)} rows ({int(hold.sum())} held out), {len(excluded)} excluded"
        )
    if out is not None:
        out.write_text(dumps(result), encoding="utf-8")
    return result


def dumps(result: dict) -> str:
    """JSON with one line per table row (rows, exclusions) and indented everything else."""
    tables = ("holdout_lines", "rows", "excluded_lines", "baseline_substitutions")
    head = json.dumps({k: v for k, v in result.items() if k not in tables}, indent=1)[:-2]
    parts = [head]
    for key in tables:
        if key == "holdout_lines":
            parts.append(f' "{key}": {json.dumps(result[key])}')
            continue
        items = result[key].items() if isinstance(result[key], dict) else enumerate(result[key])
        body = ",\n".join(
            (f"  {json.dumps(k)}: " if isinstance(result[key], dict) else "  ") + json.dumps(v)
            for k, v in items
        )
        open_, close = ("{", "}") if isinstance(result[key], dict) else ("[", "]")
        parts.append(f' "{key}": {open_}\n{body}\n {close}')
    return ",\n".join(parts) + "\n}\n"


def plot(result: dict | None = None, path: Path = OUT_DIR / "fit_accuracy.png") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, _ = load_rows()
    fit = acc.AccuracyFit.from_dict((result or json.loads(FIT_JSON.read_text()))["constants"])
    cols = to_arrays(rows)
    pred = np.asarray(model_loss(fit, cols))
    obs = np.array([r["delta_loss"] for r in rows])
    fig, ax = plt.subplots(figsize=(5, 5))
    kinds = sorted({r["kind"] for r in rows})
    for kind, marker, color in zip(kinds, "os^D", ("C0", "C1", "C2", "C3"), strict=False):
        for hold in (False, True):
            m = np.array([r["kind"] == kind and r["holdout"] == hold and not r["censored"] for r in rows])
            if m.any():
                ax.scatter(
                    obs[m] + EPS,
                    pred[m] + EPS,
                    marker=marker,
                    s=18,
                    edgecolors=color,
                    facecolors="none" if hold else color,
                    label=f"{kind}{' (held out)' if hold else ''}",
                )
    ax.plot([EPS, 15], [EPS, 15], "k:", lw=1)
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="observed delta loss + 0.02 (nats)",
        ylabel="model delta loss + 0.02 (nats)",
        title="hwgrad.accuracy fit (Wikitext-2)",
    )
    ax.legend(fontsize=7)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    plt.close(fig)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short fit, no leave-one-source-out, no write")
    parser.add_argument("--out", type=Path, default=None, help=f"JSON path (default {FIT_JSON.name})")
    parser.add_argument("--plot", action="store_true", help="also draw experiments/out/fit_accuracy.png")
    args = parser.parse_args()
    out = args.out if args.out is not None else (None if args.quick else FIT_JSON)
    result = compute(quick=args.quick, out=out)
    if args.plot:
        print("wrote", plot(result))


if __name__ == "__main__":
    main()
