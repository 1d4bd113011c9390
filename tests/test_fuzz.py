"""Fuzzing the edges (issue 18 item 6): the command line, design files (TOML), Hugging Face
configs (JSON), measurement files (CSV) and sweep files either succeed with finite outputs or
fail with exit 2 and one line; never a traceback, never a NaN printed as a number. And over
random valid design points, presets with unknown TDP/price included, every elasticity of a
defined metric is finite.
"""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import hwgrad as hg
from hwgrad import cli, presets
from hwgrad import sweep as sw

FAST = settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
NAN_WORD = re.compile(r"(?<![\w.-])[-+]?(nan|inf|infinity)(?![\w])", re.IGNORECASE)


def _reject_constant(name):
    raise AssertionError(f"{name} printed in JSON output")


def _check_outcome(code: int, out: str, err: str, json_out: bool) -> None:
    assert code in (0, 2), f"exit {code}: {err[-500:]}"
    assert "Traceback" not in err and "internal error" not in err, err
    if code == 2:
        assert err.count("\n") == 1 and err.split("error:", 1)[-1].strip(), err
        return
    if json_out:
        json.loads(out, parse_constant=_reject_constant)
    else:
        assert not NAN_WORD.search(out), out


def _run(capsys, argv):
    code = cli.main(argv)
    cap = capsys.readouterr()
    return code, cap.out, cap.err


# ----------------------------------------------------------------------------- command line

NUMBERS = st.one_of(
    st.integers(-3, 300).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["", "nan", "inf", "-inf", "1e30", "1e-30", "0x10", "8.7", "2.5", " 8", "1_000", "abc"]),
)
FLAGS = {
    "--chips": NUMBERS, "--tp": NUMBERS, "--pp": NUMBERS, "--ep": NUMBERS, "--dp": NUMBERS,
    "--microbatches": NUMBERS, "--batch": NUMBERS, "--prompt-len": NUMBERS, "--output-len": NUMBERS,
    "--sparsity": NUMBERS, "--chip-price-usd": NUMBERS,
    "--weight-dtype": st.sampled_from(["bf16", "fp8", "int4", "q4_0", "", "fp7", "FP8", " int8 "]),
    "--kv-dtype": st.sampled_from(["bf16", "fp8", "", "int3"]),
    "--act-dtype": st.sampled_from(["bf16", "fp8", "x"]),
    "--sparsity-pattern": st.sampled_from(["dense", "unstructured", "2:4", "3:4"]),
}  # fmt: skip


@st.composite
def eval_argv(draw):
    argv = ["eval", "--model", "llama-3.1-8b", "--hardware", draw(st.sampled_from(["h100-sxm", "h800"]))]
    for flag in draw(st.lists(st.sampled_from(sorted(FLAGS)), max_size=5, unique=True)):
        argv += [flag, draw(FLAGS[flag])]
    if draw(st.booleans()):
        argv.append("--json")
    return argv


@FAST
@given(argv=eval_argv())
def test_fuzz_eval_flags(capsys, argv):
    code, out, err = _run(capsys, argv)
    _check_outcome(code, out, err, "--json" in argv)


# ----------------------------------------------------------------------------- TOML design files

SCALARS = st.one_of(
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.text(max_size=8),
    st.sampled_from(["h100-sxm", "llama-3.1-8b", "fp8", "hbm3", "switch", "2:4"]),
)
FIELDS = {
    "system": ["hardware", "chips", "x"],
    "chip": ["tdp_w", "price_usd", "peak_flops_bf16", "sram_bytes", "die_area_mm2", "tiers"],
    "network": ["topology", "hop_latency_s", "energy_j_per_byte", "switch_radix", "torus_dims"],
    "model": ["preset", "n_layers", "n_heads", "n_kv_heads", "attention"],
    "workload": ["batch", "tp", "pp", "prompt_len", "output_len", "kv_block_tokens", "corpus_bytes"],
    "compression": ["weight_dtype", "kv_dtype", "weight_bits", "sparsity", "pattern"],
    "economics": ["pue", "lifetime_years", "utilization", "electricity_usd_per_kwh"],
    "efficiency": ["bandwidth_efficiency", "flops_efficiency", "comm_overlap", "op_overhead_s", "kv_group_reuse"],
    "placement": ["weights", "kv_cache", "activations"],
}


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) else repr(v)
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return json.dumps(v)  # a TOML basic string


