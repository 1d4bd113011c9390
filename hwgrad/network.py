"""Collectives on a chip's real fabric, priced with the alpha-beta model.

A collective over ``p`` chips costs ``sync + steps * alpha + volume / (f * bw)``: ``alpha =
hops * hop_latency_s + endpoint_overhead_s`` is one message step (Hockney's model; Thakur,
Rabenseifner & Gropp, "Optimization of Collective Communication Operations in MPICH",
IJHPCA 2005), ``bw`` the per-chip injection bandwidth in one direction, ``f`` the fraction of
it the collective library's kernel achieves and ``sync`` the library's per-call launch and
synchronisation cost. ``n`` is the full vector per chip (the all-reduce buffer).

Hardware and software are separate inputs. The **hardware** terms live on
`Network`: hop latency ``h``, per-message endpoint latency ``e``, link
bandwidth ``B``, the reduction throughput of a reducing switch ``B_sw`` and the size ``D`` of
the scale-up domain. The **software** terms (``sync``, ``f`` per algorithm, which algorithms
exist) are a named entry of `COLLECTIVE_IMPLEMENTATIONS`; ``"ideal"`` (no sync cost,
``f = 1``, every algorithm) is the hardware's speed of light.

All-reduce algorithms (``s(p) = hops_d h + (p - 1) e`` is one signalling round: every rank
exchanges a flag with every peer; ``a`` the ring step, ``a_d`` a diameter step):

| algorithm  | time                                                        | used by                          |
|------------|-------------------------------------------------------------|----------------------------------|
| ring       | 2(p-1) a + 2(p-1)/p n / (f B_p)                             | NCCL/RCCL large messages          |
| tree       | 2 log2(p) a_d + 2 n / (f B)                                 | NCCL tree                         |
| in_network | s(p) + 2 (hops_r h + e) + n / min(f B, B_sw)                | NVLS (NVLink SHARP), IB SHARP     |
| one_shot   | s(p) + (p-1) n / (f B_p)                                    | custom all-reduce, small messages |
| two_shot   | 3 s(p) + 2(p-1)/p n / (f B_p)                               | custom all-reduce, medium         |

One-shot: every rank reads all peers' buffers and reduces locally (latency-bound, volume
``(p-1) n``); two-shot: a reduce-scatter then an all-gather, one signalling round before each
phase and one after. ``B_p`` is the bandwidth a rank reaches its peers with: ``B`` through a
switch; on a full mesh of ``D`` chips (xGMI) each peer sits behind ``1/(D-1)`` of the links,
so ``B_p = B (p-1)/(D-1)``. One-/two-shot need every peer one hop away (switch, full mesh,
fat tree, tree, dragonfly; not a ring or torus). The library takes the cheapest algorithm, as
NCCL's tuner and the custom all-reduces' size thresholds do: hard minimum for the value,
smooth minimum for the gradient.

Groups larger than the scale-up domain (``p > D``) cross a scale-out network (``scaleout``,
e.g. InfiniBand NDR, 50 GB/s per GPU per direction) with a hierarchical all-reduce:
intra-domain reduce-scatter (``n`` over ``D`` chips), inter-domain all-reduce of ``n / D`` over
``p / D`` domains on the scale-out network, intra-domain all-gather; the library's ``sync`` is
paid once. The scale-out stage uses the hardware-only ("ideal") algorithms.

Anchors (``interconnect.csv``, measured rows; reproduced within 15 % by ``tests/test_network.py``):

* ``endpoint_overhead_s = 0.3 us``: the slope of the custom one-shot all-reduce at 4 KB over
  the group size (``custom-allreduce-8xh100-small``: TP2 3.9, TP4 3.7, TP8 5.7 us, ~0.3 us
  per extra peer); ``hop_latency_s = 300 ns``: the top of the cited 100-300 ns per switch
  (``ib-ndr`` row).
* NVLink SHARP reduction throughput ``B_sw = 480 / (2 x 7/8) = 274 GB/s`` per port: the NVLS
  bus bandwidth on 8x H100 (``nccl-allreduce-8xh100-nvls``, bus bw = ``2(p-1)/p`` x algbw).
* Implementations: see `COLLECTIVE_IMPLEMENTATIONS` (each entry names its row).
"""

