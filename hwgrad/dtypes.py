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
| mxfp4       | 4          | e8m0 scale / 32 (OCP MX v1.0)     | 4.25         | 16              |
| fp4 (nvfp4) | 4          | e4m3 scale / 16 (NVIDIA NVFP4)    | 4.5          | 4               |

"default compute" is the activation width a serving stack uses with that weight format:
weight-only formats dequantise to 16-bit; ``fp8`` and ``fp4`` run W8A8 / W4A4 tensor-core
kernels. ``int8`` is weight-only (gpt-fast) unless ``act_dtype`` says otherwise.
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
) -> Compression:
    """A `Compression` from format names (``kv`` defaults to 16-bit, activations
    to the weight format's usual compute width)."""
    w_bits, w_over, w_act = lookup(weight_dtype, "weight_dtype")
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
    )
