"""Chat sessions: ``session_id`` keeps a conversation across chat completion requests.

Contract: :class:`SessionStore` keeps, per session id, the parsed messages of earlier turns
(text and media *references*, re-resolved on each turn; never decoded media) and the
assistant's replies. It is bounded three ways: at most ``max_sessions`` sessions (the least
recently used is dropped), at most ``max_messages`` messages per session (the oldest turns
are dropped; system messages of the first turn are kept), and a session unused for
``ttl_s`` seconds expires. It lives on the event loop (no locking).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from ..content import MessageRef, TextRef


@dataclass
class _Session:
    system: tuple[MessageRef, ...] = ()
    turns: list[MessageRef] = field(default_factory=list)
    used: float = 0.0


class SessionStore:
    def __init__(self, max_sessions: int = 1024, max_messages: int = 64,
                 ttl_s: float = 3600.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_sessions = max_sessions
        self.max_messages = max_messages
        self.ttl_s = ttl_s
        self._clock = clock
        self._sessions: OrderedDict[str, _Session] = OrderedDict()

    def __len__(self) -> int:
        self._expire()
        return len(self._sessions)

    def _expire(self) -> None:
        cutoff = self._clock() - self.ttl_s
        for key in [k for k, s in self._sessions.items() if s.used < cutoff]:
            del self._sessions[key]

    def history(self, session_id: str) -> tuple[MessageRef, ...]:
        """Earlier messages of the session (empty for a new or expired one)."""
        self._expire()
        session = self._sessions.get(session_id)
        if session is None:
            return ()
        return (*session.system, *session.turns)

    def record(self, session_id: str, new: tuple[MessageRef, ...], reply: str) -> None:
        """Append one turn: the request's new messages and the assistant's reply."""
        self._expire()
        session = self._sessions.pop(session_id, None) or _Session()
        system = tuple(m for m in new if m.role == "system")
        if system and not session.system:
            session.system = system
        session.turns.extend(m for m in new if m.role != "system")
        session.turns.append(MessageRef("assistant", (TextRef(reply),)))
        del session.turns[:max(0, len(session.turns) - self.max_messages)]
        session.used = self._clock()
        self._sessions[session_id] = session
        while len(self._sessions) > self.max_sessions:
            self._sessions.popitem(last=False)
