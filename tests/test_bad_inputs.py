"""Nothing wrong ever looks right (issue 18): a table of bad inputs, each of which must end
in exit 2 and one line on stderr naming the field or file (never a traceback, never exit 0).

Every case runs in-process through :func:`hwgrad.cli.main`. Cases that fail before any
compilation (almost all of them) are in the default suite; the ones that need the model
compiled are marked ``slow``.
"""

from __future__ import annotations

import dataclasses
import json
import textwrap

import pytest

import hwgrad as hg
from hwgrad import cli

EVAL = ["eval", "--model", "llama-3.1-8b", "--hardware", "h100-sxm", "--chips", "1"]
EVAL70 = ["eval", "--model", "llama-3.1-70b", "--hardware", "h100-sxm"]

# (id, argv after "hwgrad", a text the one-line message must contain)
FLAG_CASES = [
    ("chips-fraction", ["eval", "--chips", "8.7"], "--chips"),
    ("chips-inf", ["eval", "--chips", "inf"], "--chips"),
    ("chips-nan", ["eval", "--chips", "nan"], "--chips"),
    ("chips-negative", ["eval", "--chips", "-1"], "--chips"),
    ("chips-zero", ["eval", "--chips", "0"], "--chips"),
    ("chips-empty", ["eval", "--chips", ""], "--chips"),
    ("chips-text", ["eval", "--chips", "eight"], "--chips"),
    ("chips-huge", ["eval", "--chips", "1e30"], "--chips"),
    ("tp-fraction", ["eval", "--tp", "2.5"], "--tp"),
    ("tp-inf", ["eval", "--tp", "inf"], "--tp"),
    ("tp-zero", ["eval", "--tp", "0"], "--tp"),
    ("pp-not-dividing-layers", [*EVAL70, "--tp", "8", "--pp", "3", "--chips", "24"], "pp = 3"),
    ("pp-more-than-layers", [*EVAL, "--pp", "64", "--tp", "1", "--chips", "64"], "pp"),
    ("batch-zero", [*EVAL, "--batch", "0"], "--batch"),
    ("batch-negative", [*EVAL, "--batch", "-4"], "--batch"),
    ("batch-huge", [*EVAL, "--batch", "1e30"], "--batch"),
    ("batch-above-2^24", [*EVAL, "--batch", "100000000"], "2^24"),
    ("batch-fraction", [*EVAL, "--batch", "2.5"], "--batch"),
    ("batch-text", [*EVAL, "--batch", "abc"], "--batch"),
    ("prompt-negative", [*EVAL, "--prompt-len", "-1"], "--prompt-len"),
    ("prompt-huge", [*EVAL, "--prompt-len", "99999999999"], "prompt_len"),
    ("output-zero", [*EVAL, "--output-len", "0"], "--output-len"),
    ("ep-not-dividing-tp", [*EVAL70, "--tp", "8", "--ep", "3"], "ep"),
    ("ep-dense-model", [*EVAL70, "--tp", "8", "--ep", "2"], "no experts"),
    ("dp-zero", [*EVAL, "--dp", "0"], "--dp"),
    ("microbatches-above-batch", [*EVAL, "--batch", "4", "--microbatches", "8"], "microbatches"),
    ("tp-not-dividing-heads", [*EVAL70, "--tp", "3", "--chips", "3"], "tp must divide"),
    ("chips-not-tp-pp-dp", [*EVAL70, "--tp", "16", "--chips", "8"], "tp x pp x dp"),
    ("chips-7-default-tp", [*EVAL70, "--chips", "7"], "tp"),
    ("chips-tp-pp-mismatch", [*EVAL70, "--chips", "8", "--tp", "8", "--pp", "2"], "tp x pp x dp"),
    ("chips-not-divisible-by-dp", [*EVAL70, "--chips", "8", "--dp", "3"], "divisible"),
    ("sparsity-vs-2:4", [*EVAL, "--sparsity", "0.3", "--sparsity-pattern", "2:4"], "2:4"),
    ("sparsity-one", [*EVAL, "--sparsity", "1.0"], "--sparsity"),
    ("sparsity-negative", [*EVAL, "--sparsity", "-0.1"], "--sparsity"),
    ("sparsity-nan", [*EVAL, "--sparsity", "nan"], "--sparsity"),
    ("sparsity-dense-pattern", [*EVAL, "--sparsity", "0.3", "--sparsity-pattern", "dense"], "dense"),
    ("sparsity-pattern-unknown", [*EVAL, "--sparsity-pattern", "3:4"], "--sparsity-pattern"),
    ("kv-dtype-empty", [*EVAL, "--kv-dtype", ""], "kv_dtype"),
    ("weight-dtype-unknown", [*EVAL, "--weight-dtype", "fp7"], "weight_dtype"),
    ("weight-dtype-empty", [*EVAL, "--weight-dtype", ""], "weight_dtype"),
    ("act-dtype-unknown", [*EVAL, "--act-dtype", "xyz"], "act_dtype"),
    ("model-unknown", ["eval", "--model", "nosuch-model"], "nosuch-model"),
    ("hardware-unknown", ["eval", "--hardware", "nosuch-chip"], "nosuch-chip"),
    ("design-unknown", ["eval", "--design", "nosuch"], "--design"),
    ("design-and-hardware", ["eval", "--design", "hbm4", "--hardware", "h100-sxm"], "one of them"),
    ("chip-price-negative", [*EVAL, "--chip-price-usd", "-5"], "--chip-price-usd"),
    ("chip-price-zero", [*EVAL, "--chip-price-usd", "0"], "--chip-price-usd"),
    ("chip-price-nan", [*EVAL, "--chip-price-usd", "nan"], "--chip-price-usd"),
    ("chip-price-inf", [*EVAL, "--chip-price-usd", "inf"], "--chip-price-usd"),
    ("unknown-flag", [*EVAL, "--turbo"], "--turbo"),
    ("no-command", [], "command"),
    ("unknown-command", ["evaluate"], "evaluate"),
    ("config-missing", ["eval", "--config", "/nonexistent/design.toml"], "/nonexistent/design.toml"),
    ("params-missing", [*EVAL, "--params", "/nonexistent/eff.toml"], "/nonexistent/eff.toml"),
    ("model-config-missing", ["eval", "--model-config", "/nonexistent/config.json"], "/nonexistent"),
    ("sensitivity-unknown-knob", ["sensitivity", *EVAL[1:], "--knob", "system.chip.nosuch"], "nosuch"),
    ("sensitivity-top-zero", ["sensitivity", *EVAL[1:], "--top", "0"], "--top"),
    ("sweep-no-config", ["sweep"], "--config"),
    ("sweep-config-missing", ["sweep", "--config", "/nonexistent/s.toml"], "/nonexistent/s.toml"),
    ("codesign-steps-zero", ["codesign", "--steps", "0"], "--steps"),
    ("codesign-config-missing", ["codesign", "--config", "/nonexistent/study.toml"], "/nonexistent"),
]