from __future__ import annotations

import difflib
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

from .smooth import safe_div, smooth_max, straight_through_min
from .specs import Network

ALGORITHMS = ("ring", "tree", "in_network", "one_shot", "two_shot")

#: Bits per element of the collective payload: serving stacks all-reduce in bf16 even when
#: activations are fp8 (vLLM/SGLang/TensorRT-LLM reduce the hidden state in the model dtype).
COMM_BITS = 16.0


class CollectiveImplementation(NamedTuple):
    """A collective library's software terms.

    Attributes:
      sync_s: launch + synchronisation cost per call, s (without CUDA graphs where the
        source says so).
      bandwidth_fraction: algorithm name -> fraction of the link bandwidth its kernel
        achieves (0-1]; algorithms not listed are not offered by the library.
      source: the measured row(s) the numbers are fitted to.
    """

    sync_s: float
    bandwidth_fraction: dict
    source: str

    @property
    def fractions(self) -> np.ndarray:
        """``(5,)`` achieved fraction per algorithm of `ALGORITHMS`, 0 where not offered
        (the form `hwgrad.specs.Stack.collective_bandwidth_fraction` holds)."""
        return np.asarray([float(self.bandwidth_fraction.get(a, 0.0)) for a in ALGORITHMS])


# H100 custom all-reduce kernels (SGLang/TensorRT-LLM and vLLM) reach the same fraction of
# NVLink: the two 8xH100 tables differ by a constant per call (fitted: max error 12 %)
_H100_CUSTOM = {"one_shot": 0.30, "two_shot": 0.16}
# NCCL on 8x H100: ring bus bandwidth 367.5 of 450 GB/s (nccl-allreduce-8xh100-ring)
_NCCL = {"ring": 367.5 / 450.0, "tree": 367.5 / 450.0, "in_network": 367.5 / 450.0}
# the ROCm custom all-reduce (quick-allreduce-4xmi300x-small, baseline column)
_ROCM_CUSTOM = {"one_shot": 0.63, "two_shot": 0.57}

#: Named collective implementations (software): per-call sync cost and achieved bandwidth
#: fractions per algorithm, fitted by minimising the worst relative error over each row's
#: message-size table with the hardware terms above (``hop_latency_s`` 300 ns,
#: ``endpoint_overhead_s`` 0.3 us).
COLLECTIVE_IMPLEMENTATIONS: dict[str, CollectiveImplementation] = {
    "ideal": CollectiveImplementation(
        0.0, {a: 1.0 for a in ALGORITHMS}, "speed of light: no software cost, every algorithm at link rate"
    ),
    "custom-oneshot": CollectiveImplementation(
        2.5e-6,
        _H100_CUSTOM,
        "interconnect.csv custom-allreduce-8xh100-small (SGLang/TensorRT-LLM custom all-reduce, "
        "H100, no CUDA graph; sglang PR 2904)",
    ),
    "vllm-custom": CollectiveImplementation(
        7.4e-6,
        _H100_CUSTOM,
        "interconnect.csv vllm-custom-allreduce-8xh100-small (vLLM custom all-reduce, H100, "
        "no CUDA graph; sglang PR 2904)",
    ),
    "nccl": CollectiveImplementation(
        3.9e-6,
        _NCCL,
        "interconnect.csv nccl-allreduce-2xh100-nvls-small (~6 us: sync = 6 us - hardware "
        "in-network latency at p = 2) and nccl-allreduce-8xh100-ring (bus bw 367.5 of 450 GB/s)",
    ),
    # serving stacks run a custom all-reduce for small messages and the vendor library above
    # its size threshold: the union of both algorithm sets (software sync: the stack's own
    # fitted collective_overhead_s replaces sync_s in the cost model)
    "custom+nccl": CollectiveImplementation(
        2.5e-6,
        {**_NCCL, **_H100_CUSTOM},
        "custom-oneshot (small messages: interconnect.csv custom-allreduce-8xh100-small) + nccl "
        "(large: nccl-allreduce-8xh100-ring): TensorRT-LLM and SGLang on NVIDIA",
    ),
    "vllm-custom+nccl": CollectiveImplementation(
        7.4e-6,
        {**_NCCL, **_H100_CUSTOM},
        "vllm-custom (small messages: interconnect.csv vllm-custom-allreduce-8xh100-small) + nccl "
        "(large: nccl-allreduce-8xh100-ring): vLLM on NVIDIA",
    ),
    "rocm-custom+rccl": CollectiveImplementation(
        6.4e-6,
        {"ring": _NCCL["ring"], "tree": _NCCL["tree"], **_ROCM_CUSTOM},
        "rocm-custom (small messages: interconnect.csv quick-allreduce-4xmi300x-small) + RCCL "
        "ring/tree (large; RCCL's bandwidth fraction ASSUMED "
        "equal to NCCL's 367.5/450, no measured RCCL row): vLLM/SGLang on ROCm",
    ),
    "rocm-custom": CollectiveImplementation(
        6.4e-6,
        _ROCM_CUSTOM,
        "interconnect.csv quick-allreduce-4xmi300x-small (baseline column: SGLang custom "
        "all-reduce on ROCm, TP4, MI300X-class xGMI ASSUMED by the row; sglang PR 6619)",
    ),
}


