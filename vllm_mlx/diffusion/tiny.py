"""Random-weight Wan2.1 folders in the real Diffusers layout: test and benchmark fixtures.

Contract:
- ``build_tiny_wan(out_dir, seed=0, preset="tiny") -> Path`` writes ``model_index.json``,
  ``text_encoder/`` (umT5 config + ``model.safetensors``), ``tokenizer/`` (a small SentencePiece
  -style BPE with umT5's ``<pad>``=0, ``</s>``=1, ``<unk>``=2 and an appended ``</s>``),
  ``transformer/`` and ``vae/`` (config + ``diffusion_pytorch_model.safetensors`` with
  Diffusers names and PyTorch layouts), ``scheduler/scheduler_config.json``,
  ``video_defaults.json`` and ``tiny_wan.json`` (manifest). Presets: ``tiny`` (seconds on a
  CPU), ``mid`` (a mid-size config for benchmarks) and ``tiny-i2v`` (Wan2.1 I2V layout:
  ``in_channels`` 36, ``image_dim`` with a tiny CLIP ``image_encoder/``). The same seed,
  preset and library versions give identical files.
- ``ensure_tiny_wan(cache_dir=None, preset="tiny", seed=0) -> Path`` builds once into
  ``cache_dir`` (default ``$XDG_CACHE_HOME/vllm-mlx/tiny-models``, else
  ``~/.cache/vllm-mlx/tiny-models``) through a temporary folder and a rename, so readers never
  see a half-written model; a concurrent builder may win the race.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import save_file

from ..paths import cache_dir
from ._mlx import nn
from .clip import CLIPVisionConfig, CLIPVisionModel
from .config import SchedulerConfig, TransformerConfig, UMT5Config, VAEConfig
from .transformer import WanTransformer
from .umt5 import UMT5Encoder
from .vae import AutoencoderKLWan
from .weights import torch_state

BUILDER_VERSION = "1"
MANIFEST = "tiny_wan.json"


@dataclass(frozen=True)
class WanPreset:
    text: UMT5Config
    transformer: TransformerConfig
    vae: VAEConfig
    scheduler: SchedulerConfig
    defaults: dict[str, Any]
    clip: CLIPVisionConfig | None = None


def _tiny(i2v: bool = False) -> WanPreset:
    return WanPreset(
        text=UMT5Config(vocab_size=1024, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4),
        transformer=TransformerConfig(
            num_attention_heads=2,
            attention_head_dim=24,
            in_channels=36 if i2v else 16,
            text_dim=32,
            freq_dim=32,
            ffn_dim=96,
            num_layers=2,
            image_dim=32 if i2v else None,
            added_kv_proj_dim=48 if i2v else None,
        ),
        vae=VAEConfig(base_dim=8, num_res_blocks=1),
        scheduler=SchedulerConfig(flow_shift=3.0),
        defaults={"width": 48, "height": 32, "num_frames": 9, "fps": 8, "num_inference_steps": 4},
        clip=CLIPVisionConfig(32, 64, 2, 2, image_size=28, patch_size=14) if i2v else None,
    )


def _mid() -> WanPreset:
    return WanPreset(
        text=UMT5Config(vocab_size=2048, d_model=256, d_kv=32, d_ff=512, num_layers=4, num_heads=8),
        transformer=TransformerConfig(
            num_attention_heads=4,
            attention_head_dim=96,
            text_dim=256,
            freq_dim=256,
            ffn_dim=1024,
            num_layers=6,
        ),
        vae=VAEConfig(base_dim=32, num_res_blocks=2),
        scheduler=SchedulerConfig(flow_shift=3.0),
        defaults={
            "width": 128,
            "height": 96,
            "num_frames": 17,
            "fps": 16,
            "num_inference_steps": 8,
        },
    )


PRESETS: dict[str, Any] = {"tiny": _tiny, "mid": _mid, "tiny-i2v": lambda: _tiny(True)}


def preset_config(preset: str) -> WanPreset:
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[preset]()


def _init(name: str, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Seeded init by parameter role (PyTorch layout: fan-in = prod(shape[1:]))."""
    leaf = name.rsplit(".", 1)[-1]
    if leaf == "gamma" or (leaf == "weight" and len(shape) == 1):
        return 1.0 + 0.1 * rng.standard_normal(shape)
    if leaf in ("bias", "class_embedding"):
        return 0.02 * rng.standard_normal(shape)
    if name.endswith("scale_shift_table"):
        return rng.standard_normal(shape) / np.sqrt(shape[-1])
    if "relative_attention_bias" in name:
        return 0.5 * rng.standard_normal(shape)
    if name in ("shared.weight",) or "position_embedding" in name:
        return rng.standard_normal(shape) * (1.0 if name == "shared.weight" else 0.02)
    return rng.standard_normal(shape) / np.sqrt(max(1, int(np.prod(shape[1:]))))


