"""Collectives on a scale-up network, priced with the alpha-beta model.

A collective of ``n`` bytes per chip over ``p`` chips costs ``steps * alpha + volume / bw``
where ``alpha = hops_per_step * hop_latency_s + endpoint_overhead_s`` (Hockney's model;
Thakur, Rabenseifner & Gropp, "Optimization of Collective Communication Operations in
MPICH", IJHPCA 2005) and ``bw`` is the per-chip injection bandwidth in one direction.

All-reduce algorithms (the library picks the cheapest, as NCCL's tuner does; the smooth
minimum keeps gradients alive on both sides of a crossover):

* ring: ``2 (p - 1)`` steps, volume ``2 (p - 1) / p * n``;
* tree (double binary tree / recursive halving-doubling): ``2 log2 p`` steps, volume ``2 n``;
* in-network reduction (NVLink SHARP / a reducing switch): one pass up and one down,
  ``2`` steps, volume ``n`` (each chip sends ``n`` and receives ``n`` concurrently).

The default ``endpoint_overhead_s = 2.7 us`` with ``hop_latency_s = 300 ns`` is DERIVED from
the one small-message measurement in ``interconnect.csv``: an NVLS all-reduce on 2 H100s
takes ~6 us (NCCL issue 1259) = 2 steps x (300 ns switch hop + endpoint); 300 ns is the top
of the 100-300 ns per-switch latency cited for InfiniBand NDR (``ib-ndr`` row).
"""

from __future__ import annotations

import jax.numpy as jnp

from .smooth import safe_div, smooth_max, straight_through_min
from .specs import Network

_HOPS_PER_STEP = {"switch": 2.0, "fully_connected": 1.0, "ring": 1.0, "torus": 1.0}


def alpha_s(net: Network, hops=None):
    """Latency of one message step: hops x per-hop latency + endpoint overhead."""
    hops = _HOPS_PER_STEP[net.topology] if hops is None else hops
    return hops * net.hop_latency_s + net.endpoint_overhead_s


def diameter_hops(net: Network, p):
    """Worst-case hop count between two of ``p`` chips."""
    if net.topology == "switch":
        return 2.0 + 0.0 * p
    if net.topology == "fully_connected":
        return 1.0 + 0.0 * p
    if net.topology == "ring":
        return jnp.floor(p / 2.0)
    side = p ** (1.0 / net.torus_dims)
    return net.torus_dims * jnp.floor(side / 2.0)


def _bisection_slowdown(net: Network, p):
    """How much slower all-to-all traffic is than injection bandwidth (1 for full bisection)."""
    if net.topology in ("switch", "fully_connected"):
        return 1.0 + 0.0 * p
    side = p if net.topology == "ring" else p ** (1.0 / net.torus_dims)
    return jnp.maximum(side / 4.0, 1.0)


def allreduce_algorithms_s(net: Network, n_bytes, p):
    """All-reduce time of each algorithm: array ``[ring, tree, in_network]`` (s).

    ``in_network`` is ``inf`` unless ``net.in_network_reduction``.
    """
    bw = net.link_bandwidth_bytes_per_s
    a = alpha_s(net)
    ring = 2.0 * (p - 1.0) * a + 2.0 * safe_div(p - 1.0, p) * n_bytes / bw
    log_p = jnp.log2(jnp.maximum(p, 1.0))
    tree = 2.0 * log_p * a + 2.0 * n_bytes / bw
    if net.in_network_reduction:
        innet = 2.0 * alpha_s(net, hops=1.0) + n_bytes / bw
    else:
        innet = jnp.inf + 0.0 * ring
    return jnp.stack(jnp.broadcast_arrays(ring, tree, innet), axis=-1)


def allreduce_s(net: Network, n_bytes, p, mode: str = "straight_through"):
    """All-reduce of ``n_bytes`` per chip over ``p`` chips with the cheapest algorithm.

    Zero for ``p <= 1``. ``mode`` as in :func:`hwgrad.smooth.roofline_max`: by default the
    value is the hard minimum and the gradient that of a p-norm smooth minimum (so the
    crossover between algorithms is differentiable).
    """
    times = allreduce_algorithms_s(net, n_bytes, p)
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


def alltoall_s(net: Network, n_bytes, p):
    """All-to-all where each chip sends ``n_bytes`` in total, spread evenly over ``p`` chips.

    ``(p - 1) / p`` of it leaves the chip. A switch or full mesh sends all pieces at once
    (one step); a ring or torus forwards through ``diameter`` steps and its bisection
    limits bandwidth (ring ``p / 4``, torus ``side / 4`` slowdown).
    """
    bw = net.link_bandwidth_bytes_per_s
    steps = jnp.where(
        jnp.asarray(net.topology in ("switch", "fully_connected")), 1.0, diameter_hops(net, p)
    )
    data = safe_div(p - 1.0, p) * n_bytes / bw * _bisection_slowdown(net, p)
    t = steps * alpha_s(net) + data
    return jnp.where(p > 1.0, t, 0.0)


def p2p_s(net: Network, n_bytes):
    """One point-to-point message between neighbouring chips."""
    return alpha_s(net) + n_bytes / net.link_bandwidth_bytes_per_s
