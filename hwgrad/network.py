"""Collectives on a scale-up network, priced with the alpha-beta model.

A collective over ``p`` chips costs ``steps * alpha + volume / bw`` where
``alpha = hops_per_step * hop_latency_s + endpoint_overhead_s`` (Hockney's model; Thakur,
Rabenseifner & Gropp, "Optimization of Collective Communication Operations in MPICH",
IJHPCA 2005) and ``bw`` is the per-chip injection bandwidth in one direction. ``n`` is the
full vector per chip (the all-reduce buffer; the all-gather / reduce-scatter result).

| collective     | ring                                 | tree (binomial / double binary)   | in-network (reducing switch)          |
|----------------|--------------------------------------|-----------------------------------|---------------------------------------|
| all-reduce     | 2(p-1) a + 2(p-1)/p n/B              | 2 log2 p a_d + 2 n/B              | 2 a_r + n / min(B, B_switch)          |
| reduce-scatter | (p-1) a + (p-1)/p n/B                | log2 p a_d + (p-1)/p n/B          | 2 a_r + (p-1)/p n / min(B, B_switch)  |
| all-gather     | (p-1) a + (p-1)/p n/B                | log2 p a_d + (p-1)/p n/B          | 2 a_r + (p-1)/p n/B (multicast)       |
| broadcast      | -                                    | log2 p a_d + n/B (pipelined)      | 2 a_r + n/B (multicast)               |

``a`` uses the hops between ring neighbours, ``a_d`` the network diameter, ``a_r`` the hops
to the root switch (one pass up, one down). All-to-all sends ``(p-1)/p n`` over the
bisection; point-to-point is one neighbour message. The library takes the cheapest
algorithm, as NCCL's tuner does: hard minimum for the value, smooth minimum for the
gradient, so an algorithm crossover is differentiable and the small-message (latency)
regime stays visible.

Topologies (hops per ring step / diameter): ``switch`` 2/2, ``fat_tree`` 2 or 4 (two levels
once ``p`` exceeds ``switch_radix``), ``fully_connected`` 1/1, ``ring`` 1/floor(p/2),
``torus`` (k dims, side ``p^(1/k)``) 1/k floor(side/2), ``dragonfly`` (local-global-local)
3/3, ``tree`` (radix-r switches) 2/2 ceil(log_r p).

Defaults: ``endpoint_overhead_s = 2.7 us`` with ``hop_latency_s = 300 ns`` is DERIVED from
the one small-message measurement in ``interconnect.csv``: an NVLS all-reduce on 2 H100s
takes ~6 us (NCCL issue 1259) = 2 passes x (300 ns switch hop + endpoint); 300 ns is the top
of the 100-300 ns per-switch latency cited for InfiniBand NDR (``ib-ndr`` row).
"""

from __future__ import annotations

import jax.numpy as jnp

from .smooth import safe_div, smooth_max, straight_through_min
from .specs import Network

ALGORITHMS = ("ring", "tree", "in_network")


def _levels(net: Network, p):
    """Switch levels between a chip and the root (>= 1)."""
    radix = jnp.maximum(net.switch_radix, 2.0)
    return jnp.maximum(jnp.ceil(safe_div(jnp.log(jnp.maximum(p, 1.0)), jnp.log(radix))), 1.0)


def neighbour_hops(net: Network, p):
    """Hops between ring neighbours (consecutive chips)."""
    t = net.topology
    if t in ("switch", "fat_tree", "tree"):
        return 2.0 + 0.0 * p
    if t == "dragonfly":
        return 3.0 + 0.0 * p
    return 1.0 + 0.0 * p


def diameter_hops(net: Network, p):
    """Worst-case hop count between two of ``p`` chips."""
    t = net.topology
    if t == "switch":
        return 2.0 + 0.0 * p
    if t == "fat_tree":
        return jnp.where(p > net.switch_radix, 4.0, 2.0)
    if t == "fully_connected":
        return 1.0 + 0.0 * p
    if t == "dragonfly":
        return 3.0 + 0.0 * p
    if t == "tree":
        return 2.0 * _levels(net, p)
    if t == "ring":
        return jnp.floor(p / 2.0)
    side = p ** (1.0 / net.torus_dims)
    return net.torus_dims * jnp.floor(side / 2.0)


def alpha_s(net: Network, hops=None):
    """Latency of one message step: hops x per-hop latency + endpoint overhead."""
    hops = 2.0 if hops is None else hops
    return hops * net.hop_latency_s + net.endpoint_overhead_s


def _has_in_network(net: Network) -> bool:
    return net.in_network_reduction and net.topology in ("switch", "fat_tree", "tree")


def _innet_alpha(net: Network, p):
    """One pass up to the root switch and one down."""
    return 2.0 * alpha_s(net, diameter_hops(net, p) / 2.0)


def _bisection_slowdown(net: Network, p):
    """How much slower all-to-all traffic is than injection bandwidth (1 for full bisection)."""
    if net.topology in ("switch", "fully_connected", "fat_tree", "tree", "dragonfly"):
        return 1.0 + 0.0 * p
    side = p if net.topology == "ring" else p ** (1.0 / net.torus_dims)
    return jnp.maximum(side / 4.0, 1.0)


def _times(net: Network, p, ring, tree, innet):
    stacked = [ring, tree, innet if _has_in_network(net) else jnp.inf + 0.0 * ring]
    return jnp.stack(jnp.broadcast_arrays(*stacked), axis=-1)


