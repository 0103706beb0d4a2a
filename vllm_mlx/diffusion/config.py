"""Typed views of the config files of a Diffusers-format Wan folder.

Contract: each ``*Config.from_dict`` takes the parsed JSON of the matching file (unknown keys,
such as ``_class_name`` or ``_diffusers_version``, are ignored; missing keys take the
Diffusers defaults) and ``to_dict`` gives back JSON with the real Diffusers / transformers
key names, so the tiny builder writes what the loader and Diffusers itself would read.
Architectures this package does not implement (the Wan2.2 residual VAE, patchified VAEs)
raise ``ValueError`` in ``validate``.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

WAN21_LATENTS_MEAN = (
    -0.7571, -0.7089, -0.9113, 0.1075, -0.1745, 0.9653, -0.1517, 1.5508,
    0.4134, -0.0715, 0.5517, -0.3632, -0.1922, -0.9497, 0.2503, -0.2921,
)  # fmt: skip
WAN21_LATENTS_STD = (
    2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743,
    3.2687, 2.1526, 2.8652, 1.5579, 1.6382, 1.1253, 2.8251, 1.9160,
)  # fmt: skip


def _known(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in data.items() if k in names}


def read_json(path: Path | str) -> dict[str, Any]:
    """Parse a JSON file (a clear ``FileNotFoundError`` when it is missing)."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


@dataclass(frozen=True)
class TransformerConfig:
    """``transformer/config.json`` of ``WanTransformer3DModel``."""

    patch_size: tuple[int, int, int] = (1, 2, 2)
    num_attention_heads: int = 12
    attention_head_dim: int = 128
    in_channels: int = 16
    out_channels: int = 16
    text_dim: int = 4096
    freq_dim: int = 256
    ffn_dim: int = 8960
    num_layers: int = 30
    cross_attn_norm: bool = True
    qk_norm: str | None = "rms_norm_across_heads"
    eps: float = 1e-6
    image_dim: int | None = None
    added_kv_proj_dim: int | None = None
    rope_max_seq_len: int = 1024
    pos_embed_seq_len: int | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TransformerConfig:
        kw = _known(cls, data)
        if "patch_size" in kw:
            kw["patch_size"] = tuple(kw["patch_size"])
        cfg = cls(**kw)
        cfg.validate()
        return cfg

    @property
    def inner_dim(self) -> int:
        return self.num_attention_heads * self.attention_head_dim

    def validate(self) -> None:
        if self.qk_norm not in (None, "rms_norm_across_heads"):
            raise ValueError(f"unsupported qk_norm {self.qk_norm!r}")
        if self.pos_embed_seq_len is not None:
            raise ValueError("pos_embed_seq_len (Wan FLF2V) is not supported")

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["patch_size"] = list(self.patch_size)
        return {"_class_name": "WanTransformer3DModel", **data}


@dataclass(frozen=True)
class VAEConfig:
    """``vae/config.json`` of ``AutoencoderKLWan`` (the Wan2.1 causal VAE)."""

    base_dim: int = 96
    decoder_base_dim: int | None = None
    z_dim: int = 16
    dim_mult: tuple[int, ...] = (1, 2, 4, 4)
    num_res_blocks: int = 2
    attn_scales: tuple[float, ...] = ()
    temperal_downsample: tuple[bool, ...] = (False, True, True)
    dropout: float = 0.0
    latents_mean: tuple[float, ...] = WAN21_LATENTS_MEAN
    latents_std: tuple[float, ...] = WAN21_LATENTS_STD
    is_residual: bool = False
    in_channels: int = 3
    out_channels: int = 3
    patch_size: int | None = None
    clip_output: bool = True

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VAEConfig:
        kw = _known(cls, data)
        for key in (
            "dim_mult",
            "attn_scales",
            "temperal_downsample",
            "latents_mean",
            "latents_std",
        ):
            if key in kw:
                kw[key] = tuple(kw[key])
        cfg = cls(**kw)
        cfg.validate()
        return cfg

    def validate(self) -> None:
        if self.is_residual or self.patch_size not in (None, 1):
            raise ValueError("the Wan2.2 (residual / patchified) VAE is not supported")
        if len(self.temperal_downsample) != len(self.dim_mult) - 1:
            raise ValueError("temperal_downsample needs len(dim_mult) - 1 entries")
        if len(self.latents_mean) != self.z_dim or len(self.latents_std) != self.z_dim:
            raise ValueError("latents_mean / latents_std need z_dim entries")

    @property
    def temporal_factor(self) -> int:
        return 2 ** sum(bool(t) for t in self.temperal_downsample)

    @property
    def spatial_factor(self) -> int:
        return 2 ** len(self.temperal_downsample)

    def to_dict(self) -> dict[str, Any]:
        data = {
            k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()
        }
        return {"_class_name": "AutoencoderKLWan", **data}


