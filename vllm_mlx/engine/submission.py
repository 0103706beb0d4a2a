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
inboxes: one ``call_soon_threadsafe`` per batch of posts, not per chunk. Its
:class:`StreamPace` spaces those batches when many streams are open on the loop: after a
drain that reached N inboxes, the next waits up to ``per_stream_s * (N - 1)`` (at most
``max_s``), so a busy server writes a few tokens per event instead of one, and its HTTP
work per token shrinks with the load. A request's admission, its first token, its end and
errors are never held back; one stream alone is never paced.
"""

from __future__ import annotations

import asyncio
import threading
import time
import weakref
from collections import deque
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass, replace
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


@dataclass(frozen=True)
class StreamPace:
    """How long a loop's next batch of chunks may wait, by the number of streams open."""

    per_stream_s: float = 0.001
    max_s: float = 0.05

    def delay(self, streams: int) -> float:
        return min(self.max_s, self.per_stream_s * max(0, streams - 1))


EVERY_TOKEN = StreamPace(0.0, 0.0)
DEFAULT_PACE = StreamPace()


def _urgent(item: Item) -> bool:
    """Items a reader must not wait for: all but a running stream's later tokens."""
    chunk = item[1]
    if not isinstance(chunk, GenerationChunk):
        return True  # admission, end, error
    return chunk.completion_tokens <= 1 or chunk.finish_reason is not None


class Mailbox:
    """Items from other threads to one event loop's inboxes, handed over in batches: one
    wake-up of the loop carries everything posted since its last drain (a decode step of
    N streams read on one loop costs one ``call_soon_threadsafe``, not N), and ``pace``
    spaces the wake-ups while many streams are open."""

    def __init__(self, loop: asyncio.AbstractEventLoop, pace: StreamPace = EVERY_TOKEN) -> None:
        self._loop = weakref.ref(loop)  # the engine's table of mailboxes must not keep it
        self._pace = pace
        self._lock = threading.Lock()
        self._posted: list[tuple[Inbox, Item]] = []
        self._due: float | None = None  # when the scheduled drain runs (time.monotonic)
        self._earliest = 0.0  # no paced drain before this

    def post(self, inbox: Inbox, item: Item) -> bool:
        """Queue ``item`` for ``inbox``; False when the loop is closed (nobody will read)."""
        loop = self._loop()
        if loop is None or loop.is_closed():
            return False
        with self._lock:
            self._posted.append((inbox, item))
            now = time.monotonic()
            due = now if _urgent(item) else max(now, self._earliest)
            if self._due is not None and self._due <= due:
                return True  # a drain that soon is already scheduled
            self._due = due
        try:
            if due > now:
                loop.call_soon_threadsafe(loop.call_later, due - now, self._drain)
            else:
                loop.call_soon_threadsafe(self._drain)
        except RuntimeError:  # closed meanwhile
            return False
        return True

    def _drain(self) -> None:
        with self._lock:
            posted, self._posted, self._due = self._posted, [], None
            if posted:
                streams = len({id(inbox) for inbox, _ in posted})
                self._earliest = time.monotonic() + self._pace.delay(streams)
        for inbox, item in posted:
            inbox.put(item)
