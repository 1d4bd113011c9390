"""State files cannot corrupt results (issue 18 item 4): sweep manifests and co-design
checkpoints carry checksums; a resume verifies them (and the file sizes and row counts) and
refuses, naming the file, instead of extending, mixing or silently accepting damaged state.
"""

from __future__ import annotations

import filecmp
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import hwgrad as hg
import hwgrad.codesign as cd
from hwgrad import cli
from hwgrad import sweep as sw
from hwgrad.files import json_with_checksum

BW = "system.chip.tiers.0.bandwidth_bytes_per_s"
BATCH = 16
KW = dict(batch_size=BATCH, chunk_size=32, progress=False)


@pytest.fixture(scope="module")
def design():
    args = cli.build_parser().parse_args(["eval", "--weight-dtype", "fp8", "--kv-dtype", "fp8"])
    return sw.design(*(cli.design_from_args(args)[r] for r in sw.ROOTS))


@pytest.fixture(scope="module")
def space():  # the same space as tests/test_sweep.py: one compiled program for both files
    return sw.random(
        sw.Axis("workload.batch", 1, 256, scale="log", integer=True),
        sw.Axis("compression.weight_bits", 3, 16),
        sw.Axis(BW, 1e12, 1e13, scale="log"),
        n_points=96,
        seed=7,
    )


@pytest.fixture()
def partial(design, space, tmp_path):
    """A sweep stopped after one of its three chunks, and the uninterrupted reference."""
    full = tmp_path / "full.csv"
    sw.run_to_file(design, space, full, **KW)
    out = tmp_path / "part.csv"
    sw.run_to_file(design, space, out, stop_after_chunks=1, **KW)
    return out, full


def _resume(design, space, out):
    return sw.run_to_file(design, space, out, resume=True, **KW)


def _manifest(out):
    return out.with_name(out.name + sw.MANIFEST_SUFFIX)


def test_a_truncated_csv_is_refused_never_extended(design, space, partial):
    out, _ = partial
    data = out.read_bytes()
    out.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated") as exc:
        _resume(design, space, out)
    assert str(out) in str(exc.value)
    assert out.read_bytes() == data[: len(data) // 2]  # untouched: no NUL bytes appended
    assert b"\0" not in out.read_bytes()


def test_a_torn_row_is_cut_and_the_result_is_identical(design, space, partial):
    out, full = partial
    with open(out, "a") as fh:
        fh.write("33,17,4.2")
    assert _resume(design, space, out)["complete"]
    assert filecmp.cmp(out, full, shallow=False)


def test_an_edited_csv_fails_its_checksum(design, space, partial):
    out, _ = partial
    data = bytearray(out.read_bytes())
    i = data.rindex(b"e-") - 3  # a digit of the last row's metrics
    data[i] = ord("7") if data[i] != ord("7") else ord("8")
    out.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="checksum"):
        _resume(design, space, out)


def test_an_edited_manifest_fails_its_checksum(design, space, partial):
    out, _ = partial
    m = json.loads(_manifest(out).read_text())
    m["chunks_done"] = 2
    _manifest(out).write_text(json.dumps(m))
    with pytest.raises(ValueError, match="fails its checksum"):
        _resume(design, space, out)


