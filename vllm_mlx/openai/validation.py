"""Bounds and a pool for request checks whose cost grows with the input.

Contract: a JSON schema a client sends (all of a request's ``tools`` together, a
``response_format`` schema, a prediction's ``config.json_schema``) may hold at most
:data:`MAX_SCHEMA_NODES` JSON values, nested at most :data:`MAX_SCHEMA_DEPTH` deep;
:func:`check_schema_size` refuses more with a 400 ``schema_too_large`` naming the limit, in
time linear in the limit, not the input. ``chat_template_kwargs`` are bounded the same way
(:func:`check_template_kwargs`), and may not replace the renderer's own arguments.
Checking what passes (JSON Schema meta-validation, compiling grammars) costs up to about
a second per thousand properties, so it runs through :meth:`OffLoop.run`, on
:data:`VALIDATION_THREADS` threads of its own (one :class:`OffLoop` per app, on its serving
context, closed with the app): meanwhile the event loop serves other clients, and a flood
of such requests queues there instead of
taking the default pool that media decoding and file reads use.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from ..bounds import TooLarge, check_size
from ..errors import APIError

MAX_SCHEMA_NODES = 20_000  # about 6000 properties: OpenAI allows 5000 in strict schemas
MAX_SCHEMA_DEPTH = 64  # JSON nesting: about 30 levels of schema ("properties" adds one)
VALIDATION_THREADS = 2

T = TypeVar("T")


def check_schema_size(value: Any, param: str) -> int:
    """The number of JSON values in ``value``; 400 past either limit."""
    try:
        return check_size(value, param, MAX_SCHEMA_NODES, MAX_SCHEMA_DEPTH)
    except TooLarge as exc:
        raise APIError(400, str(exc), param=param, code="schema_too_large") from None


MAX_TEMPLATE_NODES = 1000  # chat_template_kwargs: a few switches, not a payload
# Arguments the server itself gives the template renderer: a client may not replace them.
RESERVED_TEMPLATE_KWARGS = frozenset({
    "messages", "conversation", "tools", "documents", "add_generation_prompt", "tokenize",
    "chat_template", "continue_final_message", "return_dict", "return_tensors", "padding",
    "truncation", "max_length", "tokenizer_kwargs", "return_assistant_tokens_mask",
    "processor", "tokenizer", "config"})


def check_template_kwargs(value: dict[str, Any]) -> None:
    """``chat_template_kwargs``: template variable names, not the server's own arguments,
    and small (a 400 naming the key otherwise)."""
    param = "chat_template_kwargs"
    for key in value:
        if not key.isidentifier() or key in RESERVED_TEMPLATE_KWARGS:
            raise APIError(400, f"chat_template_kwargs may not set {key!r}: give template "
                           "variables only (such as enable_thinking)", param=f"{param}.{key}")
    try:
        check_size(value, param, MAX_TEMPLATE_NODES, MAX_SCHEMA_DEPTH)
    except TooLarge as exc:
        raise APIError(400, str(exc), param=param) from None


class OffLoop:
    """A small pool of its own for checks that may take long."""

    def __init__(self, threads: int = VALIDATION_THREADS) -> None:
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="validate")

    async def run(self, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``func(*args, **kwargs)`` on the pool's threads."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, functools.partial(func, *args, **kwargs))

    async def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
