"""CLIP vision tower (transformers ``CLIPVisionModel``) for Wan2.1 image-to-video.

Contract: ``CLIPImageEncoder.from_folders(image_encoder_dir, image_processor_dir)`` loads the
checkpoint (names ``vision_model.*``, conv weight converted to channel-last by the loader) and
the ``CLIPImageProcessor`` settings; ``encode(image)`` returns the penultimate layer's hidden
states ``(1, 1 + (S/P)^2, hidden)`` - what Wan's I2V pipeline feeds the transformer's
``image_embedder`` (Diffusers uses ``hidden_states[-2]``). Preprocessing: resize the short
side to ``size`` (bicubic), centre-crop ``crop_size``, scale to [0, 1], normalise.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ._mlx import mx, nn
from .config import read_json
from .weights import load_component

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True)
class CLIPVisionConfig:
    hidden_size: int = 1280
    intermediate_size: int = 5120
    num_hidden_layers: int = 32
    num_attention_heads: int = 16
    image_size: int = 224
    patch_size: int = 14
    hidden_act: str = "gelu"
    layer_norm_eps: float = 1e-5

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CLIPVisionConfig:
        data = data.get("vision_config", data)
        names = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in names})

    def to_dict(self) -> dict[str, Any]:
        return {
            "architectures": ["CLIPVisionModel"],
            "model_type": "clip_vision_model",
            **{k: getattr(self, k) for k in self.__dataclass_fields__},
            "num_channels": 3,
            "projection_dim": self.hidden_size,
        }


def _act(name: str):
    if name == "quick_gelu":
        return lambda x: x * mx.sigmoid(1.702 * x)
    return nn.gelu_approx if name in ("gelu_new", "gelu_pytorch_tanh") else nn.gelu


class CLIPAttention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.q_proj, self.k_proj = nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.v_proj, self.out_proj = nn.Linear(dim, dim), nn.Linear(dim, dim)

    def __call__(self, x: mx.array) -> mx.array:
        b, n, d = x.shape

        def split(t: mx.array) -> mx.array:
            return t.reshape(b, n, self.heads, -1).transpose(0, 2, 1, 3)

        q, k, v = split(self.q_proj(x)), split(self.k_proj(x)), split(self.v_proj(x))
        out = mx.fast.scaled_dot_product_attention(q, k, v, scale=(d // self.heads) ** -0.5)
        return self.out_proj(out.transpose(0, 2, 1, 3).reshape(b, n, d))


class CLIPMLP(nn.Module):
    def __init__(self, cfg: CLIPVisionConfig) -> None:
        super().__init__()
        self.fc1 = nn.Linear(cfg.hidden_size, cfg.intermediate_size)
        self.fc2 = nn.Linear(cfg.intermediate_size, cfg.hidden_size)
        self._act = _act(cfg.hidden_act)

    def __call__(self, x: mx.array) -> mx.array:
        return self.fc2(self._act(self.fc1(x)))


class CLIPLayer(nn.Module):
    def __init__(self, cfg: CLIPVisionConfig) -> None:
        super().__init__()
        self.self_attn = CLIPAttention(cfg.hidden_size, cfg.num_attention_heads)
        self.layer_norm1 = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.mlp = CLIPMLP(cfg)
        self.layer_norm2 = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)

    def __call__(self, x: mx.array) -> mx.array:
        x = x + self.self_attn(self.layer_norm1(x))
        return x + self.mlp(self.layer_norm2(x))


class CLIPEmbeddings(nn.Module):
    def __init__(self, cfg: CLIPVisionConfig) -> None:
        super().__init__()
        p, d = cfg.patch_size, cfg.hidden_size
        self.class_embedding = mx.zeros((d,))
        self.patch_embedding = nn.Module()
        self.patch_embedding.weight = mx.zeros((d, p, p, 3))
        self.position_embedding = nn.Embedding((cfg.image_size // p) ** 2 + 1, d)

    def __call__(self, pixels: mx.array) -> mx.array:
        p = self.patch_embedding.weight.shape[1]
        patches = mx.conv2d(pixels, self.patch_embedding.weight, stride=p)
        b = patches.shape[0]
        patches = patches.reshape(b, -1, patches.shape[-1])
        cls = mx.broadcast_to(self.class_embedding, (b, 1, patches.shape[-1]))
        return mx.concatenate([cls, patches], axis=1) + self.position_embedding.weight


class CLIPVisionTransformer(nn.Module):
    def __init__(self, cfg: CLIPVisionConfig) -> None:
        super().__init__()
        self.embeddings = CLIPEmbeddings(cfg)
        self.pre_layrnorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.encoder = nn.Module()
        self.encoder.layers = [CLIPLayer(cfg) for _ in range(cfg.num_hidden_layers)]
        self.post_layernorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)


class CLIPVisionModel(nn.Module):
    """``vision_model.*``; ``__call__`` gives ``hidden_states[-2]`` (penultimate layer)."""

    def __init__(self, cfg: CLIPVisionConfig) -> None:
        super().__init__()
        self.config = cfg
        self.vision_model = CLIPVisionTransformer(cfg)

    def __call__(self, pixels: mx.array) -> mx.array:
        vm = self.vision_model
        x = vm.pre_layrnorm(vm.embeddings(pixels))
        for layer in vm.encoder.layers[:-1]:
            x = layer(x)
        return x


@dataclass(frozen=True)
class CLIPPreprocess:
    size: int = 224
    crop: int = 224
    mean: tuple[float, ...] = CLIP_MEAN
    std: tuple[float, ...] = CLIP_STD

    @classmethod
    def from_folder(cls, folder: Path | None, default_size: int) -> CLIPPreprocess:
        path = None if folder is None else Path(folder) / "preprocessor_config.json"
        if path is None or not path.is_file():
            return cls(default_size, default_size)
        data = read_json(path)
        size, crop = data.get("size", default_size), data.get("crop_size", default_size)
        size = size.get("shortest_edge", size.get("height")) if isinstance(size, dict) else size
        crop = crop.get("height") if isinstance(crop, dict) else crop
        if size is None or crop is None:
            raise ValueError(f"{path}: no 'shortest_edge' / 'height' in size or crop_size")
        mean, std = data.get("image_mean", CLIP_MEAN), data.get("image_std", CLIP_STD)
        return cls(int(size), int(crop), tuple(mean), tuple(std))

    def __call__(self, image: Image.Image) -> mx.array:
        image = image.convert("RGB")
        scale = self.size / min(image.width, image.height)
        w, h = (
            max(self.crop, round(image.width * scale)),
            max(self.crop, round(image.height * scale)),
        )
        image = image.resize((w, h), Image.Resampling.BICUBIC)
        left, top = (w - self.crop) // 2, (h - self.crop) // 2
        image = image.crop((left, top, left + self.crop, top + self.crop))
        arr = np.asarray(image, dtype=np.float32) / 255.0
        arr = (arr - np.array(self.mean)) / np.array(self.std)
        return mx.array(arr.astype(np.float32))[None]


class CLIPImageEncoder:
    """Preprocessing plus the vision tower."""

    def __init__(self, model: CLIPVisionModel, preprocess: CLIPPreprocess) -> None:
        self.model, self.preprocess = model, preprocess

    @classmethod
    def from_folders(cls, encoder_dir: Path, processor_dir: Path | None) -> CLIPImageEncoder:
        cfg = CLIPVisionConfig.from_dict(read_json(Path(encoder_dir) / "config.json"))
        model = load_component(CLIPVisionModel(cfg), Path(encoder_dir))
        return cls(model, CLIPPreprocess.from_folder(processor_dir, cfg.image_size))

    def encode(self, image: Image.Image) -> mx.array:
        out = self.model(self.preprocess(image))
        mx.eval(out)
        return out
