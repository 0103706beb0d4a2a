"""Stop a non-streaming request's work when its client hangs up; no web framework here.

A streamed response notices a vanished client (Starlette watches the socket and closes the
generator, which cancels its engine requests). A plain request does not: once its body is
read nobody listens, so an abandoned completion would decode to its last token.
:func:`unless_disconnected` awaits ``work`` while polling ``is_disconnected()`` (a route
passes ``request.is_disconnected``) every :data:`POLL_S` seconds. When the client is gone
it calls ``on_disconnect`` (e.g. to cancel a video job), cancels the work (closing its
engine iterators cancels their requests at the next scheduler step) and raises a 499
:class:`~vllm_mlx.errors.APIError` that nobody will read.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from .errors import APIError

POLL_S = 0.5
T = TypeVar("T")


async def unless_disconnected(is_disconnected: Callable[[], Awaitable[bool]],
                              work: Awaitable[T], *,
                              on_disconnect: Callable[[], None] | None = None) -> T:
    task = asyncio.ensure_future(work)
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=POLL_S)
            if done:
                return task.result()
            if await is_disconnected():
                if on_disconnect is not None:
                    on_disconnect()
                raise APIError(499, "the client disconnected", code="cancelled")
    finally:
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
