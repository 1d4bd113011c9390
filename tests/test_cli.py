"""The command line: the stable JSON keys, readable output, and one-line errors (exit 2)."""

import json
import os
import sys

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
    "waves",
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
        # 0.9 x 80 GB - 17.6 GB of weights - 0.39 GB of one 8192-token step's workspace leaves
        # 54 GB per chip, 0.377 GB per sequence of 9216 tokens (80 layers x 2 x 8 KV heads x 128
        # x 2 B / tp 8 per token): 142 fit
        (
            ["--chips", "8", "--tp", "8", "--batch", "256", "--prompt-len", "8192", "--output-len", "1024",
             "--batching", "continuous"],
            "142 of the 256 sequences of 9216 tokens fit in the KV cache at once",
        ),
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


def test_presets_stacks_lists_the_fitted_stacks_and_the_kernel_traits(capsys):
    code, out, _ = run(capsys, "presets", "stacks", "--json")
    assert code == 0
    rep = json.loads(out)
    assert sorted(rep["stacks"]) == sorted(presets.stack_names())
    assert {"stack": "vllm", "software": "", "hardware_lines": ["amd-instinct"],
            "fields": {"kv_group_reuse": 0.0}} in rep["kernel_traits"]  # fmt: skip
    code, out, _ = run(capsys, "presets", "stacks")
    assert "kernel traits" in out and "amd-instinct" in out
    # eval --stack NAME --hardware CHIP runs that build's kernels: the 2024 ROCm vLLM reads
    # Llama-3-8B's cache once per query head (4 per KV head), so its decode step is slower
    args = ["eval", "--model", "llama-3-8b", "--tp", "1", "--batch", "64", "--json", "--stack", "vllm"]
    tpot = {}
    for hw in ("mi300x", "h100-sxm"):
        code, out, _ = run(capsys, *args, "--hardware", hw)
        tpot[hw] = json.loads(out)["breakdown"]["decode_step"]["component_time_s"]["kv_cache"]
    bw = presets.chip("h100-sxm").tiers[0].bandwidth_bytes_per_s / presets.chip("mi300x").tiers[0].bandwidth_bytes_per_s
    eff = float(presets.chip("h100-sxm").bandwidth_efficiency) / float(presets.chip("mi300x").bandwidth_efficiency)
    assert tpot["mi300x"] / tpot["h100-sxm"] == pytest.approx(4.0 * float(bw) * eff, rel=0.02)
    # DeepSpeed on a Gaudi chip runs as Intel's stack (stacks.STACK_ON_LINE), and says so
    gaudi = ["eval", "--model", "llama-3-8b", "--tp", "1", "--batch", "1", "--hardware", "gaudi2"]
    _, ds, _ = run(capsys, *gaudi, "--stack", "deepspeed-mii")
    _, synapse, _ = run(capsys, *gaudi, "--stack", "gaudi")
    assert "stack gaudi (deepspeed-mii runs as gaudi on gaudi2)" in ds
    assert ds.split("\n", 2)[2] == synapse.split("\n", 2)[2]


def test_eval_defaults_to_the_tuned_stack_of_the_chips_vendor_line(capsys):
    args = ["eval", "--model", "llama-3-8b", "--tp", "1", "--batch", "1", "--weight-dtype", "fp8", "--json"]
    step = {}
    for hw, line in (("mi300x", "amd-instinct"), ("h100-sxm", "nvidia-datacenter"), ("tpu-v5e", "")):
        code, out, _ = run(capsys, *args, "--hardware", hw)
        assert code == 0
        rep = json.loads(out)
        step[hw] = rep["breakdown"]["decode_step"]["component_time_s"]["overhead"]
        # the same stack as naming it, and what --stack tuned gives on that chip
        _, named, _ = run(capsys, *args, "--hardware", hw, "--stack", f"tuned/{line}" if line else "tuned")
        _, tuned, _ = run(capsys, *args, "--hardware", hw, "--stack", "tuned")
        assert json.loads(named)["tpot_s"] == rep["tpot_s"] == json.loads(tuned)["tpot_s"]
    # launch gaps: ROCm vLLM's on AMD, vLLM 0.13's on NVIDIA, the best of all on a TPU
    gap = {hw: float(presets.stack("tuned", hw).op_overhead_s) for hw in step}
    assert gap["tpu-v5e"] == min(gap.values()) and gap["h100-sxm"] > gap["mi300x"]
    assert step["h100-sxm"] / step["mi300x"] == pytest.approx(gap["h100-sxm"] / gap["mi300x"], rel=0.05)


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
    for tier in rep["breakdown"]["capacity"]:  # the calibrated stack may use 0.9 of each tier
        assert tier["usable_bytes"] == pytest.approx(0.9 * tier["capacity_bytes"], rel=1e-6)
        assert tier["margin_bytes"] == pytest.approx(tier["usable_bytes"] - tier["used_bytes"], rel=1e-4)
    code, _, err = run(capsys, "eval", "--design", "hbm5")
    assert code == 2 and "use one of hbm4" in err


