"""Pareto fronts of co-design: monotone, dominance-filtered, on a toy and on the real model."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

import hwgrad as hg
import hwgrad.codesign as cd
from hwgrad.pareto import pareto_mask


def _specs(model="llama-3.1-8b", chips=8):
    return dict(
        system=hg.presets.system("h100-sxm", chips),
        model=hg.presets.model(model),
        workload=hg.Workload(batch=8.0, prompt_len=256.0, output_len=64.0, tp=float(chips)),
        compression=hg.compression("fp8", "fp8"),
    )


def _cheaper_when_slower(m, values):
    # cost 1/a falls as the "latency" a grows: the optimum at budget b is a = min(b, 20)
    a = values["workload.microbatches"]
    return {"tpot_s": a, "usd_per_million_tokens": 1.0 / a}


def test_pareto_mask_drops_dominated_duplicates_and_nonfinite():
    costs = np.array([[1.0, 3.0], [2.0, 2.0], [2.0, 2.0], [2.5, 2.0], [np.nan, 0.0], [3.0, 1.0]])
    assert pareto_mask(costs).tolist() == [True, True, False, False, False, True]


def test_toy_front_is_monotone_and_filtered():
    var = cd.Variable("workload.microbatches", 0.5, 20.0, integer=True)
    p = cd.Problem(
        _specs(),
        [var],
        "usd_per_million_tokens",
        [cd.Constraint("tpot_s", upper=4.0)],
        metric_fn=_cheaper_when_slower,
        model_metrics=False,
    )
    budgets = [8.0, 1.0, 2.5, 2.0, 30.0, 25.0]
    front = cd.pareto(p, "tpot_s", budgets, steps=50, warm_steps=50, lr=0.2, inner_steps=50)
    assert [r["budget"] for r in front] == budgets
    got = {r["budget"]: r for r in front}
    # integer a <= budget: a* = 8, 1, 2, 2, 20, 20
    for b, a in ((8.0, 8), (1.0, 1), (2.5, 2), (2.0, 2), (30.0, 20), (25.0, 20)):
        assert got[b]["feasible"] and got[b]["achieved"] == a, (b, got[b])
        assert got[b]["objective"] == pytest.approx(1.0 / a, rel=1e-5)
    loose_to_tight = sorted(front, key=lambda r: -r["budget"])
    obj = [r["objective"] for r in loose_to_tight]
    assert all(x <= y for x, y in zip(obj, obj[1:], strict=False))  # looser is never worse
    # the 2.5 budget repeats the 2.0 design and 30 repeats 25: one of each pair is on the front
    assert got[2.0]["on_front"] != got[2.5]["on_front"]
    assert got[25.0]["on_front"] != got[30.0]["on_front"]
    assert got[1.0]["on_front"] and got[8.0]["on_front"]


@pytest.mark.slow
def test_real_model_front_is_monotone():
    # llama-3.1-8b on one H100-like chip: HBM bandwidth (priced) and batch against a TPOT budget
    specs = _specs(chips=1)
    variables = [
        cd.Variable("system.chip.tiers.0.bandwidth_bytes_per_s", 1e12, 8e12),
        cd.Variable("workload.batch", 1, 64, integer=True),
    ]
    p = cd.Problem(
        specs,
        variables,
        "usd_per_million_tokens",
        [cd.Constraint("tpot_s", upper=0.01), cd.Constraint("capacity")],
        price_model=cd.PriceModel(),
    )
    budgets = [0.004, 0.01, 0.02]
    rows = cd.pareto_designs(p, "tpot_s", budgets, steps=50, warm_steps=50)
    front = [r for r, _ in rows]
    assert all(r["feasible"] for r in front)
    obj = [r["objective"] for r in front]
    assert all(x >= y for x, y in zip(obj, obj[1:], strict=False))
    for r, d in rows:
        assert r["achieved"] <= r["budget"] * (1 + p.feasibility_rtol)
        # the rounded design is re-evaluated exactly: its metrics reproduce the row
        assert float(d.metrics["tpot_s"]) == pytest.approx(r["achieved"])
        assert float(jnp.asarray(d.values["workload.batch"])) == round(float(d.values["workload.batch"]))
