"""Message parsing, per-connection settings, the frame window and request building:
pure functions and classes, no server."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
from PIL import Image

from tests.stream.conftest import jpeg_bytes
from vllm_mlx.errors import APIError
from vllm_mlx.media import MediaPolicy
from vllm_mlx.stream.analysis import ModelTraits, build_request, decode_frames
from vllm_mlx.stream.config import DEFAULT_PROMPT, StreamConfig, StreamLimits, parse_config
from vllm_mlx.stream.protocol import ConfigUpdate, Frame, parse_message
from vllm_mlx.stream.window import FrameWindow

PIXELS = 1_000_000
B64 = base64.b64encode(jpeg_bytes(3)).decode()


def code_of(data: str | bytes, pixels: int = PIXELS) -> str | None:
    with pytest.raises(APIError) as info:
        parse_message(data, pixels)
    assert info.value.status == 400
    body = info.value.body()["error"]
    assert body["message"] and body["type"] == "invalid_request_error"
    return body["code"]


def test_seed_message_is_a_frame():
    frame = parse_message(json.dumps({"timestamp": 1234567890.123, "frame": B64}), PIXELS)
    assert isinstance(frame, Frame)
    assert frame.timestamp == 1234567890.123 and (frame.width, frame.height) == (64, 48)
    assert frame.jpeg == jpeg_bytes(3)


@pytest.mark.parametrize("data", [B64, f"data:image/jpeg;base64,{B64}", jpeg_bytes(3),
                                  json.dumps({"frame": B64}).encode()])
def test_other_frame_forms(data):
    frame = parse_message(data, PIXELS)
    assert isinstance(frame, Frame) and frame.jpeg == jpeg_bytes(3)
    assert frame.timestamp > 1.6e9  # no timestamp given: the receive time


@pytest.mark.parametrize("message", [
    '{"timestamp": 1' + "0" * 400 + f', "frame": "{B64}"}}',  # past float range
    '{"timestamp": ' + "1" * 5000 + f', "frame": "{B64}"}}',  # past int()'s digit limit
], ids=["past-float", "past-int-digits"])
def test_numbers_no_float_can_hold_are_errors(message):
    assert code_of(message) in ("invalid_timestamp", "invalid_json")


def test_wrapped_base64_is_accepted():
    wrapped = "\n".join(B64[i:i + 76] for i in range(0, len(B64), 76))
    assert isinstance(parse_message(wrapped, PIXELS), Frame)


def test_config_message():
    item = parse_message('{"config": {"window": 3}}', PIXELS)
    assert item == ConfigUpdate({"window": 3})


def _png() -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


@pytest.mark.parametrize(("data", "code"), [
    ("{not json", "invalid_json"),
    ("[1, 2]", "invalid_message"),
    ('{"timestamp": 1}', "invalid_message"),
    ('{"frame": 5}', "invalid_message"),
    ('{"config": 5}', "invalid_message"),
    (json.dumps({"timestamp": "yesterday", "frame": B64}), "invalid_timestamp"),
    (json.dumps({"timestamp": True, "frame": B64}), "invalid_timestamp"),
    ("@@@ not base64 @@@", "invalid_base64"),
    ("data:image/jpeg,rawdata", "invalid_base64"),
    (_png(), "unsupported_frame_format"),
    (base64.b64encode(b"hello").decode(), "unsupported_frame_format"),
    (base64.b64encode(jpeg_bytes(1)[:200]).decode(), "invalid_frame"),
    (b"\x00\x01binary garbage\xff", "unsupported_frame_format"),
])
def test_bad_messages(data, code):
    assert code_of(data) == code


def test_an_unidentifiable_jpeg_s_error_shows_no_object_address():
    with pytest.raises(APIError) as info:
        parse_message(b"\xff\xd8\xff" + b"garbage" * 50, PIXELS)
    assert info.value.code == "invalid_frame" and " at 0x" not in info.value.message


def test_corrupt_jpeg_body_is_caught():
    data = bytearray(jpeg_bytes(2, (320, 240)))
    data[len(data) // 2:] = b"\x00" * (len(data) - len(data) // 2)  # entropy data destroyed
    with pytest.raises(APIError):  # either undecodable or truncated: never accepted silently
        parse_message(bytes(data), PIXELS)


def test_small_frames_are_decoded_on_arrival_large_ones_later():
    small = parse_message(B64, PIXELS)
    assert isinstance(small, Frame) and small.image is not None
    assert small.image.size == (64, 48) and small.nbytes == len(small.jpeg) + 64 * 48 * 3
    large = parse_message(B64, PIXELS, decode_pixels=100)
    assert isinstance(large, Frame) and large.image is None
    assert large.nbytes == small.nbytes  # counted at its decoded size before it is decoded
    decoded = decode_frames([small, large], MediaPolicy())
    assert np.array_equal(np.asarray(decoded.images[0]), np.asarray(decoded.images[1]))


def test_frame_over_pixel_limit():
    assert code_of(B64, pixels=64 * 47) == "frame_too_large"


LIMITS = StreamLimits(max_window=8, max_tokens=100)


def test_config_defaults_are_the_seeds():
    config = parse_config({}, LIMITS)
    assert (config.prompt, config.window, config.max_tokens) == (DEFAULT_PROMPT, 5, 48)
    assert (config.temperature, config.top_p, config.trigger) == (0.7, 0.95, 5)
    assert DEFAULT_PROMPT == "What is the most interesting aspect in this series of images?"


def test_config_from_query_strings_and_json():
    query = parse_config({"api_key": "k", "frames": "3", "max_new_tokens": "20",
                          "temperature": "0", "ignore_eos": "true", "max_span": "none",
                          "new_frames": "1", "mode": "images"}, LIMITS)
    assert (query.window, query.max_tokens, query.temperature) == (3, 20, 0.0)
    assert query.ignore_eos and query.max_span is None and query.trigger == 1
    update = parse_config({"prompt": "Who is there?", "interval": 0.5}, LIMITS, query)
    assert update.window == 3 and update.prompt == "Who is there?" and update.interval == 0.5


@pytest.mark.parametrize("values", [
    {"window": "0"}, {"window": 9}, {"window": 2.5}, {"window": True}, {"max_tokens": 101},
    {"temperature": -1}, {"top_p": 0}, {"interval": -1}, {"max_span": 0},
    {"mode": "film"}, {"prompt": ""}, {"ignore_eos": "maybe"}, {"temperature": "nan"},
    {"colour": "red"}, {"new_frames": 0}, {"window": 1e999}, {"max_tokens": -1e999},
    {"seed": 1e999}, {"new_frames": float("nan")},
    # found by a walkthrough: these raised past the checks and ended the connection
    {"temperature": 10**400}, {"interval": 10**400}, {"window": "\u00b2"},
    {"seed": "1" * 5000}, {"new_frames": "\u00b3"}, {"prompt": "\ud800"},
])
def test_bad_config(values):
    with pytest.raises(APIError) as info:
        parse_config(values, LIMITS)
    assert info.value.code == "invalid_config" and info.value.param


def test_whole_numbers_from_query_strings():
    config = parse_config({"window": "3.0", "seed": str(2**62 + 1)}, LIMITS)
    assert config.window == 3 and config.seed == 2**62 + 1


def _declaring(width: int, height: int) -> bytes:
    """A small JPEG whose header claims ``width`` x ``height`` pixels."""
    data = bytearray(jpeg_bytes(1, (16, 16)))
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = height.to_bytes(2, "big") + width.to_bytes(2, "big")
    return bytes(data)


def test_pillows_own_pixel_limit_reads_as_ours():
    assert code_of(base64.b64encode(_declaring(60000, 60000)).decode()) == "frame_too_large"


def test_frames_count_the_pixels_they_will_decode_to():
    """A few hundred bytes that declare 16 MP cost 48 MB once analysed: the window's byte
    budget counts that, so a window of such frames keeps only the newest."""
    item = parse_message(_declaring(4000, 3999), 16_000_000)
    assert isinstance(item, Frame) and item.image is None
    assert item.nbytes > 4000 * 3999 * 3
    window = FrameWindow(32, max_bytes=32 << 20)
    for _ in range(32):
        window.push(item)
    assert len(window) == 1


def test_window_takes_frames_in_timestamp_order():
    window = FrameWindow(5, max_bytes=10_000)
    for ts in (102.0, 100.0, 101.0, 103.0, 1.0):  # shuffled, and one 100 s late
        window.push(frame(ts))
    assert [f.timestamp for f in window.take(10.0)] == [100.0, 101.0, 102.0, 103.0]
    assert window.stats.stale == 1


def frame(ts: float, nbytes: int = 10) -> Frame:
    return Frame(jpeg=b"x" * nbytes, timestamp=ts, received=ts, width=1, height=1)


def test_window_is_bounded_and_keeps_the_newest():
    window = FrameWindow(5, max_bytes=10_000)
    for i in range(1000):
        window.push(frame(float(i)))
    assert len(window) == 5 and window.nbytes == 5 * (10 + 3)  # JPEG + the pixels to come
    assert window.ready(5)
    assert [f.timestamp for f in window.take(None)] == [995.0, 996.0, 997.0, 998.0, 999.0]
    assert window.stats.received == 1000 and window.stats.evicted == 995
    assert not window.ready(5)


def test_window_trigger_counts_new_frames_only():
    window = FrameWindow(5, max_bytes=10_000)
    for i in range(4):
        window.push(frame(float(i)))
    assert not window.ready(5) and window.ready(2)
    window.push(frame(4.0))
    window.take(None)
    window.push(frame(5.0))
    assert window.ready(1) and not window.ready(2)
    assert [f.timestamp for f in window.take(None)] == [1.0, 2.0, 3.0, 4.0, 5.0]


def test_window_byte_budget():
    window = FrameWindow(5, max_bytes=250)
    for i in range(5):
        window.push(frame(float(i), nbytes=100))
    assert len(window) == 2 and window.nbytes == 2 * (100 + 3)
    assert window.ready(5)  # the byte budget, not the count, limits this window


def test_window_drops_stale_frames():
    window = FrameWindow(5, max_bytes=10_000)
    for ts in (0.0, 1.0, 50.0, 51.0, 52.0):
        window.push(frame(ts))
    assert [f.timestamp for f in window.take(10.0)] == [50.0, 51.0, 52.0]
    assert window.stats.stale == 2


def _decoded(sizes: list[tuple[int, int]]):
    frames = [Frame(jpeg_bytes(i, size), 100.0 + i / 10, 0.0, *size)
              for i, size in enumerate(sizes)]
    return decode_frames(frames, MediaPolicy())


def test_native_video_model_gets_one_clip():
    decoded = _decoded([(64, 48)] * 5)
    request = build_request(decoded, StreamConfig(), ModelTraits(True, 2))
    (message,) = request.messages
    video, text = message.content
    assert video.type == "video" and text.text == DEFAULT_PROMPT
    clip = video.video
    assert clip.frames.shape == (5, 48, 64, 3)
    assert clip.timestamps == pytest.approx((0.0, 0.1, 0.2, 0.3, 0.4))
    assert clip.source_fps == pytest.approx(10.0)
    sampling = request.sampling
    assert (sampling.max_tokens, sampling.temperature, sampling.top_p) == (48, 0.7, 0.95)


def test_images_when_no_native_video_or_sizes_differ():
    for traits, sizes in ((ModelTraits(False), [(64, 48)] * 3),
                          (ModelTraits(True, 2), [(64, 48), (32, 32), (64, 48)]),
                          (ModelTraits(True, 2), [(64, 48)])):
        request = build_request(_decoded(sizes), StreamConfig(), traits)
        parts = request.messages[0].content
        assert [p.type for p in parts] == ["image"] * len(sizes) + ["text"]


def test_forced_video_pads_and_resizes():
    decoded = _decoded([(32, 32), (64, 48)])
    request = build_request(decoded, StreamConfig(mode="video"), ModelTraits(True, 4))
    clip = request.messages[0].content[0].video
    assert clip.frames.shape == (4, 48, 64, 3)
    assert np.array_equal(clip.frames[3], clip.frames[1])
