"""Replicated scheduling without MLX distributed: a leader and a follower engine in one
process, joined by an in-memory channel that carries the real encoded step messages.

Both engines load the same whole tiny model, so the follower's copy of every output must
equal the leader's token for token, and their counters must agree step for step.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import defaultdict
from typing import Any

import pytest

from vllm_mlx.distributed import coordinator
from vllm_mlx.distributed.coordinator import Follower, GroupFailed, Leader, Watchdog
from vllm_mlx.distributed.group import Group, Member
from vllm_mlx.distributed.wire import StepInputs, decode, encode
from vllm_mlx.engine import (
    Engine,
    EngineClosed,
    GenerationChunk,
    GenerationRequest,
    SamplingParams,
)

MEMBERS = (Member(0, "mac1 (10.0.0.1)"), Member(1, "mac2 (10.0.0.2)"))


def _group(rank: int) -> Group:
    return Group(handle=None, rank=rank, backend="test", members=MEMBERS)


class PipeChannel:
    """send() on one side, receive() on the other, through the wire format."""

    def __init__(self) -> None:
        self.messages: queue.Queue[bytes] = queue.Queue()
        self.sent = 0
        self.fail_after: int | None = None  # sends that succeed before "[ring]" errors
        self.block = threading.Event()  # set: send() hangs like a stuck collective
        self.release = threading.Event()

    def send(self, inputs: StepInputs) -> None:
        if self.block.is_set():
            self.release.wait()
            raise RuntimeError("[ring] connection to a peer was lost")
        if self.fail_after is not None and self.sent >= self.fail_after:
            raise RuntimeError("[ring] connection to a peer was lost")
        self.sent += 1
        self.messages.put(encode(inputs))

    def receive(self) -> StepInputs:
        return decode(self.messages.get(timeout=30))


@pytest.fixture
def pair(tiny_model):
    path = str(tiny_model("qwen3"))
    channel = PipeChannel()
    copies: dict[str, list[Any]] = defaultdict(list)
    follower = Follower(_group(1), timeout=30, channel=channel,
                        output=lambda request, item: copies[request.request_id].append(item))
    follower_engine = Engine.start(path, coordinator=follower)
    leader = Leader(_group(0), timeout=30, channel=channel)
    leader_engine = Engine.start(path, coordinator=leader)
    yield leader_engine, follower_engine, follower, copies
    leader_engine.shutdown()
    follower_engine.shutdown()


def _token_ids(items: list[Any]) -> list[int]:
    return [t for item in items if isinstance(item, GenerationChunk) for t in item.token_ids]


def test_the_follower_takes_the_same_steps(pair):
    leader_engine, follower_engine, follower, copies = pair
    requests = [
        GenerationRequest(prompt="greedy one", request_id="greedy",
                          sampling=SamplingParams(max_tokens=9)),
        GenerationRequest(prompt="sampled, no seed", request_id="unseeded",
                          sampling=SamplingParams(max_tokens=9, temperature=0.9)),
        GenerationRequest(prompt="sampled, seeded", request_id="seeded",
                          sampling=SamplingParams(max_tokens=9, temperature=0.9, top_p=0.8,
                                                  seed=5)),
    ]
    results: dict[str, Any] = {}
    threads = [threading.Thread(target=lambda r=r: results.update(
        {r.request_id: leader_engine.complete_sync(r)})) for r in requests]
    for thread in threads:
        thread.start()
    # Cancel a long request part way: both ranks must drop it at the same step.
    stream = leader_engine.generate_sync(GenerationRequest(
        prompt="long", request_id="cancelled", sampling=SamplingParams(max_tokens=500,
                                                                        ignore_eos=True)))
    for _, _chunk in zip(range(3), stream):
        pass
    stream.close()
    for thread in threads:
        thread.join(60)
    ids = [r.request_id for r in requests] + ["cancelled"]
    deadline = time.monotonic() + 10  # the follower runs a step behind the leader
    while not all(copies[i] and copies[i][-1] is None for i in ids):
        assert time.monotonic() < deadline, dict(copies)
        time.sleep(0.05)
    for request in requests:
        assert _token_ids(copies[request.request_id]) == list(results[request.request_id]
                                                               .token_ids)
    time.sleep(0.5)  # a few idle steps: the follower has taken every announced step
    lead, follow = leader_engine.stats, follower_engine.stats
    for key in ("requests_started", "requests_finished", "requests_cancelled",
                "generated_tokens", "prompt_tokens", "decode_steps"):
        assert lead[key] == follow[key], key
    assert lead["requests_cancelled"] == 1 and copies["cancelled"][-1] is None


def test_stopping_the_leader_stops_the_follower(pair):
    leader_engine, follower_engine, follower, _ = pair
    leader_engine.shutdown()
    assert follower.done.wait(10)
    assert follower.stopped and follower.failure is None
    with pytest.raises(EngineClosed):
        follower_engine.complete_sync(GenerationRequest(prompt="x"))


def test_a_lost_peer_fails_requests_with_its_name_and_stops_the_engine(tiny_model):
    channel = PipeChannel()
    channel.fail_after = 2
    failures: list[str] = []
    leader = Leader(_group(0), timeout=30, on_failure=failures.append, channel=channel)
    engine = Engine.start(str(tiny_model("qwen3")), coordinator=leader)
    try:
        with pytest.raises(GroupFailed) as caught:
            engine.complete_sync(GenerationRequest(
                prompt="hi", sampling=SamplingParams(max_tokens=200, ignore_eos=True)))
        message = caught.value.message
        assert "lost contact with rank 1 (mac2 (10.0.0.2))" in message
        assert "[ring] connection to a peer was lost" in message
        assert failures == [message]
        with pytest.raises(GroupFailed, match="rank 1"):  # later requests: same error
            engine.complete_sync(GenerationRequest(prompt="again"))
    finally:
        engine.shutdown()


def test_a_hung_step_with_a_dead_peer_fails_within_seconds(tiny_model, monkeypatch):
    class DeadAfterASecond:
        def __init__(self, group: Group) -> None:
            self.start = time.monotonic()

        def dead_peer(self) -> str | None:
            if time.monotonic() - self.start > 1:
                return "rank 1 (mac2 (10.0.0.2)) has exited (pid 42)"
            return None

    monkeypatch.setattr(coordinator, "PeerProbe", DeadAfterASecond)
    channel = PipeChannel()
    failures: list[str] = []
    leader = Leader(_group(0), timeout=60, on_failure=failures.append, channel=channel)
    engine = Engine.start(str(tiny_model("qwen3")), coordinator=leader)
    channel.block.set()  # every step from now on hangs, as a collective with a dead peer
    started = time.monotonic()
    try:
        with pytest.raises(GroupFailed, match=r"rank 1 \(mac2 \(10.0.0.2\)\) has exited"):
            engine.complete_sync(GenerationRequest(prompt="hi"))
        assert time.monotonic() - started < 10
        assert leader.done.is_set() and len(failures) == 1
    finally:
        channel.release.set()
        engine.shutdown(timeout=5)


def test_the_watchdog_names_what_took_too_long():
    reasons: list[str] = []
    dog = Watchdog(0.3, reasons.append, peers="rank 1 (mac2)")
    with dog.watch("a step"):
        time.sleep(1.0)
    dog.stop()
    assert len(reasons) == 1
    assert reasons[0].startswith("a step took") and "rank 1 (mac2) does not answer" in reasons[0]


def test_a_fast_section_never_trips_the_watchdog():
    reasons: list[str] = []
    dog = Watchdog(0.4, reasons.append, probe=lambda: "rank 1 is gone", suspect_after=5)
    for _ in range(5):
        with dog.watch("a step"):
            time.sleep(0.05)
    time.sleep(0.6)
    dog.stop()
    assert reasons == []


class _IdleScheduler:
    has_work = False
    has_capacity = True

    def __init__(self) -> None:
        self.steps = 0
        self.added: list[GenerationRequest] = []

    def step(self) -> None:
        self.steps += 1

    def add(self, request, sink, is_cancelled) -> None:
        self.added.append(request)


def test_an_idle_leader_paces_its_empty_steps_and_says_so(tiny_model):
    channel = PipeChannel()
    leader = Leader(_group(0), timeout=30, channel=channel, pauses=(0.01, 0.02, 0.04))
    inner = _IdleScheduler()
    leader.attach(inner)
    try:
        pauses = []
        for _ in range(5):
            leader.step()
            pauses.append(leader.idle_wait)
        assert pauses == [0.01, 0.02, 0.04, 0.04, 0.04]
        leader.add(GenerationRequest(prompt="x"), lambda item: None, lambda: False)
        assert inner.added[0].sampling.seed is not None  # seeded before broadcast
        leader.step()  # a step with a new request: no pause announced
        sent = [decode(channel.messages.get_nowait()) for _ in range(6)]
        assert [m.pause for m in sent] == [0.01, 0.02, 0.04, 0.04, 0.04, 0.0]
        assert sent[-1].admitted[0][1].sampling.seed == inner.added[0].sampling.seed
        assert leader.idle_wait == 0.01 and inner.steps == 6
    finally:
        leader.close()


def test_a_follower_sleeps_the_announced_pause_instead_of_waiting_in_the_collective():
    channel = PipeChannel()
    follower = Follower(_group(1), timeout=30, channel=channel)
    follower.attach(_IdleScheduler())
    try:
        channel.send(StepInputs(pause=0.3))
        started = time.monotonic()
        follower.step()
        assert time.monotonic() - started >= 0.3
        channel.send(StepInputs(stop=True))
        with pytest.raises(EngineClosed, match="rank 0 stopped the group"):
            follower.step()
    finally:
        follower.close()