@pytest.mark.parametrize(
    "content, needle",
    [
        (b"", "not valid JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b"\xff\xfe{", "not valid JSON"),
        (b'{"fingerprint": "x"}', "no checksum"),
        (b"{" * 100000, "not valid JSON"),
    ],
)
def test_damaged_manifests_are_refused_naming_the_file(design, space, partial, content, needle):
    out, _ = partial
    _manifest(out).write_bytes(content)
    with pytest.raises(ValueError, match=needle) as exc:
        _resume(design, space, out)
    assert str(_manifest(out)) in str(exc.value)


@pytest.mark.parametrize(
    "change, needle",
    [
        (lambda m: m.pop("bytes"), "bytes"),
        (lambda m: m.update(bytes=-1), "bytes = -1"),
        (lambda m: m.update(rows="12"), "rows"),
        (lambda m: m.update(chunks_done=99), "chunks_done"),
        (lambda m: m.update(rows=m["rows"] + 1), "rows"),
        (lambda m: m.update(columns=["point"]), "columns"),
    ],
)
def test_inconsistent_manifests_with_a_valid_checksum_are_refused(design, space, partial, change, needle):
    out, _ = partial
    m = json.loads(_manifest(out).read_text())
    change(m)
    _manifest(out).write_bytes(json_with_checksum(m))
    with pytest.raises(ValueError, match=needle):
        _resume(design, space, out)


def test_a_missing_output_is_refused(design, space, partial):
    out, _ = partial
    out.unlink()
    with pytest.raises(ValueError, match="missing"):
        _resume(design, space, out)


def test_force_replaces_its_own_output_only(design, space, partial, tmp_path):
    out, full = partial
    sw.run_to_file(design, space, out, overwrite=True, **KW)  # has a manifest: replaced
    assert filecmp.cmp(out, full, shallow=False)
    foreign = tmp_path / "foreign.csv"
    foreign.write_text("not ours\n")
    with pytest.raises(ValueError, match="did not write it"):
        sw.run_to_file(design, space, foreign, overwrite=True, **KW)
    assert foreign.read_text() == "not ours\n"
    tree = tmp_path / "tree.csv"
    (tree / "inner").mkdir(parents=True)
    with pytest.raises(ValueError, match="did not write it"):
        sw.run_to_file(design, space, tree, overwrite=True, **KW)
    assert (tree / "inner").is_dir()


def test_config_out_is_relative_to_the_config_and_cannot_escape(design, tmp_path, capsys):
    sub = tmp_path / "a"
    sub.mkdir()
    body = textwrap.dedent(
        """
        [design]
        weight_dtype = "fp8"
        kv_dtype = "fp8"
        [sweep]
        out = "{out}"
        [[axis]]
        path = "workload.batch"
        values = [1]
        """
    )
    (sub / "in.toml").write_text(body.format(out="r.csv"))
    assert sw.load_config(sub / "in.toml")["out"] == str((sub / "r.csv").resolve())
    (sub / "esc.toml").write_text(body.format(out="../../r.csv"))
    cfg = sw.load_config(sub / "esc.toml")
    assert not cfg["out_inside"]
    assert cli.main(["sweep", "--config", str(sub / "esc.toml"), "--no-progress"]) == 2
    assert "outside the config's directory" in capsys.readouterr().err
    assert not (tmp_path.parent / "r.csv").exists()


# ----------------------------------------------------------------------------- co-design checkpoints


def _toy_problem():
    specs = dict(
        system=hg.presets.system("h100-sxm", 8),
        model=hg.presets.model("llama-3.1-8b"),
        workload=hg.Workload(batch=8.0, prompt_len=256.0, output_len=64.0, tp=8.0),
        compression=hg.compression("fp8", "fp8"),
    )

    def metric_fn(m, values):
        a = values["workload.microbatches"]
        return {"tpot_s": a + 4.0 / a, "power_w": a}

    var = cd.Variable("workload.microbatches", 0.5, 20.0)
    return cd.Problem(specs, [var], "tpot_s", [cd.Constraint("power_w", lower=3.0)], metric_fn=metric_fn,
                      model_metrics=False)  # fmt: skip


@pytest.fixture(scope="module")
def toy():
    p = _toy_problem()
    return p, cd.optimize(p, steps=200, starts=2, inner_steps=50)


def _checkpoint(p, tmp_path, steps=200):
    ck = tmp_path / "ck.npz"
    cd.optimize(p, steps=steps, starts=2, inner_steps=50, checkpoint=ck, checkpoint_every=50)
    return ck


def _resume_toy(p, ck):
    return cd.optimize(p, steps=200, starts=2, inner_steps=50, checkpoint=ck, resume=True)


def test_checkpoint_resume_is_exact_and_carries_a_checksum(toy, tmp_path):
    p, full = toy
    ck = tmp_path / "ck.npz"
    cd.optimize(p, steps=200, starts=2, inner_steps=50, checkpoint=ck, checkpoint_every=50)
    with np.load(ck) as data:
        assert "checksum" in data.files and len(str(data["checksum"])) == 64
    resumed = _resume_toy(p, ck)
    np.testing.assert_array_equal(np.asarray(resumed.z), np.asarray(full.z))


@pytest.mark.parametrize("damage", ["empty", "truncated", "garbage", "directory"])
def test_damaged_checkpoints_are_refused(toy, tmp_path, damage):
    p, _ = toy
    ck = tmp_path / "ck.npz"
    if damage == "directory":
        ck.mkdir()
    else:
        data = _checkpoint(p, tmp_path).read_bytes()
        ck.write_bytes(
            {"empty": b"", "truncated": data[: len(data) // 2], "garbage": b"PK\x03\x04" + b"x" * 64}[damage]
        )
    with pytest.raises(ValueError) as exc:
        _resume_toy(p, ck)
    msg = str(exc.value)
    assert str(ck) in msg and "\n" not in msg and "allow_pickle" not in msg


def _rewrite(ck, change, keep_checksum=True):
    with np.load(ck) as data:
        arrays = {k: data[k] for k in data.files}
    change(arrays)
    if not keep_checksum:
        arrays.pop("checksum", None)
    np.savez(ck, **arrays)


@pytest.mark.parametrize(
    "change, keep, needle",
    [
        (lambda a: a.update(chunks_done=np.asarray(1)), True, "fails its checksum"),  # edited chunks_done
        (lambda a: a.update(z=a["z"] + 1.0), True, "fails its checksum"),
        (lambda a: a.pop("z"), True, "lacks z"),
        (lambda a: None, False, "lacks checksum"),
        (lambda a: a.update(fingerprint=np.asarray("other")), True, "checksum"),
    ],
)
def test_edited_checkpoints_are_refused(toy, tmp_path, change, keep, needle):
    p, _ = toy
    ck = _checkpoint(p, tmp_path)
    _rewrite(ck, change, keep)
    with pytest.raises(ValueError, match=needle):
        _resume_toy(p, ck)


def test_a_checkpoint_with_a_recomputed_checksum_but_wrong_shapes_is_refused(toy, tmp_path):
    p, _ = toy
    ck = _checkpoint(p, tmp_path)

    def change(a):
        a.pop("checksum")
        a["trajectory"] = a["trajectory"][:10]
        a["checksum"] = np.asarray(cd._checkpoint_digest(a))

    _rewrite(ck, change)
    with pytest.raises(ValueError, match="trajectory"):
        _resume_toy(p, ck)


def test_a_pickled_checkpoint_is_refused_without_numpy_advice(toy, tmp_path):
    p, _ = toy
    ck = tmp_path / "ck.npz"
    np.savez(ck, z=np.array([object()], dtype=object))
    with pytest.raises(ValueError) as exc:
        _resume_toy(p, ck)
    assert "allow_pickle" not in str(exc.value) and str(ck) in str(exc.value)


# ----------------------------------------------------------------------------- kill -9


@pytest.mark.slow
def test_kill_9_during_a_sweep_then_resume_is_identical(tmp_path):
    cfg = tmp_path / "sweep.toml"
    cfg.write_text(
        textwrap.dedent(
            f"""
            [design]
            weight_dtype = "fp8"
            [sweep]
            mode = "random"
            points = 4096
            chunk_size = 256
            batch_size = {BATCH}
            [[axis]]
            path = "workload.batch"
            low = 1
            high = 256
            integer = true
            [[axis]]
            path = "{BW}"
            low = 1e12
            high = 1e13
            """
        )
    )
    env = dict(os.environ, HWGRAD_CACHE_DIR="", XLA_FLAGS="--xla_force_host_platform_device_count=1")
    base = [sys.executable, "-m", "hwgrad.cli", "sweep", "--config", str(cfg), "--no-progress", "--out"]
    ref = subprocess.run(
        [*base, str(tmp_path / "ref.csv")], env=env, capture_output=True, text=True, timeout=900
    )
    assert ref.returncode == 0, ref.stderr[-2000:]
    out = tmp_path / "killed.csv"
    manifest = out.with_name(out.name + sw.MANIFEST_SUFFIX)
    for kill_at in (1, 5, 11):
        proc = subprocess.Popen([*base, str(out), "--resume"], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)  # fmt: skip
        deadline = time.time() + 600
        while time.time() < deadline and proc.poll() is None:
            try:
                done = json.loads(manifest.read_text()).get("chunks_done", 0)
            except (OSError, ValueError):
                done = 0
            if done >= kill_at:
                break
            time.sleep(0.01)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.communicate()
    fin = subprocess.run([*base, str(out), "--resume"], env=env, capture_output=True, text=True, timeout=900)
    assert fin.returncode == 0, fin.stderr[-2000:]
    assert filecmp.cmp(out, tmp_path / "ref.csv", shallow=False)