@dataclass(frozen=True)
class UMT5Config:
    """``text_encoder/config.json`` of transformers' ``UMT5EncoderModel``."""

    vocab_size: int = 256384
    d_model: int = 4096
    d_kv: int = 64
    d_ff: int = 10240
    num_layers: int = 24
    num_heads: int = 64
    relative_attention_num_buckets: int = 32
    relative_attention_max_distance: int = 128
    layer_norm_epsilon: float = 1e-6
    feed_forward_proj: str = "gated-gelu"
    pad_token_id: int = 0
    eos_token_id: int = 1

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> UMT5Config:
        cfg = cls(**_known(cls, data))
        if cfg.feed_forward_proj not in ("gated-gelu", "gelu_new"):
            raise ValueError(f"unsupported feed_forward_proj {cfg.feed_forward_proj!r}")
        return cfg

    def to_dict(self) -> dict[str, Any]:
        return {
            "architectures": ["UMT5EncoderModel"],
            "model_type": "umt5",
            **dataclasses.asdict(self),
            "dense_act_fn": "gelu_new",
            "is_gated_act": True,
            "num_decoder_layers": self.num_layers,
            "dropout_rate": 0.0,
            "initializer_factor": 1.0,
            "tie_word_embeddings": False,
            "scalable_attention": True,
            "decoder_start_token_id": 0,
            "torch_dtype": "float32",
        }


@dataclass(frozen=True)
class SchedulerConfig:
    """``scheduler/scheduler_config.json`` (UniPC or flow-matching Euler, flow sigmas)."""

    class_name: str = "UniPCMultistepScheduler"
    num_train_timesteps: int = 1000
    flow_shift: float = 3.0
    solver_order: int = 2
    solver_type: str = "bh2"
    lower_order_final: bool = True
    disable_corrector: tuple[int, ...] = ()
    prediction_type: str = "flow_prediction"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SchedulerConfig:
        name = data.get("_class_name", "UniPCMultistepScheduler")
        shift = data.get("flow_shift", data.get("shift", 1.0))
        cfg = cls(
            class_name=name,
            num_train_timesteps=int(data.get("num_train_timesteps", 1000)),
            flow_shift=float(shift if shift is not None else 1.0),
            solver_order=int(data.get("solver_order", 2)),
            solver_type=data.get("solver_type", "bh2"),
            lower_order_final=bool(data.get("lower_order_final", True)),
            disable_corrector=tuple(data.get("disable_corrector", ())),
            prediction_type=data.get("prediction_type", "flow_prediction") or "flow_prediction",
        )
        if cfg.prediction_type != "flow_prediction":
            raise ValueError(f"unsupported prediction_type {cfg.prediction_type!r}")
        return cfg

    @property
    def default_kind(self) -> str:
        return "euler" if "Euler" in self.class_name else "unipc"

    def to_dict(self) -> dict[str, Any]:
        if self.default_kind == "euler":
            return {
                "_class_name": "FlowMatchEulerDiscreteScheduler",
                "num_train_timesteps": self.num_train_timesteps,
                "shift": self.flow_shift,
                "use_dynamic_shifting": False,
            }
        return {
            "_class_name": "UniPCMultistepScheduler",
            "num_train_timesteps": self.num_train_timesteps,
            "flow_shift": self.flow_shift,
            "solver_order": self.solver_order,
            "solver_type": self.solver_type,
            "lower_order_final": self.lower_order_final,
            "disable_corrector": list(self.disable_corrector),
            "prediction_type": self.prediction_type,
            "predict_x0": True,
            "use_flow_sigmas": True,
            "final_sigmas_type": "zero",
            "timestep_spacing": "linspace",
            "beta_schedule": "linear",
            "beta_start": 0.0001,
            "beta_end": 0.02,
        }
