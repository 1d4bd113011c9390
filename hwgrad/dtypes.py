"""Named numeric formats -> `Compression` fields.

Storage bits include group-quantisation metadata amortised per element:

| name        | value bits | metadata                          | bits/element | default compute |
|-------------|-----------:|-----------------------------------|-------------:|-----------------|
| fp32        | 32         | -                                 | 32           | 16 (tensor core)|
| bf16, fp16  | 16         | -                                 | 16           | 16              |
| fp8, int8   | 8          | per-channel scale (negligible)    | 8            | 8 (fp8) / 16    |
| q8_0        | 8          | fp16 scale / 32 (llama.cpp)       | 8.5          | 16              |
| int4        | 4          | bf16 scale + zero / 128 (gpt-fast)| 4.25         | 16              |
| q4_0        | 4          | fp16 scale / 32 (llama.cpp)       | 4.5          | 16              |
| q4_k_m      | 4          | k-quant super-blocks, mixed q6_k  | 4.9          | 16              |
| mxfp4       | 4          | e8m0 scale / 32 (OCP MX v1.0)     | 4.25 (*)     | 16              |
| fp4 (nvfp4) | 4          | e4m3 scale / 16 (NVIDIA NVFP4)    | 4.5          | 4               |

"default compute" is the activation width a serving stack uses with that weight format:
weight-only formats dequantise to 16-bit; ``fp8`` and ``fp4`` run W8A8 / W4A4 tensor-core
kernels. ``int8`` is weight-only (gpt-fast) unless ``act_dtype`` says otherwise.

(*) ``mxfp4`` is the scheme gpt-oss ships: the MoE (FFN) weights in MXFP4, attention,
embeddings and LM head in bf16 (the checkpoint's ``modules_to_not_convert``). Mixed
checkpoints of other formats are named in `CHECKPOINTS` and selected with `compression`'s
``checkpoint``; ``attention_dtype`` / ``embedding_dtype`` set the widths by hand.
"""

from __future__ import annotations

import difflib

from .specs import Compression

#: name -> (value bits, metadata bits per element, default activation bits)
FORMATS: dict[str, tuple[float, float, float]] = {
    "fp32": (32.0, 0.0, 16.0),
    "bf16": (16.0, 0.0, 16.0),
    "fp16": (16.0, 0.0, 16.0),
    "fp8": (8.0, 0.0, 8.0),
    "int8": (8.0, 0.0, 16.0),
    "q8_0": (8.0, 16.0 / 32.0, 16.0),
    "int4": (4.0, 32.0 / 128.0, 16.0),
    "q4_0": (4.0, 16.0 / 32.0, 16.0),
    # llama.cpp Q4_K_M: ~4.9 bits/weight measured on the Llama-3-8B file (4.58 GiB / 8.03 B
    # params, data README), i.e. 0.9 bit of scales/mins and q6_k tensors per weight
    "q4_k_m": (4.0, 0.9, 16.0),
    "mxfp4": (4.0, 8.0 / 32.0, 16.0),
    "fp4": (4.0, 8.0 / 16.0, 4.0),
}


#: formats that keep some weights in another format: name -> (attention, embedding + LM head)
_KEPT: dict[str, tuple[str | None, str | None]] = {"mxfp4": ("bf16", "bf16")}

