"""Validation at the edges: presets, config files, the CLI and the co-design entry.

Never called inside ``jit``: inside the model, capacity and power margins are numbers.
:func:`validate` raises ``ValueError`` with one actionable line naming the field, the value
and the fix, e.g.::

    workload.tp = 3: tp must divide n_heads = 64 (llama-3.1-70b); use one of 1, 2, 4, 8, 16, 32, 64
"""

from __future__ import annotations

import math

import numpy as np

from . import pruning
from .specs import (
    ATTENTION_KINDS,
    NMC_OPS,
    SPARSITY_PATTERNS,
    TOPOLOGIES,
    Compression,
    Model,
    System,
    Workload,
)


def _scalar(value, where: str) -> float:
    arr = np.asarray(value, dtype=float)
    if arr.ndim != 0:
        raise ValueError(f"{where} = {value!r}: expected a single number")
    return float(arr)


def _positive(value, where: str, allow_inf: bool = False, allow_zero: bool = False) -> float:
    x = _scalar(value, where)
    if math.isnan(x):
        raise ValueError(f"{where} is NaN: give a number")
    if math.isinf(x) and not allow_inf:
        raise ValueError(f"{where} = inf: give a finite number")
    if x < 0 or (x == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{where} = {x:g}: must be {bound}")
    return x


def _whole(value, where: str, minimum: float = 1.0) -> float:
    x = _positive(value, where, allow_zero=minimum <= 0)
    if x != round(x) or x < minimum:
        raise ValueError(f"{where} = {x:g}: must be a whole number >= {minimum:g}")
    return x


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def validate_model(model: Model, name: str = "model") -> None:
    """Shapes positive and consistent."""
    if model.attention not in ATTENTION_KINDS:
        raise ValueError(f"{name}.attention = {model.attention!r}: use one of {', '.join(ATTENTION_KINDS)}")
    for field in ("n_layers", "d_model", "n_heads", "vocab_size"):
        _whole(getattr(model, field), f"{name}.{field}")
    if model.attention == "mla":
        for field in ("kv_lora_rank", "qk_rope_head_dim", "qk_nope_head_dim", "v_head_dim"):
            _whole(getattr(model, field), f"{name}.{field}")
    else:
        _whole(model.n_kv_heads, f"{name}.n_kv_heads")
        _whole(model.head_dim, f"{name}.head_dim")
        if _scalar(model.n_heads, "n_heads") % _scalar(model.n_kv_heads, "n_kv_heads"):
            raise ValueError(
                f"{name}.n_kv_heads = {model.n_kv_heads:g}: must divide n_heads = {model.n_heads:g}"
            )
    n_layers = _scalar(model.n_layers, "n_layers")
    dense = _whole(model.n_dense_layers, f"{name}.n_dense_layers", minimum=0)
    if dense > n_layers:
        raise ValueError(f"{name}.n_dense_layers = {dense:g} > n_layers = {n_layers:g}")
    if dense < n_layers:
        e = _whole(model.n_experts, f"{name}.n_experts")
        k = _whole(model.n_experts_active, f"{name}.n_experts_active")
        _whole(model.moe_d_ff, f"{name}.moe_d_ff")
        if k > e:
            raise ValueError(f"{name}.n_experts_active = {k:g} > n_experts = {e:g}")
    if dense > 0:
        _whole(model.d_ff, f"{name}.d_ff")
    sliding = _whole(model.n_sliding_layers, f"{name}.n_sliding_layers", minimum=0)
    if sliding > n_layers:
        raise ValueError(f"{name}.n_sliding_layers = {sliding:g} > n_layers = {n_layers:g}")
    if sliding > 0:
        _whole(model.sliding_window, f"{name}.sliding_window")


def validate_compression(c: Compression, name: str = "compression") -> None:
    for field in ("weight_bits", "kv_bits", "act_bits"):
        bits = _positive(getattr(c, field), f"{name}.{field}")
        if not 1 <= bits <= 32:
            raise ValueError(f"{name}.{field} = {bits:g}: must lie in [1, 32] bits")
    for field in ("weight_overhead_bits", "kv_overhead_bits"):
        _positive(getattr(c, field), f"{name}.{field}", allow_zero=True)
    if c.pattern not in SPARSITY_PATTERNS:
        raise ValueError(f"{name}.pattern = {c.pattern!r}: use one of {', '.join(SPARSITY_PATTERNS)}")
    s = _scalar(c.sparsity, f"{name}.sparsity")
    if not 0 <= s < 1 or math.isnan(s):
        raise ValueError(f"{name}.sparsity = {s:g}: must lie in [0, 1)")
    if c.pattern == "2:4" and s not in (0.0, 0.5):
        raise ValueError(f"{name}.sparsity = {s:g} with pattern 2:4: 2:4 sparsity is 0.5 exactly")
    pruning.check_fractions(c)  # structured-pruning keep fractions in (0, 1]


def validate_system(system: System, name: str = "system") -> None:
    chip = system.chip
    if not chip.tiers:
        raise ValueError(f"{name}.chip.tiers is empty: give at least one memory tier")
    for i, tier in enumerate(chip.tiers):
        where = f"{name}.chip.tiers[{i}]"
        _positive(tier.capacity_bytes, f"{where}.capacity_bytes", allow_inf=True)
        _positive(tier.bandwidth_bytes_per_s, f"{where}.bandwidth_bytes_per_s")
        _positive(tier.read_latency_s, f"{where}.read_latency_s", allow_zero=True)
        _positive(tier.access_granularity_bytes, f"{where}.access_granularity_bytes")
        _positive(tier.energy_j_per_byte, f"{where}.energy_j_per_byte", allow_zero=True)
        _positive(tier.prefetch_bytes, f"{where}.prefetch_bytes", allow_inf=True)
        _positive(tier.write_endurance_cycles, f"{where}.write_endurance_cycles", allow_inf=True)
        unknown_ops = [op for op in tier.nmc_ops if op not in NMC_OPS]
        if unknown_ops:
            raise ValueError(f"{where}.nmc_ops = {tier.nmc_ops!r}: use a subset of {NMC_OPS}")
        if tier.nmc_ops:
            _positive(tier.nmc_flops, f"{where}.nmc_flops", allow_inf=True)
            _positive(tier.nmc_bandwidth_multiplier, f"{where}.nmc_bandwidth_multiplier")
            _positive(tier.nmc_energy_j_per_byte, f"{where}.nmc_energy_j_per_byte", allow_zero=True)
            _positive(tier.nmc_energy_j_per_flop, f"{where}.nmc_energy_j_per_flop", allow_zero=True)
            shard = _positive(tier.nmc_shard_bytes, f"{where}.nmc_shard_bytes", allow_inf=True)
            cap = _scalar(tier.capacity_bytes, "capacity")
            if shard > cap and math.isfinite(shard):
                raise ValueError(
                    f"{where}.nmc_shard_bytes = {shard:g} > capacity_bytes = {cap:g}: a near-memory shard "
                    "cannot be larger than its tier; lower the shard size or raise the capacity"
                )
            _positive(tier.nmc_power_cap_w, f"{where}.nmc_power_cap_w", allow_inf=True)
    for field in ("peak_flops_bf16", "peak_flops_fp8", "peak_flops_fp4"):
        _positive(getattr(chip, field), f"{name}.chip.{field}", allow_inf=True)
    _whole(system.n_chips, f"{name}.n_chips")
    net = system.network
    if net.topology not in TOPOLOGIES:
        raise ValueError(f"{name}.network.topology = {net.topology!r}: use one of {', '.join(TOPOLOGIES)}")
    _positive(net.link_bandwidth_bytes_per_s, f"{name}.network.link_bandwidth_bytes_per_s")
    _positive(net.hop_latency_s, f"{name}.network.hop_latency_s", allow_zero=True)
    _positive(net.endpoint_overhead_s, f"{name}.network.endpoint_overhead_s", allow_zero=True)
    _positive(
        net.in_network_bandwidth_bytes_per_s,
        f"{name}.network.in_network_bandwidth_bytes_per_s",
        allow_inf=True,
    )
    _positive(net.switch_radix, f"{name}.network.switch_radix")
    if net.topology == "torus" and (not isinstance(net.torus_dims, int) or net.torus_dims < 1):
        raise ValueError(f"{name}.network.torus_dims = {net.torus_dims!r}: give a whole number >= 1")
    placement = system.resolved_placement()
    for field in ("weights", "kv_cache", "activations", "context"):
        frac = np.asarray(getattr(placement, field), dtype=float)
        if frac.shape != (len(chip.tiers),):
            raise ValueError(
                f"{name}.placement.{field} has shape {frac.shape}: need one fraction per tier ({len(chip.tiers)})"
            )
        if np.any(frac < 0) or not np.isclose(frac.sum(), 1.0, atol=1e-6):
            raise ValueError(
                f"{name}.placement.{field} = {frac.tolist()}: fractions must be >= 0 and sum to 1"
            )
        if field == "kv_cache":
            for i, tier in enumerate(chip.tiers):
                if tier.low_write_endurance and frac[i] > 0:
                    raise ValueError(
                        f"{name}.placement.kv_cache[{i}] = {frac[i]:g}: tier {i} has low write endurance "
                        "(flash) and cannot hold the per-token KV writes; place the KV cache in DRAM/SRAM"
                    )


def validate_workload(workload: Workload, model: Model, system: System, name: str = "workload") -> None:
    for field in ("batch", "tp", "pp", "ep", "dp", "microbatches"):
        _whole(getattr(workload, field), f"{name}.{field}")
    _whole(workload.prompt_len, f"{name}.prompt_len", minimum=0)
    _whole(workload.output_len, f"{name}.output_len")
    tp, pp, ep, dp = (int(_scalar(getattr(workload, f), f)) for f in ("tp", "pp", "ep", "dp"))
    heads = int(_scalar(model.n_heads, "n_heads"))
    if heads % tp:
        opts = ", ".join(map(str, _divisors(heads)))
        raise ValueError(f"{name}.tp = {tp}: tp must divide n_heads = {heads}; use one of {opts}")
    layers = int(_scalar(model.n_layers, "n_layers"))
    if pp > layers:
        raise ValueError(f"{name}.pp = {pp} > n_layers = {layers}: use pp <= n_layers")
    if ep > 1:
        experts = int(_scalar(model.n_experts, "n_experts"))
        if experts == 0:
            raise ValueError(f"{name}.ep = {ep}: the model has no experts; use ep = 1")
        if tp % ep or experts % ep:
            raise ValueError(f"{name}.ep = {ep}: ep must divide tp = {tp} and n_experts = {experts}")
    micro = _scalar(workload.microbatches, "microbatches")
    if micro > _scalar(workload.batch, "batch"):
        raise ValueError(f"{name}.microbatches = {micro:g} > batch = {workload.batch:g}: use <= batch")
    net = system.network
    if net.topology == "torus":
        for label, group in (("tp", tp), ("ep", ep)):
            side = round(group ** (1.0 / net.torus_dims))
            if group > 1 and side**net.torus_dims != group:
                raise ValueError(
                    f"system.network: a {net.torus_dims}-D torus cannot hold {label} = {group} chips "
                    f"(need a whole side^{net.torus_dims}); change torus_dims or {label}"
                )
    chips = int(_scalar(system.n_chips, "n_chips"))
    if tp * pp * dp != chips:
        raise ValueError(
            f"system.n_chips = {chips} but tp x pp x dp = {tp} x {pp} x {dp} = {tp * pp * dp}: "
            "make them equal (set --chips or the parallel degrees)"
        )


def validate(system: System, model: Model, workload: Workload, compression: Compression) -> None:
    """Check a design point; raise ``ValueError`` naming the field, the value and the fix."""
    validate_model(model)
    validate_compression(compression)
    validate_system(system)
    validate_workload(workload, model, system)
    pruning.check_shapes(model, compression, workload.tp)  # pruned shapes whole and legal
