"""Tiny Wan builder: real Diffusers layout, determinism, cache, folder detection."""

from __future__ import annotations

import json

import pytest
from safetensors import safe_open

from vllm_mlx.diffusion import build_tiny_wan, ensure_tiny_wan, is_video_model_folder
from vllm_mlx.diffusion.tiny import MANIFEST, default_cache_dir


def test_folder_layout_and_configs(tiny_wan_dir):
    index = json.loads((tiny_wan_dir / "model_index.json").read_text())
    assert index["_class_name"] == "WanPipeline"
    assert index["transformer"] == ["diffusers", "WanTransformer3DModel"]
    for rel in (
        "text_encoder/config.json",
        "text_encoder/model.safetensors",
        "tokenizer/tokenizer.json",
        "tokenizer/tokenizer_config.json",
        "transformer/diffusion_pytorch_model.safetensors",
        "vae/diffusion_pytorch_model.safetensors",
        "scheduler/scheduler_config.json",
    ):
        assert (tiny_wan_dir / rel).is_file(), rel
    tr = json.loads((tiny_wan_dir / "transformer/config.json").read_text())
    assert tr["patch_size"] == [1, 2, 2] and tr["in_channels"] == 16 and tr["image_dim"] is None
    assert tr["qk_norm"] == "rms_norm_across_heads"
    vae = json.loads((tiny_wan_dir / "vae/config.json").read_text())
    assert vae["_class_name"] == "AutoencoderKLWan" and vae["temperal_downsample"] == [
        False,
        True,
        True,
    ]
    text = json.loads((tiny_wan_dir / "text_encoder/config.json").read_text())
    assert text["feed_forward_proj"] == "gated-gelu" and text["model_type"] == "umt5"
    sched = json.loads((tiny_wan_dir / "scheduler/scheduler_config.json").read_text())
    assert sched["_class_name"] == "UniPCMultistepScheduler" and sched["flow_shift"] == 3.0


def test_checkpoints_use_pytorch_layout(tiny_wan_dir):
    with safe_open(
        str(tiny_wan_dir / "transformer/diffusion_pytorch_model.safetensors"), "np"
    ) as f:
        assert f.get_slice("patch_embedding.weight").get_shape() == [48, 16, 1, 2, 2]
    with safe_open(str(tiny_wan_dir / "vae/diffusion_pytorch_model.safetensors"), "np") as f:
        assert f.get_slice("decoder.conv_out.weight").get_shape() == [3, 8, 3, 3, 3]
        assert f.get_slice("decoder.norm_out.gamma").get_shape() == [8, 1, 1, 1]


def test_build_is_deterministic(tmp_path):
    a = build_tiny_wan(tmp_path / "a", seed=3)
    b = build_tiny_wan(tmp_path / "b", seed=3)
    c = build_tiny_wan(tmp_path / "c", seed=4)
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    for rel in files:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel
    weights = "transformer/diffusion_pytorch_model.safetensors"
    assert (a / weights).read_bytes() != (c / weights).read_bytes()


def test_ensure_caches_atomically(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "vllm-mlx" / "tiny-models"
    first = ensure_tiny_wan()
    assert first.parent == default_cache_dir() and (first / MANIFEST).is_file()
    stamp = (first / MANIFEST).stat().st_mtime_ns
    assert ensure_tiny_wan() == first and (first / MANIFEST).stat().st_mtime_ns == stamp
    assert [p.name for p in first.parent.iterdir()] == [first.name]  # no temp dirs left
    with pytest.raises(ValueError, match="preset"):
        ensure_tiny_wan(tmp_path, preset="huge")


def test_is_video_model_folder(tiny_wan_dir, tiny_i2v_dir, tmp_path):
    assert is_video_model_folder(tiny_wan_dir) and is_video_model_folder(tiny_i2v_dir)
    assert not is_video_model_folder(tmp_path)
    assert not is_video_model_folder(tmp_path / "missing")
    (tmp_path / "transformer").mkdir()
    (tmp_path / "vae").mkdir()
    assert is_video_model_folder(tmp_path)
    (tmp_path / "model_index.json").write_text('{"_class_name": "FluxPipeline"}')
    assert not is_video_model_folder(tmp_path)