def implementation(name: str) -> CollectiveImplementation:
    """The entry ``name`` of `COLLECTIVE_IMPLEMENTATIONS` (``ValueError`` if unknown)."""
    if name not in COLLECTIVE_IMPLEMENTATIONS:
        close = difflib.get_close_matches(str(name), COLLECTIVE_IMPLEMENTATIONS, n=2, cutoff=0.4)
        hint = f"did you mean {', '.join(close)}?" if close else f"use one of {', '.join(COLLECTIVE_IMPLEMENTATIONS)}"
        raise ValueError(f"collective = {name!r} (a collective implementation): unknown; {hint}")
    return COLLECTIVE_IMPLEMENTATIONS[name]


def comm_payload_bytes(act_payload_bytes, act_bits, comm_bits=COMM_BITS):
    """A collective payload counted in activation bits, re-expressed in ``comm_bits``."""
    return act_payload_bytes * comm_bits / act_bits


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


def signal_s(net: Network, p):
    """One signalling round: every rank exchanges a flag with each of its ``p - 1`` peers
    (``diameter x hop + (p - 1) x endpoint``; the flags cross the fabric in parallel, the
    endpoint handles them one by one)."""
    return diameter_hops(net, p) * net.hop_latency_s + (p - 1.0) * net.endpoint_overhead_s


def _has_in_network(net: Network) -> bool:
    return net.in_network_reduction and net.topology in ("switch", "fat_tree", "tree")


def _has_direct(net: Network) -> bool:
    """Every peer reachable through the chip's own injection links (one-/two-shot)."""
    return net.topology not in ("ring", "torus")


def _innet_alpha(net: Network, p):
    """One pass up to the root switch and one down."""
    return 2.0 * alpha_s(net, diameter_hops(net, p) / 2.0)


def peer_bandwidth(net: Network, p):
    """Bandwidth one chip reaches ``p - 1`` peers with at once: the injection bandwidth
    through a switch; on a full mesh of ``domain_size`` chips each peer owns ``1 / (D - 1)``
    of the links, so ``(p - 1) / (D - 1)`` of it (the whole of it when ``D`` is unknown)."""
    bw = net.link_bandwidth_bytes_per_s
    if net.topology != "fully_connected":
        return bw + 0.0 * p
    mesh = jnp.where(jnp.isfinite(net.domain_size), net.domain_size, jnp.maximum(p, 2.0))
    share = jnp.clip(safe_div(p - 1.0, mesh - 1.0, 1.0), 0.0, 1.0)
    return bw * jnp.where(share > 0, share, 1.0)


