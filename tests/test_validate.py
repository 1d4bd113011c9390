"""validate(): each class of bad value gets a message naming the field, the value and the fix."""

import jax.numpy as jnp
import pytest

import hwgrad as hg


def _ok():
    return (
        hg.presets.system("h100-sxm", 8),
        hg.presets.model("llama-3.1-70b"),
        hg.Workload(batch=8.0, tp=8.0),
        hg.compression("fp8"),
    )


def test_valid_point_passes():
    hg.validate(*_ok())


@pytest.mark.parametrize(
    "change,needle",
    [
        (lambda s, m, w, c: (s, m, hg.replace(w, batch=float("nan")), c), "workload.batch is NaN"),
        (lambda s, m, w, c: (s, m, hg.replace(w, batch=-4.0), c), "workload.batch = -4: must be > 0"),
        (lambda s, m, w, c: (s, m, hg.replace(w, batch=2.5), c), "whole number"),
        (lambda s, m, w, c: (s, m, w, hg.replace(c, weight_bits=0.5)), "compression.weight_bits = 0.5"),
        (lambda s, m, w, c: (s, m, w, hg.replace(c, sparsity=1.2)), "must lie in [0, 1)"),
        (lambda s, m, w, c: (s, m, w, hg.replace(c, pattern="3:4")), "use one of dense, unstructured, 2:4"),
        (lambda s, m, w, c: (hg.replace(s, n_chips=16.0), m, w, c), "system.n_chips = 16 but tp x pp x dp"),
        (lambda s, m, w, c: (s, hg.replace(m, n_kv_heads=7.0), w, c), "must divide n_heads"),
        (
            lambda s, m, w, c: (hg.replace(s, network=hg.replace(s.network, topology="mesh")), m, w, c),
            "topology = 'mesh'",
        ),
        (
            lambda s, m, w, c: (
                hg.replace(
                    s, chip=hg.replace(s.chip, tiers=(hg.replace(s.chip.tiers[0], capacity_bytes=-1.0),))
                ),
                m,
                w,
                c,
            ),
            "capacity_bytes = -1",
        ),
    ],
)
def test_bad_values(change, needle):
    with pytest.raises(ValueError, match=None) as exc:
        hg.validate(*change(*_ok()))
    assert needle in str(exc.value)


def test_placement_must_sum_to_one_and_keep_kv_off_flash():
    s, m, w, c = _ok()
    hbf = hg.presets.memory_tier("hbf")
    chip = hg.replace(s.chip, tiers=(s.chip.tiers[0], hbf))
    bad_sum = hg.Placement(
        weights=jnp.array([0.5, 0.4]), kv_cache=jnp.array([1.0, 0.0]), activations=jnp.array([1.0, 0.0])
    )
    with pytest.raises(ValueError, match="sum to 1"):
        hg.validate(hg.replace(s, chip=chip, placement=bad_sum), m, w, c)
    kv_on_flash = hg.Placement(
        weights=jnp.array([0.5, 0.5]), kv_cache=jnp.array([0.9, 0.1]), activations=jnp.array([1.0, 0.0])
    )
    with pytest.raises(ValueError, match="low write endurance"):
        hg.validate(hg.replace(s, chip=chip, placement=kv_on_flash), m, w, c)
    fine = hg.Placement(
        weights=jnp.array([0.5, 0.5]), kv_cache=jnp.array([1.0, 0.0]), activations=jnp.array([1.0, 0.0])
    )
    hg.validate(hg.replace(s, chip=chip, placement=fine), m, w, c)
