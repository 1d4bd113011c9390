"""Serving stacks: what a serving engine adds to the hardware, per kernel, step and collective.

The hardware roofline (peaks times the chip family's achievable fractions) is what the
silicon can do; a `Stack` adds what the software costs:

    t_op    = rmax(FLOPs / (peak eta_hw,F eta_sw,F), bytes / (bw eta_hw,B eta_sw,B))
              + layers_op * KERNELS_PER_OP[op] * op_overhead_s
    t_pass  = sum_op t_op + collectives * (network time + collective_overhead_s)
              + step_overhead_s

``KERNELS_PER_OP`` counts the kernels a typical fused decode implementation launches per
layer for each op of `hwgrad.counts.OP_NAMES` (documented below); a stack's
``op_overhead_s`` is the gap each launch costs (CUDA graphs remove most of the CPU launch
cost but not the kernel tail and dependency wait). Presets are fitted per stack family to
the measured rows of ``calibration.csv`` (`hwgrad.calibrate`) and shipped in
``presets/data/calibration.toml``; ``ideal`` has no software cost and ``tuned`` - the
default serving stack - is what the best stack in the data achieves on a vendor line
(``tuned/<line>``, `hwgrad.calibrate.fit.tuned_stacks`): per software cost, the lowest
fitted value of the production engines with >= 10 rows there, and the highest kernel FLOPS
fraction (without a chip: the same across vendors).

Kernel counts per layer (decode, one token per sequence):

| op               | kernels | which                                                             |
|------------------|--------:|-------------------------------------------------------------------|
| attn_proj        | 4       | pre-norm (+ residual), QKV GEMM, RoPE + KV-cache write, O GEMM    |
| attn_core_full   | 1       | (flash/paged) decode attention                                    |
| attn_core_window | 1       | the same on sliding-window layers                                 |
| ffn_dense        | 4       | post-norm (+ residual), gate/up GEMM, activation x up, down GEMM  |
| moe              | 7       | norm, router GEMM, top-k, permute, grouped gate/up, act, grouped down + combine |
| lm_head          | 2       | final norm, vocabulary GEMM                                       |
| embedding        | 1       | gather                                                            |

(Counted from the decode graphs of vLLM/SGLang Llama and Mixtral models; unfused eager
implementations launch ~2x more - that difference is absorbed by the stack's fitted
``op_overhead_s``, which is only identified as the product with these counts.)

Two architectures launch more (`kernels_per_op` of a model):

* MLA attention, weight-absorbed as served (SGLang ``DeepseekV2AttentionMLA.forward_absorb``,
  vLLM ``MLACommonImpl`` decode): beyond the four above (the input norm, the fused
  ``q_a`` + ``kv_a`` GEMM, RoPE + latent-cache write, the O GEMM), the ``q_a`` RMSNorm, the
  ``kv_a`` RMSNorm, the ``q_b`` GEMM, and the two absorbed per-head batched GEMMs (``W_UK``
  into the query, ``W_UV`` out of the latent): +5. Without a query LoRA (``q_lora_rank``
  0: DeepSeek-V2-Lite) the query GEMM is separate from ``kv_a`` and there is no ``q_a``
  norm: +4.
* Shared experts (DeepSeek, Qwen-MoE): their MLP beside the routed experts - gate/up GEMM,
  activation x up, down GEMM - and the sum with the routed output: +4 on ``moe``.

A DeepSeek-V3/R1 MoE layer so launches 9 + 1 + 11 = 21 kernels where a Llama layer launches
4 + 1 + 4 = 9.
"""

from __future__ import annotations

import re

import jax.numpy as jnp
import numpy as np

from .counts import OP_NAMES

#: Kernels per layer for each op of `hwgrad.counts.OP_NAMES` (see module docstring).
KERNELS_PER_OP_BY_NAME = {
    "attn_proj": 4.0,
    "attn_core_full": 1.0,
    "attn_core_window": 1.0,
    "ffn_dense": 4.0,
    "moe": 7.0,
    "lm_head": 2.0,
    "embedding": 1.0,
}


#: Kernels an MLA attention layer launches beyond ``attn_proj``'s, with / without a query
#: LoRA, and a layer's shared experts beyond ``moe``'s (module docstring).
MLA_EXTRA_KERNELS = (5.0, 4.0)
SHARED_EXPERT_KERNELS = 4.0


