"""Import a model architecture from a Hugging Face ``config.json`` on disk.

Covers the families in the shipped catalogue: Llama (1/2/3/3.1/3.3), Mistral/Mixtral,
Qwen2/2.5, Qwen3 (dense and MoE), Gemma, DeepSeek-V2/V3/R1 (MLA + shared experts) and
gpt-oss (MoE + alternating sliding-window attention). Nothing is downloaded: pass a path.

    model = hwgrad.hf.model_from_config("path/to/config.json")
"""

from __future__ import annotations

import json
from pathlib import Path

from .specs import Model

_FAMILIES = {
    "llama": "dense",
    "mistral": "dense",
    "qwen2": "dense",
    "qwen3": "dense",
    "gemma": "dense",
    "gemma2": "dense",
    "mixtral": "moe",
    "qwen2_moe": "moe",
    "qwen3_moe": "moe",
    "deepseek_v2": "mla",
    "deepseek_v3": "mla",
    "gpt_oss": "moe",
}


def _need(cfg: dict, key: str, where: str):
    if key not in cfg or cfg[key] is None:
        raise ValueError(f"{where}: config has no {key!r}; is this a {cfg.get('model_type')} config.json?")
    val = cfg[key]
    if isinstance(val, bool) or not isinstance(val, int | float) or val <= 0:
        raise ValueError(f"{where}: {key} = {val!r} must be a positive number")
    return float(val)


def model_from_config(path: str | Path) -> Model:
    """Build a :class:`~hwgrad.specs.Model` from a ``config.json`` file.

    Raises:
      ValueError: unreadable file, unsupported ``model_type`` or a missing/invalid field
        (the message names the file and the key).
    """
    path = Path(path)
    try:
        cfg = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"{path}: cannot read ({exc.strerror})") from None
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from None
    return model_from_dict(cfg, where=str(path))


def model_from_dict(cfg: dict, where: str = "config") -> Model:
    """:func:`model_from_config` for an already-parsed config dictionary."""
    kind = cfg.get("model_type")
    if kind not in _FAMILIES:
        raise ValueError(
            f"{where}: model_type {kind!r} is not supported; supported: {', '.join(sorted(_FAMILIES))}"
        )
    family = _FAMILIES[kind]
    n = lambda key: _need(cfg, key, where)  # noqa: E731
    d = n("hidden_size")
    n_layers = n("num_hidden_layers")
    heads = n("num_attention_heads")
    kv_heads = float(cfg.get("num_key_value_heads") or heads)
    head_dim = float(cfg.get("head_dim") or d / heads)
    tied = bool(cfg.get("tie_word_embeddings", kind.startswith("gemma")))
    common = dict(
        n_layers=n_layers,
        d_model=d,
        n_heads=heads,
        vocab_size=n("vocab_size"),
        tied_embeddings=tied,
        gated_ffn=True,  # every supported family uses SwiGLU / GeGLU
    )
    sliding = _sliding(cfg, n_layers)

    if family == "dense":
        return Model(
            **common,
            n_kv_heads=kv_heads,
            head_dim=head_dim,
            d_ff=n("intermediate_size"),
            attention=_gqa(kv_heads, heads),
            **sliding,
        )

    if family == "mla":
        first_dense = float(cfg.get("first_k_dense_replace", 0))
        return Model(
            **common,
            n_kv_heads=kv_heads,
            head_dim=0.0,
            d_ff=n("intermediate_size") if first_dense else 0.0,
            n_experts=n("n_routed_experts"),
            n_experts_active=n("num_experts_per_tok"),
            n_shared_experts=float(cfg.get("n_shared_experts") or 0),
            moe_d_ff=n("moe_intermediate_size"),
            n_dense_layers=first_dense,
            kv_lora_rank=n("kv_lora_rank"),
            q_lora_rank=float(cfg.get("q_lora_rank") or 0),
            qk_rope_head_dim=n("qk_rope_head_dim"),
            qk_nope_head_dim=n("qk_nope_head_dim"),
            v_head_dim=n("v_head_dim"),
            attention="mla",
        )

    # routed-expert families: Mixtral / Qwen-MoE / gpt-oss
    experts = cfg.get("num_local_experts") or cfg.get("num_experts")
    active = cfg.get("num_experts_per_tok") or cfg.get("experts_per_token")
    if not experts or not active:
        raise ValueError(f"{where}: MoE config needs num_local_experts/num_experts and num_experts_per_tok")
    moe_ff = cfg.get("moe_intermediate_size") or cfg.get("intermediate_size")
    if not moe_ff:
        raise ValueError(f"{where}: config has no 'moe_intermediate_size' or 'intermediate_size'")
    dense_layers = float(len(cfg.get("mlp_only_layers") or []))
    if int(cfg.get("decoder_sparse_step", 1)) != 1:
        raise ValueError(
            f"{where}: decoder_sparse_step = {cfg['decoder_sparse_step']} (MoE every k-th layer) is not supported"
        )
    shared = 1.0 if cfg.get("shared_expert_intermediate_size") else 0.0
    if shared and cfg.get("shared_expert_intermediate_size") != moe_ff:
        raise ValueError(f"{where}: a shared expert wider than the routed experts is not supported")
    return Model(
        **common,
        n_kv_heads=kv_heads,
        head_dim=head_dim,
        d_ff=float(cfg.get("intermediate_size") or 0) if dense_layers else 0.0,
        n_experts=float(experts),
        n_experts_active=float(active),
        n_shared_experts=shared,
        moe_d_ff=float(moe_ff),
        n_dense_layers=dense_layers,
        attention=_gqa(kv_heads, heads),
        **sliding,
    )


def _gqa(kv_heads: float, heads: float) -> str:
    return "mha" if kv_heads == heads else "gqa"


def _sliding(cfg: dict, n_layers: float) -> dict:
    """Sliding-window layers: from ``layer_types`` (gpt-oss, Gemma 2/3, new Qwen) or a
    ``sliding_window`` that applies to every layer (Mistral 7B v0.1; Qwen only with
    ``use_sliding_window``)."""
    window = cfg.get("sliding_window")
    if not window:
        return {}
    types = cfg.get("layer_types")
    if types:
        count = sum(1 for t in types if t == "sliding_attention")
    elif cfg.get("model_type", "").startswith("qwen") and not cfg.get("use_sliding_window", False):
        return {}
    elif cfg.get("model_type") in ("mistral", "mixtral"):
        count = n_layers
    else:
        return {}
    return {"sliding_window": float(window), "n_sliding_layers": float(count)}
