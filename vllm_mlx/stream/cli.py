"""``vllm-mlx stream``: send a camera, a video file or a test pattern to a server's
live-video endpoint and print the replies.

Contract: connects to ``--url`` (default ``ws://127.0.0.1:8000/``; ``--api-key`` and the
stream settings become query parameters), streams frames with
:class:`~vllm_mlx.stream.client.VideoStream` and prints each ``vlm_reply`` (``--json``:
every server message as one JSON line; errors go to stderr). Network failures and
server restarts reconnect with exponential backoff (0.5 s doubling to 8 s, up to
``--retries`` times); a refusal does not: close code 1008 (bad key or settings), 1003
(text-only model) or 1009 (frame too large) ends the command with exit code 2, as does a
source that cannot be opened. ``--max-replies N`` / ``--duration S`` end it with 0.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO
from urllib.parse import urlencode, urlsplit, urlunsplit

from .config import DEFAULT_PROMPT, StreamConfig

PERMANENT_CLOSE = {1003: "unsupported input", 1008: "refused (check the API key and "
                   "settings)", 1009: "message too large"}
BACKOFF_START_S, BACKOFF_MAX_S = 0.5, 8.0
LAST_REPLY_WAIT_S = 5.0  # after a finite source ends, wait up to this for its last reply
_SERVER = StreamConfig()  # the server's defaults, for --help
_SETTINGS = ("prompt", "window", "new_frames", "max_tokens", "temperature", "interval", "mode")


class Refused(Exception):
    """The server closed the stream for a reason a retry cannot fix."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    from ..cli_help import HelpFormatter

    p = sub.add_parser("stream", help="stream a camera, video file or test pattern to a "
                       "vllm-mlx server and print its live replies", formatter_class=HelpFormatter,
                       description="Stream a camera, a video file or a test pattern to a "
                       "vllm-mlx server and print its live replies. Options left out use the "
                       "server's settings.")
    p.add_argument("--url", default="ws://127.0.0.1:8000/", help="the server's stream URL")
    p.add_argument("--api-key", default=None,
                   help="the server's API key (default: none, for a server without one)")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--camera", type=int, default=0, metavar="N",
                        help="camera index, the source unless --file or --test-pattern")
    source.add_argument("--file", default=None, metavar="PATH",
                        help="stream a video file (default: none, the camera)")
    source.add_argument("--test-pattern", action="store_true", help="a synthetic pattern")
    p.add_argument("--no-loop", action="store_true", help="stop at the end of --file")
    p.add_argument("--fps", type=_positive_float, default=30.0,
                   help="frames sent per second")
    p.add_argument("--resolution", default="640x480", metavar="WxH",
                   help="size of the frames sent, in pixels")
    p.add_argument("--jpeg-quality", type=_quality, default=70, metavar="0-100",
                   help="JPEG quality of each frame sent")
    p.add_argument("--prompt", default=None,
                   help=f"question asked about each window (default: the server's, "
                        f"{DEFAULT_PROMPT!r})")
    p.add_argument("--window", type=int, default=None, metavar="FRAMES",
                   help=f"frames per analysis (default: the server's, {_SERVER.window})")
    p.add_argument("--new-frames", type=int, default=None, metavar="FRAMES",
                   help="new frames that start the next analysis (default: the server's, "
                        "the window)")
    p.add_argument("--max-tokens", type=int, default=None, metavar="TOKENS",
                   help=f"most tokens per reply (default: the server's, {_SERVER.max_tokens})")
    p.add_argument("--temperature", type=float, default=None,
                   help=f"sampling temperature (default: the server's, {_SERVER.temperature})")
    p.add_argument("--interval", type=float, default=None, metavar="SECONDS",
                   help=f"min seconds between replies (default: the server's, "
                        f"{_SERVER.interval})")
    p.add_argument("--mode", choices=("auto", "video", "images"), default=None,
                   help="send a window as one video or as images (default: the server's, "
                        "auto: video for models with native video)")
    p.add_argument("--json", action="store_true", help="print every server message as JSON")
    p.add_argument("--max-replies", type=int, default=None, metavar="N",
                   help="stop after N replies (default: none, run until stopped)")
    p.add_argument("--duration", type=float, default=None, metavar="SECONDS",
                   help="stop after this many seconds (default: none, run until stopped)")
    p.add_argument("--retries", type=int, default=None, metavar="N",
                   help="reconnect attempts (default: unlimited)")
    p.add_argument("--log-level", default="warning",
                   help="least severe log messages shown: debug, info, warning or error")


def stream_url(args: argparse.Namespace) -> str:
    """``--url`` with the API key and stream settings added as query parameters."""
    parts = urlsplit(args.url)
    query = [(k, v) for k, v in (pair.split("=", 1) for pair in parts.query.split("&") if pair)]
    if args.api_key:
        query.append(("api_key", args.api_key))
    query += [(name, str(getattr(args, name))) for name in _SETTINGS
              if getattr(args, name) is not None]
    return urlunsplit(parts._replace(query=urlencode(query)))


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, not {text}")
    return value


