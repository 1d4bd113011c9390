"""Technology-based hardware variables: chips built from memory stacks, die area and links."""

from __future__ import annotations

import math

import jax.numpy as jnp
import pytest

import hwgrad as hg
import hwgrad.codesign as cd
from hwgrad.codesign.technology import dies_per_wafer


def _specs():
    return dict(
        system=hg.presets.system("h100-sxm", 8),
        model=hg.presets.model("llama-3.1-8b"),
        workload=hg.Workload(batch=8.0, prompt_len=256.0, output_len=64.0, tp=8.0),
        compression=hg.compression("fp8", "fp8"),
    )


def test_memory_technology_rows_from_the_table():
    m = cd.memory_technology("hbm3e")  # memory_tech.csv: 48 GB, 1254 GB/s, 3.9 pJ/bit; 15.1 $/GB
    assert (m.capacity_bytes, m.bandwidth_bytes_per_s, m.usd_per_gb) == (48e9, 1254e9, 15.1)
    assert m.power_w == pytest.approx(3.9e-12 * 8 * 1254e9)  # no power column: pJ/bit x bandwidth
    assert cd.memory_technology("hbf").power_w == 80.0
    with pytest.raises(ValueError, match="lpddr5x.*no capacity_per_device_GB; use one of"):
        cd.memory_technology("lpddr5x")
    with pytest.raises(ValueError, match="wafer_price_tsmc_n7"):
        cd.Technology(process="tsmc_n7")


def test_dies_per_wafer_golden():
    # pi 300^2 / (4 x 814) - pi 300 / sqrt(2 x 814) = 86.83 - 23.36
    assert float(dies_per_wafer(814.0)) == pytest.approx(63.48, abs=0.01)


def test_h100_rebuilt_from_hbm3e_stacks_is_coupled_and_priced():
    specs = _specs()
    tech = cd.Technology(memory="hbm3e")
    start, const = tech.calibrate(specs)
    # 3.35 TB/s needs 3350 / 1254 = 2.67 stacks (more than 80 GB / 48 GB = 1.67)
    assert start["memory_stacks"] == pytest.approx(3350 / 1254)
    assert start["links"] == pytest.approx(450 / 25)  # NVLink4: 25 GB/s per link, 450 per chip
    base = tech.apply({**specs, "technology": start}, const)["system"]
    assert float(base.chip.price_usd) == pytest.approx(30000.0, rel=1e-6)  # catalogue price
    assert float(base.chip.tiers[0].bandwidth_bytes_per_s) == pytest.approx(3.35e12, rel=1e-6)
    assert float(base.chip.tdp_w) == pytest.approx(700.0, rel=1e-6)  # memory W + logic W
    big = tech.apply({**specs, "technology": {**start, "memory_stacks": 8.0}}, const)["system"].chip
    t = big.tiers[0]
    assert float(t.capacity_bytes) == pytest.approx(384e9) and float(
        t.bandwidth_bytes_per_s
    ) == pytest.approx(10.032e12)
    # every stack brings its own ratio: 1254 GB/s per 48 GB = 26.1 /s, whatever the count
    assert float(t.bandwidth_bytes_per_s / t.capacity_bytes) == pytest.approx(26.125)
    # 5.33 more stacks draw 5.33 x 3.9 pJ/bit x 1254 GB/s more at full load
    assert float(big.tdp_w) == pytest.approx(
        700.0 + (8.0 - start["memory_stacks"]) * 3.9e-12 * 8 * 1254e9, rel=1e-5
    )
    extra = tech.markup * (8.0 - start["memory_stacks"]) * 48 * 15.1
    assert float(big.price_usd) == pytest.approx(30000.0 + extra, rel=1e-6)
    half = tech.apply({**specs, "technology": {**start, "logic_die_area_mm2": 407.0}}, const)["system"].chip
    assert float(half.peak_flops_bf16) == pytest.approx(0.5 * float(specs["system"].chip.peak_flops_bf16))
    assert math.isclose(const["logic_w_per_mm2"] * 814 + start["memory_stacks"] * 3.9e-12 * 8 * 1254e9, 700.0)


def _toy_metric(m, values):
    return {"tpot_s": 1.0 / values["system.chip.tiers.0.bandwidth_bytes_per_s"]}


