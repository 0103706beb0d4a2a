"""Stop a non-streaming request's work when its client hangs up.

A streamed response notices a vanished client (Starlette watches the socket and closes the
generator, which cancels its engine requests). A plain request does not: once its body is
read nobody listens, so an abandoned completion would decode to its last token.
:func:`unless_disconnected` awaits the work while polling ``request.is_disconnected()``;
when the client is gone it cancels the work (closing its engine iterators cancels their
requests at the next scheduler step) and raises a 499 that nobody will read.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from starlette.requests import Request

from .errors import APIError

POLL_S = 0.5
T = TypeVar("T")


async def unless_disconnected(request: Request, work: Awaitable[T]) -> T:
    task = asyncio.ensure_future(work)
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=POLL_S)
            if done:
                return task.result()
            if await request.is_disconnected():
                raise APIError(499, "the client disconnected", code="cancelled")
    finally:
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
