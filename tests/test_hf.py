"""config.json import: every family round-trips to the shipped preset's parameter count."""

import json

import pytest

from hwgrad import counts, hf, presets


def _write(tmp_path, cfg):
    p = tmp_path / "config.json"
    p.write_text(json.dumps(cfg))
    return p


CONFIGS = {
    "llama-3.1-70b": {
        "model_type": "llama",
        "hidden_size": 8192,
        "num_hidden_layers": 80,
        "num_attention_heads": 64,
        "num_key_value_heads": 8,
        "intermediate_size": 28672,
        "vocab_size": 128256,
        "tie_word_embeddings": False,
    },
    "mixtral-8x7b": {
        "model_type": "mixtral",
        "hidden_size": 4096,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "intermediate_size": 14336,
        "vocab_size": 32000,
        "num_local_experts": 8,
        "num_experts_per_tok": 2,
        "sliding_window": None,
    },
    "qwen2.5-coder-7b": {
        "model_type": "qwen2",
        "hidden_size": 3584,
        "num_hidden_layers": 28,
        "num_attention_heads": 28,
        "num_key_value_heads": 4,
        "intermediate_size": 18944,
        "vocab_size": 152064,
        "tie_word_embeddings": False,
        "sliding_window": 131072,
        "use_sliding_window": False,
    },
    "qwen3-30b-a3b": {
        "model_type": "qwen3_moe",
        "hidden_size": 2048,
        "num_hidden_layers": 48,
        "num_attention_heads": 32,
        "num_key_value_heads": 4,
        "head_dim": 128,
        "intermediate_size": 6144,
        "moe_intermediate_size": 768,
        "num_experts": 128,
        "num_experts_per_tok": 8,
        "vocab_size": 151936,
        "tie_word_embeddings": False,
        "decoder_sparse_step": 1,
        "mlp_only_layers": [],
    },
    "deepseek-v3": {
        "model_type": "deepseek_v3",
        "hidden_size": 7168,
        "num_hidden_layers": 61,
        "num_attention_heads": 128,
        "num_key_value_heads": 128,
        "intermediate_size": 18432,
        "moe_intermediate_size": 2048,
        "n_routed_experts": 256,
        "n_shared_experts": 1,
        "num_experts_per_tok": 8,
        "first_k_dense_replace": 3,
        "kv_lora_rank": 512,
        "q_lora_rank": 1536,
        "qk_rope_head_dim": 64,
        "qk_nope_head_dim": 128,
        "v_head_dim": 128,
        "vocab_size": 129280,
        "tie_word_embeddings": False,
    },
    "gpt-oss-120b": {
        "model_type": "gpt_oss",
        "hidden_size": 2880,
        "num_hidden_layers": 36,
        "num_attention_heads": 64,
        "num_key_value_heads": 8,
        "head_dim": 64,
        "intermediate_size": 2880,
        "num_local_experts": 128,
        "num_experts_per_tok": 4,
        "vocab_size": 201088,
        "sliding_window": 128,
        "tie_word_embeddings": False,
        "layer_types": ["sliding_attention", "full_attention"] * 18,
    },
    "gemma-7b": {
        "model_type": "gemma",
        "hidden_size": 3072,
        "num_hidden_layers": 28,
        "num_attention_heads": 16,
        "num_key_value_heads": 16,
        "head_dim": 256,
        "intermediate_size": 24576,
        "vocab_size": 256000,
    },
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_config_import_matches_the_preset(tmp_path, name):
    m = hf.model_from_config(_write(tmp_path, CONFIGS[name]))
    ref = presets.model(name)
    assert float(counts.param_count(m)) == pytest.approx(float(counts.param_count(ref)), rel=1e-9)
    assert float(counts.active_param_count(m)) == pytest.approx(
        float(counts.active_param_count(ref)), rel=1e-9
    )
    assert float(m.n_sliding_layers) == float(ref.n_sliding_layers)
    assert m.attention == ref.attention or {m.attention, ref.attention} <= {"mha", "gqa"}


@pytest.mark.parametrize(
    "cfg,needle",
    [
        ({"model_type": "bert"}, "model_type 'bert' is not supported"),
        ({"model_type": "llama", "hidden_size": 8}, "no 'num_hidden_layers'"),
        ({**CONFIGS["llama-3.1-70b"], "hidden_size": -1}, "hidden_size = -1 must be a positive number"),
    ],
)
def test_bad_configs_name_file_and_key(tmp_path, cfg, needle):
    p = _write(tmp_path, cfg)
    with pytest.raises(ValueError) as exc:
        hf.model_from_config(p)
    assert needle in str(exc.value) and str(p) in str(exc.value)


def test_malformed_json_reports_line(tmp_path):
    p = tmp_path / "config.json"
    p.write_text('{\n "model_type": "llama",\n "hidden_size": }')
    with pytest.raises(ValueError, match="line 3"):
        hf.model_from_config(p)


def test_cli_model_config(tmp_path, capsys):
    from hwgrad import cli

    p = _write(tmp_path, CONFIGS["deepseek-v3"])
    code = cli.main(
        [
            "eval",
            "--model-config",
            str(p),
            "--hardware",
            "h200-sxm",
            "--chips",
            "8",
            "--batch",
            "8",
            "--weight-dtype",
            "fp8",
            "--json",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert json.loads(out)["model"] == str(p)
