"""vllm-mlx: a local OpenAI-compatible multimodal inference server on MLX.

Public API (imported lazily, so ``import vllm_mlx`` does not load MLX):

- :class:`vllm_mlx.models.MLXMultimodalLM` - load a model and generate from Python;
- :class:`vllm_mlx.engine.Engine` - the engine the server runs on;
- :func:`vllm_mlx.tiny.build_tiny_model` - random-weight models of real architectures.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["MLXMultimodalLM", "Engine", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "MLXMultimodalLM":
        from .models import MLXMultimodalLM

        return MLXMultimodalLM
    if name == "Engine":
        from .engine import Engine

        return Engine
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")



def __dir__() -> list[str]:  # the lazy names too (tab completion, dir())
    return sorted({*globals(), *__all__})

if TYPE_CHECKING:
    from .engine import Engine  # noqa: F401
    from .models import MLXMultimodalLM  # noqa: F401