# ----------------------------------------------------------------------------- --set and knob flags

SMALL = ("eval", "--model", "llama-3.1-8b", "--hardware", "h100-sxm", "--chips", "1", "--batch", "16", "--json")


@pytest.fixture(scope="module")
def small_reports():
    """One baseline and the same design with the HBM bandwidth doubled, three ways."""
    import contextlib
    import io

    def rep(*extra):
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            assert cli.main([*SMALL, *extra]) == 0
        return json.loads(buf.getvalue())

    return {
        "base": rep(),
        "flag": rep("--hbm-bandwidth", "6.7"),
        "flag_unit": rep("--hbm-bandwidth", "6700GB/s"),
        "set": rep("--set", "system.chip.tiers.0.bandwidth_bytes_per_s=6.7e12"),
    }


def test_named_knob_flag_is_an_alias_of_set(small_reports):
    r = small_reports
    assert r["flag"]["tpot_s"] == r["set"]["tpot_s"] == r["flag_unit"]["tpot_s"]
    # the h100-sxm preset has 3.35 TB/s: doubling it must shorten the memory-bound decode step
    assert r["flag"]["breakdown"]["decode_step"]["component_time_s"]["weights"] == pytest.approx(
        r["base"]["breakdown"]["decode_step"]["component_time_s"]["weights"] / 2, rel=1e-5
    )
    assert r["flag"]["tpot_s"] < r["base"]["tpot_s"]


def test_json_integers_are_integers_and_pue_is_named(small_reports):
    rep = small_reports["base"]
    assert rep["workload"]["batch"] == 16 and isinstance(rep["workload"]["batch"], int)
    assert isinstance(rep["compression"]["weight_bits"], int)
    assert rep["energy_includes_pue"] is False
    assert rep["energy_j_per_token_with_pue"] == pytest.approx(rep["energy_j_per_token"] * rep["pue"], rel=1e-6)
    assert rep["pue"] == pytest.approx(1.10)


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["--set", "system.chip.tiers.0.bandwith_bytes_per_s=1e12"], "did you mean system.chip.tiers.0.bandwidth_bytes_per_s"),
        (["--set", "workload.batching=3"], "static switch, not a number"),
        (["--set", "workload.batch"], "expected PATH=VALUE"),
        (["--set", "system.chip=3"], "not a number but a group"),
        (["--hbm-bandwidth", "4.8GB"], "unit 'GB' is not TB/s"),
        (["--hop-latency", "fast"], "not a number"),
        (["--set", "workload.batch=-4"], "workload.batch"),
    ],
)
def test_bad_set_is_one_line(capsys, argv, needle):
    code, _, err = run(capsys, "eval", *argv)
    assert code == 2
    assert needle in err, err
    assert len(err.strip().splitlines()) == 1


def test_parse_quantity_units():
    assert cli.parse_quantity("4.8", "TB/s", "x") == pytest.approx(4.8e12)
    assert cli.parse_quantity("500ns", "us", "x") == pytest.approx(5e-7)
    assert cli.parse_quantity("2.5us", "us", "x") == pytest.approx(2.5e-6)
    assert cli.parse_quantity("1979TFLOPS", "TFLOP/s", "x") == pytest.approx(1.979e15)
    assert cli.parse_assignment("system.chip.tiers.0.capacity_bytes=141GB") == (
        "system.chip.tiers.0.capacity_bytes",
        pytest.approx(141e9),
    )


