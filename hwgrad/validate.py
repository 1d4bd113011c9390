"""Validation at the edges: presets, config files, the CLI and the co-design entry.

Never called inside ``jit``: inside the model, capacity and power margins are numbers.
`validate` raises ``ValueError`` with one actionable line naming the field, the value
and the fix, e.g.:

    workload.tp = 3: tp must divide n_heads = 64 (llama-3.1-70b); use one of 1, 2, 4, 8, 16, 32, 64
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from . import pruning
from .counts import weight_bits_per_param
from .specs import (
    ATTENTION_KINDS,
    NMC_OPS,
    NMC_POLICIES,
    SPARSITY_PATTERNS,
    TOPOLOGIES,
    Compression,
    Economics,
    Efficiency,
    Model,
    System,
    Workload,
)

#: largest float32 (the model's default dtype); values must stay far enough below it that
#: products of a few of them do not overflow to inf / NaN
FLOAT32_MAX = float(np.finfo(np.float32).max)
FLOAT32_TINY = float(np.finfo(np.float32).tiny)
#: whole numbers above 2^24 are not exactly representable in float32
MAX_WHOLE = 2.0**24
#: bound on any positive magnitude (1e30 x 1e8 must still be finite in float32)
MAX_MAGNITUDE = 1e30


def _scalar(value, where: str) -> float:
    """``value`` as a Python float; a ``ValueError`` unless it is a single real number
    (text, ``True``/``False`` and ``None`` are not numbers, even where numpy would convert them)."""
    if value is None or isinstance(value, str | bytes | bool | np.bool_):
        raise ValueError(f"{where} = {value!r}: expected a number, not {type(value).__name__}")
    try:
        arr = np.asarray(value)
    except Exception:  # noqa: BLE001 - anything numpy cannot read is not a number
        raise ValueError(f"{where} = {value!r}: expected a number") from None
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{where} = {value!r}: expected a number")
    if arr.ndim != 0:
        raise ValueError(f"{where} = {value!r}: expected a single number")
    return float(arr)


def _positive(
    value, where: str, allow_inf: bool = False, allow_zero: bool = False, allow_nan: bool = False
) -> float:
    """A number that is > 0 (or >= 0), finite unless ``allow_inf``, known unless ``allow_nan``
    (NaN = "unknown" for a few published figures), and representable in float32."""
    x = _scalar(value, where)
    if math.isnan(x):
        if allow_nan:
            return x
        raise ValueError(f"{where} is NaN: give a number")
    if math.isinf(x) and not allow_inf:
        raise ValueError(f"{where} = inf: give a finite number")
    if x < 0 or (x == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{where} = {x:g}: must be {bound}")
    if math.isfinite(x) and x > MAX_MAGNITUDE:
        raise ValueError(
            f"{where} = {x:g}: too large for the model's float32 arithmetic (products overflow); "
            f"use a value <= {MAX_MAGNITUDE:g}"
        )
    if 0 < x < FLOAT32_TINY:
        raise ValueError(
            f"{where} = {x:g}: below the smallest float32 ({FLOAT32_TINY:.3g}); use 0 or a larger value"
        )
    return x


def _fraction(value, where: str, low_open: bool = False, high_open: bool = False) -> float:
    """A number in [0, 1] (ends open as asked)."""
    x = _scalar(value, where)
    lo_ok = x > 0 if low_open else x >= 0
    hi_ok = x < 1 if high_open else x <= 1
    if math.isnan(x) or not (lo_ok and hi_ok):
        interval = ("(" if low_open else "[") + "0, 1" + (")" if high_open else "]")
        raise ValueError(f"{where} = {x:g}: must lie in {interval}")
    return x


def _whole(value, where: str, minimum: float = 1.0) -> float:
    x = _positive(value, where, allow_zero=minimum <= 0)
    if x != round(x) or x < minimum:
        raise ValueError(f"{where} = {x:g}: must be a whole number >= {minimum:g}")
    if x > MAX_WHOLE:
        raise ValueError(
            f"{where} = {x:g}: above 2^24 = {MAX_WHOLE:.0f}, the largest whole number float32 holds exactly; "
            "use a smaller value"
        )
    return x


def whole_number(value, where: str, minimum: float = 1.0) -> int:
    """``value`` as an ``int`` if it is a whole number >= ``minimum`` (never truncated: 8.7 is
    an error, not 8); a one-line ``ValueError`` otherwise."""
    return int(_whole(value, where, minimum))


def check_bound(path: str, value) -> float:
    """The range rule of the field at dotted ``path`` (a co-design bound, a sweep end): the
    value is a finite number, >= 0, and within the field's interval (bits in [1, 32],
    sparsity in [0, 1), achieved fractions in (0, 1], PUE >= 1...). Combination rules (tp |
    heads) are left to `validate` of the rounded design."""
    parts = [p for p in str(path).split(".") if not p.isdigit()]
    field = parts[-1] if parts else str(path)
    x = _positive(value, path, allow_zero=True)
    if field in ("weight_bits", "kv_bits", "act_bits") and not 1 <= x <= 32:
        raise ValueError(f"{path} = {x:g}: must lie in [1, 32] bits")
    if field in ("attention_weight_bits", "embedding_weight_bits") and x != 0 and not 1 <= x <= 32:
        raise ValueError(f"{path} = {x:g}: must lie in [1, 32] bits (0 = the format of the other weights)")
    if field == "sparsity":
        _fraction(x, path, high_open=True)
    elif field.endswith("_efficiency") or field == "utilization":
        _fraction(x, path, low_open=True)
    elif "fraction" in field or "overlap" in field or parts[:2] == ["system", "placement"]:
        _fraction(x, path)
    elif field == "pue" and x < 1:
        raise ValueError(f"{path} = {x:g}: power usage effectiveness is >= 1")
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
    for field in ("attention_weight_bits", "embedding_weight_bits"):
        bits = _positive(getattr(c, field), f"{name}.{field}", allow_zero=True)
        if bits != 0 and not 1 <= bits <= 32:
            raise ValueError(
                f"{name}.{field} = {bits:g}: must lie in [1, 32] bits, or be 0 for the format of the other weights"
            )
    if c.pattern not in SPARSITY_PATTERNS:
        raise ValueError(f"{name}.pattern = {c.pattern!r}: use one of {', '.join(SPARSITY_PATTERNS)}")
    s = _fraction(c.sparsity, f"{name}.sparsity", high_open=True)
    if c.pattern == "2:4" and s != 0.5:
        raise ValueError(
            f"{name}.sparsity = {s:g} with pattern 2:4: 2:4 sparsity is 0.5 exactly; give 0.5 or "
            "use pattern unstructured"
        )
    if c.pattern == "dense" and s != 0:
        raise ValueError(
            f"{name}.sparsity = {s:g} with pattern dense: a dense format has no pruned weights; "
            "use pattern unstructured (or 2:4 with 0.5)"
        )

    pruning.check_fractions(c)  # structured-pruning keep fractions in (0, 1]

def _validate_network(net, where: str) -> None:
    if net.topology not in TOPOLOGIES:
        raise ValueError(f"{where}.topology = {net.topology!r}: use one of {', '.join(TOPOLOGIES)}")
    _positive(net.link_bandwidth_bytes_per_s, f"{where}.link_bandwidth_bytes_per_s")
    _positive(net.hop_latency_s, f"{where}.hop_latency_s", allow_zero=True)
    _positive(net.endpoint_overhead_s, f"{where}.endpoint_overhead_s", allow_zero=True)
    _positive(
        net.in_network_bandwidth_bytes_per_s, f"{where}.in_network_bandwidth_bytes_per_s", allow_inf=True
    )
    _whole(net.switch_radix, f"{where}.switch_radix")
    domain = _positive(net.domain_size, f"{where}.domain_size", allow_inf=True)
    if math.isfinite(domain) and (domain != round(domain) or domain < 1):
        raise ValueError(f"{where}.domain_size = {domain:g}: must be a whole number of chips >= 1 (or inf)")
    if net.topology == "torus" and (not isinstance(net.torus_dims, int) or net.torus_dims < 1):
        raise ValueError(f"{where}.torus_dims = {net.torus_dims!r}: give a whole number >= 1")


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
        for field in ("cost_usd_per_gb", "embodied_kgco2e_per_gb"):  # NaN = not published
            _positive(getattr(tier, field), f"{where}.{field}", allow_zero=True, allow_nan=True)
        _positive(tier.prefetch_bytes, f"{where}.prefetch_bytes", allow_inf=True)
        _positive(tier.write_endurance_cycles, f"{where}.write_endurance_cycles", allow_inf=True)
        _positive(tier.idle_power_w, f"{where}.idle_power_w", allow_zero=True)
        if not isinstance(tier.channel, int) or not -1 <= tier.channel < len(chip.channels):
            have = f"channels 0..{len(chip.channels) - 1}" if chip.channels else "no channels"
            raise ValueError(
                f"{where}.channel = {tier.channel!r}: the chip has {have}; add a Channel to chip.channels "
                "or use -1 (the tier's own interface)"
            )
        for label in ("nmc_decode", "nmc_prefill"):
            if getattr(tier, label) not in NMC_POLICIES:
                raise ValueError(
                    f"{where}.{label} = {getattr(tier, label)!r}: use one of {', '.join(NMC_POLICIES)}"
                )
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
            _positive(tier.nmc_idle_power_w, f"{where}.nmc_idle_power_w", allow_zero=True)
    for k, ch in enumerate(chip.channels):
        _positive(ch.bandwidth_bytes_per_s, f"{name}.chip.channels[{k}].bandwidth_bytes_per_s")
        _positive(ch.energy_j_per_byte, f"{name}.chip.channels[{k}].energy_j_per_byte", allow_zero=True)
    for field in ("peak_flops_bf16", "peak_flops_fp8", "peak_flops_fp4"):
        _positive(getattr(chip, field), f"{name}.chip.{field}", allow_inf=True)
    _positive(chip.sram_bytes, f"{name}.chip.sram_bytes", allow_zero=True)
    # published figures: NaN = unknown (the metrics that need them are reported as unknown)
    for field in ("price_usd", "die_area_mm2"):
        _positive(getattr(chip, field), f"{name}.chip.{field}", allow_nan=True)
    for field in ("tdp_w", "energy_j_per_flop_bf16", "embodied_kgco2e"):  # tdp 0: no static power
        _positive(getattr(chip, field), f"{name}.chip.{field}", allow_zero=True, allow_nan=True)
    _validate_power(chip, f"{name}.chip")
    _whole(system.n_chips, f"{name}.n_chips")
    for field in ("network", "scaleout"):
        _validate_network(getattr(system, field), f"{name}.{field}")
        _positive(getattr(system, field).energy_j_per_byte, f"{name}.{field}.energy_j_per_byte", allow_zero=True)
    # the default placement (everything in tier 0) is valid by construction
    placement = system.resolved_placement() if system.placement is not None else None
    for field in ("weights", "kv_cache", "activations", "context") if placement is not None else ():
        value = getattr(placement, field)
        if value is None or isinstance(value, str | bytes | bool):
            raise ValueError(f"{name}.placement.{field} = {value!r}: give one fraction per tier")
        try:
            frac = np.asarray(value, dtype=float)
        except (TypeError, ValueError):
            raise ValueError(f"{name}.placement.{field} = {value!r}: give one fraction per tier") from None
        if not np.all(np.isfinite(frac)):
            raise ValueError(f"{name}.placement.{field} = {frac.tolist()}: fractions must be finite")
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


def _validate_power(chip, where: str) -> None:
    idle = _scalar(chip.idle_power_fraction, f"{where}.idle_power_fraction")
    if not 0 <= idle < 1:
        raise ValueError(
            f"{where}.idle_power_fraction = {idle:g}: must lie in [0, 1) (board idle / TDP; measured 0.18-0.22)"
        )
    active = _scalar(chip.active_power_fraction, f"{where}.active_power_fraction")
    if not 0 <= active < 1:
        raise ValueError(
            f"{where}.active_power_fraction = {active:g}: must lie in [0, 1) (documented range 0-0.6 of TDP - idle)"
        )
    tdp = _scalar(chip.tdp_w, f"{where}.tdp_w")
    if math.isfinite(tdp) and tdp > 0:
        tiers_idle = sum(
            _scalar(t.idle_power_w, "idle") + _scalar(t.nmc_idle_power_w, "idle") for t in chip.tiers
        )
        total = idle * tdp + tiers_idle
        if total >= tdp:
            raise ValueError(
                f"{where}.tdp_w = {tdp:g}: idle power {total:g} W (board {idle * tdp:g} W + tiers {tiers_idle:g} W) "
                "leaves nothing to run on; raise tdp_w or lower the tiers' idle_power_w"
            )


def validate_near_memory(
    system: System, model: Model, compression: Compression, name: str = "system"
) -> None:
    """A GEMV shard must hold at least one weight row (``d_model`` weights)."""
    row = _scalar(model.d_model, "d_model") * _scalar(weight_bits_per_param(compression), "bits") / 8.0
    for i, tier in enumerate(system.chip.tiers):
        if "gemv" not in tier.nmc_ops:
            continue
        shard = _scalar(tier.nmc_shard_bytes, "nmc_shard_bytes")
        if shard < row:
            raise ValueError(
                f"{name}.chip.tiers[{i}].nmc_shard_bytes = {shard:g}: smaller than one weight row ({row:g} bytes "
                f"= d_model {model.d_model:g} x {row * 8 / _scalar(model.d_model, 'd'):g} bits); GEMV outputs would "
                "be split into partial sums - give each shard at least one row"
            )


def validate_workload(workload: Workload, model: Model, system: System, name: str = "workload") -> None:
    from .specs import BATCHING_MODES

    if workload.batching not in BATCHING_MODES:
        raise ValueError(
            f"{name}.batching = {workload.batching!r} is not a serving mode: use one of {', '.join(BATCHING_MODES)}"
        )
    for field in ("batch", "tp", "pp", "ep", "dp", "microbatches"):
        _whole(getattr(workload, field), f"{name}.{field}")
    _whole(workload.prompt_len, f"{name}.prompt_len", minimum=0)
    _whole(workload.output_len, f"{name}.output_len")
    _whole(workload.kv_block_tokens, f"{name}.kv_block_tokens")
    _positive(workload.corpus_bytes, f"{name}.corpus_bytes", allow_zero=True)
    _positive(
        workload.corpus_read_bytes_per_sequence, f"{name}.corpus_read_bytes_per_sequence", allow_zero=True
    )
    tp, pp, ep, dp = (int(_scalar(getattr(workload, f), f)) for f in ("tp", "pp", "ep", "dp"))
    heads = int(_scalar(model.n_heads, "n_heads"))
    if heads % tp:
        opts = ", ".join(map(str, _divisors(heads)))
        raise ValueError(f"{name}.tp = {tp}: tp must divide n_heads = {heads}; use one of {opts}")
    layers = int(_scalar(model.n_layers, "n_layers"))
    if pp > layers:
        raise ValueError(f"{name}.pp = {pp} > n_layers = {layers}: use pp <= n_layers")
    if layers % pp:
        opts = ", ".join(map(str, [d for d in _divisors(layers) if d <= 64]))
        raise ValueError(
            f"{name}.pp = {pp}: pipeline stages must split n_layers = {layers} evenly; use one of {opts}"
        )
    if ep > 1:
        experts = int(_scalar(model.n_experts, "n_experts"))
        if experts == 0:
            raise ValueError(f"{name}.ep = {ep}: the model has no experts; use ep = 1")
        if tp % ep or experts % ep:
            raise ValueError(f"{name}.ep = {ep}: ep must divide tp = {tp} and n_experts = {experts}")
    adp = _whole(workload.attention_dp, f"{name}.attention_dp")
    if adp > 1:
        if ep <= 1:
            raise ValueError(
                f"{name}.attention_dp = {adp:g}: attention data parallelism serves MoE models whose "
                "experts are expert-parallel; set ep > 1 (an MoE model) or attention_dp = 1"
            )
        if tp % adp:
            opts = ", ".join(map(str, _divisors(tp)))
            raise ValueError(f"{name}.attention_dp = {adp:g}: must divide tp = {tp}; use one of {opts}")
        group = tp // int(adp)
        if heads % group:
            raise ValueError(
                f"{name}.attention_dp = {adp:g}: each attention group of tp / attention_dp = {group} chips "
                f"must divide n_heads = {heads}; change attention_dp or tp"
            )
        if _scalar(workload.batch, "batch") % adp:
            raise ValueError(
                f"{name}.attention_dp = {adp:g}: the batch of {workload.batch:g} sequences must split evenly "
                "over the attention groups; use a batch that attention_dp divides"
            )
    micro = _scalar(workload.microbatches, "microbatches")
    if micro > _scalar(workload.batch, "batch"):
        raise ValueError(f"{name}.microbatches = {micro:g} > batch = {workload.batch:g}: use <= batch")
    # any slice fits a torus (TPU slices are 2x4, 4x4x8, ...): the model prices a k-D slice of
    # p chips as a cube of side p^(1/k), see network.diameter_hops
    # groups beyond one scale-up domain cross the scale-out network, which joins at most
    # its domain_size chips (one port per chip)
    up = _scalar(system.network.domain_size, "domain_size")
    out = _scalar(system.scaleout.domain_size, "domain_size")
    for label, group in (("tp", tp), ("ep", ep), ("tp x pp", tp * pp)):
        if group > max(up, out):
            raise ValueError(
                f"{name}.{label} = {group}: larger than the {out:g} chips the scale-out network joins "
                f"(system.scaleout.domain_size; scale-up domain {up:g}); lower {label} or give "
                "system.scaleout a larger domain_size (e.g. presets.scaleout(levels=3))"
            )
    chips = int(_scalar(system.n_chips, "n_chips"))
    if tp * pp * dp != chips:
        raise ValueError(
            f"system.n_chips = {chips} but tp x pp x dp = {tp} x {pp} x {dp} = {tp * pp * dp}: "
            "make them equal (set --chips or the parallel degrees)"
        )


def validate_efficiency(efficiency, name: str = "efficiency") -> None:
    """Every leaf known and finite; achieved fractions (``*_efficiency``) in (0, 1]; other
    fractions (``*fraction*``, ``*overlap*``, ``*reuse*``, ``*on_demand*``) in [0, 1];
    overheads and everything else >= 0."""
    for field in dataclasses.fields(efficiency):
        value = getattr(efficiency, field.name)
        where = f"{name}.{field.name}"
        if field.metadata.get("static") or value is None:
            continue
        values = np.asarray(value) if not isinstance(value, str | bytes | bool) else value
        if isinstance(values, np.ndarray) and values.ndim > 0:
            if values.dtype.kind not in "biuf" or not np.all(np.isfinite(values)) or np.any(values < 0):
                raise ValueError(f"{where} = {values.tolist()}: every entry must be a finite number >= 0")
            continue
        if field.name.endswith("_efficiency"):
            _fraction(value, where, low_open=True)
        elif any(word in field.name for word in ("fraction", "overlap", "reuse", "on_demand")):
            _fraction(value, where)
        else:
            _positive(value, where, allow_zero=True)


def validate_economics(economics, name: str = "economics") -> None:
    """Prices and carbon: known, finite, in range (a negative price would make $/M negative)."""
    _positive(economics.electricity_usd_per_kwh, f"{name}.electricity_usd_per_kwh", allow_zero=True)
    pue = _positive(economics.pue, f"{name}.pue")
    if pue < 1:
        raise ValueError(
            f"{name}.pue = {pue:g}: power usage effectiveness is >= 1 (1 = no facility overhead)"
        )
    _positive(economics.grid_gco2e_per_kwh, f"{name}.grid_gco2e_per_kwh", allow_zero=True)
    _positive(economics.lifetime_years, f"{name}.lifetime_years")
    _positive(economics.server_cost_multiplier, f"{name}.server_cost_multiplier")
    _fraction(economics.utilization, f"{name}.utilization", low_open=True)
    _positive(
        economics.embodied_kgco2e_per_cm2_logic, f"{name}.embodied_kgco2e_per_cm2_logic", allow_zero=True
    )
    known = {
        "electricity_usd_per_kwh", "pue", "grid_gco2e_per_kwh", "lifetime_years", "server_cost_multiplier",
        "utilization", "embodied_kgco2e_per_cm2_logic",
    }  # fmt: skip
    for field in dataclasses.fields(economics):  # fields added later: at least known and >= 0
        if field.name not in known and not field.metadata.get("static"):
            _positive(getattr(economics, field.name), f"{name}.{field.name}", allow_zero=True)


def _check_type(value, cls, name: str) -> None:
    if not isinstance(value, cls):
        raise ValueError(f"{name} = {type(value).__name__}: expected a hwgrad.{cls.__name__}")


def validate(
    system: System,
    model: Model,
    workload: Workload,
    compression: Compression | None = None,
    efficiency: Efficiency | None = None,
    economics: Economics | None = None,
) -> None:
    """Check a design point; raise ``ValueError`` naming the field, the value and the fix.

    The one validation path of every entry (CLI flags, design and sweep files, sweep points,
    co-design bounds, the API): numbers are real numbers (not text), known (not NaN, except
    the published figures documented as "nan = unknown"), finite, in range and
    representable in float32; whole numbers are whole (never truncated); combinations agree
    (tp | heads, ep | tp, pp | layers, chips = tp x pp x dp, sparsity vs pattern).
    ``compression``, ``efficiency`` and ``economics`` are checked when given.
    """
    _check_type(system, System, "system")
    _check_type(model, Model, "model")
    _check_type(workload, Workload, "workload")
    validate_model(model)
    if compression is not None:
        _check_type(compression, Compression, "compression")
        validate_compression(compression)
    validate_system(system)
    validate_near_memory(system, model, compression)
    validate_workload(workload, model, system)
    if efficiency is not None:
        _check_type(efficiency, Efficiency, "efficiency")
        validate_efficiency(efficiency)
    if economics is not None:
        _check_type(economics, Economics, "economics")
        validate_economics(economics)
    pruning.check_shapes(model, compression, workload.tp)  # pruned shapes whole and legal