def kernels_per_op(model=None):
    """``(len(OP_NAMES),)`` kernels per layer, aligned with `hwgrad.counts.OP_NAMES`
    (ops added to ``counts`` without an entry count one kernel); with a ``model``
    (`hwgrad.specs.Model`), its MLA attention's and shared experts' extra kernels added."""
    base = np.asarray([KERNELS_PER_OP_BY_NAME.get(name, 1.0) for name in OP_NAMES])
    if model is None:
        return base
    names = np.asarray(OP_NAMES)
    with_q_lora, without = MLA_EXTRA_KERNELS
    mla = jnp.where(jnp.asarray(model.q_lora_rank) > 0, with_q_lora, without) if model.attention == "mla" else 0.0
    shared = jnp.where(jnp.asarray(model.n_shared_experts) > 0, SHARED_EXPERT_KERNELS, 0.0)
    return base + mla * (names == "attn_proj") + shared * (names == "moe")


# ----------------------------------------------------------------------------- stack families

#: Serving-stack families recognised in a measurement's ``software`` text: ``(family,
#: needles)`` checked in order (the first match wins). A needle is a lower-case substring,
#: or a tuple of substrings that must all appear. Versions are split where the data show
#: different behaviour (vLLM 0.6 vs the V1 engine of 0.13; the `STACK_VERSIONS` of a
#: family differ from it in the launch gap only); vLLM, SGLang and gpt-fast on
#: ROCm are separate builds with their own kernels, recognised by "rocm" anywhere in the
#: text (an image tag, a build name), whatever the version - so a CUDA build of the same
#: version (``lmsysorg/sglang:v0.5.5-cu129``) is not taken for the ROCm one, nor a ROCm
#: build of vLLM 0.13 for the CUDA one.
STACK_FAMILIES: tuple[tuple[str, tuple[str | tuple[str, ...], ...]], ...] = (
    ("llama.cpp/metal", ("llama.cpp llama-bench (metal)", "llama.cpp (metal)", "llama.cpp metal")),
    ("llama.cpp/cuda", ("llama.cpp",)),
    ("gpt-fast/rocm", (("gpt-fast", "rocm"),)),
    ("gpt-fast", ("gpt-fast",)),
    ("tensorrt-llm", ("tensorrt-llm", "tensorrt llm", "trt-llm", "trtllm")),
    ("nim", ("nvidia nim", "nim ")),
    ("sglang-0.4/rocm", (("sglang 0.4", "rocm"),)),
    ("sglang/rocm", (("sglang", "rocm"),)),
    ("sglang", ("sglang",)),
    ("vllm-0.7/rocm", (("vllm 0.7", "rocm"),)),
    ("vllm/rocm", (("vllm", "rocm"),)),
    ("vllm-0.13", ("vllm/vllm-openai:v0.13", "vllm 0.13", "vllm v0.13")),
    ("vllm-0.6", ("vllm 0.6",)),
    ("vllm", ("vllm",)),
    ("gaudi", ("gaudi", "synapseai")),
    ("deepspeed-mii", ("deepspeed", "mii")),
)


#: Versions of a stack family that the data show to launch kernels at a different rate,
#: ``{version: family}``: a version's launch gap is fitted as an offset from its family's
#: (every other value is the family's), and a version without rows takes its family's
#: values. The early-2025 ROCm DeepSeek builds (SGLang 0.4.2 and vLLM 0.7.3 staging images)
#: run the 2025 builds' kernels with a several-fold larger gap per kernel than the late-2025
#: images of the same families (SGLang 0.5.5, ROCm vLLM 0.10+).
STACK_VERSIONS = {"sglang-0.4/rocm": "sglang/rocm", "vllm-0.7/rocm": "vllm/rocm"}


def stack_parent(family: str) -> str:
    """The stack family a version (`STACK_VERSIONS`) belongs to (``family`` itself if none)."""
    return STACK_VERSIONS.get(family, family)


#: The production serving engines of datacenter parts among `STACK_FAMILIES` (candidates
#: for the ``tuned`` stack; with the batched research harnesses, the stacks whose rows
#: identify a kernel FLOPS fraction).
PRODUCTION_ENGINES = ("tensorrt-llm", "sglang", "sglang/rocm", "vllm-0.13", "vllm-0.6", "vllm", "vllm/rocm", "nim")


#: Stack families that run as another family's engine on a vendor line,
#: ``{(family, line): family there}``. DeepSpeed on Gaudi is Habana's fork
#: (``HabanaAI/DeepSpeed``): it shards the optimum-habana model code and runs it through the
#: SynapseAI graph compiler (HPU graphs), the engine of Intel's own Gaudi tables; DeepSpeed-MII's
#: FastGen CUDA kernels, whose launch gap the NVIDIA rows fit, do not run there.
STACK_ON_LINE = {("deepspeed-mii", "intel-gaudi"): "gaudi"}


