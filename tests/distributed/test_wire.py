"""Step messages: what rank 0 sends survives the trip intact, and nothing else decodes."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
from PIL import Image

from vllm_mlx.distributed.wire import StepInputs, WireError, decode, encode
from vllm_mlx.engine.types import (
    ChatMessage,
    GenerationRequest,
    ImagePart,
    SamplingParams,
    TextPart,
    VideoClip,
    VideoPart,
)


def _media_request() -> GenerationRequest:
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8))
    clip = VideoClip(frames=rng.integers(0, 256, (2, 8, 8, 3), dtype=np.uint8),
                     timestamps=(0.0, 0.5), frame_indices=(0, 6), source_fps=12.0,
                     total_frames=24, sampled_fps=2.0)
    message = ChatMessage("user", (TextPart("what is here?"), ImagePart(image),
                                   VideoPart(clip)))
    sampling = SamplingParams(max_tokens=7, temperature=0.7, seed=11, stop=("\n",),
                              logit_bias={5: -1.5}, json_schema={"type": "object"})
    return GenerationRequest(sampling=sampling, messages=(message,), request_id="r1",
                             cache_prefix=False)


def test_a_step_with_media_round_trips():
    request = _media_request()
    back = decode(encode(StepInputs(admitted=[(3, request)], cancelled=[1, 2])))
    assert back.cancelled == [1, 2] and not back.stop
    (uid, got), = back.admitted
    assert uid == 3 and got.sampling == request.sampling and got.request_id == "r1"
    assert got.cache_prefix is False
    text, image, video = got.messages[0].content
    assert text == TextPart("what is here?")
    assert np.array_equal(np.asarray(image.image), np.asarray(request.messages[0].content[1].image))
    assert np.array_equal(video.video.frames, request.messages[0].content[2].video.frames)
    assert video.video.timestamps == (0.0, 0.5)


def test_prompt_requests_and_stop_round_trip():
    image = Image.new("RGB", (4, 4), (1, 2, 3))
    request = GenerationRequest(prompt="hi <image>", images=(image,))
    back = decode(encode(StepInputs(admitted=[(0, request)], stop=True)))
    assert back.stop and back.admitted[0][1].prompt == "hi <image>"
    assert back.admitted[0][1].images[0].getpixel((0, 0)) == (1, 2, 3)


def test_empty_means_nothing_to_send():
    assert StepInputs().empty
    assert not StepInputs(cancelled=[4]).empty and not StepInputs(stop=True).empty


class _Sneaky:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_a_payload_naming_other_code_is_refused():
    with pytest.raises(WireError, match="os.system|posix.system"):
        decode(pickle.dumps(_Sneaky()))


def test_garbage_and_foreign_objects_are_refused():
    with pytest.raises(WireError, match="cannot decode"):
        decode(b"\x80\x05not a pickle")
    with pytest.raises(WireError, match="not StepInputs"):
        decode(pickle.dumps({"admitted": []}))