def test_free_bandwidth_and_capacity_warn_with_the_fix():
    variables = [
        cd.Variable("system.chip.tiers.0.bandwidth_bytes_per_s", 1e12, 16e12),
        cd.Variable("system.chip.tiers.0.capacity_bytes", 24e9, 512e9),
    ]
    kw = dict(metric_fn=_toy_metric, model_metrics=False)
    with pytest.warns(UserWarning, match="tier0_bandwidth_per_capacity_per_s.*technology.memory_stacks"):
        cd.Problem(_specs(), variables, "tpot_s", **kw)
    coupled = [cd.Constraint("tier0_bandwidth_per_capacity_per_s", upper=34.0)]
    cd.Problem(_specs(), variables, "tpot_s", coupled, **kw)  # no warning (warnings are errors)
    with pytest.raises(ValueError, match="power_demand_over_tdp needs a technology"):
        cd.Problem(
            _specs(), variables[:1], "tpot_s", [cd.Constraint("power_demand_over_tdp", upper=1.0)], **kw
        )


def test_study_file_technology_table(tmp_path):
    f = tmp_path / "s.toml"
    f.write_text('[[variables]]\npath = "technology.memory_stacks"\nmin = 1\nmax = 8\n')
    with pytest.raises(ValueError, match=r"needs a \[technology\] table"):
        cd.load_study(f)
    f.write_text('[technology]\nmemroy = "hbm3e"\n')
    with pytest.raises(ValueError, match=r"\[technology\] \(line 1\): unknown field\(s\) \['memroy'\]"):
        cd.load_study(f)
    assert jnp.isfinite(dies_per_wafer(jnp.asarray(858.0)))


def test_study_stack_option(tmp_path):
    from hwgrad.codesign.study import _base_specs

    specs = _base_specs({"model": "llama-3.1-8b", "chips": 1, "stack": "ideal"}, "t")
    assert specs["efficiency"] == hg.presets.stack("ideal")
    f = tmp_path / "s.toml"
    f.write_text('[base]\nmodel = "llama-3.1-8b"\n')
    with pytest.raises(ValueError, match="unknown stack 'vlm'"):
        cd.load_study(f, stack="vlm")


def test_study_base_takes_every_named_format_and_the_stack_on_its_hardware():
    """The [base] table accepts what a design file's [compression] table does (one list,
    dtypes.NAMED_FIELDS), and a stack gets its kernel traits on the base hardware."""
    from hwgrad.codesign.study import _base_specs

    base = {"model": "llama-3.1-405b", "hardware": "h100-sxm", "chips": 8, "weight_dtype": "fp8",
            "kv_dtype": "fp8", "checkpoint": "meta-llama/Llama-3.1-405B-FP8"}  # fmt: skip
    comp = _base_specs(base, "t")["compression"]
    assert float(comp.weight_bits) == 8.0 and float(comp.attention_weight_bits) == 16.0
    own = {k: v for k, v in base.items() if k != "checkpoint"} | {"attention_dtype": "bf16"}
    comp = _base_specs(own, "t")["compression"]
    assert float(comp.attention_weight_bits) == 16.0 and float(comp.embedding_weight_bits) == 0.0
    with pytest.raises(ValueError, match=r"t: \[base\]\.embedding_dtype = 'fp7' is not a known format"):
        _base_specs({**base, "embedding_dtype": "fp7"}, "t")
    amd = _base_specs({"model": "llama-3-8b", "hardware": "mi300x", "chips": 1, "stack": "vllm"}, "t")
    assert float(amd["efficiency"].kv_group_reuse) == 0.0  # 2024 ROCm vLLM: per-query-head reads
    nv = _base_specs({"model": "llama-3-8b", "hardware": "h100-sxm", "chips": 1, "stack": "vllm"}, "t")
    assert float(nv["efficiency"].kv_group_reuse) == 1.0


@pytest.mark.slow
def test_structured_pruning_enters_delta_loss():
    from hwgrad import accuracy

    specs = _specs()
    specs["compression"] = hg.compression("fp8", "fp8")
    var = cd.Variable("compression.layers_kept_fraction", 0.5, 1.0, scale="linear")
    p = cd.Problem(specs, [var], "usd_per_million_tokens", [cd.Constraint("delta_ppl", upper=1.0)])
    assert p.structured
    m = p.metrics({var.name: jnp.asarray(0.75)})
    s, _ = p.specs_at({var.name: jnp.asarray(0.75)})
    st = accuracy.Structured.from_compression(
        s["model"], s["compression"], finetuned=0.0, generation="llama-2"
    )
    c = s["compression"]  # fp8 weights, KV and activations
    args = (c.weight_bits, c.kv_bits, c.act_bits, 0.0)
    want = accuracy.delta_loss(*args, params_b=p.params_b, structured=st, pattern="unstructured")
    assert float(m["delta_loss"]) == pytest.approx(float(want), rel=1e-5)
    assert float(m["delta_loss"]) > float(p.metrics({var.name: jnp.asarray(1.0)})["delta_loss"]) + 0.05