#: A CUDA vLLM build whose version has no family of its own takes the fitted build of its
#: engine generation, ``(lowest minor version of 0.x, family)`` checked in order: the V1
#: engine (the default from v0.8.0, and 1.x; `vllm-0.13`) or the V0 engine with multi-step
#: scheduling (v0.6-v0.7; `vllm-0.6`). An older or unversioned text stays plain `vllm`.
VLLM_GENERATIONS = ((8, "vllm-0.13"), (6, "vllm-0.6"))

_VLLM_VERSION = re.compile(r"vllm[^;,()]{0,25}?\bv?([01])\.(\d+)")


def stack_family(software: str, hw_line: str = "") -> str:
    """The stack family of a measurement's ``software`` text (``""`` if not recognised) on
    the vendor line ``hw_line`` (`hwgrad.presets.hardware_line`; ``""``: any, see
    `STACK_ON_LINE`; a CUDA vLLM version: `VLLM_GENERATIONS`)."""
    text = software.lower()
    for family, needles in STACK_FAMILIES:
        if any(n in text if isinstance(n, str) else all(p in text for p in n) for n in needles):
            if family == "vllm" and (version := _VLLM_VERSION.search(text)):
                major, minor = int(version.group(1)), int(version.group(2))
                family = next((f for lowest, f in VLLM_GENERATIONS if major or minor >= lowest), family)
            return STACK_ON_LINE.get((family, hw_line), family)
    return ""


#: Kernel properties of a stack version or build that differ from its family's, read from
#: the engines' source and documentation, not fitted: ``(family, needle, vendor lines,
#: {Stack field: value})``. ``needle`` is a lower-case substring of a measurement's
#: ``software`` text (``""``: every version of the family), the lines are
#: `hwgrad.presets.hardware_line` names (``()``: every line). A row keeps its family's
#: fitted values and changes only these fields.
#:
#: * TensorRT-LLM's v0.6.1 performance tables predate the XQA decode kernel (TensorRT-LLM
#:   ``docs/source/blogs/XQA-kernel.md``, v0.7): its masked multi-head attention runs one
#:   thread block per query head, so a GQA model's cache is read once per query head.
#: * vLLM's ROCm backend of 2024 (the LLM-Inference-Bench ``vllm`` rows on AMD parts) decodes
#:   with vLLM's PagedAttention v1/v2 kernels (``rocm_flash_attn`` backend ->
#:   ``PagedAttention.forward_decode``; one thread block per query head, grid
#:   ``(num_heads, num_seqs)``), where the CUDA backend calls FlashAttention's paged decode;
#:   the later ROCm builds (`vllm/rocm`) have a custom kernel that reads a KV head once for
#:   its whole query group.
KERNEL_TRAITS: tuple[tuple[str, str, tuple[str, ...], dict[str, float]], ...] = (
    ("tensorrt-llm", "tensorrt-llm v0.6", (), {"kv_group_reuse": 0.0}),
    ("vllm", "", ("amd-instinct",), {"kv_group_reuse": 0.0}),
)


def kernel_traits(software: str, hw_line: str = "") -> dict[str, float]:
    """The `KERNEL_TRAITS` of a measurement's ``software`` text on a vendor line (``{}``: none)."""
    return _traits(stack_family(software, hw_line), software.lower(), hw_line)


def stack_traits(family: str, hw_line: str = "") -> dict[str, float]:
    """The `KERNEL_TRAITS` of every version of the stack ``family`` on a vendor line
    (what ``hwgrad eval --stack NAME --hardware CHIP`` applies to the fitted preset)."""
    return _traits(family, None, hw_line)


