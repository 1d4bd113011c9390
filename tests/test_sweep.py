"""Sweeps: paths, spaces, chunking, sharding, resumption, Pareto sets, sensitivity, CLI.

The design is the CLI default (Llama-3.1-70B on 8 x H100, TP 8, fp8) so every test shares
one compiled sweep program (``hwgrad.sweep.cached_evaluator``).
"""

import filecmp
import json
import os
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import hwgrad as hg
from hwgrad import cli
from hwgrad import sweep as sw

BW = "system.chip.tiers.0.bandwidth_bytes_per_s"
BATCH = 16  # points per vmap batch in these tests: small, so padding stays small
SMOOTH = hg.Options(roofline="smooth")


@pytest.fixture(scope="module")
def design():
    args = cli.build_parser().parse_args(["eval", "--weight-dtype", "fp8", "--kv-dtype", "fp8"])
    return sw.design(*(cli.design_from_args(args)[r] for r in sw.ROOTS))


@pytest.fixture(scope="module")
def space():
    return sw.random(
        sw.Axis("workload.batch", 1, 256, scale="log", integer=True),
        sw.Axis("compression.weight_bits", 3, 16),
        sw.Axis(BW, 1e12, 1e13, scale="log"),
        n_points=96,
        seed=7,
    )


def _equal(a: dict, b: dict) -> None:
    assert list(a) == list(b)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


# ----------------------------------------------------------------------------- paths


def test_paths_cover_every_leaf_and_round_trip(design):
    p = sw.paths(design)
    assert p["workload.batch"] == 32.0
    assert p[BW] == pytest.approx(3.35e12)
    assert "compression.weight_bits" in p and "economics.pue" in p
    changed = sw.with_value(design, BW, 5e12)
    assert sw.get(changed, BW) == 5e12
    assert sw.get(design, BW) == pytest.approx(3.35e12)  # the original is untouched


def test_array_leaves_are_addressed_by_element(design):

    system = hg.replace(design["system"], placement=hg.Placement.main_memory(1))
    d = dict(design, system=system)
    assert sw.get(d, "system.placement.weights.0") == 1.0
    assert sw.get(sw.with_value(d, "system.placement.kv_cache.0", 0.5), "system.placement.kv_cache.0") == 0.5
    with pytest.raises(ValueError, match=r"shape \(1,\).*system\.placement\.weights\.0"):
        sw.get(d, "system.placement.weights")


@pytest.mark.parametrize(
    "path, expected",
    [
        (
            "system.chip.tier.0.bandwidth_bytes_per_s",
            "did you mean system.chip.tiers.0.bandwidth_bytes_per_s",
        ),
        ("bandwidth_bytes_per_s", "did you mean system.chip.tiers.0.bandwidth_bytes_per_s"),
        ("workload.bach", "did you mean workload.batch"),
        ("compresion.weight_bits", "did you mean compression.weight_bits"),
        ("system.network.topology", "static switch, not a number"),
        ("system.chip.tiers.2.capacity_bytes", "has 1 entries: use an index 0..0"),
        ("system.placement.weights.0", "is None in this design"),
        ("system.network", "not a number but a group; pick one of system.network."),
    ],
)
def test_bad_paths_explain_and_suggest(design, path, expected):
    with pytest.raises(ValueError, match="path") as info:
        sw.get(design, path)
    assert expected in str(info.value)
    assert "\n" not in str(info.value)


# ----------------------------------------------------------------------------- spaces


def test_grid_is_c_order_and_log_spaced():
    space = sw.grid(sw.Axis("a.x", 1.0, 100.0, num=3, scale="log"), sw.Axis("a.y", values=[5, 6]))
    assert space.size == 6 and space.shape == (3, 2)
    np.testing.assert_allclose(space.values(), [[1, 5], [1, 6], [10, 5], [10, 6], [100, 5], [100, 6]])
    np.testing.assert_array_equal(space.values(2, 5), space.values()[2:5])


