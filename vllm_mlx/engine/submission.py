"""What a caller holds once its requests are queued: their chunks, as they come.

A :class:`Submission` reads the index-tagged items the owner thread puts in its inbox
(through the caller's event loop): ``ACCEPTED`` once per request, then chunks, then
``None`` at each request's end, or an exception. Dropping it cancels the requests.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

from .types import ACCEPTED, GenerationChunk


class Submission:
    """Requests accepted by the engine: their chunks as ``(index, chunk)`` pairs as they come.

    Iterate :meth:`chunks` once; leaving it early, or dropping a submission never iterated
    (a client gone before its response began), cancels every request in it. Awaiting
    :meth:`accepted` first raises a request's own error (a prompt too long, a template that
    refuses it) before any chunk, so an HTTP layer can answer with a status.
    """

    def __init__(self, inbox: asyncio.Queue[tuple[int, Any]], cancelled: threading.Event,
                 count: int) -> None:
        self._inbox = inbox
        self._cancelled = cancelled
        self._count = count
        self._early: deque[tuple[int, Any]] = deque()  # read by accepted(), not yet yielded

    async def accepted(self) -> None:
        """Return once every request has been accepted (or has ended); raise the first
        request's error otherwise. Leaving early (cancelled) cancels the requests."""
        pending = self._count
        try:
            while pending:
                index, item = await self._inbox.get()
                if isinstance(item, BaseException):
                    raise item
                if item is ACCEPTED or item is None:
                    pending -= 1
                if item is not ACCEPTED:
                    self._early.append((index, item))
        except BaseException:
            self._cancelled.set()
            raise

    async def chunks(self) -> AsyncIterator[tuple[int, GenerationChunk]]:
        remaining = self._count
        try:
            while remaining:
                index, item = (self._early.popleft() if self._early
                               else await self._inbox.get())
                if item is None:
                    remaining -= 1
                elif isinstance(item, BaseException):
                    raise item
                elif item is not ACCEPTED:
                    yield index, item
        finally:
            self._cancelled.set()

    def __del__(self) -> None:
        self._cancelled.set()
