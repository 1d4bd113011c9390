"""Every experiments/ script runs compute + plot with --quick, and its output says what it
should (one process: compiled evaluations are shared across scripts)."""

import importlib
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    return tmp_path_factory.mktemp("figures")


def run(name, out):
    mod = importlib.import_module(name)
    summary = mod.compute(out, quick=True)
    mod.plot(out)
    assert (out / f"{name}.png").stat().st_size > 10_000
    return summary


def test_memory_wall(out):
    s = run("a01_memory_wall", out)
    rec = {r["quantity"]: r["hwgrad"] for r in s["records"]}
    assert rec["memory bandwidth ratio tesla-k20->h100-sxm"] == pytest.approx(3350 / 208)
    assert rec["FP64 FLOPS ratio tesla-k20->h100-sxm (tensor)"] == pytest.approx(67 / 1.17)


def test_hbm_table(out):
    s = run("a02_hbm_generations", out)
    assert s["max_width_x_rate_error_GBps"] < 1.0


def test_memory_cost(out):
    s = run("a03_memory_cost", out)
    assert s["ratios_in_catalogue_notes"] == {
        "hbm_usd_per_gb": 1.35,
        "hbm_usd_per_gbps": 1.35,
        "ddr4_usd_per_gb": 0.54,
        "ddr4_usd_per_gbps": 0.45,
    }
    up = [r["hwgrad"] for r in s["records"] if "HBM x1.35" in r["quantity"]]
    assert all(1.0 < u < 1.35 for u in up)


def test_memory_tech(out):
    s = run("a04_memory_tech", out)
    hbm4 = next(r for r in s["records"] if r["quantity"].startswith("hbm4"))
    assert hbm4["hwgrad"] == pytest.approx(1638 / 40)


def test_trends(out):
    run("a05_trends_heatmap", out)
    rows = importlib.import_module("common").read_csv(out / "a05_trends_heatmap.csv")
    usd = {r["trend"]: r for r in rows if r["metric"] == "usd_per_m"}
    assert usd["diffusion"]["compute"] < -0.5  # diffusion is compute-bound
    assert usd["long context"]["capacity"] < 0  # more capacity -> bigger batch -> cheaper
    assert abs(usd["dense baseline"]["capacity"]) < 1e-6


def test_prefill_decode(out):
    s = run("a06_prefill_decode", out)
    assert s["decode_batch1"] < 2.0 < s["ridge_flop_per_byte"]["h100-sxm"] < s["prefill_max"]


def test_hbf(out):
    s = run("a07_hbf", out)
    chips = s["min_chips"]
    assert chips["HBM4 + HBF | deepseek-v3"] < chips["HBM4 only | deepseek-v3"]
    assert s["tpot_page_64k_over_4k"] > 1.0


def test_pnm_pim(out):
    run("a08_pnm_pim", out)
    rows = importlib.import_module("common").read_csv(out / "a08_pnm_pim.csv")
    r = {(x["memory"], x["model"]): x for x in rows}
    assert (
        r[("PIM", "llama-3.1-70b")]["shards_per_chip"] > 100 * r[("PNM", "llama-3.1-70b")]["shards_per_chip"]
    )


def test_stacking(out):
    run("a09_stacking", out)
    rows = importlib.import_module("common").read_csv(out / "a09_stacking.csv")
    hi = [r for r in rows if r["design"] == "base die" and r["batch"] == 256 and r["cap_w_per_stack"] == 5.0][
        0
    ]
    lo = [r for r in rows if r["design"] == "base die" and r["batch"] == 1 and r["cap_w_per_stack"] == 40.0][
        0
    ]
    assert hi["cap_binds"] == 1 and lo["cap_binds"] == 0


def test_interconnect(out):
    s = run("a10_interconnect", out)
    e = s["elasticity"]
    assert e["batch 1 latency"] > 10 * abs(e["batch 1 bandwidth"])
    small = s["small_message_allreduce_s"]
    assert small["tree + in-network"] < small["ring"]


def test_perf_metrics(out):
    run("a11_perf_metrics", out)
    rows = importlib.import_module("common").read_csv(out / "a11_perf_metrics.csv")
    assert rows[0]["tokens_per_usd_vs_h100"] == pytest.approx(1.0)
    assert all(r["fits"] == 1.0 for r in rows)


def test_mobile(out):
    run("a12_mobile", out)
    rows = importlib.import_module("common").read_csv(out / "a12_mobile.csv")
    for m in ("llama-3.1-8b", "llama-3b (illustrative)"):
        no, yes = (
            next(r for r in rows if r["model"] == m and r["pim"] == p and r["context"] == 512.0)
            for p in (0, 1)
        )
        assert yes["tpot_s"] < no["tpot_s"] and yes["energy_j_per_token"] < no["energy_j_per_token"]


@pytest.mark.slow
def test_codesign_front_and_convergence(out):
    s = run("a13_codesign", out)
    best = {r["quantity"]: r["hwgrad"] for r in s["records"]}
    # every method finds a feasible design, and all of them beat today's 8 x H100 fp8 start
    # (1.55 $/M tokens in the default study)
    for method in ("gradient", "cma-es", "random"):
        assert best[f"best $/M tokens, {method}"] < 1.55