@st.composite
def design_toml(draw):
    lines = [
        '[system]\nhardware = "h100-sxm"\nchips = 1\n[model]\npreset = "llama-3.1-8b"\n[workload]\ntp = 1'
    ]
    for table in draw(st.lists(st.sampled_from(sorted(FIELDS)), max_size=3, unique=True)):
        lines.append(f"[{table}.x]" if draw(st.integers(0, 20)) == 0 else "")
        body = []
        for key in draw(st.lists(st.sampled_from(FIELDS[table]), max_size=3, unique=True)):
            val = draw(st.one_of(SCALARS, st.lists(SCALARS, max_size=3)))
            body.append(f"{key} = {_toml_value(val)}")
        lines.append(f"[{table}]\n" + "\n".join(body) if table not in ("system", "model", "workload") else "")
    return "\n".join(lines) + "\n"


@FAST
@given(text=design_toml())
def test_fuzz_design_files(capsys, tmp_path_factory, text):
    path = tmp_path_factory.mktemp("toml") / "d.toml"
    path.write_text(text)
    _check_outcome(*_run(capsys, ["eval", "--config", str(path), "--json"]), json_out=True)


@FAST
@given(data=st.binary(max_size=200))
def test_fuzz_raw_bytes_as_a_design_file(capsys, tmp_path_factory, data):
    path = tmp_path_factory.mktemp("raw") / "d.toml"
    path.write_bytes(data)
    code, out, err = _run(capsys, ["eval", "--config", str(path), "--model", "llama-3.1-8b", "--chips", "1"])
    _check_outcome(code, out, err, json_out=False)


# ----------------------------------------------------------------------------- HF config.json

HF_KEYS = ["model_type", "hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
           "vocab_size", "intermediate_size", "head_dim", "sliding_window", "layer_types",
           "num_local_experts", "num_experts_per_tok", "tie_word_embeddings", "mlp_only_layers"]  # fmt: skip
HF_BASE = dict(model_type="llama", hidden_size=4096, num_hidden_layers=32, num_attention_heads=32,
               num_key_value_heads=8, vocab_size=128256, intermediate_size=14336)  # fmt: skip
JSON_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(10**6), 10**6), st.floats(), st.text(max_size=6)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=6,
)


@FAST
@given(changes=st.dictionaries(st.sampled_from(HF_KEYS), JSON_VALUES, max_size=3), top=st.integers(0, 9))
def test_fuzz_hf_configs(capsys, tmp_path_factory, changes, top):
    cfg = {**HF_BASE, **changes}
    doc = [cfg] if top == 0 else cfg  # sometimes not an object at all
    path = tmp_path_factory.mktemp("hf") / "config.json"
    path.write_text(json.dumps(doc))
    argv = ["eval", "--model-config", str(path), "--hardware", "h100-sxm", "--chips", "1", "--json"]
    _check_outcome(*_run(capsys, argv), json_out=True)


# ----------------------------------------------------------------------------- measurement CSV

HEADER = ("id,model,hardware,n_chips,tp,pp,ep,batch,batching,input_len,output_len,weight_dtype,kv_dtype,"
          "metric,value,software,source,notes")  # fmt: skip
GOOD_ROW = ["1", "llama-2-7b", "a100-80gb-sxm", "1", "1", "1", "", "1", "static", "5", "200", "bf16", "bf16",
            "tpot_ms", "9.5", "gpt-fast", "src", ""]  # fmt: skip
CELLS = st.one_of(
    st.text(max_size=6), st.sampled_from(["", "nan", "inf", "-1", "0", "2.5", "1e30", '"', ","])
)


@FAST
@given(
    edits=st.lists(st.tuples(st.integers(0, len(GOOD_ROW) - 1), CELLS), min_size=1, max_size=3),
    extra=st.sampled_from(["", "\n,,,", "\nx", '\n"unterminated']),
)
def test_fuzz_measurement_files(tmp_path_factory, edits, extra):
    from hwgrad.measurements import read_measurements

    row = list(GOOD_ROW)
    for i, v in edits:
        row[i] = v
    path = tmp_path_factory.mktemp("csv") / "m.csv"
    path.write_text(HEADER + "\n" + ",".join(row) + extra + "\n")
    try:
        data = read_measurements(path)
    except ValueError as exc:
        assert "\n" not in str(exc) and str(path) in str(exc)
        return
    for r in data.rows:
        assert all(math.isfinite(getattr(r, f)) for f in ("value",))


