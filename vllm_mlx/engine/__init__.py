"""Model loading, detection and generation on one MLX owner thread.

Names are imported lazily so that importing a light module (``engine.types``) does not
load MLX before the caller had a chance to choose the BLAS (see :mod:`vllm_mlx.blas`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "Capabilities": "detect", "ModelKind": "detect", "detect_model_kind": "detect",
    "Engine": "engine",
    "EngineClosed": "errors", "EngineError": "errors", "EngineOverloaded": "errors",
    "InvalidRequest": "errors", "ModelLoadError": "errors", "UnsupportedInput": "errors",
    "LoadedModel": "loader", "LoadOptions": "loader", "StreamPace": "submission",
    "ChatMessage": "types", "GenerationChunk": "types", "GenerationRequest": "types",
    "GenerationResult": "types", "ImagePart": "types", "SamplingParams": "types",
    "TextPart": "types", "VideoClip": "types", "VideoPart": "types",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)



def __dir__() -> list[str]:  # the lazy names too (tab completion, dir())
    return sorted({*globals(), *__all__})

if TYPE_CHECKING:
    from .detect import Capabilities, ModelKind, detect_model_kind  # noqa: F401
    from .engine import Engine  # noqa: F401
    from .errors import (  # noqa: F401
        EngineClosed,
        EngineError,
        EngineOverloaded,
        InvalidRequest,
        ModelLoadError,
        UnsupportedInput,
    )
    from .loader import LoadedModel, LoadOptions  # noqa: F401
    from .submission import StreamPace  # noqa: F401
    from .types import (  # noqa: F401
        ChatMessage,
        GenerationChunk,
        GenerationRequest,
        GenerationResult,
        ImagePart,
        SamplingParams,
        TextPart,
        VideoClip,
        VideoPart,
    )
