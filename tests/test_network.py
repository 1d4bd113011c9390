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
    assert float(network.allreduce_s(net, 8.0, 2.0)) == pytest.approx(float(row["latency_us"]) * 1e-6, rel=0.01)


def test_alltoall_ring_pays_bisection():
    ring = hg.replace(NET, topology="ring")
    big = 1e9
    assert float(network.alltoall_s(ring, big, 16.0)) > 3.9 * float(network.alltoall_s(NET, big, 16.0))