# design files for `hwgrad eval --config` (TOML text, needle)
H100 = '[system]\nhardware = "h100-sxm"\nchips = 1\n[model]\npreset = "llama-3.1-8b"\n[workload]\ntp = 1\n'
TOML_CASES = [
    ("system-not-a-table", "system = 5\n", "system = 5"),
    ("chips-fraction", '[system]\nhardware = "h100-sxm"\nchips = 8.7\n', "chips = 8.7"),
    ("chips-inf", '[system]\nhardware = "h100-sxm"\nchips = inf\n', "chips = inf"),
    ("chips-text", '[system]\nhardware = "h100-sxm"\nchips = "8"\n', "chips = '8'"),
    ("chips-zero", '[system]\nhardware = "h100-sxm"\nchips = 0\n', "chips = 0"),
    ("hardware-number", "[system]\nhardware = 5\n", "hardware = 5"),
    ("hardware-unknown", '[system]\nhardware = "nosuch"\n', "nosuch"),
    ("system-unknown-field", '[system]\nhardware = "h100-sxm"\ngpus = 8\n', "gpus"),
    ("tdp-negative", H100 + "[chip]\ntdp_w = -5.0\n", "tdp_w = -5"),
    ("price-negative", H100 + "[chip]\nprice_usd = -1.0\n", "price_usd = -1"),
    ("sram-negative", H100 + "[chip]\nsram_bytes = -1.0\n", "sram_bytes"),
    ("peak-flops-nan", H100 + "[chip]\npeak_flops_bf16 = nan\n", "peak_flops_bf16"),
    ("peak-flops-text", H100 + '[chip]\npeak_flops_bf16 = "fast"\n', "peak_flops_bf16"),
    ("chip-unknown-field", H100 + "[chip]\nflops = 1.0\n", "flops"),
    ("tiers-numbers", H100 + "[chip]\ntiers = [1, 2]\n", "tier"),
    ("tiers-empty", H100 + "[chip]\ntiers = []\n", "tiers"),
    ("tiers-not-list", H100 + "[chip]\ntiers = 5\n", "tiers"),
    ("tier-technology-number", H100 + "[[chip.tiers]]\ntechnology = 5\n", "technology = 5"),
    ("tier-technology-unknown", H100 + '[[chip.tiers]]\ntechnology = "nosuch"\n', "nosuch"),
    (
        "tier-capacity-negative",
        H100 + '[[chip.tiers]]\ntechnology = "hbm3"\ncapacity_bytes = -1.0\n',
        "capacity_bytes = -1",
    ),
    (
        "tier-bandwidth-zero",
        H100 + '[[chip.tiers]]\ntechnology = "hbm3"\nbandwidth_bytes_per_s = 0.0\n',
        "bandwidth_bytes_per_s = 0",
    ),
    (
        "tier-bandwidth-huge",
        H100 + '[[chip.tiers]]\ntechnology = "hbm3"\nbandwidth_bytes_per_s = 1e40\n',
        "bandwidth_bytes_per_s",
    ),
    (
        "tier-energy-nan",
        H100 + '[[chip.tiers]]\ntechnology = "hbm3"\nenergy_j_per_byte = nan\n',
        "energy_j_per_byte",
    ),
    ("tier-nmc-ops-text", H100 + '[[chip.tiers]]\ntechnology = "hbm3"\nnmc_ops = "gemv"\n', "nmc_ops"),
    (
        "tier-nmc-ops-unknown",
        H100 + '[[chip.tiers]]\ntechnology = "hbm3"\nnmc_ops = ["fft"]\nnmc_flops = 1e12\n',
        "nmc_ops",
    ),
    ("chip-without-preset", "[chip]\ntdp_w = 500.0\n", "peak_flops_bf16"),
    (
        "custom-chip-flops-text",
        '[chip]\npeak_flops_bf16 = "x"\n[[chip.tiers]]\ntechnology = "hbm3"\n',
        "peak_flops_bf16",
    ),
    ("network-hop-negative", H100 + "[network]\nhop_latency_s = -1.0\n", "hop_latency_s = -1"),
    ("network-topology-number", H100 + "[network]\ntopology = 5\n", "topology = 5"),
    ("network-topology-unknown", H100 + '[network]\ntopology = "mesh"\n', "mesh"),
    ("network-energy-nan", H100 + "[network]\nenergy_j_per_byte = nan\n", "network.energy_j_per_byte"),
    ("network-torus-dims-zero", H100 + '[network]\ntopology = "torus"\ntorus_dims = 0\n', "torus_dims"),
    ("network-radix-fraction", H100 + "[network]\nswitch_radix = 2.5\n", "switch_radix"),
    ("network-bandwidth-inf", H100 + "[network]\nlink_bandwidth_bytes_per_s = inf\n", "link_bandwidth"),
    ("network-not-table", '[system]\nhardware = "h100-sxm"\n' + "network = 3\n", "network"),
    ("model-preset-number", "[model]\npreset = 5\n", "preset = 5"),
    ("model-preset-unknown", '[model]\npreset = "nosuch"\n', "nosuch"),
    (
        "model-layers-zero",
        H100.replace('preset = "llama-3.1-8b"', 'preset = "llama-3.1-8b"\nn_layers = 0'),
        "n_layers = 0",
    ),
    (
        "model-heads-fraction",
        H100.replace('preset = "llama-3.1-8b"', 'preset = "llama-3.1-8b"\nn_heads = 2.5'),
        "n_heads",
    ),
    (
        "model-attention-unknown",
        H100.replace('preset = "llama-3.1-8b"', 'preset = "llama-3.1-8b"\nattention = "x"'),
        "attention",
    ),
    (
        "model-kv-heads-not-dividing",
        H100.replace('preset = "llama-3.1-8b"', 'preset = "llama-3.1-8b"\nn_kv_heads = 7'),
        "n_kv_heads",
    ),
    ("model-not-table", 'model = "llama"\n', "model"),
    ("model-missing-fields", "[model]\nn_layers = 32\n", "missing field"),
    ("workload-batch-text", H100 + 'batch = "32"\n', "batch = '32'"),
    ("workload-batch-huge", H100 + "batch = 1e30\n", "batch"),
    ("workload-batch-inf", H100 + "batch = inf\n", "batch = inf"),
    ("workload-batch-nan", H100 + "batch = nan\n", "batch is NaN"),
    ("workload-batch-list", H100 + "batch = [1, 2]\n", "batch"),
    ("workload-batch-bool", H100 + "batch = true\n", "batch"),
    ("workload-tp-fraction", H100.replace("tp = 1", "tp = 2.5"), "tp = 2.5"),
    ("workload-tp-inf", H100.replace("tp = 1", "tp = inf"), "tp = inf"),
    ("workload-kv-block-zero", H100 + "kv_block_tokens = 0\n", "kv_block_tokens = 0"),
    ("workload-corpus-negative", H100 + "corpus_bytes = -1.0\n", "corpus_bytes = -1"),
    (
        "workload-pp-not-dividing",
        H100.replace("chips = 1", "chips = 3").replace("tp = 1", "tp = 1\npp = 3"),
        "pp = 3",
    ),
    ("workload-unknown-field", H100 + "users = 5\n", "users"),
    ("workload-prompt-negative", H100 + "prompt_len = -5\n", "prompt_len = -5"),
    ("compression-dtype-number", H100 + "[compression]\nweight_dtype = 5\n", "weight_dtype = 5"),
    ("compression-dtype-unknown", H100 + '[compression]\nweight_dtype = "fp7"\n', "fp7"),
    ("compression-bits-low", H100 + "[compression]\nweight_bits = 0.5\n", "weight_bits = 0.5"),
    ("compression-bits-high", H100 + "[compression]\nweight_bits = 64.0\n", "weight_bits = 64"),
    ("compression-2:4-value", H100 + '[compression]\nsparsity = 0.3\npattern = "2:4"\n', "2:4"),
    ("compression-pattern-number", H100 + "[compression]\npattern = 5\n", "pattern = 5"),
    ("compression-sparsity-dense", H100 + "[compression]\nsparsity = 0.3\n", "dense"),
    (
        "compression-overhead-negative",
        H100 + "[compression]\nweight_overhead_bits = -1.0\n",
        "weight_overhead_bits",
    ),
    ("economics-electricity-negative", H100 + "[economics]\nelectricity_usd_per_kwh = -0.1\n", "electricity"),
    ("economics-lifetime-zero", H100 + "[economics]\nlifetime_years = 0.0\n", "lifetime_years = 0"),
    ("economics-pue-below-one", H100 + "[economics]\npue = 0.5\n", "pue = 0.5"),
    ("economics-utilization-high", H100 + "[economics]\nutilization = 1.5\n", "utilization = 1.5"),
    ("economics-grid-nan", H100 + "[economics]\ngrid_gco2e_per_kwh = nan\n", "grid_gco2e_per_kwh"),
    ("economics-not-table", H100 + "economics = [1]\n", "economics"),
    ("economics-unknown-field", H100 + "[economics]\ninterest = 0.05\n", "interest"),
    ("efficiency-unknown-field", H100 + "[efficiency]\nnosuch = 1.0\n", "nosuch"),
    ("efficiency-text", H100 + '[efficiency]\n{first} = "x"\n', "{first}"),
    ("efficiency-fraction-zero", H100 + "[efficiency]\n{frac} = 0.0\n", "{frac} = 0"),
    ("efficiency-fraction-nan", H100 + "[efficiency]\n{frac} = nan\n", "{frac}"),
    ("efficiency-fraction-negative", H100 + "[efficiency]\n{frac} = -1.0\n", "{frac} = -1"),
    ("efficiency-fraction-above-one", H100 + "[efficiency]\n{frac} = 1.5\n", "{frac} = 1.5"),
    ("efficiency-other-negative", H100 + "[efficiency]\n{other} = -1.0\n", "{other} = -1"),
    ("unknown-table", "[turbo]\nx = 1\n", "turbo"),
    ("invalid-toml", "x = \n", "not valid TOML"),
    ("invalid-toml-duplicate", "[system]\nchips = 1\nchips = 2\n", "not valid TOML"),
    ("deep-arrays", "x = " + "[" * 5000 + "]" * 5000 + "\n", "nested too deeply"),
    ("deep-inline-tables", "x = " + "{a = " * 5000 + "1" + "}" * 5000 + "\n", "nested too deeply"),
    (
        "placement-short",
        H100 + "[placement]\nweights = [0.5]\nkv_cache = [1.0]\nactivations = [1.0]\n",
        "placement.weights",
    ),
    (
        "placement-text",
        H100 + '[placement]\nweights = "a"\nkv_cache = [1.0]\nactivations = [1.0]\n',
        "weights",
    ),
    (
        "placement-nan",
        H100 + "[placement]\nweights = [nan]\nkv_cache = [1.0]\nactivations = [1.0]\n",
        "weights",
    ),
    ("placement-missing", H100 + "[placement]\nweights = [1.0]\n", "placement"),
]


