"""A plain-Python reference of the all-reduce on a single-level switch (hardware only).

Written from the formulas of ``docs/model.md`` section 3, independently of hwgrad.network:
ring, tree, in-switch reduction (when the switch reduces), one-shot and two-shot; the
cheapest is taken. ``h`` hop latency, ``e`` endpoint latency per message, ``bw`` link
bandwidth per direction, ``bw_switch`` the switch's reduction throughput per port.
"""

from __future__ import annotations

import math


def allreduce_switch_s(n, p, *, bw, h, e, in_switch=False, bw_switch=math.inf):
    if p <= 1:
        return 0.0
    step = 2 * h + e  # up to the switch and down to a peer
    signal = 2 * h + (p - 1) * e  # every rank exchanges a flag with every peer
    times = [
        2 * (p - 1) * step + 2 * (p - 1) / p * n / bw,  # ring
        2 * math.log2(p) * step + 2 * n / bw,  # tree
        signal + (p - 1) * n / bw,  # one-shot
        3 * signal + 2 * (p - 1) / p * n / bw,  # two-shot
    ]
    if in_switch:
        times.append(signal + 2 * (h + e) + n / min(bw, bw_switch))
    return min(times)
