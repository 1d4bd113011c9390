"""The command line: the stable JSON keys, readable output, and one-line errors (exit 2)."""

import json

import pytest

from hwgrad import cli, presets

JSON_KEYS = {
    "tpot_s",
    "ttft_s",
    "e2e_latency_s",
    "tokens_per_s",
    "energy_j_per_token",
    "usd_per_million_tokens",
    "gco2e_per_token",
    "fits",
    "breakdown",
}


def run(capsys, *argv):
    code = cli.main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_eval_json_has_the_stable_keys(capsys):
    code, out, err = run(
        capsys,
        "eval",
        "--model",
        "llama-3.1-70b",
        "--hardware",
        "h100-sxm",
        "--chips",
        "8",
        "--tp",
        "8",
        "--batch",
        "32",
        "--prompt-len",
        "2048",
        "--output-len",
        "512",
        "--weight-dtype",
        "fp8",
        "--kv-dtype",
        "fp8",
        "--json",
    )
    assert code == 0, err
    rep = json.loads(out)
    assert JSON_KEYS <= set(rep)
    assert rep["fits"] is True
    assert rep["tpot_s"] > 0 and rep["ttft_s"] > 0
    assert rep["e2e_latency_s"] == pytest.approx(rep["ttft_s"] + 512 * rep["tpot_s"], rel=1e-4)
    assert set(rep["breakdown"]["decode_step"]["component_time_s"]) == {
        "compute",
        "weights",
        "kv_cache",
        "activations",
        "communication",
        "overhead",
    }
    assert rep["bottleneck"] in rep["breakdown"]["decode_step"]["component_time_s"]


def test_eval_text_names_the_bottleneck(capsys):
    code, out, _ = run(capsys, "eval", "--model", "llama-3.1-8b", "--hardware", "h100-sxm", "--chips", "1")
    assert code == 0
    assert "time per output token" in out and "bound by" in out and "tier 0" in out


def test_unknown_price_is_said_not_hidden(capsys):
    code, out, _ = run(
        capsys,
        "eval",
        "--model",
        "llama-2-7b",
        "--hardware",
        "apple-m2-max",
        "--chips",
        "1",
        "--batch",
        "1",
        "--weight-dtype",
        "q4_0",
        "--json",
    )
    rep = json.loads(out)
    assert code == 0
    assert rep["usd_per_million_tokens"] is None
    assert any("capacity" in n for n in rep["notes"])


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["--model", "lama-3-70b"], "did you mean llama-3-70b"),
        (["--hardware", "h100"], "unknown hardware 'h100'"),
        (["--tp", "3", "--chips", "3"], "tp must divide n_heads = 64"),
        (["--chips", "8", "--tp", "4"], "tp x pp x dp"),
        (["--model", "llama-3.1-405b", "--chips", "4", "--batch", "64"], "raise tp/pp, lower bits"),
        (["--weight-dtype", "fp6"], "weight_dtype = 'fp6' is not a known format"),
        (["--ep", "2"], "the model has no experts"),
        (["--params", "/nonexistent.toml"], "cannot read"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(capsys, argv, needle):
    code, out, err = run(capsys, "eval", *argv)
    assert code == 2
    assert needle in err
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err


@pytest.mark.parametrize("value", ["nan", "-1", "0", "abc"])
def test_non_positive_or_nan_numbers_are_rejected(capsys, value):
    assert cli.main(["eval", "--batch", value]) == 2  # argparse's exit becomes a return code
    err = capsys.readouterr().err
    assert "--batch" in err and err.count("\n") == 1


def test_presets_lists_every_shipped_row(capsys):
    code, out, _ = run(capsys, "presets", "--json")
    assert code == 0
    rep = json.loads(out)
    assert sorted(rep["hardware"]) == presets.names("hardware")
    assert sorted(rep["models"]) == presets.names("models")
    assert sorted(rep["memory"]) == presets.names("memory_tech")
    assert all(row.get("source") for row in rep["models"].values())


def test_config_file_defines_a_custom_system(tmp_path, capsys):
    cfg = tmp_path / "design.toml"
    cfg.write_text(
        """
[chip]
peak_flops_bf16 = 1.0e15
tdp_w = 600.0
price_usd = 20000.0

[[chip.tiers]]
technology = "hbm4"
capacity_bytes = 192e9
bandwidth_bytes_per_s = 8e12

[network]
link_bandwidth_bytes_per_s = 9e11

[system]
chips = 4

[model]
preset = "llama-3.1-70b"

[workload]
batch = 16
prompt_len = 1024
output_len = 128
tp = 4
"""
    )
    code, out, err = run(capsys, "eval", "--config", str(cfg), "--json")
    assert code == 0, err
    rep = json.loads(out)
    assert rep["chips"] == 4 and rep["workload"]["tp"] == 4
    assert rep["breakdown"]["capacity"][0]["capacity_bytes"] == 192e9
    assert rep["usd_per_million_tokens"] is not None


@pytest.mark.parametrize(
    "body,needle",
    [
        ("[chip]\npeak_flops_bf16 = 'fast'\n[[chip.tiers]]\ntechnology = 'hbm4'\n", "expected a number"),
        ("[chip]\ntdp_w = 300.0\n", "needs peak_flops_bf16 and [[chip.tiers]]"),
        ("[system]\nhardware = 'h100-sxm'\n[chip]\ntdpw = 3.0\n", "did you mean tdp_w"),
        ("[sytem]\n", "unknown table [sytem]"),
        ("[model\n", "not valid TOML"),
    ],
)
def test_bad_config_files_name_the_field(tmp_path, capsys, body, needle):
    cfg = tmp_path / "bad.toml"
    cfg.write_text(body)
    code, _, err = run(capsys, "eval", "--config", str(cfg))
    assert code == 2
    assert needle in err and str(cfg) in err


def test_paper_designs_are_reachable_from_the_cli(capsys):
    code, out, err = run(
        capsys,
        "eval",
        "--design",
        "hbm4-hbf",
        "--model",
        "deepseek-v3",
        "--chips",
        "8",
        "--batch",
        "16",
        "--weight-dtype",
        "fp8",
        "--kv-dtype",
        "fp8",
        "--json",
    )
    assert code == 0, err
    rep = json.loads(out)
    assert rep["hardware"] == "hbm4-hbf"
    assert len(rep["breakdown"]["capacity"]) == 2
    assert rep["breakdown"]["capacity"][1]["used_bytes"] > rep["breakdown"]["capacity"][0]["used_bytes"]
    code, _, err = run(capsys, "eval", "--design", "hbm5")
    assert code == 2 and "use one of hbm4" in err
