"""What a caller holds once its requests are queued: their chunks, as they come.

A :class:`Submission` reads the index-tagged items the owner thread puts in its
:class:`Inbox` (through the caller's event loop): ``ACCEPTED`` once per request, then chunks,
then ``None`` at each request's end, or an exception. Dropping it cancels the requests.

A reader that falls behind gets fewer, larger chunks, never a different text: the chunks of
one request already waiting when the reader asks for more are merged into one (text and
token ids concatenated, logprobs appended, counts and finish reason from the last). This
is vLLM's stream interval, applied only when the client is slower than the engine; a
reader that keeps up still gets every token as its own chunk.

A :class:`Mailbox` (one per event loop) carries items from the owner thread to that loop's
inboxes: one ``call_soon_threadsafe`` per batch of posts, not per chunk.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections import deque
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import replace
from typing import Any

from .types import ACCEPTED, GenerationChunk

Item = tuple[int, Any]  # (request index, chunk | ACCEPTED | None | exception)


class Inbox:
    """Index-tagged items for one submission; filled and read on the caller's event loop."""

    def __init__(self) -> None:
        self._items: deque[Item] = deque()
        self._waiter: asyncio.Future[None] | None = None

    def put(self, item: Item) -> None:
        self._items.append(item)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def take(self) -> list[Item]:
        """Every item waiting (at least one), oldest first."""
        while not self._items:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        items = list(self._items)
        self._items.clear()
        return items


def merged(chunks: list[GenerationChunk]) -> GenerationChunk:
    """Consecutive chunks of one request as one chunk with the same text and tokens."""
    if len(chunks) == 1:
        return chunks[0]
    return replace(chunks[-1], text="".join(c.text for c in chunks),
                   token_ids=tuple(t for c in chunks for t in c.token_ids),
                   logprobs=tuple(lp for c in chunks for lp in c.logprobs))


def coalesced(items: Iterable[Item]) -> Iterator[Item]:
    """``items`` with each request's chunks merged; a request's end comes after its
    chunks, an error after every chunk that came before it (the order between requests
    is otherwise free: each is read on its own)."""
    pending: dict[int, list[GenerationChunk]] = {}
    for index, item in items:
        if isinstance(item, GenerationChunk):
            pending.setdefault(index, []).append(item)
            continue
        if isinstance(item, BaseException):
            yield from ((i, merged(parts)) for i, parts in pending.items())
            pending.clear()
        elif index in pending:
            yield index, merged(pending.pop(index))
        yield index, item
    yield from ((i, merged(parts)) for i, parts in pending.items())


class Submission:
    """Requests accepted by the engine: their chunks as ``(index, chunk)`` pairs as they come.

    Iterate :meth:`chunks` once; leaving it early, or dropping a submission never iterated
    (a client gone before its response began), cancels every request in it. Awaiting
    :meth:`accepted` first raises a request's own error (a prompt too long, a template that
    refuses it) before any chunk, so an HTTP layer can answer with a status.
    """

    def __init__(self, inbox: Inbox, cancelled: threading.Event, count: int) -> None:
        self._inbox = inbox
        self._cancelled = cancelled
        self._count = count
        self._early: list[Item] = []  # read by accepted(), not yet yielded

    async def accepted(self) -> None:
        """Return once every request has been accepted (or has ended); raise the first
        request's error otherwise. Leaving early (cancelled) cancels the requests."""
        pending = self._count
        try:
            while pending:
                items = await self._inbox.take()
                for position, (index, item) in enumerate(items):
                    if isinstance(item, BaseException):
                        raise item
                    if item is ACCEPTED or item is None:
                        pending -= 1
                    if item is not ACCEPTED:
                        self._early.append((index, item))
                    if not pending:  # later items are the chunks' business
                        self._early.extend(items[position + 1:])
                        break
        except BaseException:
            self._cancelled.set()
            raise

    async def chunks(self) -> AsyncIterator[tuple[int, GenerationChunk]]:
        remaining = self._count
        try:
            while remaining:
                items, self._early = self._early or await self._inbox.take(), []
                for index, item in coalesced(items):
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


class Mailbox:
    """Items from other threads to one event loop's inboxes, handed over in batches: one
    wake-up of the loop carries everything posted since its last drain (a decode step of
    N streams read on one loop costs one ``call_soon_threadsafe``, not N)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = weakref.ref(loop)  # the engine's table of mailboxes must not keep it
        self._lock = threading.Lock()
        self._posted: list[tuple[Inbox, Item]] = []

    def post(self, inbox: Inbox, item: Item) -> bool:
        """Queue ``item`` for ``inbox``; False when the loop is closed (nobody will read)."""
        loop = self._loop()
        if loop is None or loop.is_closed():
            return False
        with self._lock:
            self._posted.append((inbox, item))
            if len(self._posted) > 1:  # a drain is already scheduled
                return True
        try:
            loop.call_soon_threadsafe(self._drain)
        except RuntimeError:  # closed meanwhile
            return False
        return True

    def _drain(self) -> None:
        with self._lock:
            posted, self._posted = self._posted, []
        for inbox, item in posted:
            inbox.put(item)
