"""Keep secrets out of the server's logs.

Contract: :class:`RedactSecrets` is a :class:`logging.Filter` that never drops a record; it
rewrites the record's message and string arguments so that

* the value of a secret-looking query parameter (``api_key``, ``api-key``, ``apikey``,
  ``x-api-key``, ``key``, ``token``, ``access_token``, ``secret``, ``password``,
  ``signature``) becomes ``***`` (uvicorn logs request paths with their query strings, and
  WebSocket clients send the API key as ``?api_key=KEY``);
* a ``Bearer TOKEN`` becomes ``Bearer ***``;
* every occurrence of a configured secret (the API key, the callback secret) of at least
  :data:`MIN_LITERAL_LEN` characters becomes ``***`` (shorter ones would garble the logs;
  the two rules above still catch them where clients send them).

:func:`uvicorn_log_config` is uvicorn's default logging config with the filter on both of its
handlers; :func:`redact_root_handlers` puts it on the root logger's handlers (the package's
own log lines). Uvicorn's ``--log-level trace`` logs raw ASGI scopes, headers included, and is
not covered: it is a debugging aid, not for a server others can reach.
"""

from __future__ import annotations

import copy
import logging
import re
from collections.abc import Iterable
from functools import partial
from typing import Any

__all__ = ["MIN_LITERAL_LEN", "RedactSecrets", "redact", "redact_root_handlers",
           "uvicorn_log_config"]

MIN_LITERAL_LEN = 6
MASK = "***"
_QUERY_SECRET = re.compile(
    r"(?i)([?&;](?:x-)?(?:api[_-]?key|key|token|access_token|secret|password|signature)=)"
    r"[^&;#\s\"']*"
)
_BEARER = re.compile(r"(?i)(bearer\s+)[^\s\"',;]+")


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with secret query values, bearer tokens and the given secrets masked."""
    text = _QUERY_SECRET.sub(rf"\g<1>{MASK}", text)
    text = _BEARER.sub(rf"\g<1>{MASK}", text)
    for secret in secrets:
        text = text.replace(secret, MASK)
    return text


class RedactSecrets(logging.Filter):
    """Masks secrets in every record it sees (see the module docstring)."""

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        super().__init__()
        self.secrets = tuple(s for s in secrets if s and len(s) >= MIN_LITERAL_LEN)

    def _clean(self, value: Any) -> Any:
        return redact(value, self.secrets) if isinstance(value, str) else value

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self._clean(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(self._clean(arg) for arg in record.args)
        elif isinstance(record.args, dict):
            record.args = {key: self._clean(arg) for key, arg in record.args.items()}
        return True


def uvicorn_log_config(secrets: Iterable[str | None] = ()) -> dict[str, Any]:
    """Uvicorn's default ``log_config`` with :class:`RedactSecrets` on its handlers."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    # a factory, not a "secrets" key: dictConfig would resolve "ext://"-like strings in it
    config["filters"] = {"redact_secrets": {"()": partial(RedactSecrets, tuple(secrets))}}
    for handler in config["handlers"].values():
        handler["filters"] = ["redact_secrets"]
    return config


def redact_root_handlers(secrets: Iterable[str | None] = ()) -> None:
    """Put :class:`RedactSecrets` on the root logger's handlers (once each)."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RedactSecrets) for f in handler.filters):
            handler.addFilter(RedactSecrets(secrets))