def _efficiency_fields():
    fields = [f.name for f in dataclasses.fields(hg.Efficiency) if not f.metadata.get("static")]
    frac = next(f for f in fields if f.endswith("_efficiency"))
    other = next(
        f for f in fields if not f.endswith("_efficiency") and "fraction" not in f and "overlap" not in f
    )
    return dict(first=fields[0], frac=frac, other=other)


# Hugging Face config.json (text, needle)
HF_OK = dict(model_type="llama", hidden_size=4096, num_hidden_layers=32, num_attention_heads=32,
             num_key_value_heads=8, vocab_size=128256, intermediate_size=14336)  # fmt: skip
HF_CASES = [
    ("list", "[1, 2]", "JSON object"),
    ("number", "5", "JSON object"),
    ("invalid-json", "{", "not valid JSON"),
    ("empty", "", "not valid JSON"),
    ("layers-list", json.dumps({**HF_OK, "num_hidden_layers": [1]}), "num_hidden_layers"),
    ("layers-text", json.dumps({**HF_OK, "num_hidden_layers": "32"}), "num_hidden_layers"),
    ("missing-fields", json.dumps({"model_type": "llama"}), "hidden_size"),
    ("hidden-negative", json.dumps({**HF_OK, "hidden_size": -1}), "hidden_size"),
    (
        "layers-inf",
        json.dumps(HF_OK).replace('"num_hidden_layers": 32', '"num_hidden_layers": 1e400'),
        "n_layers",
    ),
    ("kv-heads-text", json.dumps({**HF_OK, "num_key_value_heads": "8"}), "num_key_value_heads"),
    (
        "kv-heads-nan",
        json.dumps(HF_OK).replace('"num_key_value_heads": 8', '"num_key_value_heads": NaN'),
        "n_kv_heads",
    ),
    ("model-type-list", json.dumps({**HF_OK, "model_type": ["llama"]}), "model_type"),
    ("model-type-unknown", json.dumps({**HF_OK, "model_type": "rwkv"}), "rwkv"),
    ("layer-types-number", json.dumps({**HF_OK, "sliding_window": 4096, "layer_types": 5}), "layer_types"),
    ("tie-embeddings-text", json.dumps({**HF_OK, "tie_word_embeddings": "yes"}), "tie_word_embeddings"),
    (
        "moe-experts-text",
        json.dumps({**HF_OK, "model_type": "mixtral", "num_local_experts": "8", "num_experts_per_tok": 2}),
        "num_local_experts",
    ),  # fmt: skip
    ("deep", "[" * 100000 + "]" * 100000, "config"),
]


