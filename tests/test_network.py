"""Alpha-beta collectives: closed forms, limits and the cited small-message anchor."""

import math

import pytest

import hwgrad as hg
from hwgrad import network

NET = hg.Network(link_bandwidth_bytes_per_s=450e9, hop_latency_s=300e-9, endpoint_overhead_s=2.7e-6)


def test_single_chip_collectives_are_free():
    assert float(network.allreduce_s(NET, 1e6, 1.0)) == 0.0
    assert float(network.alltoall_s(NET, 1e6, 1.0)) == 0.0


def test_ring_and_tree_closed_forms():
    alpha = 2 * 300e-9 + 2.7e-6
    ring, tree, innet = (float(x) for x in network.allreduce_algorithms_s(NET, 1e6, 8.0))
    assert ring == pytest.approx(14 * alpha + 2 * 7 / 8 * 1e6 / 450e9)
    assert tree == pytest.approx(6 * alpha + 2 * 1e6 / 450e9)
    assert math.isinf(innet)
    # latency-bound small messages prefer the tree, bandwidth-bound large ones the ring
    assert float(network.allreduce_s(NET, 1e3, 8.0)) == pytest.approx(
        float(network.allreduce_algorithms_s(NET, 1e3, 8.0)[1])
    )
    assert float(network.allreduce_s(NET, 1e9, 8.0)) == pytest.approx(
        float(network.allreduce_algorithms_s(NET, 1e9, 8.0)[0])
    )


def test_default_network_reproduces_the_nvls_small_message_measurement():
    # interconnect.csv: NVLS all-reduce on 2 H100s takes ~6 us for tiny messages
    net = hg.replace(hg.presets.network("h100-sxm"), in_network_reduction=True)
    row = hg.presets.table("interconnect")["nccl-allreduce-2xh100-nvls-small"]
    assert float(network.allreduce_s(net, 8.0, 2.0)) == pytest.approx(
        float(row["latency_us"]) * 1e-6, rel=0.01
    )


def test_alltoall_ring_pays_bisection():
    ring = hg.replace(NET, topology="ring")
    big = 1e9
    assert float(network.alltoall_s(ring, big, 16.0)) > 3.9 * float(network.alltoall_s(NET, big, 16.0))


def test_in_network_beats_ring_for_small_messages_not_large_with_the_analytic_crossover():
    net = hg.Network(
        link_bandwidth_bytes_per_s=450e9, in_network_bandwidth_bytes_per_s=200e9, in_network_reduction=True
    )
    p = 8.0
    n_star = float(network.allreduce_crossover_bytes(net, p))
    a = 2 * 300e-9 + 2.7e-6
    a_r = 2 * (300e-9 + 2.7e-6)
    expected = (14 * a - a_r) / (1 / 200e9 - 2 * 7 / (8 * 450e9))
    assert n_star == pytest.approx(expected, rel=1e-6)
    ring_i, innet_i = 0, 2
    small = network.allreduce_algorithms_s(net, n_star / 10, p)
    large = network.allreduce_algorithms_s(net, n_star * 10, p)
    assert float(small[innet_i]) < float(small[ring_i])
    assert float(large[innet_i]) > float(large[ring_i])
    at = network.allreduce_algorithms_s(net, n_star, p)
    assert float(at[innet_i]) == pytest.approx(float(at[ring_i]), rel=1e-6)
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


def test_collective_family_closed_forms():
    p, n, bw = 8.0, 1e6, 450e9
    a = 2 * 300e-9 + 2.7e-6
    assert float(network.reduce_scatter_s(NET, n, p, "hard")) == pytest.approx(
        min(7 * a + 7 / 8 * n / bw, 3 * a + 7 / 8 * n / bw)
    )
    assert float(network.allgather_s(NET, n, p, "hard")) == float(network.reduce_scatter_s(NET, n, p, "hard"))
    assert float(network.broadcast_s(NET, n, p, "hard")) == pytest.approx(3 * a + n / bw)
    multicast = hg.replace(NET, in_network_reduction=True)
    assert float(network.broadcast_s(multicast, n, p, "hard")) == pytest.approx(
        2 * (300e-9 + 2.7e-6) + n / bw
    )
    assert float(network.p2p_s(NET, n)) == pytest.approx(a + n / bw)


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
    assert float(t_tree.decode.communication_s) < float(t_base.decode.communication_s) / 4
    # doubling link bandwidth barely helps at batch 1: latency trumps bandwidth
    fat = hg.replace(
        base,
        network=hg.replace(
            base.network, link_bandwidth_bytes_per_s=2 * base.network.link_bandwidth_bytes_per_s
        ),
    )
    t_fat = hg.evaluate(fat, m, wl, c, sol)
    assert float(t_fat.tpot_s) > 0.99 * float(t_base.tpot_s)
