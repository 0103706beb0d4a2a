"""A submission's chunks reach its event loop in batches (one loop wake-up per batch of
posts), and a reader that falls behind gets the waiting chunks of a request merged into one,
with exactly the same text, tokens and logprobs as a reader that kept up."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from vllm_mlx.engine import ChatMessage, GenerationRequest, SamplingParams, TextPart
from vllm_mlx.engine.submission import Inbox, Mailbox, StreamPace, Submission, coalesced
from vllm_mlx.engine.types import ACCEPTED, GenerationChunk, GenerationResult, TokenLogprob


def _piece(text: str, token: int, count: int, finish: Any = None) -> GenerationChunk:
    return GenerationChunk(text=text, token_ids=(token,),
                           logprobs=(TokenLogprob(token, text, -0.5 * token),),
                           finish_reason=finish, prompt_tokens=7, completion_tokens=count,
                           cached_tokens=3)


def test_coalesced_merges_each_requests_run_and_keeps_ends_in_place() -> None:
    a1, a2, b1, a3 = (_piece("he", 1, 1), _piece("llo", 2, 2), _piece("x", 9, 1),
                      _piece("!", 3, 3, "length"))
    out = list(coalesced([(0, ACCEPTED), (0, a1), (1, b1), (0, a2), (0, a3), (0, None),
                          (1, None)]))
    assert [(i, type(item).__name__) for i, item in out] == [
        (0, "Accepted"), (0, "GenerationChunk"), (0, "NoneType"), (1, "GenerationChunk"),
        (1, "NoneType")]
    merged = out[1][1]
    assert merged.text == "hello!" and merged.token_ids == (1, 2, 3)
    assert [lp.token_id for lp in merged.logprobs] == [1, 2, 3]
    assert (merged.finish_reason, merged.completion_tokens, merged.prompt_tokens,
            merged.cached_tokens) == ("length", 3, 7, 3)
    assert out[3][1] is b1  # a lone chunk is passed on as it is


def test_a_reader_that_keeps_up_gets_every_chunk_and_a_late_one_gets_them_merged() -> None:
    pieces = [_piece(t, i, i + 1) for i, t in enumerate(["a", "b", "c"])]

    async def read(late: bool) -> list[GenerationChunk]:
        inbox = Inbox()
        submission = Submission(inbox, threading.Event(), 1)
        inbox.put((0, ACCEPTED))
        await submission.accepted()
        got: list[GenerationChunk] = []

        async def feed() -> None:
            for piece in pieces:
                inbox.put((0, piece))
                if not late:
                    await asyncio.sleep(0)
            inbox.put((0, None))

        if late:
            await feed()
            got = [c async for _, c in submission.chunks()]
        else:
            task = asyncio.ensure_future(feed())
            got = [c async for _, c in submission.chunks()]
            await task
        return got

    prompt = asyncio.run(read(late=False))
    late = asyncio.run(read(late=True))
    assert [c.text for c in prompt] == ["a", "b", "c"]
    assert [c.text for c in late] == ["abc"]
    assert GenerationResult.from_chunks(prompt) == GenerationResult.from_chunks(late)


def test_accepted_keeps_the_items_after_it_for_chunks() -> None:
    async def run() -> list[str]:
        inbox = Inbox()
        submission = Submission(inbox, threading.Event(), 2)
        for item in [(0, ACCEPTED), (1, ACCEPTED), (0, _piece("a", 1, 1)), (1, None),
                     (0, _piece("b", 2, 2)), (0, None)]:
            inbox.put(item)
        await submission.accepted()
        return [c.text async for _, c in submission.chunks()]

    assert asyncio.run(run()) == ["ab"]


def test_an_error_is_raised_after_the_chunks_before_it() -> None:
    async def run() -> list[str]:
        inbox = Inbox()
        submission = Submission(inbox, threading.Event(), 1)
        for item in [(0, ACCEPTED), (0, _piece("a", 1, 1)), (0, RuntimeError("boom"))]:
            inbox.put(item)
        got: list[str] = []
        with pytest.raises(RuntimeError, match="boom"):
            async for _, chunk in submission.chunks():
                got.append(chunk.text)
        return got

    assert asyncio.run(run()) == ["a"]


def test_one_loop_wake_up_carries_a_whole_batch_of_posts() -> None:
    async def run() -> tuple[int, list[Any]]:
        loop = asyncio.get_running_loop()
        mailbox = Mailbox(loop)
        inbox = Inbox()
        wakeups = 0
        original = loop.call_soon_threadsafe

        def counting(*args: Any) -> Any:
            nonlocal wakeups
            wakeups += 1
            return original(*args)

        loop.call_soon_threadsafe = counting  # type: ignore[method-assign]
        poster = threading.Thread(target=lambda: [mailbox.post(inbox, (0, k))
                                                  for k in range(100)])
        poster.start()
        poster.join()
        items = await inbox.take()
        return wakeups, items

    wakeups, items = asyncio.run(run())
    assert [item for _, item in items] == list(range(100))
    assert wakeups == 1


def test_posting_to_a_closed_loop_tells_the_engine_nobody_reads() -> None:
    loop = asyncio.new_event_loop()
    mailbox = Mailbox(loop)
    loop.close()
    assert mailbox.post(Inbox(), (0, None)) is False


def test_a_slow_reader_gets_the_same_reply_as_a_fast_one(engine_for: Any) -> None:
    engine = engine_for("qwen3")
    request = GenerationRequest(
        messages=(ChatMessage("user", (TextPart("Tell me a story."),)),),
        sampling=SamplingParams(max_tokens=40, ignore_eos=True, logprobs=2))

    async def read(slow: bool) -> list[GenerationChunk]:
        chunks = []
        finished = engine.stats["requests_finished"]
        async for chunk in engine.generate(request):
            chunks.append(chunk)
            while slow and engine.stats["requests_finished"] == finished:
                await asyncio.sleep(0.01)  # the rest of the reply is decoded meanwhile
        return chunks

    fast = asyncio.run(read(slow=False))
    slow = asyncio.run(read(slow=True))
    assert len(fast) > 2
    assert len(slow) <= 2  # the first chunk, then everything else merged into one
    a, b = GenerationResult.from_chunks(fast), GenerationResult.from_chunks(slow)
    assert (a.text, a.token_ids, a.completion_tokens, a.finish_reason) == \
        (b.text, b.token_ids, b.completion_tokens, b.finish_reason)
    assert [lp.token_id for lp in a.logprobs] == list(a.token_ids)
    assert a.logprobs == b.logprobs
    assert b.completion_tokens == 40


def test_the_pace_grows_with_the_streams_open_and_stops_at_its_cap() -> None:
    pace = StreamPace(per_stream_s=0.002, max_s=0.01)
    assert [pace.delay(n) for n in (0, 1, 2, 4)] == [0.0, 0.0, 0.002, 0.006]
    assert pace.delay(100) == 0.01


def _paced_round(pace: StreamPace, items: list[Any]) -> tuple[float, list[list[Any]]]:
    """Open four streams (their first tokens), then post ``items`` to each from another
    thread; return how long until every inbox had them all, and what each got."""
    async def run() -> tuple[float, list[list[Any]]]:
        loop = asyncio.get_running_loop()
        mailbox = Mailbox(loop, pace)
        inboxes = [Inbox() for _ in range(4)]
        for inbox in inboxes:
            mailbox.post(inbox, (0, _piece("a", 1, 1)))
        for inbox in inboxes:
            await inbox.take()
        poster = threading.Thread(target=lambda: [mailbox.post(inbox, (0, item))
                                                  for item in items for inbox in inboxes])
        start = loop.time()
        poster.start()
        held = []
        for inbox in inboxes:
            got: list[Any] = []
            while len(got) < len(items):
                got += [item for _, item in await inbox.take()]
            held.append(got)
        poster.join()
        return loop.time() - start, held

    return asyncio.run(run())


def test_many_open_streams_get_later_tokens_together_after_the_pace() -> None:
    pace = StreamPace(per_stream_s=0.1, max_s=0.25)  # 4 streams: hold up to 0.25 s
    waited, held = _paced_round(pace, [_piece("b", 2, 2), _piece("c", 3, 3)])
    assert waited >= 0.2
    assert all([chunk.text for chunk in got] == ["b", "c"] for got in held)


def test_a_streams_end_is_never_held_back_by_the_pace() -> None:
    pace = StreamPace(per_stream_s=1.0, max_s=5.0)
    waited, held = _paced_round(pace, [_piece("b", 2, 2, "stop"), None])
    assert waited < 1.0
    assert all(got[-1] is None and got[0].text == "b" for got in held)


def test_pacing_changes_how_many_chunks_never_the_replies(tiny_model: Any) -> None:
    from vllm_mlx.engine import Engine

    request = GenerationRequest(
        messages=(ChatMessage("user", (TextPart("Tell me a story."),)),),
        sampling=SamplingParams(max_tokens=24, ignore_eos=True))

    async def read_four(engine: Any) -> list[list[GenerationChunk]]:
        async def one() -> list[GenerationChunk]:
            return [chunk async for chunk in engine.generate(request)]
        return list(await asyncio.gather(*(one() for _ in range(4))))

    replies = {}
    for name, pace in (("every token", StreamPace(0.0, 0.0)), ("paced", StreamPace(0.02, 0.1))):
        engine = Engine.start(str(tiny_model("qwen3")), stream_pace=pace)
        try:
            replies[name] = asyncio.run(read_four(engine))
        finally:
            engine.shutdown()
    results = {name: [GenerationResult.from_chunks(c) for c in chunks]
               for name, chunks in replies.items()}
    assert [(r.text, r.token_ids) for r in results["paced"]] == \
        [(r.text, r.token_ids) for r in results["every token"]]
    assert all(r.completion_tokens == 24 for r in results["paced"])
    assert max(len(c) for c in replies["paced"]) < min(len(c) for c in replies["every token"])


def test_the_pace_flags_reach_the_settings_and_refuse_negative_times(capsys: Any) -> None:
    from vllm_mlx.cli import build_parser, settings_from_args

    def settings(*args: str) -> Any:
        return settings_from_args(build_parser().parse_args(["serve", "m", *args]))

    default = settings()
    assert (default.stream_pace_s, default.max_stream_delay_s) == (0.001, 0.05)
    off = settings("--stream-pace-ms", "2.5", "--max-stream-delay-ms", "0")
    assert (off.stream_pace_s, off.max_stream_delay_s) == (0.0025, 0.0)
    for bad in ("-1", "abc", "nan"):
        with pytest.raises(SystemExit):
            settings("--stream-pace-ms", bad)
        assert f"'{bad}': give milliseconds" in capsys.readouterr().err