def test_random_points_do_not_depend_on_chunking():
    space = sw.random(
        sw.Axis("a.x", 1e-3, 1e3, scale="log"), sw.Axis("a.n", 1, 64, integer=True), sw.Axis("a.c", values=[2, 4]),
        n_points=1000, seed=3,
    )  # fmt: skip
    whole = space.values()
    np.testing.assert_array_equal(np.concatenate([space.values(0, 333), space.values(333, 1000)]), whole)
    assert whole[:, 0].min() >= 1e-3 and whole[:, 0].max() <= 1e3
    assert np.median(np.log10(whole[:, 0])) == pytest.approx(0.0, abs=0.3)  # log-uniform
    assert set(np.unique(whole[:, 1])) <= set(range(1, 65)) and set(np.unique(whole[:, 2])) == {2.0, 4.0}
    other = sw.random(*space.axes, n_points=1000, seed=4).values()
    assert not np.array_equal(other, whole)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(low=0.0, high=1.0, scale="log"), "use low > 0 or scale = linear"),
        (dict(low=2.0, high=1.0), "need finite low <= high"),
        (dict(low=1.0, high=2.0, scale="ln"), "use linear or log"),
        (dict(values=[]), "non-empty list"),
        (dict(low=1.0), "needs low and high"),
        (dict(low=1.0, high=2.0, num=0), "whole number >= 1"),
    ],
)
def test_bad_axes_say_how_to_fix(kwargs, message):
    with pytest.raises(ValueError, match=message):
        sw.Axis("workload.batch", **kwargs)


def test_bad_spaces_say_how_to_fix():
    with pytest.raises(ValueError, match="needs num"):
        sw.grid(sw.Axis("workload.batch", 1, 2))
    with pytest.raises(ValueError, match="whole number of points"):
        sw.random(sw.Axis("workload.batch", 1, 2), n_points=0)
    with pytest.raises(ValueError, match="appears twice"):
        sw.grid(sw.Axis("workload.batch", values=[1]), sw.Axis("workload.batch", values=[2]))


# ----------------------------------------------------------------------------- Pareto


def test_pareto_mask_matches_brute_force():
    rng = np.random.default_rng(0)
    costs = np.round(rng.random((400, 3)), 1)  # many ties and duplicates
    mask = sw.pareto_mask(costs)
    seen = set()
    for i, c in enumerate(costs):
        dominated = np.any(np.all(costs <= c, axis=1) & np.any(costs < c, axis=1))
        first_copy = tuple(c) not in seen
        seen.add(tuple(c))
        assert mask[i] == (not dominated and first_copy), i


# ----------------------------------------------------------------------------- evaluation


def test_sweep_values_equal_direct_evaluation(design, space):
    from hwgrad.cost import evaluate_jit

    cols = sw.run(design, space, batch_size=BATCH, chunk_size=32)
    direct = evaluate_jit  # shares its compiled program with the CLI tests
    for i in (0, 41, 95):
        d = design
        for p in space.paths:
            d = sw.with_value(d, p, float(cols[p][i]))
        r = direct(*(d[k] for k in sw.ROOTS))
        for m in sw.DEFAULT_METRICS:
            np.testing.assert_allclose(cols[m][i], getattr(r, m), rtol=2e-6, err_msg=m)


def test_chunked_equals_unchunked(design, space):
    whole = sw.run(design, space, batch_size=BATCH, chunk_size=10**6)
    chunked = sw.run(design, space, batch_size=BATCH, chunk_size=32)
    _equal(whole, chunked)
    np.testing.assert_array_equal(whole["point"], np.arange(space.size))
    np.testing.assert_array_equal(whole["workload.batch"], np.asarray(space.values()[:, 0], np.float32))
    pareto = sw.Pareto(minimize=("tpot_s", "usd_per_million_tokens"))
    front = sw.run(design, space, batch_size=BATCH, chunk_size=32, pareto=pareto)
    _equal(front, sw.run(design, space, batch_size=BATCH, chunk_size=10**6, pareto=pareto))
    # the streamed front is the front of all feasible points
    ok = whole["fits"] > 0
    mask = sw.pareto_mask(np.stack([whole["tpot_s"][ok], whole["usd_per_million_tokens"][ok]], axis=1))
    np.testing.assert_array_equal(front["point"], whole["point"][ok][mask])


SHARDED = textwrap.dedent(
    """
    import os, sys
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=8"
    import jax, numpy as np
    import hwgrad as hg
    from hwgrad import sweep as sw
    assert jax.device_count() == 8, jax.devices()
    d = sw.design(hg.presets.system("h100-sxm", 8), hg.presets.model("llama-3.1-70b"),
                  hg.Workload(batch=32.0, prompt_len=2048.0, output_len=512.0, tp=8.0), hg.compression("fp8", "fp8"))
    space = sw.random(sw.Axis("workload.batch", 1, 256, scale="log", integer=True),
                      sw.Axis("compression.weight_bits", 3, 16),
                      sw.Axis("system.chip.tiers.0.bandwidth_bytes_per_s", 1e12, 1e13, scale="log"),
                      n_points=200, seed=1)
    one = sw.run(d, space, devices=jax.devices()[:1], batch_size=16, chunk_size=128)
    eight = sw.run(d, space, devices=jax.devices(), batch_size=16, chunk_size=128)
    for k in one:
        assert np.array_equal(one[k], eight[k], equal_nan=True), k
    print("identical", len(one["point"]))
    """
)


