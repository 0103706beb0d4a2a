"""``vllm-mlx-chat``: a Gradio multimodal chat on an in-process engine or a running server.

Install the extra first: ``pip install 'vllm-mlx[ui]'``. Importing this package does not
import Gradio; :func:`build_chat_app` (in :mod:`.app`) does.

- :mod:`.conversation` - history as immutable values; history plus files -> OpenAI messages
- :mod:`.backend` - the :class:`ChatBackend` protocol the page talks to
- :mod:`.local` / :mod:`.remote` - in-process engine / OpenAI SDK against ``vllm-mlx serve``
- :mod:`.videos` - the ``/v1/videos`` jobs client behind the Videos tab
- :mod:`.app` - ``build_chat_app(backend) -> gr.Blocks``; :mod:`.cli` - the console script
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .backend import BackendError, BackendInfo, ChatBackend, GenerationOptions
from .conversation import Attachment, Conversation, Turn, to_openai_messages

__all__ = ["Attachment", "BackendError", "BackendInfo", "ChatBackend", "Conversation",
           "GenerationOptions", "Turn", "build_chat_app", "to_openai_messages"]


def __getattr__(name: str) -> Any:
    if name == "build_chat_app":
        from .app import build_chat_app

        return build_chat_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if TYPE_CHECKING:
    from .app import build_chat_app  # noqa: F401