def _quality(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if not 0 <= value <= 100:
        raise argparse.ArgumentTypeError(f"must be between 0 and 100, not {value}")
    return value


def parse_resolution(text: str) -> tuple[int, int]:
    width, _, height = text.lower().partition("x")
    try:
        size = (int(width), int(height))
    except ValueError:
        raise SystemExit(f"error: --resolution must look like 640x480, not {text!r}") from None
    if min(size) <= 0:
        raise SystemExit("error: --resolution must be positive")
    return size


def make_source(args: argparse.Namespace) -> Any:
    from .sources import CameraSource, FileSource, TestPatternSource

    size = parse_resolution(args.resolution)
    if args.test_pattern:
        return TestPatternSource(size)
    if args.file is not None:
        return FileSource(args.file, size, loop=not args.no_loop)
    return CameraSource(args.camera, size, args.fps)


@dataclass
class Printer:
    as_json: bool
    out: TextIO = sys.stdout
    err: TextIO = sys.stderr
    replies: int = 0
    covered: int = 0  # frames the server had received when it sent the last reply

    def __call__(self, raw: str | bytes) -> None:
        try:
            message = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            print(f"(unreadable server message: {raw[:80]!r})", file=self.err)
            return
        if isinstance(message, dict) and "vlm_reply" in message:
            self.replies += 1
            if isinstance(message.get("received"), int):
                self.covered = message["received"]
        if self.as_json:
            print(json.dumps(message), file=self.out, flush=True)
        elif isinstance(message, dict) and "vlm_reply" in message:
            print(message["vlm_reply"], file=self.out, flush=True)
        elif isinstance(message, dict) and isinstance(message.get("error"), dict):
            print(f"server error: {message['error'].get('message')}", file=self.err, flush=True)


async def _session(url: str, args: argparse.Namespace, printer: Printer,
                   done: Callable[[], bool]) -> None:
    """One connection: stream until done, or the source ended (and its last reply came),
    or the server closed it (raised)."""
    import websockets

    from .client import VideoStream

    async with websockets.connect(url, max_size=None, compression=None) as ws:
        stream = VideoStream(ws.send, fps=args.fps, resolution=parse_resolution(args.resolution),
                             jpeg_quality=args.jpeg_quality, source=make_source(args))
        stream.start()
        grace_until: float | None = None
        try:
            while not done() and (grace_until is None or (
                    time.monotonic() < grace_until and printer.covered < stream.stats.sent)):
                try:
                    printer(await asyncio.wait_for(ws.recv(), timeout=0.25))
                except asyncio.TimeoutError:
                    if not stream.running and grace_until is None:
                        grace_until = time.monotonic() + LAST_REPLY_WAIT_S
        finally:
            stream.stop()
        if stream.error is not None:
            raise Refused(f"video source failed: {stream.error}")


def _permanent(exc: BaseException) -> str | None:
    from websockets.exceptions import ConnectionClosed, InvalidStatus, InvalidURI

    if isinstance(exc, ConnectionClosed) and exc.rcvd is not None:
        reason = PERMANENT_CLOSE.get(exc.rcvd.code)
        if reason:
            return f"server closed the stream ({exc.rcvd.code}: {exc.rcvd.reason or reason})"
    if isinstance(exc, InvalidStatus) and exc.response.status_code in (401, 403, 404):
        return f"server refused the connection (HTTP {exc.response.status_code})"
    if isinstance(exc, InvalidURI):
        return str(exc)
    return None


async def run_stream(args: argparse.Namespace, printer: Printer) -> int:
    from websockets.exceptions import WebSocketException

    from .sources import SourceError

    url, attempts, delay = stream_url(args), 0, BACKOFF_START_S
    deadline = None if args.duration is None else time.monotonic() + args.duration

    def done() -> bool:
        if args.max_replies is not None and printer.replies >= args.max_replies:
            return True
        return deadline is not None and time.monotonic() >= deadline

    while not done():
        before = printer.replies
        try:
            await _session(url, args, printer, done)
            return 0
        except (SourceError, Refused) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        except (OSError, asyncio.TimeoutError, WebSocketException) as exc:
            reason = _permanent(exc)
            if reason:
                print(f"error: {reason}", file=sys.stderr)
                return 2
            if printer.replies > before:  # it was working: start the backoff afresh
                attempts, delay = 0, BACKOFF_START_S
            attempts += 1
            if args.retries is not None and attempts > args.retries:
                print(f"error: giving up after {args.retries} retries: {exc}", file=sys.stderr)
                return 1
            print(f"connection lost ({exc}); reconnecting in {delay:.1f}s", file=sys.stderr)
            await asyncio.sleep(delay)
            delay = min(delay * 2, BACKOFF_MAX_S)
    return 0


def main(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(run_stream(args, Printer(as_json=args.json)))
    except KeyboardInterrupt:
        return 0