def test_sharded_equals_unsharded_on_8_cpu_devices():
    # a fresh process: this one has already initialised jax with one CPU device
    env = dict(os.environ, HWGRAD_CACHE_DIR="")
    proc = subprocess.run(
        [sys.executable, "-c", SHARDED], capture_output=True, text=True, env=env, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "identical 200" in proc.stdout


# ----------------------------------------------------------------------------- files


def test_resumed_csv_equals_uninterrupted(design, space, tmp_path):
    kw = dict(batch_size=BATCH, chunk_size=32, progress=False)
    full = sw.run_to_file(design, space, tmp_path / "full.csv", **kw)
    assert full["complete"] and full["rows"] == space.size
    part = sw.run_to_file(design, space, tmp_path / "part.csv", stop_after_chunks=1, **kw)
    assert not part["complete"] and part["chunks_done"] == 1
    with open(tmp_path / "part.csv", "a") as fh:
        fh.write("33,17,4.2")  # a row torn by a crash
    rest = sw.run_to_file(design, space, tmp_path / "part.csv", resume=True, **kw)
    assert rest["chunks_skipped"] == 1 and rest["points"] == space.size - 32 and rest["complete"]
    assert filecmp.cmp(tmp_path / "full.csv", tmp_path / "part.csv", shallow=False)
    again = sw.run_to_file(design, space, tmp_path / "part.csv", resume=True, **kw)
    assert again["points"] == 0  # nothing recomputed
    header = (tmp_path / "full.csv").read_text().splitlines()[0]
    assert header == ",".join(["point", *space.paths, *sw.DEFAULT_METRICS])
    manifest = json.loads((tmp_path / "full.csv.manifest.json").read_text())
    assert manifest["chunks_done"] == manifest["n_chunks"] == 3


def test_resumed_pareto_equals_uninterrupted(design, space, tmp_path):
    kw = dict(
        batch_size=BATCH,
        chunk_size=32,
        progress=False,
        pareto=sw.Pareto(minimize=("tpot_s",), maximize=("tokens_per_s",)),
    )
    sw.run_to_file(design, space, tmp_path / "full.csv", **kw)
    sw.run_to_file(design, space, tmp_path / "part.csv", stop_after_chunks=2, **kw)
    sw.run_to_file(design, space, tmp_path / "part.csv", resume=True, **kw)
    assert filecmp.cmp(tmp_path / "full.csv", tmp_path / "part.csv", shallow=False)


def test_refuses_to_clobber_or_mix_sweeps(design, space, tmp_path):
    out = tmp_path / "s.csv"
    sw.run_to_file(design, space, out, batch_size=BATCH, chunk_size=32, progress=False, stop_after_chunks=1)
    with pytest.raises(ValueError, match="exists: pass --resume"):
        sw.run_to_file(design, space, out, batch_size=BATCH, chunk_size=32, progress=False)
    with pytest.raises(ValueError, match="different sweep"):
        sw.run_to_file(design, space, out, batch_size=BATCH, chunk_size=16, resume=True, progress=False)
    with pytest.raises(ValueError, match="end the name in .csv or .parquet"):
        sw.run_to_file(design, space, tmp_path / "s.txt")


def test_parquet_parts(design, space, tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    out = tmp_path / "s.parquet"
    sw.run_to_file(design, space, out, batch_size=BATCH, chunk_size=32, progress=False)
    table = pq.read_table(out)
    cols = sw.run(design, space, batch_size=BATCH, chunk_size=32)
    np.testing.assert_array_equal(table.column("tpot_s").to_numpy(), cols["tpot_s"])


# ----------------------------------------------------------------------------- sensitivity


KNOBS = (BW, "system.chip.peak_flops_fp8", "system.network.link_bandwidth_bytes_per_s", "compression.weight_bits",
         "system.chip.price_usd", "economics.pue")  # fmt: skip
SENS_METRICS = ("tpot_s", "ttft_s", "usd_per_million_tokens", "energy_j_per_token", "gco2e_per_token")


@pytest.mark.slow  # ~35 s; test_sensitivity_nan checks elasticities in the default suite
def test_elasticities_match_finite_differences(design, tmp_path, capsys):
    # through the CLI (JSON), smooth roofline so central differences are meaningful
    argv = ["sensitivity", "--weight-dtype", "fp8", "--kv-dtype", "fp8", "--roofline", "smooth", "--json"]
    argv += [a for k in KNOBS for a in ("--knob", k)] + [a for m in SENS_METRICS for a in ("--metric", m)]
    assert cli.main(argv) == 0
    report = json.loads(capsys.readouterr().out)

    h = 0.01  # relative step in log space; float32 rounding error ~1e-5 in the quotient
    x0 = np.array([sw.get(design, k) for k in KNOBS])
    pts = np.repeat(x0[None], 2 * len(KNOBS), axis=0)
    for j in range(len(KNOBS)):
        pts[2 * j, j] *= np.exp(h)
        pts[2 * j + 1, j] *= np.exp(-h)
    ev = sw.cached_evaluator(design, KNOBS, SENS_METRICS, options=SMOOTH, batch_size=BATCH)
    logm = np.log(ev(pts).astype(np.float64))
    fd = (logm[0::2] - logm[1::2]) / (2 * h)  # (knob, metric)
    for i, m in enumerate(SENS_METRICS):
        got = report[m]["elasticity"]
        for j, k in enumerate(KNOBS):
            np.testing.assert_allclose(got.get(k, 0.0), fd[j, i], atol=3e-3, rtol=2e-2, err_msg=f"{m} / {k}")
    # sorted by magnitude, largest first
    mags = [abs(e) for e in report["usd_per_million_tokens"]["elasticity"].values()]
    assert mags == sorted(mags, reverse=True)
    assert report["usd_per_million_tokens"]["elasticity"]["system.chip.price_usd"] > 0.3


def test_sensitivity_table_and_api(design):
    s = sw.sensitivity(
        design["system"], design["model"], design["workload"], design["compression"], design["efficiency"],
        design["economics"], knobs=KNOBS, metrics=SENS_METRICS, options=SMOOTH,
    )  # fmt: skip
    assert s.elasticity.shape == (len(SENS_METRICS), len(KNOBS))
    rows = s.rows("tpot_s")
    assert [abs(e) for *_, e in rows] == sorted((abs(e) for *_, e in rows), reverse=True)
    # operational carbon is proportional to PUE: elasticity of the operational share
    assert 0 < s.elasticity[SENS_METRICS.index("gco2e_per_token"), KNOBS.index("economics.pue")] <= 1 + 1e-4
    text = s.table(top=3)
    assert "tpot_s =" in text and "elasticity" in text
    with pytest.raises(ValueError, match="did you mean tpot_s"):
        s.rows("tpot")


# ----------------------------------------------------------------------------- CLI


def _write_config(tmp_path, axis_path=BW, extra=""):
    cfg = tmp_path / "sweep.toml"
    cfg.write_text(
        textwrap.dedent(
            f"""
            [design]
            weight_dtype = "fp8"
            kv_dtype = "fp8"

            [sweep]
            mode = "random"
            points = 96
            seed = 7
            chunk_size = 32
            batch_size = {BATCH}
            out = "out.csv"
            {extra}

            [[axis]]
            path = "workload.batch"
            low = 1
            high = 256
            scale = "log"
            integer = true

            [[axis]]
            path = "compression.weight_bits"
            low = 3
            high = 16

            [[axis]]
            path = "{axis_path}"
            low = 1e12
            high = 1e13
            scale = "log"
            """
        )
    )
    return cfg


def test_cli_sweep_writes_the_same_rows_as_the_api(design, space, tmp_path, capsys):
    cfg = _write_config(tmp_path)
    assert cli.main(["sweep", "--config", str(cfg), "--no-progress"]) == 0
    assert "96 rows in" in capsys.readouterr().out
    api = tmp_path / "api.csv"
    sw.run_to_file(design, space, api, batch_size=BATCH, chunk_size=32, progress=False)
    assert filecmp.cmp(api, tmp_path / "out.csv", shallow=False)
    assert cli.main(["sweep", "--config", str(cfg), "--no-progress"]) == 2
    assert "--resume" in capsys.readouterr().err
    assert cli.main(["sweep", "--config", str(cfg), "--no-progress", "--resume"]) == 0
    assert "already complete" in capsys.readouterr().out


@pytest.mark.parametrize(
    "axis_path, extra, message",
    [
        (
            "system.chip.tier.0.bandwidth_bytes_per_s",
            "",
            "did you mean system.chip.tiers.0.bandwidth_bytes_per_s",
        ),
        (BW, 'metrics = ["tpot"]', "metric 'tpot': unknown; did you mean tpot_s"),
        (BW, "chunk = 5", "[sweep].chunk: unknown field; did you mean chunk_size"),
        (BW, "feasible_only = 1", "[sweep].feasible_only = 1: expected true or false"),
    ],
)
def test_cli_sweep_errors_are_one_line(tmp_path, capsys, axis_path, extra, message):
    cfg = _write_config(tmp_path, axis_path, extra)
    assert cli.main(["sweep", "--config", str(cfg), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


# ----------------------------------------------------------------------------- multi-host


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_process_sweep_equals_single_process(tmp_path):
    """Two local CPU processes under jax.distributed (4 devices each) write the same file."""
    cfg = _write_config(tmp_path)
    port = _free_port()
    env = dict(os.environ, HWGRAD_CACHE_DIR="", XLA_FLAGS="--xla_force_host_platform_device_count=4")
    base = [sys.executable, "-m", "hwgrad.cli", "sweep", "--config", str(cfg), "--no-progress", "--out"]
    multi = [*base, str(tmp_path / "multi.csv"), "--coordinator", f"localhost:{port}", "--num-processes", "2"]
    procs = [
        subprocess.Popen(
            [*multi, "--process-id", str(i)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err[-3000:]
    assert "8 device(s)" in outs[0][0]
    single = subprocess.run(
        [*base, str(tmp_path / "single.csv")], env=env, capture_output=True, text=True, timeout=600
    )
    assert single.returncode == 0, single.stderr[-3000:]
    assert filecmp.cmp(tmp_path / "multi.csv", tmp_path / "single.csv", shallow=False)


GRADIENT_SHARDED = textwrap.dedent(
    """
    import os
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=4"
    import jax, numpy as np
    import hwgrad as hg
    from hwgrad import sweep as sw
    d = sw.design(hg.presets.system("h100-sxm", 8), hg.presets.model("llama-3.1-8b"),
                  hg.Workload(batch=8.0, prompt_len=512.0, output_len=128.0, tp=8.0), hg.compression("fp8", "fp8"))
    paths = ["system.chip.tiers.0.bandwidth_bytes_per_s", "workload.batch"]
    kw = dict(options=hg.Options(roofline="smooth"), batch_size=4)
    x = np.array([[2e12, 4.0], [3.35e12, 8.0], [8e12, 64.0], [5e12, 16.0], [1.5e12, 1.0]])
    one = sw.Evaluator(d, paths, ["tpot_s"], devices=jax.devices()[:1], gradient=True, **kw)(x)
    four = sw.Evaluator(d, paths, ["tpot_s"], devices=jax.devices(), gradient=True, **kw)(x)
    assert one.shape == (5, 1, 3), one.shape
    np.testing.assert_allclose(four, one, rtol=1e-12, atol=0)  # the same up to rounding (XLA fusion)
    fwd = sw.Evaluator(d, paths, ["tpot_s"], devices=jax.devices(), **kw)
    assert np.array_equal(fwd(x)[:, 0], one[:, 0, 0])
    h = 1e-3  # central differences of the smooth model, relative step
    for j in range(2):
        up, down = x.copy(), x.copy()
        up[:, j] *= 1 + h
        down[:, j] *= 1 - h
        fd = (fwd(up)[:, 0] - fwd(down)[:, 0]) / (2 * h * x[:, j])
        assert np.allclose(one[:, 0, 1 + j], fd, rtol=2e-2, atol=0), (j, one[:, 0, 1 + j], fd)
    assert np.all(one[:, 0, 1] < 0)  # more bandwidth, less time per token
    print("gradient sweep ok")
    """
)


@pytest.mark.slow
def test_gradient_sweep_sharded_matches_unsharded_and_finite_differences():
    env = dict(os.environ, HWGRAD_CACHE_DIR="", JAX_ENABLE_X64="1")
    proc = subprocess.run(
        [sys.executable, "-c", GRADIENT_SHARDED], capture_output=True, text=True, env=env, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "gradient sweep ok" in proc.stdout
