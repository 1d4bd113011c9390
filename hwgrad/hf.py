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


def _opt(cfg: dict, key: str, where: str, default: float = 0.0) -> float:
    """An optional number (``None``/absent/0 -> ``default``); anything else is an error."""
    val = cfg.get(key)
    if val is None or val == 0:
        return float(default)
    if isinstance(val, bool) or not isinstance(val, int | float):
        raise ValueError(f"{where}: {key} = {val!r:.60} must be a number")
    return float(val)


def _list(cfg: dict, key: str, where: str) -> list:
    val = cfg.get(key)
    if val is None:
        return []
    if not isinstance(val, list):
        raise ValueError(f"{where}: {key} = {val!r:.60} must be a list")
    return val


def model_from_config(path: str | Path) -> Model:
    """Build a `Model` from a ``config.json`` file.

    Raises:
      ValueError: unreadable file, unsupported ``model_type`` or a missing/invalid field
        (the message names the file and the key).
    """
    path = Path(path)
    try:
        cfg = json.loads(path.read_bytes().decode("utf-8"))
    except OSError as exc:
        raise ValueError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text (byte {exc.start}); is this a config.json?") from None
    except RecursionError:
        raise ValueError(f"{path}: nested too deeply to be a config.json") from None
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from None
    return model_from_dict(cfg, where=str(path))


def model_from_dict(cfg: dict, where: str = "config") -> Model:
    """`model_from_config` for an already-parsed config dictionary."""
    if not isinstance(cfg, dict):
        raise ValueError(f"{where}: a config.json is one JSON object {{...}}, not a {type(cfg).__name__}")
    kind = cfg.get("model_type")
    if not isinstance(kind, str) or kind not in _FAMILIES:
        raise ValueError(
            f"{where}: model_type {kind!r} is not supported; supported: {', '.join(sorted(_FAMILIES))}"
        )
    family = _FAMILIES[kind]
    n = lambda key: _need(cfg, key, where)  # noqa: E731
    d = n("hidden_size")
    n_layers = n("num_hidden_layers")
    heads = n("num_attention_heads")
    kv_heads = _opt(cfg, "num_key_value_heads", where, heads)
    head_dim = _opt(cfg, "head_dim", where, d / heads)
    tied = cfg.get("tie_word_embeddings", kind.startswith("gemma"))
    if not isinstance(tied, bool):
        raise ValueError(f"{where}: tie_word_embeddings = {tied!r:.60} must be true or false")
    common = dict(
        n_layers=n_layers,
        d_model=d,
        n_heads=heads,
        vocab_size=n("vocab_size"),
        tied_embeddings=tied,
        gated_ffn=True,  # every supported family uses SwiGLU / GeGLU
    )
    sliding = _sliding(cfg, n_layers, where)

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
        first_dense = _opt(cfg, "first_k_dense_replace", where)
        return Model(
            **common,
            n_kv_heads=kv_heads,
            head_dim=0.0,
            d_ff=n("intermediate_size") if first_dense else 0.0,
            n_experts=n("n_routed_experts"),
            n_experts_active=n("num_experts_per_tok"),
            n_shared_experts=_opt(cfg, "n_shared_experts", where),
            moe_d_ff=n("moe_intermediate_size"),
            n_dense_layers=first_dense,
            kv_lora_rank=n("kv_lora_rank"),
            q_lora_rank=_opt(cfg, "q_lora_rank", where),
            qk_rope_head_dim=n("qk_rope_head_dim"),
            qk_nope_head_dim=n("qk_nope_head_dim"),
            v_head_dim=n("v_head_dim"),
            attention="mla",
        )

    # routed-expert families: Mixtral / Qwen-MoE / gpt-oss
    experts = _opt(cfg, "num_local_experts", where) or _opt(cfg, "num_experts", where)
    active = _opt(cfg, "num_experts_per_tok", where) or _opt(cfg, "experts_per_token", where)
    if not experts or not active:
        raise ValueError(f"{where}: MoE config needs num_local_experts/num_experts and num_experts_per_tok")
    moe_ff = _opt(cfg, "moe_intermediate_size", where) or _opt(cfg, "intermediate_size", where)
    if not moe_ff:
        raise ValueError(f"{where}: config has no 'moe_intermediate_size' or 'intermediate_size'")
    dense_layers = float(len(_list(cfg, "mlp_only_layers", where)))
    if _opt(cfg, "decoder_sparse_step", where, 1.0) != 1:
        raise ValueError(
            f"{where}: decoder_sparse_step = {cfg['decoder_sparse_step']} (MoE every k-th layer) is not supported"
        )
    shared = 1.0 if _opt(cfg, "shared_expert_intermediate_size", where) else 0.0
    if shared and _opt(cfg, "shared_expert_intermediate_size", where) != moe_ff:
        raise ValueError(f"{where}: a shared expert wider than the routed experts is not supported")
    return Model(
        **common,
        n_kv_heads=kv_heads,
        head_dim=head_dim,
        d_ff=_opt(cfg, "intermediate_size", where) if dense_layers else 0.0,
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


def _sliding(cfg: dict, n_layers: float, where: str = "config") -> dict:
    """Sliding-window layers: from ``layer_types`` (gpt-oss, Gemma 2/3, new Qwen) or a
    ``sliding_window`` that applies to every layer (Mistral 7B v0.1; Qwen only with
    ``use_sliding_window``)."""
    window = _opt(cfg, "sliding_window", where)
    if not window:
        return {}
    types = _list(cfg, "layer_types", where)
    if types:
        count = sum(1 for t in types if t == "sliding_attention")
    elif str(cfg.get("model_type", "")).startswith("qwen") and not cfg.get("use_sliding_window", False):
        return {}
    elif cfg.get("model_type") in ("mistral", "mixtral"):
        count = n_layers
    else:
        return {}
    return {"sliding_window": float(window), "n_sliding_layers": float(count)}
