"""Frame timestamps out of any sane range are refused with ``invalid_timestamp``, on the
wire (:func:`parse_message`) and per connection (a jump from the newest frame)."""

from __future__ import annotations

import pytest

from tests.stream.conftest import frame_message, wait_for
from tests.stream.test_session import Recorder, ScriptedEngine, open_session
from vllm_mlx.errors import APIError
from vllm_mlx.stream.protocol import (
    MAX_TIMESTAMP_JUMP_S,
    MAX_TIMESTAMP_S,
    check_order,
    parse_message,
)

PIXELS = 16_000_000


@pytest.mark.parametrize("stamp", [1e308, -1e308, -1.0, -1e-9, MAX_TIMESTAMP_S * 1.0001,
                                   10**20, 2**1023])
def test_timestamps_out_of_range_are_refused(stamp):
    with pytest.raises(APIError) as caught:
        parse_message(frame_message(stamp), PIXELS)
    assert caught.value.code == "invalid_timestamp" and caught.value.param == "timestamp"
    assert "out of range" in caught.value.message and len(caught.value.message) < 200


@pytest.mark.parametrize("literal", ["1e309", "-1e309", "NaN", "Infinity", "-Infinity"])
def test_non_finite_timestamps_are_refused(literal):
    message = frame_message(0.0).replace('"timestamp": 0.0', f'"timestamp": {literal}')
    assert literal in message
    with pytest.raises(APIError) as caught:
        parse_message(message, PIXELS)
    assert caught.value.code == "invalid_timestamp"


@pytest.mark.parametrize("stamp", [0, 0.0, 1.0, 1234567890.123, MAX_TIMESTAMP_S])
def test_sane_timestamps_are_kept(stamp):
    assert parse_message(frame_message(stamp), PIXELS).timestamp == stamp


def test_a_jump_from_the_newest_frame_is_refused_both_ways():
    check_order(5.0, None)
    check_order(1000.0 + MAX_TIMESTAMP_JUMP_S, 1000.0)
    check_order(1000.0, 1000.0 + MAX_TIMESTAMP_JUMP_S)
    for stamp in (1000.0 + MAX_TIMESTAMP_JUMP_S * 1.01, 0.0):
        with pytest.raises(APIError) as caught:
            check_order(stamp, 1000.0 + (MAX_TIMESTAMP_JUMP_S if stamp == 0.0 else 0) + 1)
        assert caught.value.code == "invalid_timestamp"


async def test_a_session_refuses_the_far_frame_and_goes_on():
    engine, transport = ScriptedEngine(), Recorder()
    _, session = open_session(engine, transport, window="3")
    await session.receive(frame_message(1000.0, 0))
    assert await session.receive(frame_message(1000.0 + 2 * MAX_TIMESTAMP_JUMP_S, 1))
    assert await session.receive(frame_message(1e308, 2))
    await wait_for(lambda: sum("error" in m for m in transport.sent) == 2)
    codes = [m["error"]["code"] for m in transport.sent if "error" in m]
    assert codes == ["invalid_timestamp", "invalid_timestamp"]
    for i in (1, 2):
        await session.receive(frame_message(1000.0 + i, i))
    engine.allow.release()
    await wait_for(lambda: any("vlm_reply" in m for m in transport.sent))
    reply = next(m for m in transport.sent if "vlm_reply" in m)
    assert reply["timestamps"] == [1000.0, 1001.0, 1002.0]
    await session.close()
