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


@pytest.mark.slow  # compiles several model structures (minutes on 2 shared cores)
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


@pytest.mark.slow  # compiles several model structures (minutes on 2 shared cores)
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


@pytest.mark.slow  # compiles several model structures (minutes on 2 shared cores)
def test_hbf(out):
    s = run("a07_hbf", out)
    rows = importlib.import_module("common").read_csv(out / "a07_hbf.csv")
    assert {r["design"] for r in rows} == {"HBM4 only", "HBM4 + HBF"}
    # a chosen point meets its own budget
    assert all(r["tpot_s"] <= r["tpot_budget_s"] * (1 + 1e-9) for r in rows if r["feasible"] == 1)
    ctx = s["context_fits_gb_per_chip"]
    assert ctx["HBM4 + HBF"] > 3 * ctx["HBM4 only"]  # 2 TB of flash vs 384 GB of HBM per chip
    assert 0 < s["kv_on_flash_lifetime_years"] < 100
    assert s["tpot_page_64k_over_4k"] > 1.0


@pytest.mark.slow  # compiles several model structures (minutes on 2 shared cores)
def test_pnm_pim(out):
    run("a08_pnm_pim", out)
    rows = importlib.import_module("common").read_csv(out / "a08_pnm_pim_table.csv")
    r = {(x["memory"], x["model"]): x for x in rows}
    assert (
        r[("PIM", "llama-3.1-70b")]["shards_per_chip_tp8"]
        > 100 * r[("PNM", "llama-3.1-70b")]["shards_per_chip_tp8"]
    )
    assert r[("PIM", "llama-3.1-70b")]["bandwidth_per_watt_vs_standard"] == pytest.approx(50**0.5)


@pytest.mark.slow  # compiles several model structures (minutes on 2 shared cores)
def test_stacking(out):
    s = run("a09_stacking", out)
    rows = importlib.import_module("common").read_csv(out / "a09_stacking_dvfs.csv")
    pts = {r["clock_fraction"]: r for r in rows if r["cap_w_per_stack"] == 10.0}
    # under a tight (10 W/stack) cap a lower clock at f^2 energy per FLOP is faster and leaner
    assert pts[0.25]["decode_tokens_per_s"] > pts[1.0]["decode_tokens_per_s"]
    assert pts[0.25]["energy_j_per_token"] < pts[1.0]["energy_j_per_token"]
    assert s["best_clock_fraction"]["10 W"] < 1.0
    assert set(s["best_clock_fraction"]) == {"10 W", "40 W"}


@pytest.mark.slow  # compiles several model structures (minutes on 2 shared cores)
def test_interconnect(out):
    s = run("a10_interconnect", out)
    e = s["elasticity"]
    assert e["batch 1 latency"] > 10 * abs(e["batch 1 bandwidth"])
    small = s["small_message_allreduce_s"]
    assert small["tree + in-network"] < small["ring"]
    # the low-latency fabric is never worse at its own best point
    assert all(v <= 1.0 + 1e-6 for v in s["iso_slo_usd_tree_over_switch"].values())


@pytest.mark.slow  # compiles several model structures (minutes on 2 shared cores)
def test_perf_metrics(out):
    run("a11_perf_metrics", out)
    rows = importlib.import_module("common").read_csv(out / "a11_perf_metrics.csv")
    h100 = [r for r in rows if r["design"] == "H100" and r["feasible"] == 1]
    assert h100 and all(r["tokens_per_usd_vs_h100"] == pytest.approx(1.0) for r in h100)


@pytest.mark.slow  # compiles several model structures (minutes on 2 shared cores)
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


@pytest.mark.slow  # three co-design problems (80 keep gates + bits + hardware): minutes
def test_structured_pruning_study(out):
    s = run("a14_structured_pruning", out)
    rows = {r["mode"]: r for r in s["rows"]}
    assert set(rows) == {"quant", "prune", "joint"}
    for r in rows.values():  # every mode ends on a buildable design within both budgets
        assert r["feasible"] and r["delta_loss_nats"] <= s["budget_nats"] * 1.001
        assert r["tpot_ms"] <= 30.0 * 1.001
    assert rows["quant"]["layers_kept"] == 80 and rows["prune"]["weight_bits"] == 16.0
    assert s["shortgpt_verdict"]


def test_iso_slo_picks_the_cheapest_point_within_budget():
    c = importlib.import_module("common")
    rows = [
        {"chips": 1, "batch": 1, "tpot_s": 0.008, "usd_per_million_tokens": 9.0, "ok": 1},
        {"chips": 1, "batch": 64, "tpot_s": 0.040, "usd_per_million_tokens": 1.0, "ok": 1},
        {"chips": 2, "batch": 64, "tpot_s": 0.012, "usd_per_million_tokens": 2.0, "ok": 1},
        {"chips": 1, "batch": 512, "tpot_s": 0.090, "usd_per_million_tokens": 0.1, "ok": 0},  # does not fit
    ]
    for r in rows:
        r.update(energy_j_per_token=1.0, gco2e_per_token=1.0)
    assert c.best_under(rows, 0.010)["batch"] == 1
    assert c.best_under(rows, 0.020)["chips"] == 2
    assert c.best_under(rows, 0.100)["usd_per_million_tokens"] == 1.0
    assert c.best_under(rows, 0.005) is None
    iso = c.iso_slo({"d": rows}, budgets=(0.005, 0.05))
    assert [r["feasible"] for r in iso] == [0, 1] and iso[1]["usd_per_million_tokens"] == 1.0


def test_sram_capacity(out):
    s = run("a15_sram_capacity", out)
    chips = s["chips_fp8"]
    # 70B at fp8 is ~70 GB of weights: hundreds of 230 MB Groq chips, one 180 GB B200
    assert 250 < chips["llama-3.1-70b"]["Groq LPU (230 MB SRAM)"] < 400
    assert chips["llama-3.1-70b"]["B200 (180 GB HBM3e)"] == 1
    assert chips["deepseek-v3"]["Cerebras WSE-3 (44 GB SRAM)"] > chips["deepseek-v3"]["H100 (80 GB HBM3)"]


def test_readme_matches_results_json():
    """experiments/README.md is exactly what run_all.py renders from experiments/results.json."""
    run_all = importlib.import_module("run_all")
    import json

    results = json.loads(run_all.RESULTS.read_text(encoding="utf-8"))
    assert set(results) <= set(run_all.SCRIPTS)
    assert run_all.README.read_text(encoding="utf-8") == run_all.render_readme(results) + "\n", (
        "experiments/README.md is stale: run `python experiments/run_all.py --readme`"
    )
    for name, res in results.items():
        for r in res["records"]:
            assert (
                r.get("verdict", "-") == "-"
                or r["verdict"] in ("reproduced", "input")
                or r["verdict"].startswith("differs, because")
            ), (name, r["verdict"])


@pytest.mark.slow  # compiles the disaggregated serving mode (minutes on 2 shared cores)
def test_decode_chip(out):
    run("a16_decode_chip", out)
    rows = importlib.import_module("common").read_csv(out / "a16_decode_chip.csv")
    assert any(r["feasible"] == 1 for r in rows)
    assert all(r["tpot_s"] <= r["tpot_budget_s"] * (1 + 1e-9) for r in rows if r["feasible"] == 1)
