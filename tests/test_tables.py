"""DataFrames from the API: the numbers in the table are the numbers of the objects."""

import pytest

import hwgrad as hg
from hwgrad import sweep, tables

pd = pytest.importorskip("pandas")


def _design():
    return (
        hg.presets.system("h100-sxm", 8),
        hg.presets.model("llama-3.1-8b"),
        hg.Workload(batch=8, prompt_len=256, output_len=32, tp=8),
        hg.compression("fp8", "fp8"),
    )


def test_result_to_one_row():
    r = hg.evaluate(*_design())
    df = tables.to_dataframe(r)
    assert len(df) == 1
    assert df["tpot_s"][0] == pytest.approx(float(r.tpot_s))
    assert df["capacity_used_bytes.0"][0] == pytest.approx(float(r.capacity_used_bytes[0]))
    assert df["decode.time_s"][0] == pytest.approx(float(r.decode.time_s))


def test_sweep_columns_and_sensitivity():
    s, m, w, c = _design()
    cols = sweep.run(sweep.design(s, m, w, c), sweep.grid(sweep.Axis("workload.batch", values=[1, 4, 16])))
    df = tables.to_dataframe(cols)
    assert list(df["workload.batch"]) == [1, 4, 16]
    assert df["tpot_s"].is_monotonic_increasing
    knobs = ["system.chip.tiers.0.bandwidth_bytes_per_s", "system.chip.peak_flops_bf16", "workload.prompt_len"]
    sens = tables.to_dataframe(sweep.sensitivity(s, m, w, c, knobs=knobs, metrics=["tpot_s", "ttft_s"]))
    assert list(sens.columns) == ["metric", "knob", "elasticity"]
    # one row per (metric, knob) with a non-zero elasticity (decode at batch 8 is not bound
    # by FLOP/s: that knob's rows are left out)
    assert len(sens) == 4 and set(sens["knob"]) == set(knobs) - {"system.chip.peak_flops_bf16"}


def test_unknown_objects_are_a_clear_error():
    with pytest.raises(ValueError, match="cannot tabulate a int"):
        tables.to_dataframe(3)