# ----------------------------------------------------------------------------- sweep files


@FAST
@given(
    path=st.sampled_from(["workload.batch", "workload.tp", "compression.weight_bits", "economics.pue",
                          "system.chip.tiers.0.bandwidth_bytes_per_s", "compression.sparsity", "workload.bach"]),
    values=st.lists(st.one_of(st.integers(-4, 300), st.floats(allow_nan=False, allow_infinity=False)),
                    min_size=1, max_size=4),
)  # fmt: skip
def test_fuzz_sweep_axes_are_validated_before_anything_runs(tmp_path_factory, path, values):
    cfg = tmp_path_factory.mktemp("sweep") / "s.toml"
    cfg.write_text(
        f'[design]\nmodel = "llama-3.1-8b"\nchips = 1\n[[axis]]\npath = "{path}"\nvalues = {values!r}\n'
    )
    try:
        loaded = sw.load_config(cfg)
        sw.validate_space(loaded["design"], loaded["space"])
    except ValueError as exc:
        assert "\n" not in str(exc)
        return
    d = loaded["design"]
    for v in loaded["space"].values()[:, 0]:  # every accepted point is a valid design
        point = sw.with_value(d, path, float(v))
        hg.validate(*(point[r] for r in sw.ROOTS))


# ----------------------------------------------------------------------------- finite gradients


def _random_points(hardware: str, n: int, seed: int):
    rng = np.random.default_rng(seed)
    system = presets.system(hardware, 1)
    model = presets.model("llama-3.1-8b")
    base = sw.design(
        system, model, hg.Workload(tp=1.0), hg.compression("fp8"), hg.Efficiency.speed_of_light()
    )
    for _ in range(n):
        d = dict(base)
        d["workload"] = hg.replace(
            base["workload"],
            batch=float(rng.integers(1, 257)),
            prompt_len=float(rng.integers(0, 8193)),
            output_len=float(rng.integers(1, 2049)),
        )
        c = base["compression"]
        d["compression"] = hg.replace(
            c, weight_bits=float(rng.uniform(3, 16)), kv_bits=float(rng.uniform(4, 16))
        )
        chip = base["system"].chip
        tier = hg.replace(
            chip.tiers[0], bandwidth_bytes_per_s=chip.tiers[0].bandwidth_bytes_per_s * rng.uniform(0.25, 4)
        )
        d["system"] = hg.replace(base["system"], chip=hg.replace(chip, tiers=(tier, *chip.tiers[1:]),
                                 peak_flops_bf16=chip.peak_flops_bf16 * rng.uniform(0.25, 4)))  # fmt: skip
        yield d


def _knobs(d):
    p = sw.paths(d)
    return tuple(
        k
        for k, v in p.items()
        if math.isfinite(v) and v > 0 and k.rsplit(".", 1)[-1] not in sw.INTEGER_FIELDS
    )


def _count_non_finite(hardware: str, n: int, seed: int) -> tuple[int, int]:
    bad = total = 0
    knobs = None
    for d in _random_points(hardware, n, seed):
        knobs = knobs or _knobs(d)
        s = sw.sensitivity(**d, knobs=knobs)
        for i, m in enumerate(s.metrics):
            if m in s.undefined:
                continue
            total += s.elasticity.shape[1]
            bad += int(np.count_nonzero(~np.isfinite(s.elasticity[i])))
    return bad, total


@pytest.mark.parametrize(
    "hardware, n",
    [pytest.param("h800", 4, marks=pytest.mark.slow), pytest.param("h800", 12, marks=pytest.mark.slow), pytest.param("h100-sxm", 12, marks=pytest.mark.slow)],
)
def test_elasticities_of_defined_metrics_are_finite(hardware, n):
    bad, total = _count_non_finite(hardware, n, seed=1)
    assert total > 0 and bad == 0, (bad, total)


@pytest.mark.slow
def test_elasticities_finite_over_ten_thousand_points_of_every_preset():
    names = list(presets.table("hardware"))
    per = -(-10_000 // len(names))
    bad = points = 0
    for k, hw in enumerate(names):
        b, _ = _count_non_finite(hw, per, seed=k)
        bad += b
        points += per
    assert points >= 10_000 and bad == 0