def _traits(family: str, text: str | None, hw_line: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for fam, needle, lines, fields in KERNEL_TRAITS:
        version_ok = not needle if text is None else needle in text
        if fam == family and version_ok and (not lines or hw_line in lines):
            out.update(fields)
    return out


#: Stack families whose scheduler allocates KV-cache blocks on demand and preempts by
#: recompute (``Stack.kv_on_demand = 1``). vLLM's V0 scheduler (``Scheduler._schedule_running``,
#: v0.6) appends a block to each running sequence as it grows; when none is free it preempts
#: the last-admitted running sequence (``RECOMPUTE`` for a single-sequence request), puts it
#: at the front of the waiting queue and re-prefills prompt + generated tokens once the
#: blocks of its whole context are free; V1 (``KVCacheManager.allocate_slots``) does the
#: same. TensorRT-LLM's default capacity policy (``GUARANTEED_NO_EVICT``) reserves each
#: request's maximum length, and the batch runs in waves; SGLang's admission reserves an
#: estimate of the outputs and retracts, and its rows here are all continuous (not set).
KV_ON_DEMAND_STACKS = ("vllm", "vllm-0.6", "vllm-0.13", "vllm/rocm", "vllm-0.7/rocm")


def kv_on_demand(family: str) -> float:
    """``Stack.kv_on_demand`` of a stack family or version: 1 for `KV_ON_DEMAND_STACKS`."""
    return 1.0 if family in KV_ON_DEMAND_STACKS else 0.0


#: The KV-cache format a stack family's recipe stores for a weight format, where a row does
#: not state it (``{(family, weight format): KV format}``; otherwise bf16). Intel's FP8 recipe
#: for Gaudi (Intel Neural Compressor's FP8 quantisation, run by optimum-habana) quantises
#: the KV cache with the weights; the batch sizes of Intel's Gaudi 2 FP8 tables, tuned per
#: part, need it: 81 sequences of Llama-2-7B at 2048/2048 hold 170 GB of KV cache in bf16 and
#: 85 GB in fp8, on a 96 GB part.
KV_DTYPE_BY_STACK = {("gaudi", "fp8"): "fp8"}


def default_kv_dtype(family: str, weight_dtype: str) -> str:
    """The KV-cache format of a row that does not state one (`KV_DTYPE_BY_STACK`, else bf16)."""
    return KV_DTYPE_BY_STACK.get((family, weight_dtype.strip().lower()), "bf16")


#: vLLM families whose engine is the V0 one (scheduler and memory profile of vLLM <= 0.7)
_VLLM_V0 = ("vllm", "vllm-0.6", "vllm/rocm", "vllm-0.7/rocm")


def token_budget(software: str, context_tokens: float) -> float | None:
    """The engine's token budget of one step where a measurement's ``software`` text fixes
    it (``None``: the stack's ``prefill_chunk_tokens``).

    vLLM's ``benchmarks/benchmark_throughput.py`` (v0.6) passes ``--enable-chunked-prefill``
    as a ``store_true`` flag, so chunked prefill is off unless asked for, and the V0
    scheduler then takes ``max_num_batched_tokens = max(max_model_len, 2048)``
    (``SchedulerConfig``), ``max_model_len`` being the model's context window unless
    ``--max-model-len`` is given. The start-up memory profile runs a forward pass of that
    many tokens and keeps its peak out of the KV cache (vLLM warns that a long context
    "may ... result in low performance due to small KV cache space").
    """
    text = software.lower()
    if stack_family(software) not in _VLLM_V0 or "benchmark_throughput" not in text:
        return None
    if any(flag in text for flag in ("--enable-chunked-prefill", "--max-model-len", "--max-num-batched-tokens")):
        return None
    return max(float(context_tokens), 2048.0)


# ----------------------------------------------------------------------------- collective libraries

#: The collective implementation (`hwgrad.network.COLLECTIVE_IMPLEMENTATIONS`) each stack
#: family runs. TensorRT-LLM, NIM (TensorRT-LLM inside) and SGLang ship the one-/two-shot
#: custom all-reduce and fall back to NCCL above its size limit; vLLM has its own custom
#: all-reduce (slower per call, same kernels' bandwidth); the ROCm builds use the ROCm custom
#: all-reduce + RCCL; gpt-fast and DeepSpeed-MII call torch.distributed (NCCL/RCCL).
#: llama.cpp splits layers across GPUs (no tensor-parallel all-reduce) and Gaudi's HCCL has
#: no measured row: both ``ideal`` (every algorithm at link rate). ``default`` (software not
#: recognised) is plain NCCL; ``tuned`` the best library in the data (custom + NCCL).
COLLECTIVE_BY_STACK = {
    "tensorrt-llm": "custom+nccl",
    "nim": "custom+nccl",
    "sglang": "custom+nccl",
    "vllm": "vllm-custom+nccl",
    "vllm-0.6": "vllm-custom+nccl",
    "vllm-0.13": "vllm-custom+nccl",
    "vllm/rocm": "rocm-custom+rccl",
    "sglang/rocm": "rocm-custom+rccl",
    "gpt-fast": "nccl",
    "gpt-fast/rocm": "nccl",
    "deepspeed-mii": "nccl",
    "gaudi": "ideal",
    "llama.cpp/cuda": "ideal",
    "llama.cpp/metal": "ideal",
    "default": "nccl",
    "tuned": "custom+nccl",
    "ideal": "ideal",
}


def collective_for(stack_name: str) -> str:
    """The collective implementation a stack preset (or family, or version) runs (``nccl``
    if unknown)."""
    return COLLECTIVE_BY_STACK.get(stack_parent(stack_name), "nccl")
