"""Live video over WebSocket: the server side and the ``VideoStream`` camera client.

Server (seed ``000_7df58bfd37b22342``): ``ws://HOST:PORT/?api_key=KEY`` and
``/v1/stream`` take ``{"timestamp", "frame": base64 JPEG}`` messages and answer
``{"vlm_reply": ...}`` for each analysed window of frames
(:mod:`~vllm_mlx.stream.session`, :mod:`~vllm_mlx.stream.route`). Client:
:class:`VideoStream` (camera, video file or test pattern -> JSON messages), and the
``vllm-mlx stream`` command (:mod:`~vllm_mlx.stream.cli`).

Names are imported lazily: the client side does not load MLX or the web framework.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "VideoStream": "client", "StreamStats": "client",
    "CameraSource": "sources", "FileSource": "sources", "FrameSource": "sources",
    "SourceError": "sources", "TestPatternSource": "sources", "pattern_index": "sources",
    "StreamConfig": "config", "StreamLimits": "config",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)



def __dir__() -> list[str]:  # the lazy names too (tab completion, dir())
    return sorted({*globals(), *__all__})

if TYPE_CHECKING:
    from .client import StreamStats, VideoStream  # noqa: F401
    from .config import StreamConfig, StreamLimits  # noqa: F401
    from .sources import (  # noqa: F401
        CameraSource,
        FileSource,
        FrameSource,
        SourceError,
        TestPatternSource,
        pattern_index,
    )