def test_knob_groups_and_globs_expand_to_positive_numbers():
    from hwgrad import compression
    from hwgrad.specs import Workload

    design = dict(
        system=presets.system("h100-sxm", 8),
        model=presets.model("llama-3.1-8b"),
        workload=Workload(batch=8.0, tp=8.0),
        compression=compression("bf16"),
    )
    bw = cli.expand_knobs(design, ["**bandwidth_bytes_per_s"])
    assert "system.chip.tiers.0.bandwidth_bytes_per_s" in bw
    assert "system.network.link_bandwidth_bytes_per_s" in bw
    assert all(p.endswith("bandwidth_bytes_per_s") for p in bw)
    net = cli.expand_knobs(design, ["system.network"])
    assert "system.network.hop_latency_s" in net and len(set(net)) == len(net)
    chip = cli.expand_knobs(design, ["system.chip.*_efficiency"])
    assert set(chip) == {"system.chip.bandwidth_efficiency", "system.chip.flops_efficiency"}
    with pytest.raises(ValueError, match="did you mean"):
        cli.expand_knobs(design, ["system.chip.tiers.0.bandwith_bytes_per_s"])


def test_version_and_presets_json_numbers(capsys):
    code, out, _ = run(capsys, "--version")
    assert code == 0 and out.startswith("hwgrad ")
    code, out, _ = run(capsys, "presets", "hardware", "--json")
    h100 = json.loads(out)["hardware"]["h100-sxm"]
    assert h100["memory_capacity_GB"] == 80 and isinstance(h100["memory_capacity_GB"], int)
    assert h100["memory_bandwidth_GBps"] == 3350
    assert isinstance(h100["display_name"], str)


def test_sensitivity_refuses_what_eval_refuses(capsys):
    # llama-3.1-70b in bf16 needs ~141 GB of weights: it does not fit one 80 GB H100
    argv = ["--model", "llama-3.1-70b", "--hardware", "h100-sxm", "--chips", "1", "--batch", "1"]
    for command in ("eval", "sensitivity"):
        code, out, err = run(capsys, command, *argv)
        assert code == 2, (command, out)
        assert "tier 0 capacity 72.0 GB the engine may use (of 80.0 GB) <" in err and "raise tp/pp" in err


@pytest.mark.slow
def test_deepseek_v3_bf16_on_8_h200_is_refused_by_eval_and_sensitivity(capsys):
    argv = ["--model", "deepseek-v3", "--hardware", "h200-sxm", "--chips", "8"]
    for command in ("eval", "sensitivity"):
        code, _, err = run(capsys, command, *argv)
        assert code == 2 and "tier 0 capacity 126.9 GB the engine may use (of 141.0 GB) < 173.8 GB" in err, err


def test_parse_axis_takes_knob_names_units_and_value_lists():
    assert cli.parse_axis("hbm-bandwidth=2:10:5") == dict(
        path="system.chip.tiers.0.bandwidth_bytes_per_s", low=2e12, high=10e12, num=5, scale="linear", integer=False
    )
    ax = cli.parse_axis("hop-latency=0.5:5:4:log")
    assert ax["path"] == "system.network.hop_latency_s" and ax["scale"] == "log"
    assert ax["low"] == pytest.approx(5e-7) and ax["high"] == pytest.approx(5e-6)
    assert cli.parse_axis("workload.batch=1,8,64") == dict(path="workload.batch", values=(1.0, 8.0, 64.0), integer=True)
    assert cli.parse_axis("system.network.hop_latency_s=500ns:5us:3")["high"] == pytest.approx(5e-6)
    with pytest.raises(ValueError, match="expected PATH=LO:HI:N"):
        cli.parse_axis("hbm-bandwidth=2:10")


def test_sweep_needs_a_space(capsys):
    code, _, err = run(capsys, "sweep", "--out", "/tmp/x.csv")
    assert code == 2 and "no space: pass --config FILE, or inline axes" in err
    code, _, err = run(capsys, "sweep", "--space", "hbm-bandwidth=2:10", "--out", "/tmp/x.csv")
    assert code == 2 and "expected PATH=LO:HI:N" in err


