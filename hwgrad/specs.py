"""Specifications: frozen dataclass pytrees in which every number is a leaf.

Every numeric field is a pytree leaf, so specs can be stacked, ``vmap``-ed and
differentiated; only code-path switches (attention kind, sparsity pattern, topology kind)
are static metadata, marked ``static=True`` below. Names carry no names: preset names are
registry keys in :mod:`hwgrad.presets`, never fields.

Units are SI and appear in each field name (``_bytes``, ``_s``, ``_w``, ``_j_per_byte``...).
Integers such as layer counts, chip counts and parallel degrees are stored as floats so the
model can relax them for gradient-based co-design; :func:`hwgrad.validate.validate` checks
that they are whole where the physics needs it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

__all__ = [
    "MemoryTier",
    "Chip",
    "Network",
    "System",
    "Placement",
    "Model",
    "Compression",
    "Workload",
    "Economics",
    "Efficiency",
    "Options",
    "replace",
]

INF = float("inf")
NAN = float("nan")


def static(default: Any = dataclasses.MISSING):
    """A dataclass field that is pytree metadata (static under ``jit``), not a leaf."""
    return dataclasses.field(default=default, metadata={"static": True})


def spec(cls):
    """Decorator: frozen dataclass registered as a pytree (numbers are leaves)."""
    cls = dataclasses.dataclass(frozen=True)(cls)
    return jax.tree_util.register_dataclass(cls)


def replace(obj, **changes):
    """``dataclasses.replace`` re-exported for specs (``hg.replace(chip, tdp_w=500.0)``)."""
    return dataclasses.replace(obj, **changes)


# ----------------------------------------------------------------------------- hardware


NMC_OPS = ("gemv", "attention")


@spec
class MemoryTier:
    """One level of a chip's memory hierarchy (per chip), optionally with compute in it.

    Attributes:
      capacity_bytes: usable capacity per chip (``inf`` = unknown, capacity check skipped).
      bandwidth_bytes_per_s: peak read bandwidth per chip (the external interface).
      read_latency_s: representative read latency (used with ``prefetch_bytes``).
      access_granularity_bytes: smallest unit the device transfers (HBM 32 B, flash page
        4 KiB); reads of contiguous chunks smaller than this waste bandwidth.
      prefetch_bytes: bytes the controller keeps in flight; sustained bandwidth is capped
        at ``prefetch_bytes / read_latency_s`` (Little's law). ``inf`` = never binds.
      energy_j_per_byte: access energy across the external interface (pJ/bit x 8e-12).
      cost_usd_per_gb: price per decimal GB (``nan`` = unknown).
      embodied_kgco2e_per_gb: manufacturing carbon per GB (``nan`` = unknown).
      write_endurance_cycles: program/erase cycles per cell, for the opt-in lifetime
        estimate (``inf`` = unlimited; the data set cites none, so supply your own).
      nmc_flops: FLOP/s of compute inside/beside this tier (PIM, PNM, base-die logic); 0 =
        none.
      nmc_bandwidth_multiplier: internal bandwidth seen by that compute / external bandwidth.
      nmc_energy_j_per_byte: access energy for the in-tier compute (no interface crossing).
      nmc_energy_j_per_flop: energy per FLOP of the in-tier logic.
      nmc_shard_bytes: capacity one compute unit owns (PIM bank 32-64 MB, PNM 16-32 GB);
        partial results of every shard cross the interface to be reduced.
      nmc_power_cap_w: thermal budget of the in-tier logic (``inf`` = none); time is at
        least the in-tier energy / this cap (a power roofline).
      low_write_endurance: static; ``True`` for flash-like tiers that must not hold
        per-token writes (KV cache).
      nmc_ops: static; which ops run in the tier: ``"gemv"`` (weight matrix ops) and/or
        ``"attention"`` (decode attention over the KV cache).
    """

    capacity_bytes: Any
    bandwidth_bytes_per_s: Any
    read_latency_s: Any = 32e-9
    access_granularity_bytes: Any = 32.0
    prefetch_bytes: Any = INF
    energy_j_per_byte: Any = 3.9e-12 * 8
    cost_usd_per_gb: Any = NAN
    embodied_kgco2e_per_gb: Any = NAN
    write_endurance_cycles: Any = INF
    nmc_flops: Any = 0.0
    nmc_bandwidth_multiplier: Any = 1.0
    nmc_energy_j_per_byte: Any = 0.0
    nmc_energy_j_per_flop: Any = 0.0
    nmc_shard_bytes: Any = INF
    nmc_power_cap_w: Any = INF
    low_write_endurance: bool = static(False)
    nmc_ops: tuple = static(())


@spec
class Chip:
    """An accelerator: compute peaks, memory tiers, power and price.

    Attributes:
      tiers: tuple of :class:`MemoryTier`; tier 0 is the main memory by convention.
      peak_flops_bf16 / peak_flops_fp8 / peak_flops_fp4: dense tensor peaks, FLOP/s
        (``inf`` = unknown: compute time is then not modelled and outputs say so).
      sram_bytes: largest on-chip SRAM pool.
      tdp_w: board/module power limit.
      energy_j_per_flop_bf16: dynamic energy per bf16 FLOP; narrower operands scale by
        ``bits / 16``.
      price_usd: purchase price per chip (``nan`` = unknown).
      embodied_kgco2e: manufacturing carbon per chip (``nan`` = unknown).
      die_area_mm2: logic die area (``nan`` = unknown).
    """

    tiers: tuple
    peak_flops_bf16: Any
    peak_flops_fp8: Any
    peak_flops_fp4: Any
    sram_bytes: Any = 0.0
    tdp_w: Any = NAN
    energy_j_per_flop_bf16: Any = NAN
    price_usd: Any = NAN
    embodied_kgco2e: Any = NAN
    die_area_mm2: Any = NAN


TOPOLOGIES = ("switch", "fat_tree", "ring", "torus", "fully_connected", "dragonfly", "tree")


@spec
class Network:
    """The scale-up interconnect joining the chips of one model replica.

    Collectives are priced with an alpha-beta model (see :mod:`hwgrad.network`):
    ``alpha = hops * hop_latency_s + endpoint_overhead_s`` per message step and
    ``beta = 1 / link_bandwidth_bytes_per_s``.

    Attributes:
      link_bandwidth_bytes_per_s: per-chip injection bandwidth, one direction.
      hop_latency_s: latency added by each switch or router hop.
      endpoint_overhead_s: fixed software + NIC cost at each end of a message step (lower
        when packets land directly in on-chip SRAM).
      energy_j_per_byte: transfer energy.
      in_network_bandwidth_bytes_per_s: reduction throughput of a reducing switch per port
        (``inf``: limited by the link).
      switch_radix: ports per switch (fat tree and tree: sets the number of levels).
      topology: static; one of :data:`TOPOLOGIES`.
      torus_dims: static; number of torus dimensions (``topology == "torus"``).
      in_network_reduction: static; switches reduce and multicast (NVLink SHARP, a
        reduction tree): an all-reduce is one pass up and one down.
    """

    link_bandwidth_bytes_per_s: Any
    hop_latency_s: Any = 300e-9
    endpoint_overhead_s: Any = 2.7e-6
    energy_j_per_byte: Any = 5.5e-12 * 8
    in_network_bandwidth_bytes_per_s: Any = INF
    switch_radix: Any = 64.0
    topology: str = static("switch")
    torus_dims: int = static(2)
    in_network_reduction: bool = static(False)


@spec
class Placement:
    """Fractions of each tensor class held in each memory tier (each sums to one).

    Shapes are ``(n_tiers,)``. ``context`` is read-mostly data such as a RAG corpus
    (``Workload.corpus_bytes``). :func:`Placement.main_memory` puts everything in tier 0;
    :func:`Placement.from_logits` maps unconstrained logits through a softmax (co-design).
    """

    weights: Any
    kv_cache: Any
    activations: Any
    context: Any = None

    def __post_init__(self):
        if self.context is None:
            object.__setattr__(self, "context", self.weights)

    @staticmethod
    def main_memory(n_tiers: int) -> Placement:
        one_hot = jnp.zeros(n_tiers).at[0].set(1.0)
        return Placement(weights=one_hot, kv_cache=one_hot, activations=one_hot, context=one_hot)

    @staticmethod
    def from_logits(weights, kv_cache, activations, context=None) -> Placement:
        sm = lambda z: jax.nn.softmax(jnp.asarray(z, dtype=float))
        return Placement(
            weights=sm(weights),
            kv_cache=sm(kv_cache),
            activations=sm(activations),
            context=sm(weights if context is None else context),
        )


@spec
class System:
    """``n_chips`` identical chips joined by ``network``, holding one model replica.

    ``placement=None`` means every tensor class lives in tier 0.
    """

    chip: Chip
    n_chips: Any
    network: Network
    placement: Placement | None = None

    def resolved_placement(self) -> Placement:
        if self.placement is None:
            return Placement.main_memory(len(self.chip.tiers))
        return self.placement


# ----------------------------------------------------------------------------- model

ATTENTION_KINDS = ("mha", "gqa", "mla")


@spec
class Model:
    """Transformer architecture (shapes from ``config.json``). Counts live in :mod:`counts`.

    Dense models have ``n_dense_layers == n_layers`` and ``n_experts == 0``. MoE models
    use ``n_experts`` routed experts (top-``n_experts_active``) of width ``moe_d_ff``, plus
    ``n_shared_experts`` always-on experts, in every layer after ``n_dense_layers``.
    Sliding-window attention applies to ``n_sliding_layers`` layers (window
    ``sliding_window`` tokens). MLA (DeepSeek) caches ``kv_lora_rank + qk_rope_head_dim``
    elements per token per layer.
    """

    n_layers: Any
    d_model: Any
    n_heads: Any
    n_kv_heads: Any
    head_dim: Any
    vocab_size: Any
    d_ff: Any = 0.0
    n_experts: Any = 0.0
    n_experts_active: Any = 0.0
    n_shared_experts: Any = 0.0
    moe_d_ff: Any = 0.0
    n_dense_layers: Any = None  # None -> all layers dense (set in __post_init__)
    kv_lora_rank: Any = 0.0
    q_lora_rank: Any = 0.0
    qk_rope_head_dim: Any = 0.0
    qk_nope_head_dim: Any = 0.0
    v_head_dim: Any = 0.0
    sliding_window: Any = 0.0
    n_sliding_layers: Any = 0.0
    attention: str = static("gqa")
    gated_ffn: bool = static(True)
    tied_embeddings: bool = static(False)

    def __post_init__(self):
        if self.n_dense_layers is None:
            object.__setattr__(self, "n_dense_layers", self.n_layers)


SPARSITY_PATTERNS = ("dense", "unstructured", "2:4")


@spec
class Compression:
    """Numeric formats and pruning.

    Attributes:
      weight_bits / kv_bits / act_bits: element widths (activations decide the tensor-core
        dtype, hence the compute peak).
      weight_overhead_bits / kv_overhead_bits: per-element scale/zero metadata of group
        quantisation (e.g. ``q4_0``: one fp16 scale per 32 weights = 0.5 bit).
      sparsity: pruned fraction of weights (``pattern`` ``"2:4"`` fixes it at 0.5).
      pattern: static; ``dense``, ``unstructured`` (bitmap index, 1 bit/element, no
        compute speed-up) or ``2:4`` (1 bit/element of metadata, 2x tensor-core rate).

    Structured (shape-changing) pruning, relaxed for co-design; applied by
    :func:`hwgrad.pruning.apply`, rounded by :func:`hwgrad.pruning.round_to_legal`. All are
    dimensionless keep fractions in (0, 1], default 1 = no pruning; quality cost fitted to
    ``structured_pruning.csv`` (:func:`hwgrad.accuracy.structured_delta_loss`).

      layers_kept_fraction: transformer layers kept (ShortGPT, SLEB, BlockPruner); ignored
        when ``layer_keep_gates`` is given.
      layer_keep_gates: optional ``(n_layers,)`` gates in [0, 1] (1 = keep that layer); their
        sum is the relaxed layer count. ``None`` = use ``layers_kept_fraction``.
      hidden_kept_fraction: residual-stream (embedding) dimension kept (SliceGPT slicing
        ratio = 1 - this).
      ffn_kept_fraction: FFN intermediate channels kept (dense ``d_ff`` and each expert's
        ``moe_d_ff``; LLM-Pruner, FLAP).
      heads_kept_fraction: query heads kept (whole heads; GQA: whole groups after rounding).
      kv_heads_kept_fraction: KV heads kept (GQA only; MHA follows the query heads, MLA has
        one shared latent).
    """

    weight_bits: Any = 16.0
    kv_bits: Any = 16.0
    act_bits: Any = 16.0
    weight_overhead_bits: Any = 0.0
    kv_overhead_bits: Any = 0.0
    sparsity: Any = 0.0
    layers_kept_fraction: Any = 1.0
    layer_keep_gates: Any = None
    hidden_kept_fraction: Any = 1.0
    ffn_kept_fraction: Any = 1.0
    heads_kept_fraction: Any = 1.0
    kv_heads_kept_fraction: Any = 1.0
    pattern: str = static("dense")


@spec
class Workload:
    """One static batch: ``batch`` sequences, ``prompt_len`` in, ``output_len`` out.

    ``tp`` x ``pp`` chips hold one model replica; ``ep`` (dividing ``tp``) splits routed
    experts; ``dp`` replicas serve independent batches. ``microbatches`` splits the batch
    through the pipeline (bubble fraction ``(pp - 1) / (microbatches + pp - 1)``).
    ``kv_block_tokens`` is the paged-KV block (vLLM's default 16): the contiguous unit of KV
    reads. A read-mostly corpus (RAG) of ``corpus_bytes`` per chip is held resident and each
    sequence reads ``corpus_read_bytes_per_sequence`` of it during its prefill.
    """

    batch: Any = 1.0
    prompt_len: Any = 512.0
    output_len: Any = 128.0
    tp: Any = 1.0
    pp: Any = 1.0
    ep: Any = 1.0
    dp: Any = 1.0
    microbatches: Any = 1.0
    kv_block_tokens: Any = 16.0
    corpus_bytes: Any = 0.0
    corpus_read_bytes_per_sequence: Any = 0.0


# ----------------------------------------------------------------------------- money, carbon


@spec
class Economics:
    """Prices and carbon. Defaults: :func:`hwgrad.presets.default_economics` (cited).

    Embodied carbon of a chip whose own figure is unknown is estimated from its logic die
    area (``embodied_kgco2e_per_cm2_logic``, 5 nm) plus its memory tiers (kgCO2e/GB).
    """

    electricity_usd_per_kwh: Any = 0.0806
    pue: Any = 1.10
    grid_gco2e_per_kwh: Any = 369.0
    lifetime_years: Any = 5.0
    server_cost_multiplier: Any = 1.64
    utilization: Any = 1.0
    embodied_kgco2e_per_cm2_logic: Any = 2.78


# ----------------------------------------------------------------------------- model knobs


@spec
class Efficiency:
    """Achievable fractions of peak and fixed overheads (what ``calibrate`` fits).

    :meth:`speed_of_light` gives the ideal roofline (all fractions 1, overheads 0).

    Attributes:
      bandwidth_efficiency: achieved / peak memory bandwidth.
      flops_efficiency: achieved / peak FLOP/s.
      op_overhead_s: fixed cost per kernel (launch + tail), charged per op per layer.
      collective_overhead_s: extra software cost per collective call.
      comm_overlap: fraction of communication hidden under compute (0 = serial).
      static_power_fraction: idle/static power as a fraction of TDP.
    """

    bandwidth_efficiency: Any = 1.0
    flops_efficiency: Any = 1.0
    op_overhead_s: Any = 0.0
    collective_overhead_s: Any = 0.0
    comm_overlap: Any = 0.0
    static_power_fraction: Any = 0.0

    @staticmethod
    def speed_of_light() -> Efficiency:
        return Efficiency()


ROOFLINE_MODES = ("straight_through", "smooth", "hard")


@dataclasses.dataclass(frozen=True)
class Options:
    """Static evaluation options (hashable; pass as a static argument).

    Attributes:
      roofline: ``straight_through`` (exact values, smooth gradients), ``smooth`` or
        ``hard``.
      smooth_p: p-norm sharpness of the smooth max (bias <= 2^(1/p) - 1).
      decode_quadrature_nodes: Gauss-Legendre nodes used to integrate the decode step
        time over the growing context (exact for polynomials of degree 2n - 1).
    """

    roofline: str = "straight_through"
    smooth_p: float = 8.0
    decode_quadrature_nodes: int = 8
