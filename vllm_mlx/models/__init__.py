"""Python API (seed 004): ``from vllm_mlx.models import MLXMultimodalLM``."""

from .multimodal import MLXMultimodalLM

__all__ = ["MLXMultimodalLM"]
