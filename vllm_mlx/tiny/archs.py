"""Architectures and presets of the tiny model builder.

Contract: ``BASE_ARCHITECTURES`` maps the first six architectures to a frozen ``TinyArch``
(the others live in :mod:`.zoo`; :mod:`.registry` joins them);
``model_config(arch, preset, ids)`` returns the config.json dict for that architecture
and preset (the real family's layout and field names, shapes from ``LM_SHAPES`` /
``VISION_SHAPES``), given the tokenizer's special-token ids; ``lm_dims`` / ``vision_dims``
give those shapes under the config keys most families share.  Configs hold only JSON
types with the exact Python types transformers 5 validates (ints are ints).
"""

from __future__ import annotations

from .recipe import TinyArch

PRESETS: tuple[str, ...] = ("tiny", "small")


BASE_ARCHITECTURES: dict[str, TinyArch] = {
    a.name: a
    for a in (
        TinyArch(
            name="qwen2_vl",
            is_vision=True,
            supports_video=True,
            loader="mlx_vlm",
            family="qwen_vl",
            notes="Qwen2-VL: patch 14, merge 2, mRoPE; native video (video=[frames (T,C,H,W)]).",
        ),
        TinyArch(
            name="qwen2_5_vl",
            is_vision=True,
            supports_video=True,
            loader="mlx_vlm",
            family="qwen_vl",
            notes="Qwen2.5-VL: windowed vision attention, patch 14; native video.",
        ),
        TinyArch(
            name="qwen3_vl",
            is_vision=True,
            supports_video=True,
            loader="mlx_vlm",
            family="qwen3_vl",
            notes="Qwen3-VL: patch 16, deepstack, interleaved mRoPE; timestamped native video.",
        ),
        TinyArch(
            name="gemma3",
            is_vision=True,
            supports_video=False,
            loader="mlx_vlm",
            family="gemma3",
            notes="Gemma 3: SigLIP tower, fixed image_seq_length soft tokens; no video "
            "(mlx-vlm silently ignores frames).",
        ),
        TinyArch(
            name="qwen3",
            is_vision=False,
            supports_video=False,
            loader="mlx_lm",
            family="qwen3",
            notes="Qwen3 text (<think> chat template, tool calls).",
        ),
        TinyArch(
            name="llama",
            is_vision=False,
            supports_video=False,
            loader="mlx_lm",
            family="llama3",
            notes="Llama 3 text (llama3 rope scaling, Llama 3 instruct template).",
        ),
    )
}

# Language-model shapes shared by every family (small ~ Qwen3-0.6B).
LM_SHAPES: dict[str, dict[str, int]] = {
    "tiny": dict(hidden=64, layers=2, heads=4, kv_heads=2, head_dim=16, inter=128, vocab=1024),
    "small": dict(
        hidden=1024, layers=28, heads=16, kv_heads=8, head_dim=128, inter=3072, vocab=32000
    ),
}

# Vision towers: width, depth, heads, MLP width.
VISION_SHAPES: dict[str, dict[str, int]] = {
    "tiny": dict(width=32, depth=2, heads=2, inter=64),
    "small": dict(width=512, depth=8, heads=8, inter=2048),
}


# Config key -> shape name, for the keys most families share (in the order they write them).
_LM_KEYS = {"hidden_size": "hidden", "intermediate_size": "inter", "num_hidden_layers": "layers",
            "num_attention_heads": "heads", "num_key_value_heads": "kv_heads"}
_VISION_KEYS = {"hidden_size": "width", "intermediate_size": "inter",
                "num_hidden_layers": "depth", "num_attention_heads": "heads"}


def lm_dims(preset: str) -> dict[str, int]:
    """A language model's width, FF width, depth and (KV) heads, as config keys."""
    return {key: LM_SHAPES[preset][name] for key, name in _LM_KEYS.items()}


def vision_dims(preset: str) -> dict[str, int]:
    """A vision tower's width, MLP width, depth and heads, as config keys."""
    return {key: VISION_SHAPES[preset][name] for key, name in _VISION_KEYS.items()}


def check_choice(kind: str, value: str, valid: tuple[str, ...] | list[str]) -> None:
    """Raise ValueError naming the valid choices when ``value`` is not one of them."""
    if value not in valid:
        raise ValueError(f"unknown {kind} {value!r}; valid: {', '.join(valid)}")


