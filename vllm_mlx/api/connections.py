"""Connection limits for the HTTP server: header timeout, connection cap, quiet accept errors.

uvicorn times out idle keep-alive connections, but not a connection that never finishes its
request headers (slowloris), and it counts concurrency only once headers have arrived, so a
few thousand stalled connections exhaust file descriptors; the accept loop then logs a
traceback per attempt. This module closes those gaps, independently of the ASGI app.

Contract:

* :func:`guarded_protocol` returns a uvicorn httptools protocol class (one per server: it keeps
  that server's waiting connections) that closes a connection whose request headers are not
  complete ``header_timeout_s`` after it connected or after its previous response ended;
  and that, when ``max_connections`` are open, closes the longest-waiting connection that
  has not sent its headers to make room, or refuses the newcomer with a bare 503 when every
  connection is busy with a request (WebSocket connections count and are never dropped);
  a request head over 64 KiB gets a 400 and the connection is closed (llhttp sets no limit).
  httptools (llhttp, in C) rather than h11 (pure Python) because a streamed reply sends one
  event per token and h11's per-event cost showed in the server's profile (issue 25).
* :func:`uvicorn_options` gives the keyword arguments for ``uvicorn.run``/``uvicorn.Config``:
  that protocol and ``timeout_keep_alive``. The cap is first fitted to the process's file
  descriptor limit (:func:`fit_to_fd_limit`, which may raise the soft limit).
* :func:`install_log_limits` rate-limits the log lines a hostile client can cause per
  connection (accept failures, invalid requests, the protocol's own refusals): at most one
  per message kind every ``interval_s``, the next one saying how many were suppressed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = [
    "ConnectionLimits",
    "fit_to_fd_limit",
    "guarded_protocol",
    "install_log_limits",
    "uvicorn_options",
]

logger = logging.getLogger(__name__)
MAX_HEADER_BYTES = 64 * 1024
_BUSY = (b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\n"
         b"content-length: 20\r\nconnection: close\r\n\r\ntoo many connections")
# log lines one hostile connection can cause: (logger, message prefix)
_NOISY = (
    ("asyncio", "socket.accept() out of system resource"),
    ("asyncio", "Accept failed on a socket"),
    ("uvicorn.error", "Invalid HTTP request received."),
    ("uvicorn.error", "Exceeded concurrency limit."),
    ("uvicorn.error", "Unsupported upgrade request."),
    (__name__, ""),
)


@dataclass(frozen=True)
class ConnectionLimits:
    header_timeout_s: float = 10.0
    keep_alive_s: float = 5.0
    max_connections: int = 1000


class RateLimitFilter(logging.Filter):
    """Lets through one record per message prefix every ``interval_s`` (counting the rest)."""

    def __init__(self, prefixes: tuple[str, ...], interval_s: float = 10.0) -> None:
        super().__init__()
        self.prefixes = prefixes
        self.interval_s = interval_s
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def _kind(self, record: logging.LogRecord) -> str | None:
        message = str(record.msg)
        return next((p for p in self.prefixes if message.startswith(p)), None)

    def filter(self, record: logging.LogRecord) -> bool:
        kind = self._kind(record)
        if kind is None:
            return True
        key = kind or str(record.msg)  # the empty prefix: one budget per message format
        now = time.monotonic()
        if now - self._last.get(key, -self.interval_s) < self.interval_s:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return False
        self._last[key] = now
        skipped = self._suppressed.pop(key, 0)
        if skipped:
            record.msg = f"{record.msg} ({skipped} similar messages suppressed)"
        return True


def install_log_limits(interval_s: float = 10.0) -> None:
    """Rate-limit the per-connection log lines listed in ``_NOISY`` (idempotent)."""
    by_logger: dict[str, tuple[str, ...]] = {}
    for name, prefix in _NOISY:
        by_logger[name] = (*by_logger.get(name, ()), prefix)
    for name, prefixes in by_logger.items():
        target = logging.getLogger(name)
        if not any(isinstance(f, RateLimitFilter) for f in target.filters):
            target.addFilter(RateLimitFilter(prefixes, interval_s))


def fit_to_fd_limit(wanted: int) -> int:
    """``wanted`` connections, or fewer if file descriptors cannot cover them (and a reserve
    for models, databases and fetches); raises the soft limit towards the hard one first."""
    try:
        import resource
    except ImportError:  # not POSIX
        return wanted
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return wanted
    need = wanted + 256
    if soft < need:
        target = need if hard == resource.RLIM_INFINITY else min(need, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):  # macOS refuses more than kern.maxfilesperproc
            pass
    return max(1, min(wanted, soft - min(256, soft // 4)))


def guarded_protocol(limits: ConnectionLimits) -> type[HttpToolsProtocol]:
    """A uvicorn protocol class enforcing ``limits`` (see the module docstring)."""
    waiting: dict[_Guarded, None] = {}  # connections awaiting headers, oldest first

    class Guarded(_Guarded):
        _limits = limits
        _waiting = waiting

    return Guarded


class _Guarded(HttpToolsProtocol):
    _limits: ConnectionLimits
    _waiting: dict[_Guarded, None]
    _refused = False
    _timer: asyncio.TimerHandle | None = None
    _head_bytes = 0  # bytes received since the header clock started
    _in_body = False  # between a request's headers and the end of its body

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        if len(self.connections) >= self._limits.max_connections and not self._evict_one():
            self._refused = True
            logger.warning("refused a connection: %d connections open, all busy (cap: "
                           "--max-connections)", len(self.connections))
            transport.write(_BUSY)
            transport.close()
            return
        super().connection_made(transport)
        self._arm()

    def _evict_one(self) -> bool:
        """Close the connection waiting longest for its headers; False when none waits."""
        for victim in self._waiting:
            victim._disarm()
            victim.transport.abort()
            logger.warning("dropped a connection that had not sent its request headers, to "
                           "make room (cap: --max-connections)")
            return True
        return False

    def _arm(self) -> None:
        """Start the header clock: a request's headers must come within the timeout."""
        self._disarm()
        self._head_bytes = 0
        self._waiting[self] = None
        self._timer = self.loop.call_later(self._limits.header_timeout_s, self._expire)

    def _disarm(self) -> None:
        self._waiting.pop(self, None)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expire(self) -> None:
        self._timer = None
        self._waiting.pop(self, None)
        if not self.transport.is_closing():
            logger.info("closed a connection that sent no complete request headers within "
                        "%g s", self._limits.header_timeout_s)
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._timer is None:  # not waiting for headers (or they completed in ``data``)
            return
        self._head_bytes += len(data)
        if self._head_bytes > MAX_HEADER_BYTES and not self.transport.is_closing():
            self._disarm()  # llhttp has no limit of its own on the request head's size
            self.logger.warning("Invalid HTTP request received.")
            self.send_400_response("Request head too large.")

    def on_headers_complete(self) -> None:
        self._disarm()  # (a WebSocket upgrade's too: it must outlive the header clock)
        self._in_body = True
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._in_body = False
        super().on_message_complete()
        upgrading = self.parser.should_upgrade() and self._should_upgrade()
        answered = self.cycle is not None and self.cycle.response_complete
        if answered and not upgrading and not self.pipeline:
            self._arm()  # answered before its body had all come: the clock starts now

    def on_response_complete(self) -> None:
        # Not while the request's body is still coming, nor when the next request's headers
        # already came (its cycle is queued). Armed before the base class, which may start
        # a queued request right away.
        if not self._in_body and not self.pipeline:
            self._arm()
        super().on_response_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._refused:
            return
        self._disarm()
        super().connection_lost(exc)


def uvicorn_options(limits: ConnectionLimits) -> dict[str, Any]:
    """Keyword arguments for ``uvicorn.run`` applying ``limits``."""
    fitted = fit_to_fd_limit(limits.max_connections)
    if fitted < limits.max_connections:
        logger.warning("serving at most %d connections (not %d): the file descriptor limit "
                       "is too low (raise it with `ulimit -n`)", fitted,
                       limits.max_connections)
        limits = ConnectionLimits(limits.header_timeout_s, limits.keep_alive_s, fitted)
    return {"http": guarded_protocol(limits), "timeout_keep_alive": limits.keep_alive_s}