@pytest.mark.slow
def test_inline_sweep_answers_the_target_question(tmp_path, capsys):
    """TPOT of Llama-3.1-70B, batch 16, 8 chips over HBM 2-10 TB/s x hop latency 0.5-5 us, no file."""
    import csv

    out = tmp_path / "tpot.csv"
    code, _, err = run(
        capsys, "sweep", "--model", "llama-3.1-70b", "--chips", "8", "--batch", "16",
        "--space", "hbm-bandwidth=2:10:5", "--space", "hop-latency=0.5:5:4", "--metric", "tpot_s",
        "--out", str(out), "--no-progress", "--cpu-devices", "1",
    )  # fmt: skip
    assert code == 0, err
    with out.open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 20
    bw = sorted({float(r["system.chip.tiers.0.bandwidth_bytes_per_s"]) for r in rows})
    assert bw[0] == pytest.approx(2e12, rel=1e-6) and bw[-1] == pytest.approx(10e12, rel=1e-6)
    tpot = {(float(r["system.chip.tiers.0.bandwidth_bytes_per_s"]), float(r["system.network.hop_latency_s"])): float(r["tpot_s"]) for r in rows}
    lat = sorted({k[1] for k in tpot})
    assert tpot[(bw[0], lat[0])] > tpot[(bw[-1], lat[0])]  # more bandwidth, less time per token
    assert tpot[(bw[0], lat[-1])] > tpot[(bw[0], lat[0])]  # more hop latency, more time


@pytest.mark.slow
def test_sensitivity_all_lists_zero_elasticities(capsys):
    argv = ["sensitivity", "--model", "llama-3.1-8b", "--chips", "1", "--metric", "tpot_s", "--knob", "economics", "--json"]
    code, out, err = run(capsys, *argv)
    assert code == 0, err
    assert json.loads(out)["tpot_s"]["elasticity"] == {}  # prices do not change the time
    code, out, err = run(capsys, *argv, "--all")
    el = json.loads(out)["tpot_s"]["elasticity"]
    assert "economics.pue" in el and el["economics.pue"] == 0


def test_codesign_set_and_knob_flags_change_the_base_design(capsys, tmp_path):
    """`hwgrad codesign --dry-run` shows the base design after the one `--set` layer; nothing compiles."""
    out = str(tmp_path / "cd")
    code, text, err = run(capsys, "codesign", "--out", out, "--dry-run", "--hop-latency", "1.5",
                          "--set", "workload.batch=64", "--set", "system.network.link_bandwidth_bytes_per_s=900GB/s")  # fmt: skip
    assert code == 0, err
    assert "batch 64" in text and "hop latency 1.5 us" in text and "links 900 GB/s" in text
    assert "set: system.network.hop_latency_s = 1.5e-06" in text
    assert "variable chips (= tp): [1, 64]" in text
    code, text, _ = run(capsys, "codesign", "--out", out, "--dry-run")
    assert code == 0 and "hop latency" in text and "set:" not in text


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["--set", "system.network.hop_latncy_s=1us"], "did you mean system.network.hop_latency_s"),
        (["--hbm-bandwidth", "4.8GB"], "unit 'GB' is not TB/s"),
        (["--set", "workload.batch=-4"], "workload.batch"),
    ],
)
def test_codesign_bad_set_is_one_line(capsys, tmp_path, argv, needle):
    code, _, err = run(capsys, "codesign", "--out", str(tmp_path / "cd"), "--dry-run", *argv)
    assert code == 2
    assert needle in err, err
    assert len(err.strip().splitlines()) == 1


def test_codesign_base_design_takes_settings():
    """`base_design(settings=...)`, which `study_from_dict` builds the problem on, applies `--set`."""
    from hwgrad.codesign.study import base_design, default_study_dict

    specs = base_design(default_study_dict(), "<default study>", settings=["system.network.hop_latency_s=2us"])
    assert float(specs["system"].network.hop_latency_s) == pytest.approx(2e-6)
    assert float(base_design(default_study_dict(), "x")["system"].network.hop_latency_s) != pytest.approx(2e-6)


def test_a_reader_that_closes_the_pipe_is_not_an_error(tmp_path, monkeypatch, capsys):
    # `hwgrad presets | head -1`: the reader went away; every later write raises
    class ClosedPipe:
        def __init__(self, fd):
            self.fd = fd

        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")

        def flush(self):
            pass

        def fileno(self):
            return self.fd

    fd = os.open(tmp_path / "stdout", os.O_WRONLY | os.O_CREAT)
    monkeypatch.setattr(sys, "stdout", ClosedPipe(fd))
    code = cli.main(["presets", "hardware"])
    os.close(fd)
    assert code == 141  # 128 + SIGPIPE, as a program the signal stopped
    assert capsys.readouterr().err == ""  # no "error: Broken pipe", no traceback
