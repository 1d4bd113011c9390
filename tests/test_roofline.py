"""The per-op roofline: hand-checkable intensities and a figure in every format."""

import pytest

from hwgrad import compression, presets, roofline
from hwgrad.specs import Workload


@pytest.fixture(scope="module")
def design():
    return dict(
        system=presets.system("h100-sxm", 1, fitted=False),
        model=presets.model("llama-3.1-8b"),
        workload=Workload(batch=16.0, prompt_len=2048.0, output_len=512.0, tp=1.0),
        compression=compression("bf16"),
    )


@pytest.mark.slow  # eager counts take ~20 s on 2 shared cores
def test_decode_gemvs_sit_at_intensity_batch(design):
    pts = roofline.op_points(design)
    ops = {p["name"]: p for p in pts["decode_step"]}
    # a bf16 weight (2 bytes) does 2 FLOPs per sequence: 16 sequences -> 16 FLOP/byte (the
    # activations add a few bytes, so slightly below)
    assert ops["ffn_dense"]["intensity_flop_per_byte"] == pytest.approx(16.0, rel=0.03)
    assert ops["ffn_dense"]["intensity_flop_per_byte"] < 16.0
    # memory-bound: on the tier-0 ceiling (3.35 TB/s x I), far below the 989 TFLOP/s peak
    bw = pts["tier_bandwidth_bytes_per_s"][0]
    assert bw == pytest.approx(3.35e12)
    assert ops["ffn_dense"]["attainable_flops_per_s"] == pytest.approx(bw * ops["ffn_dense"]["intensity_flop_per_byte"])
    # attention over the KV cache does ~1 FLOP per KV byte per query head group, below the GEMVs
    assert ops["attn_core_full"]["intensity_flop_per_byte"] < ops["ffn_dense"]["intensity_flop_per_byte"]
    # the prefill's 2048-token GEMMs are compute-bound: at the peak
    pre = {p["name"]: p for p in pts["prefill"]}
    assert pre["ffn_dense"]["attainable_flops_per_s"] == pytest.approx(pts["peak_flops_per_s"])
    assert pts["peak_flops_per_s"] == pytest.approx(989.4e12, rel=1e-3)
    # a decode kernel that reads the cache once per query head (32 over 8 KV heads) moves
    # 4x the cached bytes: the attention's intensity drops ~4x, the GEMVs' does not
    from hwgrad.specs import Stack

    per_head = roofline.op_points({**design, "efficiency": Stack(kv_group_reuse=0.0)})
    core = {p["name"]: p for p in per_head["decode_step"]}["attn_core_full"]
    assert ops["attn_core_full"]["intensity_flop_per_byte"] / core["intensity_flop_per_byte"] == pytest.approx(
        4.0, rel=0.02
    )
    assert {p["name"]: p for p in per_head["decode_step"]}["ffn_dense"] == ops["ffn_dense"]


@pytest.mark.slow
@pytest.mark.parametrize("suffix", [".png", ".pdf", ".svg"])
def test_plot_writes_the_format_of_the_extension(design, tmp_path, suffix):
    written = roofline.plot(design, path=tmp_path / f"roofline{suffix}")
    assert written == [tmp_path / f"roofline{suffix}"]
    head = written[0].read_bytes()[:8]
    assert {".png": b"\x89PNG", ".pdf": b"%PDF", ".svg": b"<?xml"}[suffix] in head