def random_state(model: nn.Module, seed: int) -> dict[str, np.ndarray]:
    """Checkpoint-style (Diffusers names, PyTorch layout) random weights for ``model``."""
    rng = np.random.default_rng(seed)
    shapes = {name: tuple(value.shape) for name, value in torch_state(model).items()}
    return {
        name: np.ascontiguousarray(_init(name, shapes[name], rng), dtype=np.float32)
        for name in sorted(shapes)
    }


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _save(folder: Path, file: str, config: dict[str, Any], state: dict[str, np.ndarray]) -> None:
    _write_json(folder / "config.json", config)
    save_file(state, str(folder / file), metadata={"format": "pt"})


def _tokenizer(folder: Path, vocab_size: int) -> None:
    from tokenizers import processors

    from vllm_mlx.tiny.tokenizer import TokenizerSpec, build_tokenizer, tokenizer_json

    tok = build_tokenizer(
        TokenizerSpec(style="spm", leading=("<pad>", "</s>", "<unk>")), vocab_size, 300
    )
    tok.post_processor = processors.TemplateProcessing(
        single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", 1)]
    )
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tokenizer.json").write_text(tokenizer_json(tok), encoding="utf-8")
    special = {"pad_token": "<pad>", "eos_token": "</s>", "unk_token": "<unk>"}
    _write_json(folder / "special_tokens_map.json", special)
    config = {"tokenizer_class": "T5TokenizerFast", "model_max_length": 512, "extra_ids": 0}
    _write_json(folder / "tokenizer_config.json", {**config, **special})


def _model_index(i2v: bool) -> dict[str, Any]:
    index: dict[str, Any] = {
        "_class_name": "WanImageToVideoPipeline" if i2v else "WanPipeline",
        "_diffusers_version": "0.33.1",
        "scheduler": ["diffusers", "UniPCMultistepScheduler"],
        "text_encoder": ["transformers", "UMT5EncoderModel"],
        "tokenizer": ["transformers", "T5TokenizerFast"],
        "transformer": ["diffusers", "WanTransformer3DModel"],
        "vae": ["diffusers", "AutoencoderKLWan"],
    }
    if i2v:
        index["image_encoder"] = ["transformers", "CLIPVisionModel"]
        index["image_processor"] = ["transformers", "CLIPImageProcessor"]
    return index


def _clip_files(root: Path, cfg: CLIPVisionConfig, seed: int) -> None:
    state = random_state(CLIPVisionModel(cfg), seed)
    _save(root / "image_encoder", "model.safetensors", cfg.to_dict(), state)
    processor = {
        "image_processor_type": "CLIPImageProcessor",
        "do_resize": True,
        "size": {"shortest_edge": cfg.image_size},
        "do_center_crop": True,
        "crop_size": {"height": cfg.image_size, "width": cfg.image_size},
        "do_normalize": True,
        "image_mean": [0.48145466, 0.4578275, 0.40821073],
        "image_std": [0.26862954, 0.26130258, 0.27577711],
        "resample": 3,
    }
    _write_json(root / "image_processor" / "preprocessor_config.json", processor)


def build_tiny_wan(out_dir: str | Path, seed: int = 0, preset: str = "tiny") -> Path:
    """Write a complete random-weight Diffusers Wan folder; returns it."""
    p = preset_config(preset)
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    _write_json(root / "model_index.json", _model_index(p.clip is not None))
    text_state = random_state(UMT5Encoder(p.text), seed * 16 + 1)
    _save(root / "text_encoder", "model.safetensors", p.text.to_dict(), text_state)
    _tokenizer(root / "tokenizer", p.text.vocab_size)
    tr_state = random_state(WanTransformer(p.transformer), seed * 16 + 2)
    _save(
        root / "transformer",
        "diffusion_pytorch_model.safetensors",
        p.transformer.to_dict(),
        tr_state,
    )
    vae_state = random_state(AutoencoderKLWan(p.vae), seed * 16 + 3)
    _save(root / "vae", "diffusion_pytorch_model.safetensors", p.vae.to_dict(), vae_state)
    _write_json(root / "scheduler" / "scheduler_config.json", p.scheduler.to_dict())
    if p.clip is not None:
        _clip_files(root, p.clip, seed * 16 + 4)
    _write_json(root / "video_defaults.json", p.defaults)
    manifest = {"preset": preset, "seed": seed, "builder_version": BUILDER_VERSION}
    _write_json(root / MANIFEST, manifest)
    return root


def default_cache_dir() -> Path:
    return cache_dir("tiny-models")


def ensure_tiny_wan(
    cache_dir: str | Path | None = None, preset: str = "tiny", seed: int = 0
) -> Path:
    """Build once into the cache (atomic rename) and return the folder."""
    preset_config(preset)
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    target = cache / f"wan-{preset}-seed{seed}-v{BUILDER_VERSION}"
    if (target / MANIFEST).is_file():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=cache))
    try:
        build_tiny_wan(tmp, seed=seed, preset=preset)
        try:
            os.rename(tmp, target)
        except OSError:
            if not (target / MANIFEST).is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target
