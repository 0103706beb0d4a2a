"""Bounds on what a client's values may cost the server to quote and to check.

Contract (framework-free, standard library only, so every layer may import it):

* :func:`excerpt` quotes a client's value in an error message: at most ``limit``
  characters of its ``repr``-style escaped text (control characters, lone surrogates and
  quotes escaped), cut in the middle with an ellipsis and the total length, so an error
  never echoes a 60 MB URL and never holds a character that UTF-8 cannot encode.
* :func:`find_surrogate` is the JSON path of the first string (value or object key) of a
  parsed JSON document that holds a lone surrogate (``"\\ud800"`` is valid JSON but no
  valid text: tokenizers, encoders and JSON responses fail on it), or None.
* :func:`check_size` refuses a JSON value with more than ``max_nodes`` values (objects,
  arrays, strings and numbers all count one) or nested deeper than ``max_depth``, with a
  :class:`TooLarge` naming the limit; it stops as soon as a limit is passed, so its own
  cost is bounded too.

All three walk iteratively: no input nesting can raise ``RecursionError`` here.
"""

from __future__ import annotations

import re
from typing import Any

EXCERPT_CHARS = 200
_SURROGATE = re.compile("[\ud800-\udfff]")


def excerpt(value: Any, limit: int = EXCERPT_CHARS) -> str:
    """A short, escaped quote of ``value``: a string as ``'...'``, cut in the middle past
    ``limit`` characters; a number as itself; anything else by its type and length."""
    if isinstance(value, str):
        if len(value) <= limit:
            return repr(value)
        half = max(limit // 2, 1)
        head, tail = repr(value[:half])[:-1], repr(value[-half:])[1:]
        return f"{head}...{tail} ({len(value)} characters)"
    if isinstance(value, bool | float) or value is None:
        return repr(value)
    if isinstance(value, int):
        return repr(value) if value.bit_length() < 256 else "<a very large integer>"
    if isinstance(value, dict | list | tuple):
        return f"<{type(value).__name__} of {len(value)} items>"
    return f"<{type(value).__name__}>"


def safe_text(text: str, limit: int) -> str:
    """``text`` (server-built, quoting a client perhaps) capped at ``limit`` characters and
    with lone surrogates escaped, so it can go into a UTF-8 response."""
    if len(text) > limit:
        half = limit // 2
        text = f"{text[:half]} ... {text[-half:]} (message cut: {len(text)} characters)"
    if not text.isascii() and _SURROGATE.search(text):
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def _has_surrogate(text: str) -> bool:
    return not text.isascii() and _SURROGATE.search(text) is not None


_Path = tuple[Any, Any] | None  # (parent path, key): built per value in O(1)


def _render(path: _Path, root: str) -> str:
    keys = []
    while path is not None:
        path, key = path
        keys.append(key)
    text = root
    for key in reversed(keys):
        if isinstance(key, int):
            text += f"[{key}]"
        else:
            name = excerpt(key, 40)[1:-1]
            text = f"{text}.{name}" if text else name
    return text or "body"


def _any_surrogate(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is str:
            if not item.isascii() and _has_surrogate(item):
                return True
        elif kind is dict:
            for key in item:
                if type(key) is str and not key.isascii() and _has_surrogate(key):
                    return True
            stack.extend(item.values())
        elif kind is list or kind is tuple:
            stack.extend(item)
    return False


def find_surrogate(value: Any, root: str = "") -> str | None:
    """The path of the first string holding a lone surrogate, or None."""
    if not _any_surrogate(value):  # the common case, without building paths
        return None
    stack: list[tuple[Any, _Path]] = [(value, None)]
    while stack:
        item, path = stack.pop()
        if isinstance(item, str):
            if _has_surrogate(item):
                return _render(path, root)
        elif isinstance(item, dict):
            for key, child in item.items():
                if isinstance(key, str) and _has_surrogate(key):
                    return _render(path, root)
                stack.append((child, (path, key)))
        elif isinstance(item, list | tuple):
            stack.extend((child, (path, i)) for i, child in enumerate(item))
    return None


class TooLarge(ValueError):
    """A JSON value over a size or nesting limit; the message names the limit."""


def check_size(value: Any, what: str, max_nodes: int, max_depth: int) -> int:
    """The number of values in ``value``; :class:`TooLarge` past either limit."""
    nodes, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        nodes += 1
        if nodes > max_nodes:
            raise TooLarge(f"{what} has more than {max_nodes} JSON values, this server's "
                           "limit; send a smaller schema")
        if isinstance(item, dict | list | tuple):
            if depth > max_depth:
                raise TooLarge(f"{what} is nested more than {max_depth} levels deep, this "
                               "server's limit")
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return nodes
