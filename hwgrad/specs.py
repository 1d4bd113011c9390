"""Specifications: frozen dataclass pytrees in which every number is a leaf.

Every numeric field is a pytree leaf, so specs can be stacked, ``vmap``-ed and
differentiated; only code-path switches (attention kind, sparsity pattern, topology kind)
are static metadata, marked ``static=True`` below. Names carry no names: preset names are
registry keys in `hwgrad.presets`, never fields.

Units are SI and appear in each field name (``_bytes``, ``_s``, ``_w``, ``_j_per_byte``...).
Integers such as layer counts, chip counts and parallel degrees are stored as floats so the
model can relax them for gradient-based co-design; `hwgrad.validate.validate` checks
that they are whole where the physics needs it.

Slightly over 600 lines: every spec with its documented, unit-named fields; one concept (the pytree vocabulary), so kept together.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "MemoryTier",
    "Channel",
    "Chip",
    "Network",
    "System",
    "IB_NDR",
    "Placement",
    "Model",
    "Compression",
    "Workload",
    "Economics",
    "Efficiency",
    "Stack",
    "Options",
    "replace",
]

INF = float("inf")
NAN = float("nan")


def static(default: Any = dataclasses.MISSING):
    """A dataclass field that is pytree metadata (static under ``jit``), not a leaf.

    Static fields are the code-path switches only (text, booleans, structural integers);
    each one's comment says why it is static. Changing one recompiles; changing a number never
    does. (``jax.tree_util.register_dataclass`` reads ``metadata["static"]``; the equivalent of
    ``flax.struct.field(pytree_node=False)``: see docs/architecture.md for why specs use
    the core-JAX registration and not flax.)
    """
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

#: where a tier's near-memory ops run in one phase: on the tier's logic, on the host, or
#: wherever is faster (exact minimum of the two, smooth-minimum gradient)
NMC_POLICIES = ("memory", "host", "auto")

#: board idle power of a datacenter GPU with a CUDA context (a loaded model, no work) as a
#: fraction of TDP: economics.csv ``gpu_idle_with_context_power_w_v100_sxm2`` = 59.5 W of a
#: 300 W V100-SXM2 (53-66 W observed, 18-22 %). `hwgrad.presets.chip` reads it from
#: the data; this literal is the same number for hand-built chips.
IDLE_POWER_FRACTION = 59.5 / 300.0


@spec
class MemoryTier:
    """One level of a chip's memory hierarchy (per chip), optionally with compute in it.

    Tiers are read in parallel, each through its own interface, unless ``channel`` names a
    shared channel of the chip (`Channel`, e.g. CXL memory behind the PCIe link):
    the tiers of one channel add up and the channel's bandwidth bounds their combined bytes.

    Attributes:
      capacity_bytes: usable capacity per chip (``inf`` = unknown, capacity check skipped).
      bandwidth_bytes_per_s: peak read bandwidth per chip (the external interface).
      read_latency_s: representative read latency (used with ``prefetch_bytes``).
      access_granularity_bytes: smallest unit the device transfers (HBM 32 B, flash page
        4 KiB); reads of contiguous chunks smaller than this waste bandwidth.
      prefetch_bytes: bytes the controller keeps in flight; sustained bandwidth is capped
        at ``prefetch_bytes / read_latency_s`` (Little's law). ``inf`` = never binds.
        `hwgrad.presets.memory_tier` sizes it to ``latency x bandwidth`` of the
        devices (just enough for the rated bandwidth at the rated latency).
      energy_j_per_byte: access energy across the external interface (pJ/bit x 8e-12).
      cost_usd_per_gb: price per decimal GB (``nan`` = unknown).
      embodied_kgco2e_per_gb: manufacturing carbon per GB (``nan`` = unknown).
      write_endurance_cycles: program/erase cycles per cell, for the lifetime estimate
        (``inf`` = unlimited).
      idle_power_w: background (refresh, standby) power of the tier's devices, W, drawn all
        the time, beyond what ``Chip.idle_power_fraction`` covers (presets: 0 for the
        board's own main memory; ``devices x power_per_device_W x idle share`` for added
        tiers). Range [0, devices x power_per_device_W].
      nmc_flops: FLOP/s of compute inside/beside this tier (PIM, PNM, base-die logic) at
        16-bit activations; like tensor cores it runs ``16 / act_bits`` times faster on
        narrower activations (``act_bits`` clipped to [4, 16]). 0 = none.
      nmc_bandwidth_multiplier: internal bandwidth seen by that compute / external bandwidth.
      nmc_energy_j_per_byte: access energy for the in-tier compute (no interface crossing).
      nmc_energy_j_per_flop: energy per FLOP of the in-tier logic at 16-bit activations
        (scales with ``act_bits / 16``).
      nmc_shard_bytes: capacity one compute unit owns (PIM bank 32-64 MB, PNM 16-32 GB).
        GEMVs are split by output rows (each output leaves its shard once); only a shard
        holding less than one row (or one sequence-head of KV cache) splits the reduction
        dimension and sends ``unit / shard`` partial sums per output.
      nmc_power_cap_w: thermal budget of the in-tier logic (``inf`` = none); time is at
        least the in-tier energy / this cap (a power roofline).
      nmc_idle_power_w: idle power of the in-tier logic, W (0 = none or unknown).
      channel: static; index into ``Chip.channels`` of the shared channel this tier sits
        behind, ``-1`` (default) for its own interface.
      low_write_endurance: static; ``True`` for flash-like tiers that must not hold
        per-token writes (KV cache).
      nmc_ops: static; which ops run in the tier: ``"gemv"`` (weight matrix ops) and/or
        ``"attention"`` (attention over the KV cache).
      nmc_decode / nmc_prefill: static; where those ops run in each phase, one of
        `NMC_POLICIES`. Default: decode GEMV/attention on the memory side, prefill
        (compute-bound GEMMs) on the host.
    """

    capacity_bytes: float | jax.Array
    bandwidth_bytes_per_s: float | jax.Array
    read_latency_s: float | jax.Array = 32e-9
    access_granularity_bytes: float | jax.Array = 32.0
    prefetch_bytes: float | jax.Array = INF
    energy_j_per_byte: float | jax.Array = 3.9e-12 * 8
    cost_usd_per_gb: float | jax.Array = NAN
    embodied_kgco2e_per_gb: float | jax.Array = NAN
    write_endurance_cycles: float | jax.Array = INF
    idle_power_w: float | jax.Array = 0.0
    nmc_flops: float | jax.Array = 0.0
    nmc_bandwidth_multiplier: float | jax.Array = 1.0
    nmc_energy_j_per_byte: float | jax.Array = 0.0
    nmc_energy_j_per_flop: float | jax.Array = 0.0
    nmc_shard_bytes: float | jax.Array = INF
    nmc_power_cap_w: float | jax.Array = INF
    nmc_idle_power_w: float | jax.Array = 0.0
    # static: an index into the Python tuple Chip.channels; it decides which tiers share one
    # channel (their times add up), a grouping built with Python loops at trace time
    channel: int = static(-1)
    # static: a placement rule (flash tiers never hold the KV cache), built into a constant mask
    low_write_endurance: bool = static(False)
    # static: names of ops routed to the memory-side logic; choosing ops is a code path, not a number
    nmc_ops: tuple = static(())
    # static: text switches (where each phase runs its near-memory ops), one program per choice
    nmc_decode: str = static("memory")
    nmc_prefill: str = static("host")


@spec
class Channel:
    """A link that several tiers share (e.g. CXL memory behind the host's PCIe link).

    Attributes:
      bandwidth_bytes_per_s: per-direction bandwidth of the link (PCIe 5 x16: 64e9,
        interconnect.csv ``pcie5-x16``).
      energy_j_per_byte: transfer energy per byte crossing the link (SerDes: 5.5 pJ/bit,
        energy_ops.csv ``112G PAM4 SerDes``; NVLink-C2C 1.3 pJ/bit).
    """

    bandwidth_bytes_per_s: float | jax.Array
    energy_j_per_byte: float | jax.Array = 0.0


@spec
class Chip:
    """An accelerator: compute peaks, memory tiers, power and price.

    Power (see `hwgrad.power`) = idle + active + dynamic, capped at ``tdp_w``.

    Attributes:
      tiers: tuple of `MemoryTier`; tier 0 is the main memory by convention.
      peak_flops_bf16 / peak_flops_fp8 / peak_flops_fp4: dense tensor peaks, FLOP/s
        (``inf`` = unknown: compute time is then not modelled and outputs say so).
      sram_bytes: largest on-chip SRAM pool.
      tdp_w: board/module power limit; the average power of a pass is capped at it (the
        step slows). ``0`` or non-finite: no cap, no host idle/active power.
      energy_j_per_flop_bf16: dynamic energy per bf16 FLOP on the host die; narrower
        operands scale by ``bits / 16``. Presets derive an upper bound from the TDP
        (`hwgrad.presets.energy_j_per_flop_from_tdp`).
      price_usd: purchase price per chip (``nan`` = unknown).
      embodied_kgco2e: manufacturing carbon per chip (``nan`` = unknown).
      die_area_mm2: logic die area (``nan`` = unknown).
      channels: tuple of `Channel` that tiers may share (``MemoryTier.channel``).
      idle_power_fraction: board idle power (host die, board, its own main memory) with a
        model loaded and no work, as a fraction of ``tdp_w``; range [0, 1). Default
        `IDLE_POWER_FRACTION` = 0.198 (V100-SXM2, economics.csv
        ``gpu_idle_with_context_power_w_v100_sxm2``; ``gpu_idle_context_power_increment_w_hbm``
        adds that a CUDA context costs +26-50 W over bare idle on HBM GPUs).
      active_power_fraction: clock/stall power of a busy chip not explained by bytes and
        FLOPs (kernels running, SMs waiting on memory), as a fraction of
        ``tdp_w x (1 - idle_power_fraction)``, drawn while the chip executes a pass; range
        [0, 0.6]. Default 0: not yet fitted (the energy rows of calibration.csv, A100 and
        H100, identify it per vendor family).
      bandwidth_efficiency: achievable / peak memory bandwidth of the chip family (memory
        controller, refresh, page policy), in (0, 1]; fitted per family
        (`hwgrad.calibrate`), 1 for raw specs. Sustained-read microbenchmarks reach
        ~0.85-0.93 of peak on HBM parts.
      flops_efficiency: achievable / peak dense tensor FLOP/s of the chip family, in (0, 1]
        (clock under load, issue limits); fitted per family, 1 for raw specs.
      kernel_memory_latency_s: time before a kernel's memory stream reaches full bandwidth
        (DRAM latency + pipeline fill; the ramp of small transfers), s, charged once per
        kernel that reads memory; range 0-5 us; fitted per family, 0 for raw specs.
      gemm_tile_tokens: the token (M) granule of the chip's tensor-core GEMM tiles; the
        compute of ``T`` tokens costs ``ceil(T / tile) * tile`` tokens' FLOPs (wave/tile
        quantisation at small M). 1 = none (raw specs); Hopper wgmma M = 64.
    """

    tiers: tuple
    peak_flops_bf16: float | jax.Array
    peak_flops_fp8: float | jax.Array
    peak_flops_fp4: float | jax.Array
    sram_bytes: float | jax.Array = 0.0
    tdp_w: float | jax.Array = NAN
    energy_j_per_flop_bf16: float | jax.Array = NAN
    price_usd: float | jax.Array = NAN
    embodied_kgco2e: float | jax.Array = NAN
    die_area_mm2: float | jax.Array = NAN
    channels: tuple = ()
    idle_power_fraction: float | jax.Array = IDLE_POWER_FRACTION
    active_power_fraction: float | jax.Array = 0.0
    bandwidth_efficiency: float | jax.Array = 1.0
    flops_efficiency: float | jax.Array = 1.0
    kernel_memory_latency_s: float | jax.Array = 0.0
    gemm_tile_tokens: float | jax.Array = 1.0


TOPOLOGIES = ("switch", "fat_tree", "ring", "torus", "fully_connected", "dragonfly", "tree")


@spec
class Network:
    """An interconnect: the scale-up fabric of a chip (``System.network``) or the scale-out
    network between scale-up domains (``System.scaleout``).

    Collectives are priced with an alpha-beta model (see `hwgrad.network`):
    ``alpha = hops * hop_latency_s + endpoint_overhead_s`` per message step and
    ``beta = 1 / link_bandwidth_bytes_per_s``. These are hardware terms; the collective
    library's per-call cost is a software input (`hwgrad.network.COLLECTIVE_IMPLEMENTATIONS`).

    Attributes:
      link_bandwidth_bytes_per_s: per-chip injection bandwidth, one direction (all of the
        chip's scale-up links; on a full mesh each peer gets ``1 / (domain_size - 1)``).
      hop_latency_s: latency added by each switch or router hop (default 300 ns: top of the
        100-300 ns per switch of interconnect.csv ``ib-ndr``; range 0-2 us).
      endpoint_overhead_s: hardware latency per message an endpoint handles (default 0.3 us,
        DERIVED from the group-size slope of ``custom-allreduce-8xh100-small``: TP2 3.9,
        TP4 3.7, TP8 5.7 us at 4 KB; range 0-5 us; lower when packets land in on-chip SRAM).
      energy_j_per_byte: transfer energy.
      in_network_bandwidth_bytes_per_s: reduction throughput of a reducing switch per port
        (``inf``: limited by the link).
      switch_radix: ports per switch (fat tree and tree: sets the number of levels).
      domain_size: chips the network joins: the scale-up domain (HGX board 8, NVL72 72, TPU
        pod; hardware.csv ``scaleup_domain_size``) or, for a scale-out network, the most
        chips it can connect; ``inf`` = unbounded (groups never leave the domain). Whole
        number >= 1.
      topology: static; one of `TOPOLOGIES`.
      torus_dims: static; number of torus dimensions (``topology == "torus"``).
      in_network_reduction: static; switches reduce and multicast (NVLink SHARP, a
        reduction tree): an all-reduce is one pass up and one down.
    """

    link_bandwidth_bytes_per_s: float | jax.Array
    hop_latency_s: float | jax.Array = 300e-9
    endpoint_overhead_s: float | jax.Array = 0.3e-6
    energy_j_per_byte: float | jax.Array = 5.5e-12 * 8
    in_network_bandwidth_bytes_per_s: float | jax.Array = INF
    switch_radix: float | jax.Array = 64.0
    domain_size: float | jax.Array = INF
    # static: the topology selects the hop and collective formulas (text, not a number)
    topology: str = static("switch")
    # static: a whole number of dimensions (the side p^(1/k) and k x hops); a relaxed k has no
    # physical meaning, and co-design chooses topologies, not fractional dimensions
    torus_dims: int = static(2)
    # static: switches the collective algorithm (reduce in the switch or at the endpoints)
    in_network_reduction: bool = static(False)


@spec
class Placement:
    """Fractions of each tensor class held in each memory tier (each sums to one).

    Shapes are ``(n_tiers,)``. ``context`` is read-mostly data such as a RAG corpus
    (``Workload.corpus_bytes``). `Placement.main_memory` puts everything in tier 0;
    `Placement.from_logits` maps unconstrained logits through a softmax (co-design).
    """

    weights: float | jax.Array
    kv_cache: float | jax.Array
    activations: float | jax.Array
    context: float | jax.Array = None

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


#: InfiniBand NDR as the default scale-out network (interconnect.csv ``ib-ndr``): one
#: 400 Gb/s port = 50 GB/s per GPU per direction, 300 ns per switch (top of the cited
#: 100-300 ns), 0.83 us per message at an endpoint (the row's ib_send_lat for 32 B), a
#: two-level fat tree of 64-port QM9700 switches joining up to 64^2 / 2 = 2048 chips.
#: `hwgrad.presets.scaleout` builds the same from the data.
IB_NDR = Network(
    link_bandwidth_bytes_per_s=50e9,
    hop_latency_s=300e-9,
    endpoint_overhead_s=0.83e-6,
    switch_radix=64.0,
    domain_size=2048.0,
    topology="fat_tree",
)


@spec
class System:
    """``n_chips`` identical chips joined by ``network``, holding one model replica.

    ``network`` is the scale-up fabric (``network.domain_size`` chips per domain);
    parallel groups larger than a domain cross ``scaleout`` (default `IB_NDR`).
    ``placement=None`` means every tensor class lives in tier 0.
    """

    chip: Chip
    n_chips: float | jax.Array
    network: Network
    placement: Placement | None = None
    scaleout: Network = IB_NDR

    def resolved_placement(self) -> Placement:
        if self.placement is None:
            return Placement.main_memory(len(self.chip.tiers))
        return self.placement


# ----------------------------------------------------------------------------- model

ATTENTION_KINDS = ("mha", "gqa", "mla")


@spec
class Model:
    """Transformer architecture (shapes from ``config.json``). Counts live in `counts`.

    Dense models have ``n_dense_layers == n_layers`` and ``n_experts == 0``. MoE models
    use ``n_experts`` routed experts (top-``n_experts_active``) of width ``moe_d_ff``, plus
    ``n_shared_experts`` always-on experts, in every layer after ``n_dense_layers``.
    Sliding-window attention applies to ``n_sliding_layers`` layers (window
    ``sliding_window`` tokens). MLA (DeepSeek) caches ``kv_lora_rank + qk_rope_head_dim``
    elements per token per layer.
    """

    n_layers: float | jax.Array
    d_model: float | jax.Array
    n_heads: float | jax.Array
    n_kv_heads: float | jax.Array
    head_dim: float | jax.Array
    vocab_size: float | jax.Array
    d_ff: float | jax.Array = 0.0
    n_experts: float | jax.Array = 0.0
    n_experts_active: float | jax.Array = 0.0
    n_shared_experts: float | jax.Array = 0.0
    moe_d_ff: float | jax.Array = 0.0
    n_dense_layers: float | jax.Array = None  # None -> all layers dense (set in __post_init__)
    kv_lora_rank: float | jax.Array = 0.0
    q_lora_rank: float | jax.Array = 0.0
    qk_rope_head_dim: float | jax.Array = 0.0
    qk_nope_head_dim: float | jax.Array = 0.0
    v_head_dim: float | jax.Array = 0.0
    sliding_window: float | jax.Array = 0.0
    n_sliding_layers: float | jax.Array = 0.0
    # static: architecture switches that select count formulas (attention kind; 3 or 2 FFN
    # matrices; a separate LM head or not); they are not quantities to relax or differentiate
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
    `hwgrad.pruning.apply`, rounded by `hwgrad.pruning.round_to_legal`. All are
    dimensionless keep fractions in (0, 1], default 1 = no pruning; quality cost fitted to
    ``structured_pruning.csv`` (`hwgrad.accuracy.structured_delta_loss`).

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

    Mixed-precision checkpoints keep some weights in another format than the rest:

      attention_weight_bits: stored bits per attention-projection weight (scales included);
        ``0`` = the format of the other weights (``weight_bits + weight_overhead_bits``,
        with their sparsity).
      embedding_weight_bits: the same for the token embedding table and the LM head.

    gpt-oss's MXFP4 keeps attention, embeddings and LM head in bf16 (OpenAI gpt-oss model
    card, 2025); Meta's Llama-3.1-405B-FP8 quantises the FFN only (Llama 3 paper,
    arXiv:2407.21783 sec. 6.2). Weights given their own width are dense, and their GEMMs
    run at ``max(act_bits, width)`` bits: a 16-bit weight is not multiplied on fp8 tensor
    cores (`hwgrad.counts.op_compute_bits`).
    """

    weight_bits: float | jax.Array = 16.0
    kv_bits: float | jax.Array = 16.0
    act_bits: float | jax.Array = 16.0
    weight_overhead_bits: float | jax.Array = 0.0
    kv_overhead_bits: float | jax.Array = 0.0
    sparsity: float | jax.Array = 0.0
    layers_kept_fraction: float | jax.Array = 1.0
    layer_keep_gates: float | jax.Array = None
    hidden_kept_fraction: float | jax.Array = 1.0
    ffn_kept_fraction: float | jax.Array = 1.0
    heads_kept_fraction: float | jax.Array = 1.0
    kv_heads_kept_fraction: float | jax.Array = 1.0
    attention_weight_bits: float | jax.Array = 0.0
    embedding_weight_bits: float | jax.Array = 0.0
    # static: the sparse format selects the index-overhead formula (text, not a number)
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

    ``attention_dp`` (default 1 = off) is attention data parallelism, the way DeepSeek-V3
    and other MLA/MoE models are served (DeepSeek-V3 report arXiv:2412.19437 sec. 3.4;
    SGLang ``--enable-dp-attention``, vLLM ``--data-parallel-size`` with expert
    parallelism): the ``tp`` chips form ``attention_dp`` groups of ``tp / attention_dp``
    chips; each group holds a full copy of the non-expert weights (attention, dense FFN
    layers, shared experts, router, embeddings, LM head; tensor-parallel inside the group)
    and serves ``batch / attention_dp`` of the sequences with their KV cache; the routed
    experts stay expert-parallel over all ``tp`` chips (``ep`` ranks), reached by all-to-all
    dispatch and combine. Whole, divides ``tp``, only with ``ep > 1`` on an MoE model.

    ``batching`` (static) is the serving mode (`hwgrad.serving`):

    * ``"static"``: one batch of ``batch`` sequences is prefilled together, then decoded
      together; when the KV cache of the whole batch does not fit, the engine admits as
      many sequences as fit and runs the batch in back-to-back *waves* - or, on a stack
      that allocates KV blocks on demand and preempts (``Stack.kv_on_demand``, vLLM), in
      fewer waves' worth of steps with the pool kept full (`hwgrad.cost.effective_waves`).
    * ``"continuous"``: an engine under a client that keeps ``batch`` requests in flight;
      in steady state every decode step also carries the arriving requests' prefill work,
      on average ``batch x prompt_len / output_len`` tokens per step (chunked prefill).
    * ``"disaggregated"``: the decode pool of a prefill/decode-disaggregated deployment:
      decode steps carry no prefill; the KV cache of each request arrives once over the
      network from a prefill pool of the same chips.
    """

    batch: float | jax.Array = 1.0
    prompt_len: float | jax.Array = 512.0
    output_len: float | jax.Array = 128.0
    tp: float | jax.Array = 1.0
    pp: float | jax.Array = 1.0
    ep: float | jax.Array = 1.0
    dp: float | jax.Array = 1.0
    microbatches: float | jax.Array = 1.0
    kv_block_tokens: float | jax.Array = 16.0
    corpus_bytes: float | jax.Array = 0.0
    corpus_read_bytes_per_sequence: float | jax.Array = 0.0
    attention_dp: float | jax.Array = 1.0
    # static: the serving mode selects the serving model (static / continuous / disaggregated)
    batching: str = static("static")


BATCHING_MODES = ("static", "continuous", "disaggregated")


# ----------------------------------------------------------------------------- money, carbon


@spec
class Economics:
    """Prices and carbon. Defaults: `hwgrad.presets.default_economics` (cited).

    Embodied carbon of a chip whose own figure is unknown is estimated from its logic die
    area (``embodied_kgco2e_per_cm2_logic``, 5 nm) plus its memory tiers (kgCO2e/GB).
    """

    electricity_usd_per_kwh: float | jax.Array = 0.0806
    pue: float | jax.Array = 1.10
    grid_gco2e_per_kwh: float | jax.Array = 369.0
    lifetime_years: float | jax.Array = 5.0
    server_cost_multiplier: float | jax.Array = 1.64
    utilization: float | jax.Array = 1.0
    embodied_kgco2e_per_cm2_logic: float | jax.Array = 2.78


# ----------------------------------------------------------------------------- model knobs


@spec
class Stack:
    """A serving stack: what the software adds to the hardware's roofline.

    Hardware says what the silicon can do (peaks and the chip family's achievable fractions,
    `Chip`); a stack says what a serving engine adds on top: the quality of its
    kernels (a fraction of the chip's achievable bandwidth and FLOPS), a launch/sync gap per
    kernel (`hwgrad.counts.KERNELS_PER_OP` kernels per layer and op), a fixed cost
    per forward pass (scheduling, sampling, input preparation), a software latency per
    collective call (the collective library's launch and flag synchronisation) and the
    collective payload's data type. `ideal` is the stack with no software cost.
    Named presets (fitted to the measured rows of each stack family) are in
    `hwgrad.presets.stack`; ``"tuned"`` (the best stack in the data on a chip's vendor
    line) is the default of the CLI and design studies.

    Attributes:
      bandwidth_efficiency: achieved / achievable memory bandwidth of the stack's GEMV and
        streaming kernels, in (0, 1] (fitted per stack; prior 0.9, range 0.3-1).
      flops_efficiency: achieved / achievable tensor FLOP/s of its GEMMs, in (0, 1].
      op_overhead_s: gap per kernel launch (launch + tail + dependency wait), s; range
        0-50 us (CUDA graphs ~1-3 us per kernel, eager PyTorch ~5-10 us).
      step_overhead_s: engine cost per forward pass (scheduler, sampling, host<->device
        inputs) not hidden by the device, s; range 0-20 ms.
      collective_overhead_s: software latency per collective call (launch, barrier flags)
        on top of the network's hardware latency, s; range 0-50 us (the custom one-shot
        all-reduce of SGLang/TensorRT-LLM vs vLLM's differ by ~3.6 us on 8x H100,
        ``interconnect.csv``).
      attention_efficiency: achieved fraction of the streaming bandwidth when reading the
        paged KV cache (decode attention kernels), in (0, 1].
      kv_group_reuse: in [0, 1], how much of the decode attention kernel's KV traffic a
        grouped-query attention group shares: 1 (FlashDecoding, FlashInfer, TensorRT-LLM's
        XQA kernel) reads each KV head once for all the query heads of its group; 0 (a
        kernel with one thread block per query head, TensorRT-LLM's masked multi-head
        attention before XQA) reads it once per query head, so a decode step moves
        ``1 + (1 - reuse)(G - 1)`` times the cache for G query heads per KV head
        (`hwgrad.counts.kv_reads_per_pass`). Not fitted: a property of the kernel,
        set per stack version (`hwgrad.stacks.KERNEL_TRAITS`).
      comm_bits: width of collective payloads (stacks all-reduce hidden states in bf16:
        16, whatever the activation format).
      comm_overlap: fraction of communication hidden under compute (0 = serial, the
        decode case: all-reduces sit on the critical path).
      memory_fraction: share of each tier's capacity the engine lets the weights and KV
        cache use (vLLM's ``gpu_memory_utilization`` and TensorRT-LLM's
        ``kv_cache_free_gpu_mem_fraction`` default to 0.9; the rest is the framework's
        workspace); it decides how many sequences of a static batch run at once.
      prefill_chunk_tokens: the engine's token budget of one step, the chunk size of chunked
        prefill (vLLM ``--max-num-batched-tokens``, SGLang ``--chunked-prefill-size``,
        TensorRT-LLM ``max_num_tokens``); 8192 in the InferenceMAX launch scripts
        (calibration.csv notes) and vLLM's V1 default for serving on 80 GB parts. Range
        256-262144 tokens; continuous batching (`hwgrad.cost.serve`) prefills arriving
        prompts in steps of at most this many tokens, and the engine sets aside the
        activation workspace of one such step before the KV cache
        (`hwgrad.cost.sequences_per_tier`). vLLM's offline benchmark without chunked
        prefill takes the model's context window (`hwgrad.stacks.token_budget`).
      kv_on_demand: in [0, 1], how the scheduler runs a static batch whose KV cache does not
        fit at once: 0 reserves every admitted request's whole context up front
        (TensorRT-LLM's ``GUARANTEED_NO_EVICT``), so the batch runs in back-to-back waves;
        1 allocates KV blocks as the sequences grow and, when the pool runs out, preempts
        the newest running request and later recomputes it (vLLM's V0 and V1 schedulers),
        so the pool stays full (`hwgrad.cost.effective_waves`). Not fitted: a property of
        the engine, set per stack family (`hwgrad.stacks.KV_ON_DEMAND_STACKS`).
      static_power_fraction: DEPRECATED, unused (power is idle + dynamic,
        `hwgrad.power`); kept so old parameter files load.
      collective_bandwidth_fraction: five numbers, the collective library's implementation: the
        fraction of the link bandwidth its kernel reaches for each all-reduce algorithm of
        `hwgrad.network.ALGORITHMS` (ring, tree, in_network, one_shot, two_shot), 0 where
        the library does not offer the algorithm; default all 1 (every algorithm at link
        rate: ``ideal``). Named libraries (NCCL, the custom all-reduces of
        TensorRT-LLM/SGLang and vLLM, ROCm's) are `hwgrad.network.COLLECTIVE_IMPLEMENTATIONS`;
        each stack preset names its own (`hwgrad.stacks.COLLECTIVE_BY_STACK`). A TOML
        ``[stack]`` table takes the name: ``collective = "custom+nccl"``.
    """

    bandwidth_efficiency: float | jax.Array = 1.0
    flops_efficiency: float | jax.Array = 1.0
    op_overhead_s: float | jax.Array = 0.0
    collective_overhead_s: float | jax.Array = 0.0
    comm_overlap: float | jax.Array = 0.0
    static_power_fraction: float | jax.Array = 0.0
    step_overhead_s: float | jax.Array = 0.0
    attention_efficiency: float | jax.Array = 1.0
    kv_group_reuse: float | jax.Array = 1.0
    comm_bits: float | jax.Array = 16.0
    memory_fraction: float | jax.Array = 1.0
    prefill_chunk_tokens: float | jax.Array = 8192.0
    kv_on_demand: float | jax.Array = 0.0
    # a tuple of five numbers (one leaf per algorithm: specs stay comparable and hashable);
    # None -> all 1; an array of shape (..., 5) (one library per row) is split along its last axis
    collective_bandwidth_fraction: tuple = None

    def __post_init__(self):
        f = self.collective_bandwidth_fraction
        if f is None:
            f = (1.0,) * 5
        elif isinstance(f, list):
            f = tuple(float(x) for x in f)
        elif not isinstance(f, tuple):  # an array whose last axis is the algorithm
            f = tuple(float(x) if np.ndim(x) == 0 and isinstance(x, np.ndarray | np.number) else x
                      for x in (f[..., i] for i in range(5)))  # fmt: skip
        object.__setattr__(self, "collective_bandwidth_fraction", f)

    @staticmethod
    def ideal() -> Stack:
        """No software cost: every fraction 1, every overhead 0 (bf16 collectives)."""
        return Stack()

    @staticmethod
    def speed_of_light() -> Stack:
        """Alias of `ideal` (the name of the first version)."""
        return Stack()


#: The first version's name for `Stack` (kept: old code and files keep working).
Efficiency = Stack


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