def _bisection_slowdown(net: Network, p):
    """How much slower all-to-all traffic is than injection bandwidth (1 for full bisection)."""
    if net.topology in ("switch", "fully_connected", "fat_tree", "tree", "dragonfly"):
        return 1.0 + 0.0 * p
    side = p if net.topology == "ring" else p ** (1.0 / net.torus_dims)
    return jnp.maximum(side / 4.0, 1.0)


def _impl(implementation):
    """``(sync_s, fractions)`` of a name or entry of `COLLECTIVE_IMPLEMENTATIONS`, or of a
    ``(5,)`` fraction array (a stack's ``collective_bandwidth_fraction``: no sync of its own)."""
    if isinstance(implementation, str):
        implementation = globals()["implementation"](implementation)
    if isinstance(implementation, CollectiveImplementation):
        return implementation.sync_s, implementation.fractions
    if isinstance(implementation, tuple | list):
        return 0.0, jnp.stack(jnp.broadcast_arrays(*implementation), axis=-1)
    return 0.0, implementation


def _stack(net: Network, fractions, sync, columns: dict, ref):
    """``(..., 5)`` times in `ALGORITHMS` order; ``inf`` where the fabric or the library
    (fraction 0) does not offer the algorithm."""
    available = {
        "ring": True,
        "tree": True,
        "in_network": _has_in_network(net),
        "one_shot": _has_direct(net),
        "two_shot": _has_direct(net),
    }
    out = []
    for i, a in enumerate(ALGORITHMS):
        if a in columns and available[a]:
            out.append(jnp.where(fractions[..., i] > 0, columns[a] + sync, jnp.inf))
        else:
            out.append(jnp.inf + 0.0 * ref)
    return jnp.stack(jnp.broadcast_arrays(*out), axis=-1)


def _fraction(fractions, algorithm):
    """The library's fraction for ``algorithm`` (1 where it is not offered, so the unused
    column stays finite and its gradient NaN-free)."""
    f = fractions[..., ALGORITHMS.index(algorithm)]
    return jnp.where(f > 0, f, 1.0)


def _sync(default_sync, sync_s):
    return default_sync if sync_s is None else sync_s


def allreduce_algorithms_s(net: Network, n_bytes, p, implementation="ideal", sync_s=None):
    """All-reduce time of each algorithm in `ALGORITHMS` (``inf`` if unavailable).

    Args:
      net: the network (hardware terms).
      n_bytes: buffer per chip, bytes.
      p: chips in the group.
      implementation: name (or entry) of `COLLECTIVE_IMPLEMENTATIONS`, or a ``(5,)`` array
        of fractions per algorithm (a stack's ``collective_bandwidth_fraction``).
      sync_s: per-call software cost, s; default the implementation's.
    """
    default_sync, fr = _impl(implementation)
    bw = net.link_bandwidth_bytes_per_s
    bp = peer_bandwidth(net, p)
    frac = safe_div(p - 1.0, p)
    log_p = jnp.log2(jnp.maximum(p, 1.0))
    sig = signal_s(net, p)
    cols = {
        "ring": 2.0 * (p - 1.0) * alpha_s(net, neighbour_hops(net, p))
        + 2.0 * frac * n_bytes / (_fraction(fr, "ring") * bp),
        "tree": 2.0 * log_p * alpha_s(net, diameter_hops(net, p)) + 2.0 * n_bytes / (_fraction(fr, "tree") * bw),
        "in_network": sig
        + _innet_alpha(net, p)
        + n_bytes / jnp.minimum(_fraction(fr, "in_network") * bw, net.in_network_bandwidth_bytes_per_s),
        "one_shot": sig + (p - 1.0) * n_bytes / (_fraction(fr, "one_shot") * bp),
        "two_shot": 3.0 * sig + 2.0 * frac * n_bytes / (_fraction(fr, "two_shot") * bp),
    }
    return _stack(net, fr, _sync(default_sync, sync_s), cols, n_bytes * p)