def _main(capsys, argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _assert_one_line_error(code, out, err, needle):
    assert code == 2, f"exit {code}; stdout {out[:300]!r}; stderr {err[:500]!r}"
    assert "Traceback" not in err and "internal error" not in err, err
    assert err.count("\n") == 1 and err.endswith("\n"), err
    message = err.split("error:", 1)[-1].strip()
    assert message, err
    assert needle in err, f"{needle!r} not in {err!r}"


@pytest.mark.parametrize("argv, needle", [c[1:] for c in FLAG_CASES], ids=[c[0] for c in FLAG_CASES])
def test_bad_flags(capsys, argv, needle):
    _assert_one_line_error(*_main(capsys, argv), needle)


@pytest.mark.parametrize("text, needle", [c[1:] for c in TOML_CASES], ids=[c[0] for c in TOML_CASES])
def test_bad_design_files(capsys, tmp_path, text, needle):
    names = _efficiency_fields()
    text, needle = text.replace("{first}", names["first"]), needle.replace("{first}", names["first"])
    text, needle = text.replace("{frac}", names["frac"]), needle.replace("{frac}", names["frac"])
    text, needle = text.replace("{other}", names["other"]), needle.replace("{other}", names["other"])
    path = tmp_path / "design.toml"
    path.write_text(text)
    _assert_one_line_error(*_main(capsys, ["eval", "--config", str(path)]), needle)


def test_design_file_errors_name_the_file(capsys, tmp_path):
    for name, data in (("bad.toml", b"\xff\xfe[system]\n"), ("dir.toml", None)):
        path = tmp_path / name
        path.mkdir() if data is None else path.write_bytes(data)
        code, out, err = _main(capsys, ["eval", "--config", str(path)])
        _assert_one_line_error(code, out, err, str(path))


@pytest.mark.parametrize("text, needle", [c[1:] for c in HF_CASES], ids=[c[0] for c in HF_CASES])
def test_bad_hf_configs(capsys, tmp_path, text, needle):
    path = tmp_path / "config.json"
    path.write_text(text)
    argv = ["eval", "--model-config", str(path), "--hardware", "h100-sxm", "--chips", "1"]
    _assert_one_line_error(*_main(capsys, argv), needle)


def test_hf_config_not_utf8(capsys, tmp_path):
    path = tmp_path / "config.json"
    path.write_bytes(b'{"model_type": "\xff"}')
    _assert_one_line_error(*_main(capsys, ["eval", "--model-config", str(path)]), str(path))


# ----------------------------------------------------------------------------- sweep files

SWEEP = """
[design]
model = "llama-3.1-70b"
hardware = "h100-sxm"
chips = 8
{design}

[sweep]
{sweep}

{axes}
"""
AXIS_BATCH = '[[axis]]\npath = "workload.batch"\nvalues = [1, 8]\n'
SWEEP_CASES = [
    ("batch-values-bad", "", "", '[[axis]]\npath = "workload.batch"\nvalues = [1, 0, -4]\n', "batch = -4"),
    ("tp-values-bad", "", "", '[[axis]]\npath = "workload.tp"\nvalues = [8, 3]\n', "workload.tp = 3"),
    (
        "tp-random-bad",
        "",
        'mode = "random"\npoints = 12',
        '[[axis]]\npath = "workload.tp"\nlow = 1\nhigh = 8\ninteger = true\n',
        "workload.tp",
    ),
    (
        "bandwidth-negative",
        "",
        "",
        '[[axis]]\npath = "system.chip.tiers.0.bandwidth_bytes_per_s"\nlow = -1e12\nhigh = 1e12\nnum = 3\n',
        "bandwidth_bytes_per_s = -1e+12",
    ),
    (
        "batch-non-whole",
        "",
        "",
        '[[axis]]\npath = "workload.batch"\nlow = 1\nhigh = 64\nnum = 5\n',
        "integer = true",
    ),
    ("batch-huge", "", "", '[[axis]]\npath = "workload.batch"\nvalues = [1e30]\n', "batch"),
    ("pue-low", "", "", '[[axis]]\npath = "economics.pue"\nvalues = [0.5]\n', "pue = 0.5"),
    ("sparsity-dense", "", "", '[[axis]]\npath = "compression.sparsity"\nvalues = [0.3]\n', "dense"),
    (
        "bits-high",
        "",
        "",
        '[[axis]]\npath = "compression.weight_bits"\nvalues = [8, 64]\n',
        "weight_bits = 64",
    ),
    ("path-unknown", "", "", '[[axis]]\npath = "workload.bach"\nvalues = [1]\n', "workload.bach"),
    ("path-static", "", "", '[[axis]]\npath = "compression.pattern"\nvalues = [1]\n', "static"),
    ("axis-number", "", "", "axis = 5\n", "axis"),
    ("axis-list-of-numbers", "", "", "axis = [1, 2]\n", "axis"),
    ("axis-values-text", "", "", '[[axis]]\npath = "workload.batch"\nvalues = ["a"]\n', "values"),
    ("axis-low-text", "", "", '[[axis]]\npath = "workload.batch"\nlow = "1"\nhigh = 2\nnum = 2\n', "low"),
    ("axis-high-nan", "", "", '[[axis]]\npath = "workload.batch"\nlow = 1\nhigh = nan\nnum = 2\n', "finite"),
    ("axis-num-fraction", "", "", '[[axis]]\npath = "workload.batch"\nlow = 1\nhigh = 2\nnum = 1.5\n', "num"),
    ("axis-num-huge", "", "", '[[axis]]\npath = "workload.batch"\nlow = 1\nhigh = 2\nnum = 1e12\n', "num"),
    (
        "axis-integer-text",
        "",
        "",
        '[[axis]]\npath = "workload.batch"\nlow = 1\nhigh = 2\nnum = 2\ninteger = "yes"\n',
        "integer",
    ),
    (
        "axis-scale-unknown",
        "",
        "",
        '[[axis]]\npath = "workload.batch"\nlow = 1\nhigh = 2\nnum = 2\nscale = "ln"\n',
        "scale",
    ),
    ("axis-unknown-field", "", "", '[[axis]]\npath = "workload.batch"\nvalue = [1]\n', "value"),
    ("axis-twice", "", "", AXIS_BATCH + AXIS_BATCH, "twice"),
    ("no-axes", "", "", "", "[[axis]]"),
    ("points-negative", "", 'mode = "random"\npoints = -1', AXIS_BATCH, "points"),
    ("mode-unknown", "", 'mode = "sobol"', AXIS_BATCH, "sobol"),
    ("chunk-size-zero", "", "chunk_size = 0", AXIS_BATCH, "chunk_size"),
    ("metrics-text", "", 'metrics = "tpot_s"', AXIS_BATCH, "metrics"),
    ("metrics-unknown", "", 'metrics = ["tpot"]', AXIS_BATCH, "tpot"),
    ("out-escapes", "", 'out = "../escape.csv"', AXIS_BATCH, "outside the config's directory"),
    ("out-absolute", "", 'out = "/tmp/hwgrad-absolute.csv"', AXIS_BATCH, "outside the config's directory"),
    ("out-number", "", "out = 5", AXIS_BATCH, "out = 5"),
    ("out-format", "", 'out = "x.txt"', AXIS_BATCH, "x.txt"),
    ("roofline-unknown", "", 'roofline = "x"', AXIS_BATCH, "roofline"),
    ("pareto-not-table", "", "pareto = 5", AXIS_BATCH, "pareto"),
    ("pareto-empty", "", "[sweep.pareto]\nminimize = []", AXIS_BATCH, "objectives"),
    ("design-chips-fraction", "", "", AXIS_BATCH, "chips"),  # design set below
    ("design-chips-inf", "", "", AXIS_BATCH, "chips"),
    ("design-batch-list", "batch = [1]", "", AXIS_BATCH, "batch"),
    ("design-unknown-field", "turbo = 1", "", AXIS_BATCH, "turbo"),
    ("feasible-only-number", "", "feasible_only = 1", AXIS_BATCH, "feasible_only"),
    ("sweep-not-table", "", None, AXIS_BATCH, "sweep"),
    ("design-not-table", None, "", AXIS_BATCH, "design"),
]


def _sweep_text(case_id, design, sweep, axes):
    text = SWEEP.format(design=design or "", sweep=sweep or "", axes=axes)
    if case_id == "design-chips-fraction":
        text = text.replace("chips = 8", "chips = 8.7")
    if case_id == "design-chips-inf":
        text = text.replace("chips = 8", "chips = inf")
    if sweep is None:
        text = text.replace("[sweep]\n", "sweep = 5\n")
    if design is None:
        text = text.replace("[design]", "design = 5\n[other]")
    return text


@pytest.mark.parametrize("case_id, design, sweep, axes, needle", SWEEP_CASES, ids=[c[0] for c in SWEEP_CASES])
def test_bad_sweep_files(capsys, tmp_path, case_id, design, sweep, axes, needle):
    cfg = tmp_path / "sub" / "sweep.toml"
    cfg.parent.mkdir()
    cfg.write_text(_sweep_text(case_id, design, sweep, axes))
    argv = ["sweep", "--config", str(cfg), "--no-progress"]
    if "out" not in (sweep or ""):
        argv += ["--out", str(tmp_path / "out.csv")]
    _assert_one_line_error(*_main(capsys, argv), needle)
    assert not (tmp_path / "out.csv").exists()


def test_out_paths_that_cannot_be_written(capsys, tmp_path):
    cfg = tmp_path / "sweep.toml"
    cfg.write_text(SWEEP.format(design="", sweep="", axes=AXIS_BATCH))
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    for out, needle in ((blocker / "x.csv", "file"), (tmp_path / "x.txt", "x.txt")):
        argv = ["sweep", "--config", str(cfg), "--no-progress", "--out", str(out)]
        _assert_one_line_error(*_main(capsys, argv), needle)
    for out in (blocker, blocker / "sub"):  # co-design output directory shadowed by a file
        _assert_one_line_error(*_main(capsys, ["codesign", "--out", str(out)]), "is a file")


def test_force_replaces_only_files_hwgrad_wrote(capsys, tmp_path):
    cfg = tmp_path / "sweep.toml"
    cfg.write_text(SWEEP.format(design="", sweep="", axes=AXIS_BATCH))
    mine = tmp_path / "precious.csv"
    mine.write_text("my own data\n")
    argv = ["sweep", "--config", str(cfg), "--no-progress", "--out", str(mine), "--force"]
    _assert_one_line_error(*_main(capsys, argv), "did not write it")
    assert mine.read_text() == "my own data\n"


# ----------------------------------------------------------------------------- the API


def _api_ok():
    return dict(
        system=hg.presets.system("h100-sxm", 8),
        model=hg.presets.model("llama-3.1-70b"),
        workload=hg.Workload(batch=8.0, tp=8.0),
        compression=hg.compression("fp8"),
        efficiency=hg.Efficiency.speed_of_light(),
        economics=hg.presets.default_economics(),
    )


def _with(root, **changes):
    def change(d):
        d = dict(d)
        d[root] = hg.replace(d[root], **changes)
        return d

    return change


def _chip(**changes):
    def change(d):
        d = dict(d)
        d["system"] = hg.replace(d["system"], chip=hg.replace(d["system"].chip, **changes))
        return d

    return change


API_CASES = [
    ("batch-text", _with("workload", batch="32"), "workload.batch = '32'"),
    ("batch-bool", _with("workload", batch=True), "workload.batch"),
    ("batch-none", _with("workload", batch=None), "workload.batch"),
    ("batch-huge", _with("workload", batch=1e30), "workload.batch"),
    ("batch-list", _with("workload", batch=[1.0, 2.0]), "single number"),
    ("tp-fraction", _with("workload", tp=2.5), "workload.tp = 2.5"),
    ("tp-inf", _with("workload", tp=float("inf")), "workload.tp = inf"),
    ("kv-block-zero", _with("workload", kv_block_tokens=0.0), "kv_block_tokens = 0"),
    ("corpus-negative", _with("workload", corpus_bytes=-1.0), "corpus_bytes = -1"),
    (
        "pp-3-layers-80",
        lambda d: {**_with("workload", pp=3.0)(d), "system": hg.replace(d["system"], n_chips=24.0)},
        "pp = 3",
    ),
    ("efficiency-zero", _with("efficiency", **{_efficiency_fields()["frac"]: 0.0}), "must lie in (0, 1]"),
    ("efficiency-nan", _with("efficiency", **{_efficiency_fields()["frac"]: float("nan")}), "efficiency."),
    (
        "efficiency-negative-overhead",
        _with("efficiency", **{_efficiency_fields()["other"]: -1.0}),
        "efficiency.",
    ),
    ("kv-group-reuse-above-1", _with("efficiency", kv_group_reuse=1.5), "efficiency.kv_group_reuse = 1.5"),
    ("kv-on-demand-above-1", _with("efficiency", kv_on_demand=2.0), "efficiency.kv_on_demand = 2"),
    ("lifetime-zero", _with("economics", lifetime_years=0.0), "lifetime_years = 0"),
    ("electricity-negative", _with("economics", electricity_usd_per_kwh=-0.1), "electricity_usd_per_kwh"),
    ("utilization-zero", _with("economics", utilization=0.0), "utilization = 0"),
    ("chip-price-negative", _chip(price_usd=-1.0), "price_usd = -1"),
    ("tdp-negative", _chip(tdp_w=-700.0), "tdp_w = -700"),
    ("die-area-zero", _chip(die_area_mm2=0.0), "die_area_mm2 = 0"),
    ("sram-nan", _chip(sram_bytes=float("nan")), "sram_bytes is NaN"),
    (
        "network-energy-nan",
        lambda d: {
            **d,
            "system": hg.replace(
                d["system"], network=hg.replace(d["system"].network, energy_j_per_byte=float("nan"))
            ),
        },
        "network.energy_j_per_byte is NaN",
    ),  # fmt: skip
    ("sparsity-2:4-value", _with("compression", sparsity=0.3, pattern="2:4"), "2:4 sparsity is 0.5"),
    ("sparsity-dense", _with("compression", sparsity=0.3), "pattern dense"),
    ("compression-wrong-type", lambda d: {**d, "compression": "fp8"}, "expected a hwgrad.Compression"),
    ("economics-wrong-type", lambda d: {**d, "economics": {"pue": 1.1}}, "expected a hwgrad.Economics"),
    (
        "tier-capacity-huge",
        _chip(tiers=(hg.replace(hg.presets.chip("h100-sxm").tiers[0], capacity_bytes=1e40),)),
        "capacity_bytes",
    ),
    (
        "tier-bandwidth-tiny",
        _chip(tiers=(hg.replace(hg.presets.chip("h100-sxm").tiers[0], bandwidth_bytes_per_s=1e-45),)),
        "bandwidth",
    ),  # fmt: skip
]


@pytest.mark.parametrize("change, needle", [c[1:] for c in API_CASES], ids=[c[0] for c in API_CASES])
def test_bad_api_inputs_raise_value_error(change, needle):
    with pytest.raises(ValueError) as exc:
        hg.validate(**change(_api_ok()))
    text = str(exc.value)
    assert needle in text and "\n" not in text, text


def test_the_api_and_the_cli_say_the_same(capsys, tmp_path):
    path = tmp_path / "d.toml"
    path.write_text(H100 + "kv_block_tokens = 0\n")
    code, _, err = _main(capsys, ["eval", "--config", str(path)])
    assert code == 2
    with pytest.raises(ValueError) as exc:
        d = _api_ok()
        hg.validate(**{**d, "workload": hg.replace(d["workload"], kv_block_tokens=0.0)})
    assert str(exc.value) in err


def test_count_of_bad_inputs():
    n = len(FLAG_CASES) + len(TOML_CASES) + len(HF_CASES) + len(SWEEP_CASES) + len(API_CASES) + 6
    assert n >= 150, n


# ----------------------------------------------------------------------------- legitimate edge cases


def test_an_empty_design_file_means_the_defaults(tmp_path):
    path = tmp_path / "empty.toml"
    path.write_text("")
    args = cli.build_parser(["eval"]).parse_args(["eval", "--config", str(path)])
    d = cli.design_from_args(args)
    assert d["model_name"] == cli.DEFAULTS["model"]


def test_prompt_length_zero_is_valid():
    d = _api_ok()
    hg.validate(**{**d, "workload": hg.replace(d["workload"], prompt_len=0.0)})


def test_internal_errors_are_one_line_with_a_pointer(capsys, monkeypatch):
    def boom(args):
        raise KeyError("oops")

    monkeypatch.setattr(cli, "cmd_presets", boom)
    code, _, err = _main(capsys, ["presets", "hardware"])
    assert code == 1 and err.count("\n") == 1 and "report it" in err and "--debug" in err
    with pytest.raises(KeyError):
        cli.main(["presets", "hardware", "--debug"])


def test_textwrap_is_used():  # keeps the import honest for sweep text helpers
    assert textwrap.dedent("  a") == "a"


def test_capacity_error_is_never_empty():
    rep = {
        "model": "m",
        "workload": {"batch": 1e30, "prompt_len": 1.0, "output_len": 1.0, "tp": 1.0},
        "compression": {"weight_bits": 16.0},
        "breakdown": {"capacity": [{"tier": 0, "capacity_bytes": 8e10, "used_bytes": float("nan"),
                                    "margin_bytes": None}]},
    }  # fmt: skip
    msg = cli._capacity_error({}, rep)
    assert "not a finite number" in msg and "lower batch" in msg
    rep["breakdown"]["capacity"][0].update(used_bytes=1.0, margin_bytes=1.0)
    assert cli._capacity_error({}, rep)  # a fallback line, never ""