def _qwen2_lm(preset: str, ids: dict[str, int], arch: str) -> dict:
    """Top-level (flat) language-model fields of Qwen2-VL / Qwen2.5-VL configs."""
    s = LM_SHAPES[preset]
    heads = s["hidden"] // s["head_dim"]  # Qwen2 derives head_dim = hidden / heads
    half = s["head_dim"] // 2
    third = 3 * half // 8  # real Qwen2-VL: [16, 24, 24] for head_dim 128
    section = [half - 2 * third, third, third]
    return {
        "architectures": [
            "Qwen2VLForConditionalGeneration"
            if arch == "qwen2_vl"
            else "Qwen2_5_VLForConditionalGeneration"
        ],
        "model_type": arch,
        "attention_dropout": 0.0,
        "hidden_act": "silu",
        "hidden_size": s["hidden"],
        "initializer_range": 0.02,
        "intermediate_size": s["inter"],
        "max_position_embeddings": 32768,
        "max_window_layers": s["layers"],
        "num_attention_heads": heads,
        "num_hidden_layers": s["layers"],
        "num_key_value_heads": max(1, heads // 2),
        "rms_norm_eps": 1e-06,
        "rope_theta": 1000000.0,
        "rope_scaling": {"type": "mrope", "mrope_section": section},
        "sliding_window": 32768,
        "use_sliding_window": False,
        "tie_word_embeddings": True,
        "use_cache": True,
        "vocab_size": s["vocab"],
    }


def _qwen_token_ids(ids: dict[str, int]) -> dict:
    return {
        "bos_token_id": ids["<|endoftext|>"],
        "eos_token_id": ids["<|im_end|>"],
        "vision_start_token_id": ids["<|vision_start|>"],
        "vision_end_token_id": ids["<|vision_end|>"],
        "vision_token_id": ids["<|vision_pad|>"],
        "image_token_id": ids["<|image_pad|>"],
        "video_token_id": ids["<|video_pad|>"],
    }


def qwen2_vl_config(preset: str, ids: dict[str, int]) -> dict:
    v, hidden = VISION_SHAPES[preset], LM_SHAPES[preset]["hidden"]
    vision = {
        "depth": v["depth"],
        "embed_dim": v["width"],
        "mlp_ratio": v["inter"] // v["width"],
        "num_heads": v["heads"],
        "in_chans": 3,
        "hidden_size": hidden,
        "patch_size": 14,
        "spatial_merge_size": 2,
        "spatial_patch_size": 14,
        "temporal_patch_size": 2,
    }
    return {**_qwen2_lm(preset, ids, "qwen2_vl"), **_qwen_token_ids(ids), "vision_config": vision}


def qwen2_5_vl_config(preset: str, ids: dict[str, int]) -> dict:
    v, hidden = VISION_SHAPES[preset], LM_SHAPES[preset]["hidden"]
    vision = {
        "depth": v["depth"],
        "hidden_act": "silu",
        "hidden_size": v["width"],
        "intermediate_size": v["inter"],
        "num_heads": v["heads"],
        "in_chans": 3,
        "out_hidden_size": hidden,
        "patch_size": 14,
        "spatial_merge_size": 2,
        "spatial_patch_size": 14,
        "window_size": 112,
        "fullatt_block_indexes": list(range(v["depth"] // 4 - 1, v["depth"], v["depth"] // 4))
        if v["depth"] >= 4
        else [v["depth"] - 1],
        "tokens_per_second": 2,
        "temporal_patch_size": 2,
    }
    return {**_qwen2_lm(preset, ids, "qwen2_5_vl"), **_qwen_token_ids(ids), "vision_config": vision}


def qwen3_vl_config(preset: str, ids: dict[str, int]) -> dict:
    s, v = LM_SHAPES[preset], VISION_SHAPES[preset]
    tok = _qwen_token_ids(ids)
    text = {
        "model_type": "qwen3_vl_text",
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bos_token_id": tok["bos_token_id"],
        "eos_token_id": tok["eos_token_id"],
        "head_dim": s["head_dim"],
        "hidden_act": "silu",
        "hidden_size": s["hidden"],
        "initializer_range": 0.02,
        "intermediate_size": s["inter"],
        "max_position_embeddings": 262144,
        "num_attention_heads": s["heads"],
        "num_hidden_layers": s["layers"],
        "num_key_value_heads": s["kv_heads"],
        "rms_norm_eps": 1e-06,
        "rope_scaling": {
            "mrope_interleaved": True,
            "mrope_section": [24, 20, 20] if s["head_dim"] == 128 else [4, 2, 2],
            "rope_type": "default",
        },
        "rope_theta": 5000000.0,
        "tie_word_embeddings": True,
        "use_cache": True,
        "vocab_size": s["vocab"],
    }
    vision = {
        "model_type": "qwen3_vl",
        "deepstack_visual_indexes": [1, 3, 5] if v["depth"] >= 6 else [0],
        "depth": v["depth"],
        "hidden_act": "gelu_pytorch_tanh",
        "hidden_size": v["width"],
        "in_channels": 3,
        "initializer_range": 0.02,
        "intermediate_size": v["inter"],
        "num_heads": v["heads"],
        "num_position_embeddings": 2304 if preset == "small" else 64,
        "out_hidden_size": s["hidden"],
        "patch_size": 16,
        "spatial_merge_size": 2,
        "temporal_patch_size": 2,
    }
    return {
        "architectures": ["Qwen3VLForConditionalGeneration"],
        "model_type": "qwen3_vl",
        **{k: tok[k] for k in tok if k not in ("bos_token_id", "eos_token_id", "vision_token_id")},
        "tie_word_embeddings": True,
        "text_config": text,
        "vision_config": vision,
    }


def gemma3_config(preset: str, ids: dict[str, int]) -> dict:
    s = LM_SHAPES[preset]
    image_size, patch, mm_tokens = (448, 14, 256) if preset == "small" else (64, 8, 16)
    text = {
        "model_type": "gemma3_text",
        **lm_dims(preset),
        "head_dim": s["head_dim"],
        "query_pre_attn_scalar": s["head_dim"],
        "rms_norm_eps": 1e-06,
        "rope_theta": 1000000.0,
        "rope_local_base_freq": 10000.0,
        "sliding_window": 512,
        "sliding_window_pattern": 6 if s["layers"] >= 6 else s["layers"],
        "max_position_embeddings": 131072,
        "mm_tokens_per_image": mm_tokens,
        "vocab_size": s["vocab"],
        "hidden_activation": "gelu_pytorch_tanh",
    }
    vision = {
        "model_type": "siglip_vision_model",
        **vision_dims(preset),
        "image_size": image_size,
        "patch_size": patch,
        "num_channels": 3,
        "layer_norm_eps": 1e-06,
        "vision_use_head": False,
    }
    return {
        "architectures": ["Gemma3ForConditionalGeneration"],
        "model_type": "gemma3",
        "boi_token_index": ids["<start_of_image>"],
        "eoi_token_index": ids["<end_of_image>"],
        "image_token_index": ids["<image_soft_token>"],
        "bos_token_id": ids["<bos>"],
        "eos_token_id": [ids["<eos>"], ids["<end_of_turn>"]],
        "pad_token_id": ids["<pad>"],
        "mm_tokens_per_image": mm_tokens,
        "initializer_range": 0.02,
        "text_config": text,
        "vision_config": vision,
    }


def qwen3_config(preset: str, ids: dict[str, int]) -> dict:
    s = LM_SHAPES[preset]
    return {
        "architectures": ["Qwen3ForCausalLM"],
        "model_type": "qwen3",
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bos_token_id": ids["<|endoftext|>"],
        "eos_token_id": ids["<|im_end|>"],
        "head_dim": s["head_dim"],
        "hidden_act": "silu",
        "hidden_size": s["hidden"],
        "initializer_range": 0.02,
        "intermediate_size": s["inter"],
        "max_position_embeddings": 40960,
        "max_window_layers": s["layers"],
        "num_attention_heads": s["heads"],
        "num_hidden_layers": s["layers"],
        "num_key_value_heads": s["kv_heads"],
        "rms_norm_eps": 1e-06,
        "rope_scaling": None,
        "rope_theta": 1000000.0,
        "sliding_window": None,
        "tie_word_embeddings": True,
        "use_cache": True,
        "use_sliding_window": False,
        "vocab_size": s["vocab"],
    }


def llama_config(preset: str, ids: dict[str, int]) -> dict:
    s = LM_SHAPES[preset]
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bos_token_id": ids["<|begin_of_text|>"],
        "eos_token_id": [ids["<|end_of_text|>"], ids["<|eom_id|>"], ids["<|eot_id|>"]],
        "head_dim": s["head_dim"],
        "hidden_act": "silu",
        "hidden_size": s["hidden"],
        "initializer_range": 0.02,
        "intermediate_size": s["inter"],
        "max_position_embeddings": 131072,
        "mlp_bias": False,
        "num_attention_heads": s["heads"],
        "num_hidden_layers": s["layers"],
        "num_key_value_heads": s["kv_heads"],
        "pretraining_tp": 1,
        "rms_norm_eps": 1e-05,
        "rope_scaling": {
            "factor": 32.0,
            "high_freq_factor": 4.0,
            "low_freq_factor": 1.0,
            "original_max_position_embeddings": 8192,
            "rope_type": "llama3",
        },
        "rope_theta": 500000.0,
        "tie_word_embeddings": True,
        "use_cache": True,
        "vocab_size": s["vocab"],
    }


_CONFIGS = {
    "qwen2_vl": qwen2_vl_config,
    "qwen2_5_vl": qwen2_5_vl_config,
    "qwen3_vl": qwen3_vl_config,
    "gemma3": gemma3_config,
    "qwen3": qwen3_config,
    "llama": llama_config,
}


def model_config(arch: str, preset: str, ids: dict[str, int]) -> dict:
    """config.json contents for ``arch``/``preset`` with the tokenizer's ids."""
    check_choice("architecture", arch, list(_CONFIGS))
    check_choice("preset", preset, PRESETS)
    return _CONFIGS[arch](preset, ids)
