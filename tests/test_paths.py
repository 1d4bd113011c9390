"""The design-path layer: one naming of every number, groups, globs and suggestions."""

import jax
import jax.numpy as jnp
import pytest

import hwgrad as hg
from hwgrad import paths, presets


@pytest.fixture(scope="module")
def design():
    return {
        "system": presets.system("h100-sxm", 8),
        "model": presets.model("llama-3.1-8b"),
        "workload": hg.Workload(batch=8.0, prompt_len=512.0, output_len=128.0, tp=8.0),
        "compression": hg.compression("fp8"),
    }


def test_read_and_replace_a_leaf(design):
    p = "system.chip.tiers.0.bandwidth_bytes_per_s"
    bw = float(paths.get(design, p))
    assert bw == float(design["system"].chip.tiers[0].bandwidth_bytes_per_s)
    new = paths.replace(design, p, 2 * bw)
    assert float(paths.get(new, p)) == 2 * bw
    assert float(paths.get(design, p)) == bw  # the original is untouched


def test_replace_is_traceable(design):
    p = "workload.batch"

    def f(b):
        return paths.get(paths.replace(design, p, b), p) * 3.0

    assert float(jax.grad(f)(jnp.float32(4.0))) == 3.0


def test_groups_and_globs(design):
    group = paths.expand(design, "system.chip.tiers.0")
    assert "system.chip.tiers.0.bandwidth_bytes_per_s" in group and len(group) > 3
    assert all(g.startswith("system.chip.tiers.0.") for g in group)
    glob = paths.expand(design, "system.chip.*_efficiency")
    assert glob and all(g.startswith("system.chip.") and g.endswith("_efficiency") for g in glob)
    deep = paths.expand(design, "**.bandwidth_bytes_per_s")
    assert "system.chip.tiers.0.bandwidth_bytes_per_s" in deep


def test_whole_sub_spec_replaced(design):
    chip = presets.chip("h200-sxm")
    new = paths.replace(design, "system.chip", chip)
    assert new["system"].chip == chip


@pytest.mark.parametrize(
    "path, message",
    [
        ("system.chip.tiers.0.bandwith_bytes_per_s", r"did you mean .*tiers\.0\.bandwidth_bytes_per_s"),
        ("workload.batching", "static switch"),
        ("system.chip.tiers.9.capacity_bytes", "use an index 0"),
        ("system.chip.tiers.0", "group"),
    ],
)
def test_bad_paths_explain(design, path, message):
    with pytest.raises(ValueError, match=message):
        paths.get(design, path)


def test_a_glob_that_matches_nothing_says_so(design):
    with pytest.raises(ValueError, match="matches no number"):
        paths.expand(design, "system.chip.*_bandwith")
