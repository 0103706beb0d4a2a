"""The chat UI's one error type: a failure to show the user as it is."""

from __future__ import annotations


class BackendError(RuntimeError):
    """A failure to show the user as is (bad media, server error, engine overloaded)."""
