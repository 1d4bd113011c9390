"""Fit the structured-pruning loss of `hwgrad.accuracy` to ``structured_pruning.csv``.

Every row becomes ``delta_loss = ln(ppl / ppl_dense)`` against the same source's dense value;
the constants of `hwgrad.accuracy.StructuredFit` are fitted (robust soft-L1 least
squares on ``ln(delta + eps)``, L-BFGS from several starts, a weak ridge that shrinks the
per-method offsets towards their kind) and the errors are reported on the fit itself and
leave-one-source-out (per kind and per source). Writes
``hwgrad/presets/data/structured_pruning_fit.json``.

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
  * Leave-one-source-out groups: one per paper or README; the FLAP paper's numbers come from
    the same README as the FLAP reproduction and are grouped with it.
"""

from __future__ import annotations

import argparse
import csv
import json
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

EPS = 0.02
ROBUST_SCALE = 0.5
COLLAPSE_PPL = 100.0
RIDGE_OFFSET = 0.02  # shrinks method offsets towards their kind (unseen methods: offset 0)
RIDGE = 1e-4
N_STARTS = 6
N_STEPS = 300

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
    }


# theta: kind_log_amp (3), method_log_offset (10), log kind_power (3), log size_exp (3),
# recovery_log_mult, llama3_log_mult (one, shared by the kinds), log(blowup_noise - 1)
# + offdomain_log_mult (nuisance: SliceGPT calibrated on Alpaca in BlockPruner's re-run)
N_THETA = 3 + 10 + 3 + 3 + 1 + 1 + 1 + 1
CENTRE = np.concatenate(
    [np.zeros(3), np.zeros(10), np.log([1.2] * 3), np.log([0.1] * 3), [-0.5], [0.5], [np.log(2.0)], [0.0]]
)
OFFSETS = slice(3, 13)


def unpack(theta) -> acc.StructuredFit:
    return acc.StructuredFit(
        kind_log_amp=theta[0:3],
        method_log_offset=theta[3:13],
        kind_power=jnp.exp(theta[13:16]),
        size_exp=jnp.exp(theta[16:19]),
        recovery_log_mult=theta[19],
        llama3_log_mult=jnp.full(3, theta[20]),
        blowup_noise=1.0 + jnp.exp(theta[21]),
    )


def predict(theta, cols):
    nuisance = (theta[22] * cols["offdomain"])[:, None]
    u = acc._structured_u(
        unpack(theta),
        cols["removed"],
        cols["idx"],
        cols["finetuned"],
        cols["llama3"],
        cols["params_b"],
        nuisance,
    )
    return acc._noise_to_loss(jnp.zeros_like(u), 1.0, u)


def objective(theta, cols, weights):
    pred = jnp.log(predict(theta, cols) + EPS)
    obs = jnp.log(cols["delta_loss"] + EPS)
    floor = jnp.log(jnp.log(COLLAPSE_PPL / cols["ppl0"]) + EPS)
    r = jnp.where(cols["censored"] > 0, jax.nn.relu(floor - pred), pred - obs)
    rho = 2.0 * ROBUST_SCALE**2 * (jnp.sqrt(1.0 + (r / ROBUST_SCALE) ** 2) - 1.0)
    centre = jnp.asarray(CENTRE)
    ridge = RIDGE * jnp.sum((theta - centre) ** 2) + RIDGE_OFFSET * jnp.sum(theta[OFFSETS] ** 2)
    return jnp.sum(weights * rho) / jnp.sum(weights) + ridge


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

    run_many = jax.jit(jax.vmap(run, in_axes=(0, None)))

    def fit(thetas0, weights):
        thetas, losses = run_many(thetas0, weights)
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


def compute(quick: bool = False, out: Path | None = FIT_JSON, verbose: bool = True) -> dict:
    t0 = time.perf_counter()
    rows, excluded = load_rows()
    cols = to_arrays(rows)
    n_starts, n_steps = (2, 60) if quick else (N_STARTS, N_STEPS)
    fitter = make_fitter(cols, n_steps)
    key = jax.random.PRNGKey(0)
    thetas0 = jnp.asarray(CENTRE)[None] + (jax.random.normal(key, (n_starts, N_THETA)) * 0.5).at[0].set(0.0)
    theta, train_loss = fitter(thetas0, jnp.ones(len(rows)))
    pred = np.asarray(predict(theta, cols))
    report = {"train": errors(rows, pred)}
    report["train_by_kind"] = {
        k: errors([r for r in rows if r["kind"] == k], pred[[r["kind"] == k for r in rows]])
        for k in acc.STRUCTURED_KINDS
    }
    if not quick:
        groups = np.array([r["source"] for r in rows])
        loso = np.zeros(len(rows))
        for g in np.unique(groups):
            theta_g, _ = fitter(thetas0, jnp.asarray((groups != g).astype(float)))
            loso[groups == g] = np.asarray(predict(theta_g, cols))[groups == g]
        kinds = np.array([r["kind"] for r in rows])
        report["leave_one_source_out"] = errors(rows, loso)
        report["leave_one_source_out_by_kind"] = {
            k: errors([r for r, m in zip(rows, kinds == k, strict=True) if m], loso[kinds == k])
            for k in acc.STRUCTURED_KINDS
        }
        fam = np.array([f"{r['kind']}/{r['family']}" for r in rows])
        seen = np.array([np.any((fam == f) & (groups != g)) for f, g in zip(fam, groups, strict=True)])
        report["leave_one_source_out_seen_methods"] = errors(
            [r for r, m in zip(rows, seen, strict=True) if m], loso[seen]
        )
        report["leave_one_source_out_seen_methods_by_kind"] = {
            k: errors(
                [r for r, m in zip(rows, seen & (kinds == k), strict=True) if m], loso[seen & (kinds == k)]
            )
            for k in acc.STRUCTURED_KINDS
        }
        report["leave_one_source_out_by_source"] = {
            g: errors([r for r, m in zip(rows, groups == g, strict=True) if m], loso[groups == g])
            for g in sorted(set(groups))
        }
    fit = unpack(theta)
    report["nuisance"] = {"offdomain_calibration_log_mult": float(theta[22])}
    result = {
        "description": (
            "Constants of hwgrad.accuracy.structured_delta_loss (delta loss = ln(ppl / ppl_dense) on "
            "Wikitext-2), fitted by experiments/fit_structured_pruning.py on structured_pruning.csv"
        ),
        "constants": fit.to_dict(),
        "errors": report,
        "validity": validity(rows),
        "train_objective": train_loss,
        "excluded_lines": excluded,
        "baseline_substitutions": {
            str(r["line"]): r["borrowed_baseline"] for r in rows if r["borrowed_baseline"]
        },
        "rows": {
            str(r["line"]): {
                k: r[k]
                for k in ("kind", "family", "removed", "finetuned", "generation", "source", "censored")
            }
            | {"pred_delta_loss": round(float(p), 4), "delta_loss": round(r["delta_loss"], 4)}
            for r, p in zip(rows, pred, strict=True)
        },
    }
    if verbose:
        print(json.dumps({"constants": result["constants"], "errors": report}, indent=1))
        print(f"{len(rows)} rows, {len(excluded)} excluded, {time.perf_counter() - t0:.0f} s")
    if out is not None and not quick:
        out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="short fit, writes nothing")
    args = ap.parse_args()
    compute(quick=args.quick)


if __name__ == "__main__":
    main()
