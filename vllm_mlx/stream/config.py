"""Per-connection settings of a live video stream, and the server's limits on them.

Contract: :class:`StreamConfig` holds what one WebSocket connection may choose (prompt,
window size, how many new frames trigger an analysis, token budget, sampling, minimum
interval between replies, staleness span, video-or-images mode). Its defaults are the
seed's reference server (5 frames, "What is the most interesting aspect in this series
of images?", 48 new tokens, temperature 0.7, top_p 0.95). :func:`parse_config` builds
one from query parameters (strings) or a ``{"config": {...}}`` message (JSON values)
on top of a base config, checked against :class:`StreamLimits`; every mistake raises an
:class:`~vllm_mlx.errors.APIError` (400) naming the parameter. Framework-free.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from typing import Any, Literal

from ..errors import APIError

DEFAULT_PROMPT = "What is the most interesting aspect in this series of images?"
Mode = Literal["auto", "video", "images"]
_MODES = ("auto", "video", "images")
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


@dataclass(frozen=True)
class StreamLimits:
    """What the server allows per connection (from :class:`~vllm_mlx.config.Settings`)."""

    max_window: int = 32
    max_tokens: int = 8192
    max_message_bytes: int = 8 * 1024 * 1024
    max_image_pixels: int = 16_000_000


@dataclass(frozen=True)
class StreamConfig:
    prompt: str = DEFAULT_PROMPT
    window: int = 5  # frames per analysis
    new_frames: int | None = None  # new frames that trigger the next analysis (None: window)
    max_tokens: int = 48
    temperature: float = 0.7
    top_p: float = 0.95
    seed: int | None = None
    ignore_eos: bool = False
    interval: float = 0.0  # minimum seconds between the starts of two analyses
    max_span: float | None = 10.0  # frames older than newest - max_span (s) are dropped
    mode: Mode = "auto"  # video for native-video models, images otherwise

    @property
    def trigger(self) -> int:
        """New frames needed before the next analysis."""
        return min(self.new_frames or self.window, self.window)

    def public(self) -> dict[str, Any]:
        """The settings as sent back to the client after a config message."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


def brief(value: Any) -> str:
    """``repr`` of a client's value, cut short (a number may have thousands of digits)."""
    text = repr(value) if not isinstance(value, int) or value.bit_length() < 128 else "<int>"
    return text if len(text) <= 40 else text[:37] + "..."


def _bad(name: str, why: str) -> APIError:
    return APIError(400, f"stream config '{name}' {why}", param=name, code="invalid_config")


_MAX_DIGITS = 30  # beyond any setting's range; also under int()'s 4300-digit limit


def _number(name: str, value: Any, kind: type) -> Any:
    if isinstance(value, bool) or (isinstance(value, str) and len(value) > _MAX_DIGITS):
        raise _bad(name, f"must be a number, not {brief(value)}")
    if isinstance(value, int) and kind is int:
        return value
    digits = value.strip().lstrip("+-") if isinstance(value, str) else ""
    if kind is int and digits.isascii() and digits.isdigit():
        return int(value)
    try:
        number = float(value)  # "3.0" from a query string is a whole number too
    except (TypeError, ValueError, OverflowError):
        raise _bad(name, f"must be a number, not {brief(value)}") from None
    if not math.isfinite(number):
        raise _bad(name, "must be finite")
    if kind is int:
        if number != int(number):
            raise _bad(name, f"must be a whole number, not {brief(value)}")
        return int(number)
    return number


def _boolean(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in _TRUE + _FALSE:
        return value.lower() in _TRUE
    raise _bad(name, f"must be true or false, not {value!r}")


def _optional(convert: Callable[[str, Any], Any]) -> Callable[[str, Any], Any]:
    def parse(name: str, value: Any) -> Any:
        if value is None or (isinstance(value, str) and value.lower() in ("", "none", "null")):
            return None
        return convert(name, value)

    return parse


def _int(name: str, value: Any) -> int:
    return int(_number(name, value, int))


def _float(name: str, value: Any) -> float:
    return float(_number(name, value, float))


def _text(name: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _bad(name, "must be a non-empty string")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: JSON allows it, no tokenizer does
        raise _bad(name, "must be valid Unicode text (it has a lone surrogate)") from None
    return value


def _mode(name: str, value: Any) -> str:
    if value not in _MODES:
        raise _bad(name, f"must be one of {', '.join(_MODES)}, not {value!r}")
    return str(value)


_PARSERS: dict[str, Callable[[str, Any], Any]] = {
    "prompt": _text, "window": _int, "new_frames": _optional(_int), "max_tokens": _int,
    "temperature": _float, "top_p": _float, "seed": _optional(_int), "ignore_eos": _boolean,
    "interval": _float, "max_span": _optional(_float), "mode": _mode,
}
_ALIASES = {"frames": "window", "max_new_tokens": "max_tokens", "reply_interval": "interval"}
IGNORED_QUERY = frozenset({"api_key"})


def _check(config: StreamConfig, limits: StreamLimits) -> StreamConfig:
    if not 1 <= config.window <= limits.max_window:
        raise _bad("window", f"must be between 1 and {limits.max_window}")
    if config.new_frames is not None and config.new_frames < 1:
        raise _bad("new_frames", "must be at least 1")
    if not 1 <= config.max_tokens <= limits.max_tokens:
        raise _bad("max_tokens", f"must be between 1 and {limits.max_tokens}")
    if config.temperature < 0:
        raise _bad("temperature", "must be >= 0")
    if not 0 < config.top_p <= 1:
        raise _bad("top_p", "must be in (0, 1]")
    if config.interval < 0:
        raise _bad("interval", "must be >= 0")
    if config.max_span is not None and config.max_span <= 0:
        raise _bad("max_span", "must be > 0 (or null for no limit)")
    return config


def parse_config(values: Mapping[str, Any], limits: StreamLimits,
                 base: StreamConfig | None = None) -> StreamConfig:
    """``base`` updated with ``values`` (query strings or JSON values), validated."""
    changes: dict[str, Any] = {}
    for raw_name, value in values.items():
        name = _ALIASES.get(raw_name, raw_name)
        if name in IGNORED_QUERY:
            continue
        parser = _PARSERS.get(name)
        if parser is None:
            known = ", ".join(sorted(_PARSERS))
            raise _bad(raw_name, f"is not a setting (known: {known})")
        changes[name] = parser(raw_name, value)
    return _check(replace(base or StreamConfig(), **changes), limits)