def reduce_scatter_algorithms_s(net: Network, n_bytes, p, implementation="ideal", sync_s=None):
    """Reduce-scatter of an ``n_bytes`` vector (each chip keeps ``n / p``), per algorithm.
    All-gather has the same cost with multicast in place of in-network reduction. The
    ``two_shot`` column is its direct phase (one signalling round, ``(p-1)/p n`` from the
    peers); ``one_shot`` does not apply."""
    default_sync, fr = _impl(implementation)
    bw = net.link_bandwidth_bytes_per_s
    bp = peer_bandwidth(net, p)
    frac = safe_div(p - 1.0, p)
    cols = {
        "ring": (p - 1.0) * alpha_s(net, neighbour_hops(net, p)) + frac * n_bytes / (_fraction(fr, "ring") * bp),
        "tree": jnp.log2(jnp.maximum(p, 1.0)) * alpha_s(net, diameter_hops(net, p))
        + frac * n_bytes / (_fraction(fr, "tree") * bw),
        "in_network": _innet_alpha(net, p)
        + frac * n_bytes / jnp.minimum(_fraction(fr, "in_network") * bw, net.in_network_bandwidth_bytes_per_s),
        "two_shot": signal_s(net, p) + frac * n_bytes / (_fraction(fr, "two_shot") * bp),
    }
    return _stack(net, fr, _sync(default_sync, sync_s), cols, n_bytes * p)


def broadcast_algorithms_s(net: Network, n_bytes, p, implementation="ideal", sync_s=None):
    """Broadcast of ``n_bytes`` from one chip: pipelined tree, or switch multicast."""
    default_sync, fr = _impl(implementation)
    bw = net.link_bandwidth_bytes_per_s
    cols = {
        "tree": jnp.log2(jnp.maximum(p, 1.0)) * alpha_s(net, diameter_hops(net, p)) + n_bytes / bw,
        "in_network": _innet_alpha(net, p) + n_bytes / bw,
    }
    return _stack(net, fr, _sync(default_sync, sync_s), cols, n_bytes * p)


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


def _split(net: Network, p):
    """Chips per scale-up domain in the group and domains spanned (``p_in x p_out = p``)."""
    p_in = jnp.maximum(jnp.minimum(p, net.domain_size), 1.0)
    return p_in, p / p_in


def allreduce_s(
    net: Network,
    n_bytes,
    p,
    mode: str = "straight_through",
    sync_s=None,
    implementation="ideal",
    scaleout: Network | None = None,
):
    """All-reduce of ``n_bytes`` per chip over ``p`` chips with the cheapest algorithm.

    Zero for ``p <= 1``; ``mode`` as in `hwgrad.smooth.roofline_max`. With a
    ``scaleout`` network, groups larger than ``net.domain_size`` use the hierarchical
    all-reduce of the module docstring; without one the domain size is ignored.
    """
    default_sync, fr = _impl(implementation)
    sync = _sync(default_sync, sync_s)
    flat = _cheapest(allreduce_algorithms_s(net, n_bytes, p, fr, sync), p, mode)
    if scaleout is None:
        return flat
    p_in, p_out = _split(net, p)
    rs = _cheapest(reduce_scatter_algorithms_s(net, n_bytes, p_in, fr, 0.0), p_in, mode)
    out = _cheapest(allreduce_algorithms_s(scaleout, safe_div(n_bytes, p_in), p_out), p_out, mode)
    hier = sync + 2.0 * rs + out
    return jnp.where(p > net.domain_size, hier, flat)


def reduce_scatter_s(
    net: Network, n_bytes, p, mode: str = "straight_through", sync_s=None, implementation="ideal"
):
    """Reduce-scatter of an ``n_bytes`` vector over ``p`` chips, cheapest algorithm."""
    return _cheapest(reduce_scatter_algorithms_s(net, n_bytes, p, implementation, sync_s), p, mode)


def allgather_s(
    net: Network, n_bytes, p, mode: str = "straight_through", sync_s=None, implementation="ideal"
):
    """All-gather producing an ``n_bytes`` vector on every chip, cheapest algorithm."""
    return _cheapest(reduce_scatter_algorithms_s(net, n_bytes, p, implementation, sync_s), p, mode)


def broadcast_s(
    net: Network, n_bytes, p, mode: str = "straight_through", sync_s=None, implementation="ideal"
):
    """Broadcast of ``n_bytes`` to ``p`` chips, cheapest algorithm."""
    return _cheapest(broadcast_algorithms_s(net, n_bytes, p, implementation, sync_s), p, mode)


