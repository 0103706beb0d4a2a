"""Chat sessions are bounded in count, length and time."""

from __future__ import annotations

from vllm_mlx.content import MessageRef, TextRef
from vllm_mlx.domains.sessions import SessionStore


def user(text: str) -> MessageRef:
    return MessageRef("user", (TextRef(text),))


def test_history_keeps_turns_and_the_first_system_message():
    store = SessionStore()
    system = MessageRef("system", (TextRef("be brief"),))
    store.record("s", (system, user("one")), "1")
    store.record("s", (user("two"),), "2")
    roles = [m.role for m in store.history("s")]
    assert roles == ["system", "user", "assistant", "user", "assistant"]
    assert store.history("s")[-1].parts == (TextRef("2"),)
    assert store.history("other") == ()


def test_sessions_are_bounded_in_messages_count_and_time():
    now = [0.0]
    store = SessionStore(max_sessions=2, max_messages=4, ttl_s=10, clock=lambda: now[0])
    for i in range(5):
        store.record("a", (user(str(i)),), f"r{i}")
    assert len(store.history("a")) == 4
    assert store.history("a")[0].parts == (TextRef("3"),)
    store.record("b", (user("x"),), "y")
    store.record("c", (user("x"),), "y")
    assert store.history("a") == () and len(store) == 2  # least recently used dropped
    now[0] = 11.0
    assert store.history("b") == () and len(store) == 0  # expired
