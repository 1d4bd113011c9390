"""Alpha-beta collectives: closed forms, limits, real fabrics and the measured anchors."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import hwgrad as hg
from hwgrad import network
from hwgrad.specs import IB_NDR

NET = hg.Network(link_bandwidth_bytes_per_s=450e9, hop_latency_s=300e-9, endpoint_overhead_s=2.7e-6)
KB, MB = 1024, 1024 * 1024
IDX = {a: i for i, a in enumerate(network.ALGORITHMS)}
H100 = hg.presets.network("h100-sxm")
MI300X = hg.presets.network("mi300x")


def _us(x):
    return float(x) * 1e6


def test_single_chip_collectives_are_free():
    assert float(network.allreduce_s(NET, 1e6, 1.0)) == 0.0
    assert float(network.alltoall_s(NET, 1e6, 1.0)) == 0.0
    assert float(network.allreduce_s(H100, 1e6, 1.0, implementation="vllm-custom", scaleout=IB_NDR)) == 0.0


def test_closed_forms_of_every_algorithm():
    h, e, bw, n, p = 300e-9, 2.7e-6, 450e9, 1e6, 8.0
    alpha = 2 * h + e
    sig = 2 * h + 7 * e
    t = [float(x) for x in network.allreduce_algorithms_s(NET, n, p)]
    assert t[IDX["ring"]] == pytest.approx(14 * alpha + 2 * 7 / 8 * n / bw)
    assert t[IDX["tree"]] == pytest.approx(6 * alpha + 2 * n / bw)
    assert math.isinf(t[IDX["in_network"]])  # this switch does not reduce
    assert t[IDX["one_shot"]] == pytest.approx(sig + 7 * n / bw)
    assert t[IDX["two_shot"]] == pytest.approx(3 * sig + 2 * 7 / 8 * n / bw)
    nvls = hg.replace(NET, in_network_reduction=True, in_network_bandwidth_bytes_per_s=200e9)
    t_in = float(network.allreduce_algorithms_s(nvls, n, p)[IDX["in_network"]])
    assert t_in == pytest.approx(sig + 2 * (h + e) + n / 200e9)
    # a ring or torus has no one-hop path to every peer: no one-/two-shot
    ring = network.allreduce_algorithms_s(hg.replace(NET, topology="ring"), n, p)
    assert math.isinf(float(ring[IDX["one_shot"]])) and math.isinf(float(ring[IDX["two_shot"]]))
    # the cheapest is taken: latency-bound small messages go one-shot (19.5 us, the tree
    # 19.8 us), bandwidth-bound large ones the ring
    small = network.allreduce_algorithms_s(NET, 1e3, p)
    assert int(jnp.argmin(small)) == IDX["one_shot"]
    assert float(network.allreduce_s(NET, 1e3, p)) == pytest.approx(float(jnp.min(small)))
    assert float(network.allreduce_s(NET, 1e9, p)) == pytest.approx(
        float(network.allreduce_algorithms_s(NET, 1e9, p)[IDX["ring"]])
    )


def test_implementation_sets_algorithms_fractions_and_sync():
    n, p = 64 * KB, 8.0
    ideal = network.allreduce_algorithms_s(H100, n, p)
    nccl = network.allreduce_algorithms_s(H100, n, p, "nccl")
    custom = network.allreduce_algorithms_s(H100, n, p, "custom-oneshot")
    assert math.isinf(float(nccl[IDX["one_shot"]])) and math.isinf(float(custom[IDX["ring"]]))
    impl = network.COLLECTIVE_IMPLEMENTATIONS["custom-oneshot"]
    f = impl.bandwidth_fraction["one_shot"]
    sig = float(network.signal_s(H100, p))
    assert float(custom[IDX["one_shot"]]) == pytest.approx(impl.sync_s + sig + 7 * n / (f * 450e9), rel=1e-5)
    assert float(ideal[IDX["one_shot"]]) == pytest.approx(sig + 7 * n / 450e9, rel=1e-5)
    # an explicit software latency replaces the table's, for every algorithm alike
    t0 = network.allreduce_algorithms_s(H100, n, p, "custom-oneshot", sync_s=0.0)
    t5 = network.allreduce_algorithms_s(H100, n, p, "custom-oneshot", sync_s=5e-6)
    ok = np.isfinite(np.asarray(t0))
    np.testing.assert_allclose(np.asarray(t5)[ok] - np.asarray(t0)[ok], 5e-6, rtol=1e-4)
    assert float(network.allreduce_s(H100, n, p, sync_s=5e-6)) > float(network.allreduce_s(H100, n, p))
    with pytest.raises(ValueError, match="unknown; use one of"):
        network.allreduce_s(H100, n, p, implementation="mpich")


def test_every_implementation_cites_a_measured_row():
    rows = hg.presets.table("interconnect")
    for name, impl in network.COLLECTIVE_IMPLEMENTATIONS.items():
        assert impl.sync_s >= 0 and all(0 < f <= 1 for f in impl.bandwidth_fraction.values())
        assert set(impl.bandwidth_fraction) <= set(network.ALGORITHMS)
        if name != "ideal":
            cited = [r for r in rows if r in impl.source]
            assert cited and all(rows[r]["measured"] == "1" for r in cited), name


# measured rows of interconnect.csv: (implementation, fabric, p, [(bytes, us)])
ROWS = {
    "custom-allreduce-8xh100-small": (
        "custom-oneshot",
        "h100-sxm",
        8,
        [(512, 5.9), (4 * KB, 5.7), (32 * KB, 7.8), (256 * KB, 16.7), (512 * KB, 22.1), (MB, 33.8)],
    ),
    "vllm-custom-allreduce-8xh100-small": (
        "vllm-custom",
        "h100-sxm",
        8,
        [(512, 10.1), (4 * KB, 9.3), (32 * KB, 11.8), (256 * KB, 24.1), (512 * KB, 30.4), (MB, 45.0)],
    ),
    "quick-allreduce-4xmi300x-small": (
        "rocm-custom",
        "mi300x",
        4,
        [(2 * KB, 7.18), (16 * KB, 7.26), (32 * KB, 7.58), (256 * KB, 14.39), (MB, 22.91), (8 * MB, 118.3)],
    ),
}
POINTS = [(row, n, t) for row, (_, _, _, table) in ROWS.items() for n, t in table]
GROUP_SIZES = [
    ("custom-allreduce-8xh100-small", 2, 3.9),
    ("custom-allreduce-8xh100-small", 4, 3.7),
    ("vllm-custom-allreduce-8xh100-small", 2, 8.8),
    ("vllm-custom-allreduce-8xh100-small", 4, 8.5),
]


@pytest.mark.parametrize("row,n_bytes,measured_us", POINTS)
def test_measured_allreduce_latency_within_15_percent(row, n_bytes, measured_us):
    impl, hw, p, _ = ROWS[row]
    assert row in network.COLLECTIVE_IMPLEMENTATIONS[impl].source
    got = _us(
        network.allreduce_s(hg.presets.network(hw), float(n_bytes), float(p), "hard", implementation=impl)
    )
    assert got == pytest.approx(measured_us, rel=0.15)


@pytest.mark.parametrize("row,p,measured_us", GROUP_SIZES)
def test_measured_allreduce_group_size_within_15_percent(row, p, measured_us):
    impl, hw, _, _ = ROWS[row]
    got = _us(network.allreduce_s(hg.presets.network(hw), 4.0 * KB, float(p), "hard", implementation=impl))
    assert got == pytest.approx(measured_us, rel=0.15)


def test_stored_latency_column_is_the_4kb_or_2kb_point():
    rows = hg.presets.table("interconnect")
    for row, (_, _, _, table) in ROWS.items():
        stored = table[0] if row.startswith("quick") else table[1]  # 2 KB resp. 4 KB
        assert float(rows[row]["latency_us"]) == pytest.approx(stored[1], abs=0.05)


def test_custom_allreduce_switches_from_one_shot_to_two_shot_near_256_kb():
    small = network.allreduce_algorithms_s(H100, 32.0 * KB, 8.0, "vllm-custom")
    large = network.allreduce_algorithms_s(H100, 1.0 * MB, 8.0, "vllm-custom")
    assert int(jnp.argmin(small)) == IDX["one_shot"]
    assert int(jnp.argmin(large)) == IDX["two_shot"]


def test_nvls_small_message_on_two_h100():
    row = hg.presets.table("interconnect")["nccl-allreduce-2xh100-nvls-small"]
    t = network.allreduce_algorithms_s(H100, 8.0, 2.0, "nccl")
    assert _us(t[IDX["in_network"]]) == pytest.approx(float(row["latency_us"]), rel=0.15)
    assert _us(network.allreduce_s(H100, 8.0, 2.0, "hard", implementation="nccl")) == pytest.approx(
        float(row["latency_us"]), rel=0.15
    )


@pytest.mark.parametrize(
    "row,algorithm", [("nccl-allreduce-8xh100-ring", "ring"), ("nccl-allreduce-8xh100-nvls", "in_network")]
)
def test_large_message_bus_bandwidth(row, algorithm):
    measured = float(hg.presets.table("interconnect")[row]["measured_busbw_GBps"])
    n, p = 2.0**30, 8.0
    t = float(network.allreduce_algorithms_s(H100, n, p, "nccl")[IDX[algorithm]])
    busbw = 2 * (p - 1) / p * n / t / 1e9  # nccl-tests' bus bandwidth
    assert busbw == pytest.approx(measured, rel=0.02)
    # at large messages NCCL picks NVLS, the faster of the two
    assert float(network.allreduce_s(H100, n, p, "hard", implementation="nccl")) == pytest.approx(
        float(network.allreduce_algorithms_s(H100, n, p, "nccl")[IDX["in_network"]])
    )


@pytest.mark.parametrize(
    "name,topology,dims,domain,nvls,bw_gbps",
    [
        ("h100-sxm", "switch", None, 8, True, 450),
        ("h200-sxm", "switch", None, 8, True, 450),
        ("b200", "switch", None, 8, True, 900),
        ("gb200", "switch", None, 72, True, 900),
        ("a100-80gb-sxm", "switch", None, 8, False, 300),
        ("mi300x", "fully_connected", None, 8, False, 448),
        ("mi325x", "fully_connected", None, 8, False, 448),
        ("mi355x", "fully_connected", None, 8, False, 448),
        ("gaudi2", "fully_connected", None, 8, False, 300),
        ("gaudi3", "fully_connected", None, 8, False, 600),
        ("tpu-v4", "torus", 3, 4096, False, 1.1e6 / 4096),
        ("tpu-v5e", "torus", 2, 256, False, 200),
        ("tpu-v5p", "torus", 3, 8960, False, 600),
        ("tpu-v6e", "torus", 2, 256, False, 400),
        ("tpu-v7", "torus", 3, 9216, False, 600),
        ("rtx-4090", "switch", None, math.inf, False, 64),
        ("h100-pcie", "switch", None, math.inf, False, 64),
    ],
)
def test_preset_fabrics(name, topology, dims, domain, nvls, bw_gbps):
    net = hg.presets.network(name)
    assert net.topology == topology
    if dims is not None:
        assert net.torus_dims == dims
    assert float(net.domain_size) == domain
    assert net.in_network_reduction is nvls
    assert float(net.link_bandwidth_bytes_per_s) == pytest.approx(bw_gbps * 1e9)
    if nvls:
        # 480 GB/s NVLS bus bandwidth on 8x H100 -> 274 GB/s per port of reduction
        assert float(net.in_network_bandwidth_bytes_per_s) / float(
            net.link_bandwidth_bytes_per_s
        ) == pytest.approx(480 / 1.75 / 450)
    assert isinstance(hg.presets.network_notes(name), tuple)


def test_full_mesh_reaches_each_peer_over_a_seventh_of_the_links():
    # MI300X: 448 GB/s over 7 peers -> 64 GB/s to one peer, all of it to all seven
    assert float(network.peer_bandwidth(MI300X, 2.0)) == pytest.approx(448e9 / 7)
    assert float(network.peer_bandwidth(MI300X, 8.0)) == pytest.approx(448e9)
    n = 64.0 * MB  # bandwidth-bound: TP2 one-shot reads n over one 64 GB/s link
    t2 = float(network.allreduce_algorithms_s(MI300X, n, 2.0)[IDX["one_shot"]])
    assert t2 == pytest.approx(n / 64e9, rel=1e-2)
    assert float(network.allreduce_algorithms_s(H100, n, 2.0)[IDX["one_shot"]]) == pytest.approx(
        n / 450e9, rel=1e-2
    )


def test_scaleout_preset_matches_the_spec_default():
    assert hg.presets.scaleout("ib-ndr") == IB_NDR
    assert hg.presets.system("h100-sxm", 8, fitted=False).scaleout == IB_NDR
    xdr = hg.presets.scaleout("ib-xdr")
    assert float(xdr.link_bandwidth_bytes_per_s) == 100e9
    assert float(hg.presets.scaleout(levels=3).domain_size) == 64**3 / 4


def test_tp32_on_h100_is_not_priced_at_nvlink_speed():
    n, out = 1.0 * MB, IB_NDR
    flat = float(network.allreduce_s(H100, n, 32.0, "hard"))
    hier = float(network.allreduce_s(H100, n, 32.0, "hard", scaleout=out))
    assert hier > flat
    # hierarchical closed form: intra reduce-scatter + inter all-reduce of n/8 + intra all-gather
    rs = float(network.reduce_scatter_s(H100, n, 8.0, "hard", sync_s=0.0))
    inter = float(network.allreduce_s(out, n / 8, 4.0, "hard"))
    assert hier == pytest.approx(2 * rs + inter, rel=1e-5)
    # the scale-out bandwidth matters beyond the domain only
    slow = hg.replace(out, link_bandwidth_bytes_per_s=25e9)
    assert float(network.allreduce_s(H100, n, 32.0, "hard", scaleout=slow)) > hier
    assert float(network.allreduce_s(H100, n, 8.0, "hard", scaleout=slow)) == float(
        network.allreduce_s(H100, n, 8.0, "hard")
    )


def test_tp32_decode_communication_pays_the_scale_out_network():
    m = hg.presets.model("llama-3.1-70b")
    sol = hg.Efficiency.speed_of_light()
    c = hg.compression("bf16")
    s = hg.presets.system("h100-sxm", 32, fitted=False)
    wl = hg.Workload(batch=8.0, prompt_len=512.0, output_len=16.0, tp=32.0)
    base = float(hg.decode_step(s, m, wl, c, sol).communication_s)
    slow = hg.replace(s, scaleout=hg.replace(s.scaleout, link_bandwidth_bytes_per_s=5e9))
    assert float(hg.decode_step(slow, m, wl, c, sol).communication_s) > base
    # TP8 stays inside the NVLink domain
    s8 = hg.presets.system("h100-sxm", 8, fitted=False)
    wl8 = hg.replace(wl, tp=8.0)
    slow8 = hg.replace(s8, scaleout=hg.replace(s8.scaleout, link_bandwidth_bytes_per_s=5e9))
    assert float(hg.decode_step(slow8, m, wl8, c, sol).communication_s) == float(
        hg.decode_step(s8, m, wl8, c, sol).communication_s
    )


def test_allreduce_payload_is_bf16_whatever_the_activation_width():
    m = hg.presets.model("llama-3.1-70b")
    sol = hg.Efficiency.speed_of_light()
    s = hg.presets.system("h100-sxm", 8, fitted=False)
    wl = hg.Workload(batch=64.0, prompt_len=512.0, output_len=16.0, tp=8.0)
    fp8 = hg.decode_step(s, m, wl, hg.compression("fp8", "fp8", "fp8"), sol)
    bf16 = hg.decode_step(s, m, wl, hg.compression("fp8", "fp8", "bf16"), sol)
    assert float(fp8.communication_s) == pytest.approx(float(bf16.communication_s), rel=1e-6)
    assert float(fp8.link_bytes) == pytest.approx(float(bf16.link_bytes), rel=1e-6)
    assert float(network.comm_payload_bytes(8192.0, 8.0)) == 16384.0


def test_pipeline_sends_across_domains_use_the_scale_out_network():
    n = 1.0 * MB
    inside = float(network.p2p_s(H100, n))
    outside = float(network.p2p_s(IB_NDR, n))
    # tp 4 x pp 4 = 16 chips: stages 0-1 and 2-3 share a domain, the 1-2 boundary crosses
    got = float(network.pipeline_p2p_s(H100, n, 4.0, 4.0, IB_NDR))
    assert got == pytest.approx(2 * inside + outside, rel=1e-6)
    assert float(network.pipeline_p2p_s(H100, n, 4.0, 4.0)) == pytest.approx(3 * inside, rel=1e-6)
    assert float(network.pipeline_p2p_s(H100, n, 2.0, 4.0, IB_NDR)) == pytest.approx(3 * inside, rel=1e-6)


def test_alltoall_across_domains_sends_the_remote_share_through_the_nic():
    n, p = 8.0 * MB, 16.0
    got = float(network.alltoall_s(H100, n, p, IB_NDR))
    inside = float(network.alltoall_s(H100, n / 2, 8.0))
    away = float(network.alpha_s(IB_NDR, 2.0)) + n / 2 / 50e9
    assert got == pytest.approx(inside + away, rel=1e-5)


def test_validation_rejects_a_group_larger_than_the_scale_out_network():
    m = hg.presets.model("llama-3.1-70b")
    s = hg.replace(hg.presets.system("h100-sxm", 64, fitted=False), scaleout=hg.replace(IB_NDR, domain_size=32.0))
    wl = hg.Workload(tp=64.0)
    with pytest.raises(
        ValueError, match=r"^workload\.tp = 64: larger than the 32 chips .*domain_size"
    ) as err:
        hg.validate(s, m, wl, hg.Compression())
    assert "\n" not in str(err.value)
    ok = hg.replace(s, scaleout=IB_NDR)
    hg.validate(ok, m, wl, hg.Compression())
    bad = hg.replace(s, network=hg.replace(s.network, domain_size=2.5))
    with pytest.raises(ValueError, match=r"system\.network\.domain_size = 2\.5"):
        hg.validate(bad, m, wl, hg.Compression())


def test_tpu_slices_that_are_not_cubes_validate():
    s = hg.presets.system("tpu-v5e", 8, fitted=False)
    hg.validate(s, hg.presets.model("llama-3.1-8b"), hg.Workload(tp=8.0), hg.Compression())


def test_alltoall_ring_pays_bisection():
    ring = hg.replace(NET, topology="ring")
    big = 1e9
    assert float(network.alltoall_s(ring, big, 16.0)) > 3.9 * float(network.alltoall_s(NET, big, 16.0))


def test_in_network_beats_ring_for_small_messages_not_large_with_the_analytic_crossover():
    net = hg.Network(
        link_bandwidth_bytes_per_s=450e9, in_network_bandwidth_bytes_per_s=200e9, in_network_reduction=True
    )
    p, h, e = 8.0, 300e-9, 0.3e-6
    n_star = float(network.allreduce_crossover_bytes(net, p))
    a = 2 * h + e
    lat_in = (2 * h + 7 * e) + 2 * (h + e)
    expected = (14 * a - lat_in) / (1 / 200e9 - 2 * 7 / (8 * 450e9))
    assert n_star == pytest.approx(expected, rel=1e-4)
    ring_i, innet_i = IDX["ring"], IDX["in_network"]
    small = network.allreduce_algorithms_s(net, n_star / 10, p)
    large = network.allreduce_algorithms_s(net, n_star * 10, p)
    assert float(small[innet_i]) < float(small[ring_i])
    assert float(large[innet_i]) > float(large[ring_i])
    at = network.allreduce_algorithms_s(net, n_star, p)
    assert float(at[innet_i]) == pytest.approx(float(at[ring_i]), rel=1e-4)
    # with a switch that reduces at link rate it wins at every size
    assert math.isinf(
        float(
            network.allreduce_crossover_bytes(hg.replace(net, in_network_bandwidth_bytes_per_s=math.inf), p)
        )
    )


@pytest.mark.parametrize(
    "topology,p,diameter",
    [
        ("switch", 64, 2),
        ("fat_tree", 64, 2),
        ("fat_tree", 128, 4),
        ("ring", 16, 8),
        ("fully_connected", 8, 1),
        ("dragonfly", 256, 3),
        ("tree", 64, 2),
        ("tree", 4096, 4),
    ],
)
def test_diameters(topology, p, diameter):
    net = hg.replace(NET, topology=topology)
    assert float(network.diameter_hops(net, float(p))) == diameter


def test_torus_diameter_and_small_message_regime():
    torus = hg.replace(NET, topology="torus", torus_dims=3)
    assert float(network.diameter_hops(torus, 64.0)) == 6  # 4 x 4 x 4: 2 hops per dimension
    # tiny messages: time is all latency, independent of bandwidth
    slow_links = hg.replace(NET, link_bandwidth_bytes_per_s=45e9)
    assert float(network.allreduce_s(slow_links, 64.0, 8.0)) == pytest.approx(
        float(network.allreduce_s(NET, 64.0, 8.0)), rel=1e-3
    )
    # large messages: bandwidth-bound, 10x slower links -> ~10x slower
    ratio = float(network.allreduce_s(slow_links, 1e11, 8.0)) / float(network.allreduce_s(NET, 1e11, 8.0))
    assert ratio == pytest.approx(10.0, rel=0.01)
    # a TPU torus has no one-shot: its small all-reduce is a ring or tree
    v5e = hg.presets.network("tpu-v5e")
    t = network.allreduce_algorithms_s(v5e, 4096.0, 16.0)
    assert int(jnp.argmin(t)) in (IDX["ring"], IDX["tree"])


def test_collective_family_closed_forms():
    p, n, bw = 8.0, 1e6, 450e9
    a = 2 * 300e-9 + 2.7e-6
    direct = 2 * 300e-9 + 7 * 2.7e-6 + 7 / 8 * n / bw
    assert float(network.reduce_scatter_s(NET, n, p, "hard")) == pytest.approx(
        min(7 * a + 7 / 8 * n / bw, 3 * a + 7 / 8 * n / bw, direct)
    )
    assert float(network.allgather_s(NET, n, p, "hard")) == float(network.reduce_scatter_s(NET, n, p, "hard"))
    assert float(network.broadcast_s(NET, n, p, "hard")) == pytest.approx(3 * a + n / bw)
    multicast = hg.replace(NET, in_network_reduction=True)
    assert float(network.broadcast_s(multicast, n, p, "hard")) == pytest.approx(
        2 * (300e-9 + 2.7e-6) + n / bw
    )
    assert float(network.p2p_s(NET, n)) == pytest.approx(a + n / bw)


@settings(max_examples=25, deadline=None)
@given(
    n=st.floats(1.0, 1e9),
    p=st.floats(1.0, 256.0),
    name=st.sampled_from(["h100-sxm", "mi300x", "tpu-v5p", "tpu-v6e", "gb200", "rtx-4090"]),
    impl=st.sampled_from(sorted(network.COLLECTIVE_IMPLEMENTATIONS)),
    mode=st.sampled_from(["straight_through", "smooth"]),
)
def test_gradients_are_finite_on_every_fabric(n, p, name, impl, mode):
    net = hg.presets.network(name)

    def f(x):
        net2 = hg.replace(
            net,
            link_bandwidth_bytes_per_s=x[0],
            hop_latency_s=x[1],
            endpoint_overhead_s=x[2],
            domain_size=x[3],
        )
        out = hg.replace(IB_NDR, link_bandwidth_bytes_per_s=x[4])
        return (
            network.allreduce_s(net2, x[5], x[6], mode, sync_s=x[7], implementation=impl, scaleout=out)
            + network.alltoall_s(net2, x[5], x[6], out)
            + network.pipeline_p2p_s(net2, x[5], x[6], 2.0, out)
        )

    domain = float(net.domain_size) if math.isfinite(float(net.domain_size)) else 8.0
    x = jnp.array(
        [float(net.link_bandwidth_bytes_per_s), 300e-9, 0.3e-6, domain, 50e9, n, p, 1e-6], dtype=jnp.float32
    )
    g = jax.grad(f)(x)
    assert bool(jnp.all(jnp.isfinite(g))), g


def test_low_latency_tree_cuts_decode_communication():
    from hwgrad.presets import designs

    m = hg.presets.model("llama-3.1-70b")
    wl = hg.Workload(batch=1.0, prompt_len=1024.0, output_len=64.0, tp=8.0)
    c = hg.compression("fp8", "fp8")
    base = designs.hbm4_accelerator()
    tree = hg.replace(base, network=designs.tree_network())
    sol = hg.Efficiency.speed_of_light()
    t_base = hg.evaluate(base, m, wl, c, sol)
    t_tree = hg.evaluate(tree, m, wl, c, sol)
    # the base already has NVLS and one-shot at 0.3 us per message: the tree's 0.1 us
    # endpoints and 100 ns hops cut the latency-bound all-reduces ~2.7x
    assert float(t_tree.decode.communication_s) < float(t_base.decode.communication_s) / 2
    # doubling link bandwidth barely helps at batch 1: latency trumps bandwidth
    fat = hg.replace(
        base,
        network=hg.replace(
            base.network, link_bandwidth_bytes_per_s=2 * base.network.link_bandwidth_bytes_per_s
        ),
    )
    t_fat = hg.evaluate(fat, m, wl, c, sol)
    assert float(t_fat.tpot_s) > 0.99 * float(t_base.tpot_s)


def test_a_stack_runs_its_collective_library():
    """The stack's library sets which all-reduce algorithms exist and at what fraction of the
    link: a decode step's communication equals the all-reduce of network.py with those
    fractions, the custom + NCCL library is slower than the ideal one, and every preset
    stack names a library of COLLECTIVE_IMPLEMENTATIONS."""
    m = hg.presets.model("llama-3.1-70b")
    s = hg.presets.system("mi300x", 8, fitted=False)  # xGMI mesh: no in-switch reduction
    wl = hg.Workload(batch=32.0, prompt_len=512.0, output_len=16.0, tp=8.0)
    c = hg.compression("bf16")
    lib = network.implementation("custom+nccl").fractions
    ideal = hg.Efficiency.speed_of_light()
    custom = hg.replace(ideal, collective_bandwidth_fraction=lib)
    t_ideal = float(hg.decode_step(s, m, wl, c, ideal).communication_s)
    t_custom = float(hg.decode_step(s, m, wl, c, custom).communication_s)
    one = float(network.allreduce_s(s.network, 32.0 * 8192 * 2, 8.0, implementation=lib, scaleout=s.scaleout))
    assert t_custom > t_ideal
    assert t_custom == pytest.approx(one * float(m.n_layers) * 2, rel=1e-5)
    # fractions: 0 = not offered; the names of the presets resolve
    assert lib[IDX["one_shot"]] == 0.30 and lib[IDX["ring"]] == pytest.approx(367.5 / 450.0)
    assert list(network.implementation("custom-oneshot").fractions[[IDX["ring"], IDX["tree"]]]) == [0, 0]
    for name in hg.presets.stack_names():
        f = np.asarray(hg.presets.stack(name).collective_bandwidth_fraction)
        assert f.shape == (5,) and np.all((f >= 0) & (f <= 1)) and f.max() > 0, name


def test_a_stack_table_names_its_collective_library():
    from hwgrad.calibrated import efficiency_from_mapping

    st = efficiency_from_mapping({"op_overhead_s": 1e-6, "collective": "vllm-custom+nccl"})
    assert np.allclose(st.collective_bandwidth_fraction, network.implementation("vllm-custom+nccl").fractions)
    with pytest.raises(ValueError, match=r"collective = 'ncl'.*did you mean nccl"):
        efficiency_from_mapping({"collective": "ncl"})


def test_a_batch_of_stacks_splits_its_fractions_by_algorithm():
    """A ``(rows, 5)`` array (one library per calibration row) becomes five ``(rows,)``
    leaves, one per algorithm, not five rows."""
    st = hg.Stack(collective_bandwidth_fraction=np.arange(10.0).reshape(2, 5))
    assert [list(np.asarray(x)) for x in st.collective_bandwidth_fraction] == [[0, 5], [1, 6], [2, 7], [3, 8], [4, 9]]
    assert hg.Stack(collective_bandwidth_fraction=np.full(5, 0.5)) == hg.Stack(collective_bandwidth_fraction=[0.5] * 5)