def allreduce_algorithms_s(net: Network, n_bytes, p):
    """All-reduce time of each algorithm in :data:`ALGORITHMS` (``inf`` if unavailable)."""
    bw = net.link_bandwidth_bytes_per_s
    a_ring = alpha_s(net, neighbour_hops(net, p))
    a_tree = alpha_s(net, diameter_hops(net, p))
    log_p = jnp.log2(jnp.maximum(p, 1.0))
    ring = 2.0 * (p - 1.0) * a_ring + 2.0 * safe_div(p - 1.0, p) * n_bytes / bw
    tree = 2.0 * log_p * a_tree + 2.0 * n_bytes / bw
    innet = _innet_alpha(net, p) + n_bytes / jnp.minimum(bw, net.in_network_bandwidth_bytes_per_s)
    return _times(net, p, ring, tree, innet)


def reduce_scatter_algorithms_s(net: Network, n_bytes, p):
    """Reduce-scatter of an ``n_bytes`` vector (each chip keeps ``n / p``), per algorithm.
    All-gather has the same cost with multicast in place of in-network reduction."""
    bw = net.link_bandwidth_bytes_per_s
    frac = safe_div(p - 1.0, p)
    ring = (p - 1.0) * alpha_s(net, neighbour_hops(net, p)) + frac * n_bytes / bw
    tree = jnp.log2(jnp.maximum(p, 1.0)) * alpha_s(net, diameter_hops(net, p)) + frac * n_bytes / bw
    innet = _innet_alpha(net, p) + frac * n_bytes / jnp.minimum(bw, net.in_network_bandwidth_bytes_per_s)
    return _times(net, p, ring, tree, innet)


def broadcast_algorithms_s(net: Network, n_bytes, p):
    """Broadcast of ``n_bytes`` from one chip: pipelined tree, or switch multicast."""
    bw = net.link_bandwidth_bytes_per_s
    tree = jnp.log2(jnp.maximum(p, 1.0)) * alpha_s(net, diameter_hops(net, p)) + n_bytes / bw
    innet = _innet_alpha(net, p) + n_bytes / bw
    return _times(net, p, jnp.inf + 0.0 * tree, tree, innet)


def _cheapest(times, p, mode: str):
    # unavailable algorithms (inf) and the p <= 1 case (all zero) get a harmless stand-in so
    # that no NaN reaches the gradient of the untaken branch
    usable = jnp.isfinite(times) & (times > 0)
    times = jnp.where(usable, times, 1e30)
    if mode == "hard":
        t = jnp.min(times, axis=-1)
    elif mode == "smooth":
        t = safe_div(1.0, smooth_max(1.0 / times))
    else:
        t = straight_through_min(times)
    return jnp.where(p > 1.0, t, 0.0)


def allreduce_s(net: Network, n_bytes, p, mode: str = "straight_through"):
    """All-reduce of ``n_bytes`` per chip over ``p`` chips with the cheapest algorithm
    (zero for ``p <= 1``; ``mode`` as in :func:`hwgrad.smooth.roofline_max`)."""
    return _cheapest(allreduce_algorithms_s(net, n_bytes, p), p, mode)


def reduce_scatter_s(net: Network, n_bytes, p, mode: str = "straight_through"):
    """Reduce-scatter of an ``n_bytes`` vector over ``p`` chips, cheapest algorithm."""
    return _cheapest(reduce_scatter_algorithms_s(net, n_bytes, p), p, mode)


def allgather_s(net: Network, n_bytes, p, mode: str = "straight_through"):
    """All-gather producing an ``n_bytes`` vector on every chip, cheapest algorithm."""
    return _cheapest(reduce_scatter_algorithms_s(net, n_bytes, p), p, mode)


def broadcast_s(net: Network, n_bytes, p, mode: str = "straight_through"):
    """Broadcast of ``n_bytes`` to ``p`` chips, cheapest algorithm."""
    return _cheapest(broadcast_algorithms_s(net, n_bytes, p), p, mode)


def alltoall_s(net: Network, n_bytes, p):
    """All-to-all where each chip sends ``n_bytes`` in total, spread evenly over ``p`` chips.

    ``(p - 1) / p`` of it leaves the chip. Switched and direct networks send all pieces at
    once (one step of ``diameter`` hops); a ring or torus forwards through ``diameter``
    neighbour steps and its bisection limits bandwidth (ring ``p / 4``, torus ``side / 4``).
    """
    bw = net.link_bandwidth_bytes_per_s
    if net.topology in ("ring", "torus"):
        latency = diameter_hops(net, p) * alpha_s(net, 1.0)
    else:
        latency = alpha_s(net, diameter_hops(net, p))
    data = safe_div(p - 1.0, p) * n_bytes / bw * _bisection_slowdown(net, p)
    return jnp.where(p > 1.0, latency + data, 0.0)


def p2p_s(net: Network, n_bytes):
    """One point-to-point message between neighbouring chips (e.g. pipeline stages)."""
    return alpha_s(net, neighbour_hops(net, 2.0)) + n_bytes / net.link_bandwidth_bytes_per_s


def allreduce_crossover_bytes(net: Network, p):
    """Message size above which a ring all-reduce beats in-network reduction.

    Solves ``2(p-1) a + 2(p-1)/p n/B = 2 a_r + n / B_switch`` for ``n`` (``inf`` when the
    in-network path is at least as fast per byte, so it wins at every size).
    """
    bw = net.link_bandwidth_bytes_per_s
    b_switch = jnp.minimum(bw, net.in_network_bandwidth_bytes_per_s)
    latency_gap = 2.0 * (p - 1.0) * alpha_s(net, neighbour_hops(net, p)) - _innet_alpha(net, p)
    per_byte_gap = 1.0 / b_switch - 2.0 * (p - 1.0) / (p * bw)
    return jnp.where(per_byte_gap > 0, safe_div(latency_gap, per_byte_gap), jnp.inf)
