"""The serving model against the continuous-batching rows of ``calibration.csv``.

Every ``batching == continuous`` row (a serving engine under a client that keeps ``batch``
requests in flight: InferenceMAX, NIM/AIPerf, dstack) is predicted two ways with the shipped
calibration (each row's stack family and fitted chip fractions, as `hwgrad.calibrate`
builds them):

* the **continuous mode** of the cost model (`hwgrad.cost.serve`, ``batching =
  "continuous"`` at concurrency ``C = batch``: what the calibration fits);
* the **request-rate model** (`hwgrad.evaluate_service`) run as a *closed loop*: the arrival
  rate that keeps ``C`` requests in the system, ``lambda = C / E2E(lambda)`` (Little's law over
  a request's life), solved by damped fixed-point iteration (`ITERATIONS` steps, geometric
  mean of the old and the new rate), then its mean TPOT and mean TTFT.

TPOT is compared with the row's value (mean TPOT / inter-token latency); TTFT with the mean
TTFT its notes give ("mean TTFT 70.4 ms", "TTFT 406.77 ms"), also with the admission queue a
closed-loop client builds when the model's engine holds fewer than ``C`` requests
(``service_ttft_queued``, `_admission_wait_s`). Prints the median and p90
absolute percentage error of each and writes the per-row table as JSON:

```
python experiments/service_calibration.py [--out out/service_calibration.json]
```

Poisson arrivals are an approximation of a closed-loop client (a new request arrives when
one finishes), so TTFT queueing is the part to read with care.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import hwgrad as hg
from hwgrad import cost
from hwgrad.calibrate.cases import prepare
from hwgrad.calibrate.parameters import load_calibration
from hwgrad.measurements import read_measurements
from hwgrad.specs import Options

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "hwgrad" / "presets" / "data" / "calibration.csv"
CALIBRATION = ROOT / "hwgrad" / "presets" / "data" / "calibration.toml"
#: fixed-point steps of the closed loop (the rate changes by < 0.1 % after 12 on these rows)
ITERATIONS = 16
_TTFT = re.compile(r"TTFT ([0-9.]+) ms")


def _predict(system, model, workload, compression, stack):
    """``(tpot_s, ttft_s)`` of the continuous mode and of the closed-loop request-rate model."""
    static = cost.evaluate(system, model, workload, compression, stack, None, Options())
    conc = workload.batch * workload.dp  # requests in flight over the whole system
    i_len, o_len = workload.prompt_len, workload.output_len

    def at(rate):
        svc = hg.Service(arrival_rate_rps=rate, input_tokens=i_len, output_tokens=o_len)
        return hg.evaluate_service(system, model, workload, compression, svc, hg.Engine(), stack)

    def step(_, rate):
        r = at(rate)
        return jnp.sqrt(rate * conc / r.e2e_mean_s)

    rate0 = conc / static.e2e_latency_s
    rate = jax.lax.fori_loop(0, ITERATIONS, step, rate0)
    r = at(rate)
    return jnp.stack([static.tpot_s, static.ttft_s, r.tpot_mean_s, r.ttft_mean_s, rate, r.concurrency])


def compute(data: Path = DATA) -> dict:
    rows = [r for r in read_measurements(data).rows if r.batching == "continuous"]
    with open(data, encoding="utf-8") as f:
        notes = {row["id"]: row.get("notes") or "" for row in csv.DictReader(f)}
    prep = prepare(rows)
    cal = load_calibration(CALIBRATION)
    groups: dict = {}
    for j, c in enumerate(prep.cases):
        system = hg.replace(c.system, chip=hg.replace(c.system.chip, **cal.chip_values(c.row.hardware)))
        spec = (system, c.model, c.workload, c.compression, cal.stack_for(c.family))
        groups.setdefault(jax.tree_util.tree_structure(spec), []).append((j, spec))
    fn = jax.jit(jax.vmap(_predict))
    out = np.zeros((len(prep.cases), 6))
    for members in groups.values():
        idx = [j for j, _ in members]
        stacked = jax.tree_util.tree_map(
            lambda *xs: jnp.stack([jnp.asarray(x, jnp.float32) for x in xs]), *[s for _, s in members]
        )
        out[idx] = np.asarray(fn(*stacked), dtype=float)
    table = []
    for c, (tp_c, tt_c, tp_s, tt_s, rate, conc) in zip(prep.cases, out, strict=True):
        m = _TTFT.search(notes.get(c.row.id, ""))
        table.append(
            dict(
                id=c.row.id, model=c.row.model, hardware=c.row.hardware, concurrency=c.row.batch,
                input_len=c.row.input_len, output_len=c.row.output_len,
                tpot_ms=c.row.value, ttft_ms=float(m.group(1)) if m else None,
                continuous_tpot_ms=tp_c * 1e3, continuous_ttft_ms=tt_c * 1e3,
                service_tpot_ms=tp_s * 1e3, service_ttft_ms=tt_s * 1e3,
                service_rate_rps=rate, service_concurrency_per_replica=conc, dp=float(c.workload.dp),
                service_ttft_queued_ms=(tt_s + _admission_wait_s(c, tp_s, conc)) * 1e3,
            )
        )  # fmt: skip
    return dict(rows=table, skipped=[(r.id, why) for r, why in prep.skipped], summary=summarise(table))


def _admission_wait_s(case, tpot_s: float, conc: float) -> float:
    """Wait before admission when the model's engine holds fewer than the client's ``C``
    requests (its capacity binds: KV cache, ``max_num_seqs`` or the step's token budget):
    the ``C - n`` others queue in the server (Little's law: ``(C - n) / served``, the served
    rate ``n / ((O - 1) TPOT)`` per replica). The open-loop model has no such queue (it
    reports the excess as a margin), a closed-loop client always has one."""
    c_rep = float(case.workload.batch)
    served = conc / max((float(case.workload.output_len) - 1.0) * tpot_s, 1e-12)
    return max(c_rep - conc, 0.0) / max(served, 1e-12)


def _ape(pred, meas):
    pred, meas = np.asarray(pred, float), np.asarray(meas, float)
    return np.abs(pred - meas) / meas * 100.0


def _within_capacity(r: dict) -> bool:
    """The model's engine holds the client's concurrency (>= 90 %): the open-loop steady state
    is the closed loop's. Beyond it a closed-loop client keeps all ``C`` requests in the
    engine (each step slower), the open-loop model evaluates the capacity edge."""
    return r["service_concurrency_per_replica"] >= 0.9 * r["concurrency"]


def summarise(table: list[dict]) -> dict:
    out = {}
    out.update(_summary(table, ""))
    out.update(_summary([r for r in table if _within_capacity(r)], "within_capacity_"))
    return out


def _summary(table: list[dict], prefix: str) -> dict:
    out = {}
    for name, key in (("tpot", "tpot_ms"), ("ttft", "ttft_ms")):
        rows = [r for r in table if r[key] is not None and np.isfinite(r[f"service_{name}_ms"])]
        meas = [r[key] for r in rows]
        modes = ("continuous", "service") + (("service_queued",) if name == "ttft" else ())
        for mode in modes:
            col = "service_ttft_queued_ms" if mode == "service_queued" else f"{mode}_{name}_ms"
            e = _ape([r[col] for r in rows], meas)
            out[f"{prefix}{mode}_{name}"] = dict(
                rows=len(rows), median_ape_pct=float(np.median(e)), p90_ape_pct=float(np.percentile(e, 90))
            )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("out/service_calibration.json"))
    args = ap.parse_args()
    from hwgrad.cli import enable_compile_cache

    enable_compile_cache()
    res = compute()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=1))
    n = len(res["rows"])
    print(f"{n} continuous-batching rows predicted, {len(res['skipped'])} skipped")
    saturated = sum(not _within_capacity(r) for r in res["rows"])
    print(f"{saturated} rows where the model's engine holds < 90 % of the client's concurrency (capacity binds)")
    for k, v in res["summary"].items():
        print(f"{k}: {v['rows']} rows, median APE {v['median_ape_pct']:.1f} %, p90 APE {v['p90_ape_pct']:.1f} %")


if __name__ == "__main__":
    main()
