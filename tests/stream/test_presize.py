"""Presizing frames to the processor's own size: the model input stays bit-identical (real
tiny qwen2_vl processor), a processor it cannot match is left alone, learning is bounded,
and a session sends the engine presized frames."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tests.stream.conftest import frame_message, jpeg_bytes, wait_for
from tests.stream.test_session import Recorder, ScriptedEngine, open_session
from vllm_mlx.engine.inputs import prepare_prompt
from vllm_mlx.media import MediaPolicy
from vllm_mlx.stream import presize as presize_module
from vllm_mlx.stream.analysis import (
    ModelTraits,
    build_request,
    decode_frames,
    frame_sizes,
    ready_window,
)
from vllm_mlx.stream.config import StreamConfig
from vllm_mlx.stream.presize import FrameSizer, presize
from vllm_mlx.stream.protocol import Frame, parse_message

VGA = (640, 480)


@dataclass
class GridVideoProcessor:
    """A Qwen-like video processor: resizes every frame to ``size`` with ``resample``."""

    resample: Image.Resampling = Image.Resampling.BICUBIC
    size: tuple[int, int] = (28, 28)
    patch_size: int = 14
    gate: threading.Event | None = None  # when set, calls wait for it
    calls: list[tuple[int, ...]] = field(default_factory=list)

    def __call__(self, videos: list[np.ndarray]) -> dict[str, Any]:
        if self.gate is not None:
            self.gate.wait(10)
        (clip,) = videos  # (T, C, H, W)
        self.calls.append(clip.shape)
        frames = [np.asarray(Image.fromarray(f.transpose(1, 2, 0)).resize(self.size,
                                                                         self.resample))
                  for f in clip]
        grid = [[len(frames), self.size[1] // self.patch_size, self.size[0] // self.patch_size]]
        return {"pixel_values_videos": np.stack(frames), "video_grid_thw": np.array(grid)}


def processor(**kwargs: Any) -> Any:
    return type("Processor", (), {"video_processor": GridVideoProcessor(**kwargs),
                                  "image_processor": None})()


def vga_frames(count: int, first: int = 0) -> list[Frame]:
    items = [parse_message(jpeg_bytes(first + i, VGA), 16_000_000) for i in range(count)]
    frames = [item for item in items if isinstance(item, Frame)]
    assert len(frames) == count
    return frames


def model_input(loaded: Any, window: Any, config: StreamConfig, traits: ModelTraits) -> dict:
    prompt = prepare_prompt(loaded, build_request(window, config, traits))
    arrays = {"input_ids": prompt.input_ids, "pixel_values": prompt.pixel_values,
              **prompt.model_kwargs}
    return {k: np.asarray(v) for k, v in arrays.items() if v is not None}


@pytest.mark.parametrize("mode", ["auto", "images"])
def test_presized_frames_give_the_model_the_same_input(engine_for, mode):
    loaded = engine_for("qwen2_vl").model
    traits = ModelTraits(loaded.capabilities.native_video, loaded.video_min_frames)
    config = StreamConfig(mode=mode)
    sizer = FrameSizer(loaded.processor)
    frames = vga_frames(5)
    full = decode_frames(frames, MediaPolicy())
    fitted = decode_frames(frames, MediaPolicy(), lambda f: frame_sizes(f, config, traits, sizer))
    assert all(image.size != VGA for image in fitted.images)  # the resize did happen here
    expected, got = (model_input(loaded, w, config, traits) for w in (full, fitted))
    assert expected.keys() == got.keys() and len(expected) >= 3
    for name in expected:
        assert np.array_equal(expected[name], got[name]), name


def test_a_window_of_another_shape_is_refit_from_the_jpeg(engine_for):
    loaded = engine_for("qwen2_vl").model
    traits, config = ModelTraits(True, 2), StreamConfig()
    sizer = FrameSizer(loaded.processor)
    five, three = (sizer.target("video", n, *VGA) for n in (5, 3))
    assert five and three and five != three  # the clip length changes the target
    arrived = [Frame(f.jpeg, f.timestamp, f.received, f.width, f.height,
                     presize(f.image, five)) for f in vga_frames(3) if f.image]
    fit = lambda f: frame_sizes(f, config, traits, sizer)  # noqa: E731
    assert ready_window(arrived, config, traits, sizer) is None
    window = decode_frames(arrived, MediaPolicy(), fit)
    fresh = decode_frames(vga_frames(3), MediaPolicy(), fit)
    assert [i.size for i in window.images] == [three] * 3
    assert all(np.array_equal(np.asarray(a), np.asarray(b))
               for a, b in zip(window.images, fresh.images))
    assert ready_window(list(fresh.frames), config, traits, sizer) is None  # not yet presized
    presized = [Frame(f.jpeg, f.timestamp, f.received, f.width, f.height, i)
                for f, i in zip(fresh.frames, fresh.images)]
    assert ready_window(presized, config, traits, sizer) is not None


def test_a_processor_it_cannot_match_is_left_alone():
    bilinear = FrameSizer(processor(resample=Image.Resampling.BILINEAR))
    assert bilinear.target("video", 4, 64, 48) is None  # bicubic first would change pixels
    assert FrameSizer(processor()).target("video", 4, 64, 48) == (28, 28)
    no_grid = FrameSizer(type("P", (), {"image_processor": object()})())
    assert no_grid.target("image", 1, 64, 48) is None


def test_learning_is_bounded(monkeypatch):
    proc = processor()
    sizer = FrameSizer(proc, max_pixels=64 * 48)
    assert sizer.target("video", 4, 65, 48) is None and not proc.video_processor.calls
    monkeypatch.setattr(presize_module, "MAX_SHAPES", 2)
    assert sizer.target("video", 4, 64, 48) == sizer.target("video", 2, 64, 48) == (28, 28)
    calls = len(proc.video_processor.calls)
    assert sizer.target("video", 4, 60, 40) is None  # the table is full: no more learning
    assert len(proc.video_processor.calls) == calls and sizer.known("video", 4, 64, 48)


def test_a_frame_does_not_wait_for_another_shape_being_learned():
    proc = processor(gate=threading.Event())
    sizer = FrameSizer(proc)
    learner = threading.Thread(target=sizer.target, args=("video", 4, 64, 48))
    learner.start()
    try:
        deadline = time.monotonic() + 10
        while not sizer._learn_lock.locked():  # the learner is inside the processor
            assert time.monotonic() < deadline
            time.sleep(0.001)
        assert sizer.target("video", 4, 32, 32, wait=False) is None
        assert not sizer.known("video", 4, 32, 32)  # not recorded: learned later
    finally:
        proc.video_processor.gate.set()
        learner.join(10)
    assert sizer.known("video", 4, 64, 48)


async def test_a_session_presizes_frames_as_they_arrive():
    engine, transport = ScriptedEngine(), Recorder()
    engine.model.processor = processor()
    service, session = open_session(engine, transport)
    for i in range(5):
        await session.receive(frame_message(float(i), i))
    await wait_for(lambda: len(engine.requests) == 1)
    clip = engine.requests[0].messages[0].content[0].video
    assert clip.frames.shape == (5, 28, 28, 3)
    await session.receive(frame_message(9.0, 9))
    frame = session.window._frames[-1][0]
    assert frame.image.size == (28, 28) and frame.nbytes == len(frame.jpeg) + 28 * 28 * 3
    engine.allow.release()
    await session.close()
    assert service.sizer is not None