#: published checkpoints whose quantisation leaves parts of the model in another format:
#: lower-case Hugging Face name -> (attention dtype, embedding + LM head dtype); ``None`` =
#: the weight format.
#:
#: * Meta's FP8 405B quantises the FFN only: "we do not perform quantization in the
#:   self-attention layers" (Llama 3 paper, arXiv:2407.21783 sec. 6.2); its first and last
#:   layers' FFN (1.6 % of the weights) also stay bf16 and are not modelled.
#: * gpt-oss ships MXFP4 experts with bf16 attention, router and embeddings (model card).
#: * AMD's Quark FP8-KV checkpoints quantise "all linear layers excluding lm_head" (their
#:   model cards); DeepSeek-R1's FP8 block-quantised weights leave the embedding and the
#:   output head in bf16 (DeepSeek-V3 report, arXiv:2412.19437 sec. 3.3).
CHECKPOINTS: dict[str, tuple[str | None, str | None]] = {
    "meta-llama/llama-3.1-405b-fp8": ("bf16", "bf16"),
    "meta-llama/llama-3.1-405b-instruct-fp8": ("bf16", "bf16"),
    "openai/gpt-oss-120b": ("bf16", "bf16"),
    "openai/gpt-oss-20b": ("bf16", "bf16"),
    "amd/llama-3.1-405b-instruct-fp8-kv": (None, "bf16"),
    "amd/llama-3.1-70b-instruct-fp8-kv": (None, "bf16"),
    "deepseek-ai/deepseek-r1": (None, "bf16"),
    "deepseek-ai/deepseek-r1-0528": (None, "bf16"),
    "deepseek-ai/deepseek-v3": (None, "bf16"),
}


#: the text arguments of `compression`, as a config file's ``[compression]`` table names them
NAMED_FIELDS = ("weight_dtype", "kv_dtype", "act_dtype", "attention_dtype", "embedding_dtype", "checkpoint")


def lookup(name: str, field: str = "dtype") -> tuple[float, float, float]:
    """Bits of the format ``name``; a ``ValueError`` with suggestions if unknown."""
    if not isinstance(name, str):
        raise ValueError(f"{field} = {name!r}: expected a format name such as {', '.join(list(FORMATS)[:4])}")
    key = name.strip().lower()
    if key in FORMATS:
        return FORMATS[key]
    close = difflib.get_close_matches(key, FORMATS, n=3, cutoff=0.3)
    hint = f"did you mean {', '.join(close)}?" if close else f"use one of {', '.join(FORMATS)}"
    raise ValueError(f"{field} = {name!r} is not a known format: {hint}")


def compression(
    weight_dtype: str = "bf16",
    kv_dtype: str | None = None,
    act_dtype: str | None = None,
    sparsity: float = 0.0,
    pattern: str = "dense",
    attention_dtype: str | None = None,
    embedding_dtype: str | None = None,
    checkpoint: str | None = None,
) -> Compression:
    """A `Compression` from format names (``kv`` defaults to 16-bit, activations
    to the weight format's usual compute width).

    ``attention_dtype`` / ``embedding_dtype`` store the attention projections / the
    embedding table and LM head in another format (default: the weight format, or what
    the format or the named ``checkpoint`` (`CHECKPOINTS`) keeps; unknown checkpoint names
    change nothing)."""
    w_bits, w_over, w_act = lookup(weight_dtype, "weight_dtype")
    kept = _KEPT.get(weight_dtype.strip().lower(), (None, None))
    kept_attn, kept_emb = CHECKPOINTS.get(str(checkpoint or "").strip().lower(), kept)
    attention_dtype = attention_dtype or kept_attn
    embedding_dtype = embedding_dtype or kept_emb
    attn_bits = sum(lookup(attention_dtype, "attention_dtype")[:2]) if attention_dtype else 0.0
    emb_bits = sum(lookup(embedding_dtype, "embedding_dtype")[:2]) if embedding_dtype else 0.0
    kv_bits, kv_over, _ = lookup("bf16" if kv_dtype is None else kv_dtype, "kv_dtype")
    act_bits = lookup(act_dtype, "act_dtype")[0] if act_dtype is not None else w_act
    return Compression(
        weight_bits=w_bits,
        weight_overhead_bits=w_over,
        kv_bits=kv_bits,
        kv_overhead_bits=kv_over,
        act_bits=min(act_bits, 16.0),
        sparsity=0.5 if pattern == "2:4" and sparsity == 0 else sparsity,  # 2:4 is 0.5; others: validate
        pattern=pattern,
        attention_weight_bits=attn_bits,
        embedding_weight_bits=emb_bits,
    )