def _alltoall_flat(net: Network, n_bytes, p):
    bw = net.link_bandwidth_bytes_per_s
    if net.topology in ("ring", "torus"):
        latency = diameter_hops(net, p) * alpha_s(net, 1.0)
    else:
        latency = alpha_s(net, diameter_hops(net, p))
    data = safe_div(p - 1.0, p) * n_bytes / bw * _bisection_slowdown(net, p)
    return jnp.where(p > 1.0, latency + data, 0.0)


def alltoall_s(net: Network, n_bytes, p, scaleout: Network | None = None):
    """All-to-all where each chip sends ``n_bytes`` in total, spread evenly over ``p`` chips.

    ``(p - 1) / p`` of it leaves the chip. Switched and direct networks send all pieces at
    once (one step of ``diameter`` hops); a ring or torus forwards through ``diameter``
    neighbour steps and its bisection limits bandwidth (ring ``p / 4``, torus ``side / 4``).
    With a ``scaleout`` network and ``p > net.domain_size``, the ``1 - D/p`` share bound
    for other domains leaves through the chip's scale-out port after the in-domain part
    (the two are not overlapped: an upper bound).
    """
    if scaleout is None:
        return _alltoall_flat(net, n_bytes, p)
    p_in, p_out = _split(net, p)
    inside = _alltoall_flat(net, n_bytes * safe_div(p_in, p), p_in)
    away = alpha_s(scaleout, diameter_hops(scaleout, p)) + (
        (1.0 - safe_div(p_in, p)) * n_bytes / scaleout.link_bandwidth_bytes_per_s
    )
    return jnp.where(p > net.domain_size, inside + away, _alltoall_flat(net, n_bytes, p))


def p2p_s(net: Network, n_bytes):
    """One point-to-point message between neighbouring chips (e.g. pipeline stages)."""
    return alpha_s(net, neighbour_hops(net, 2.0)) + n_bytes / net.link_bandwidth_bytes_per_s


def pipeline_p2p_s(net: Network, n_bytes, tp, pp, scaleout: Network | None = None):
    """The ``pp - 1`` stage-to-stage sends of one micro-batch through a pipeline of ``pp``
    stages of ``tp`` chips. Stages fill scale-up domains in order, so
    ``ceil(tp pp / D) - 1`` of the boundaries cross the scale-out network (none without
    one)."""
    sends = jnp.maximum(pp - 1.0, 0.0)
    if scaleout is None:
        return sends * p2p_s(net, n_bytes)
    spans = jnp.ceil(safe_div(tp * pp, jnp.where(jnp.isfinite(net.domain_size), net.domain_size, 1.0)))
    crossing = jnp.where(jnp.isfinite(net.domain_size), jnp.clip(spans - 1.0, 0.0, sends), 0.0)
    return (sends - crossing) * p2p_s(net, n_bytes) + crossing * p2p_s(scaleout, n_bytes)


def allreduce_crossover_bytes(net: Network, p, implementation="ideal"):
    """Message size above which a ring all-reduce beats in-network reduction.

    Both are affine in ``n`` (``t = latency + n x per_byte``), so the crossover is
    ``(latency_ring - latency_in) / (per_byte_in - per_byte_ring)`` (``inf`` when the
    in-network path is at least as fast per byte, so it wins at every size).
    """
    ring_i, innet_i = ALGORITHMS.index("ring"), ALGORITHMS.index("in_network")
    big = 1e9  # any size: the difference quotient of an affine function is exact
    t0 = allreduce_algorithms_s(net, 0.0, p, implementation)
    t1 = allreduce_algorithms_s(net, big, p, implementation)
    latency_gap = t0[..., ring_i] - t0[..., innet_i]
    per_byte_gap = ((t1[..., innet_i] - t0[..., innet_i]) - (t1[..., ring_i] - t0[..., ring_i])) / big
    return jnp.where(per_byte_gap > 0, safe_div(latency_gap, per_byte_gap), jnp.inf)
