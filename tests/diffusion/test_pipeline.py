"""End-to-end WanPipeline runs on the tiny random-weight folder."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from vllm_mlx.diffusion import Cancelled, VideoGenRequest, round_frames
from vllm_mlx.diffusion.image_cond import first_frame_latent, image_to_pixels

PROMPT = "a small robot walking through a neon city"


def request(**kw) -> VideoGenRequest:
    return VideoGenRequest(prompt=kw.pop("prompt", PROMPT), **{"seed": 7, **kw})


def reference_image() -> Image.Image:
    y, x = np.mgrid[0:40, 0:60]
    rgb = np.stack([x * 4, y * 6, (x + y) * 2], axis=-1) % 256
    return Image.fromarray(rgb.astype(np.uint8))


@pytest.mark.parametrize(
    "asked,got", [(1, 1), (2, 1), (3, 5), (5, 5), (9, 9), (10, 9), (11, 13), (80, 81), (81, 81)]
)
def test_round_frames(asked, got):
    assert round_frames(asked) == got


def test_frames_rounded_with_note(pipe):
    result = pipe.generate(request(num_frames=10))
    assert result.frames.shape == (9, 32, 48, 3) and result.frames.dtype == np.uint8
    assert result.num_frames == 9
    assert any("10" in note and "9" in note for note in result.notes)


def test_defaults_from_folder(pipe):
    result = pipe.generate(request())
    assert (result.width, result.height, result.num_frames, result.fps) == (48, 32, 9, 8)
    assert result.num_inference_steps == 4 and result.scheduler == "unipc"
    assert result.flow_shift == 3.0 and result.seed == 7 and result.notes == []
    assert set(result.timings) >= {"encode_s", "denoise_s", "decode_s", "total_s"}


def test_same_seed_same_frames_different_seed_differs(pipe):
    a = pipe.generate(request(seed=123)).frames
    b = pipe.generate(request(seed=123)).frames
    c = pipe.generate(request(seed=124)).frames
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_seed_is_reported_when_random(pipe):
    result = pipe.generate(VideoGenRequest(prompt=PROMPT, num_inference_steps=1))
    again = pipe.generate(VideoGenRequest(prompt=PROMPT, num_inference_steps=1, seed=result.seed))
    assert np.array_equal(result.frames, again.frames)


def test_prompt_guidance_and_scheduler_change_output(pipe):
    base = pipe.generate(request()).frames
    assert not np.array_equal(base, pipe.generate(request(prompt="a dog")).frames)
    assert not np.array_equal(base, pipe.generate(request(guidance_scale=1.0)).frames)
    assert not np.array_equal(base, pipe.generate(request(scheduler="euler")).frames)
    assert not np.array_equal(base, pipe.generate(request(flow_shift=7.0)).frames)


def test_guidance_one_skips_unconditional_pass(pipe, monkeypatch):
    batches = []
    original = pipe.text_encoder.encode

    def spy(prompts, max_length=512):
        batches.append(len(prompts))
        return original(prompts, max_length)

    monkeypatch.setattr(pipe.text_encoder, "encode", spy)
    result = pipe.generate(request(guidance_scale=1.0))
    pipe.generate(request(guidance_scale=5.0))
    assert batches == [1, 2]
    assert any("no unconditional" in n for n in result.notes)


def test_progress_moves_after_every_block_and_vae_stage(pipe):
    calls: list[float] = []
    pipe.generate(request(num_inference_steps=5), progress=calls.append)
    blocks = pipe.transformer.config.num_layers
    chunks = pipe.vae.latent_frames(9)
    # the start, the prompt, each block and step end, each VAE stage and chunk end, done
    assert len(calls) == 2 + 5 * (blocks + 1) + chunks * (pipe.vae.decode_stages + 1) + 1
    assert calls == sorted(calls) and calls[0] == 0.0 and calls[-1] == 1.0
    assert len({round(c, 6) for c in calls if 0 < c < 1}) > 5 * blocks  # it really moves


def test_stages_are_reported_in_order_with_progress_between(pipe):
    events: list[object] = []
    pipe.generate(request(num_inference_steps=2), progress=events.append, stage=events.append)
    stages = [e for e in events if isinstance(e, str)]
    assert stages == ["encoding_prompt", "denoising", "decoding"]
    decoding = events.index("decoding")
    assert 0 < events.index("denoising") < decoding < len(events) - 1  # progress follows each


def test_cancellation_stops_inside_a_step(pipe):
    """A cancel seen after the first block ends the job before the step's second block."""
    polls: list[float] = []
    blocks = pipe.transformer.config.num_layers
    assert blocks >= 2

    with pytest.raises(Cancelled):
        pipe.generate(request(num_inference_steps=6), progress=polls.append,
                      should_cancel=lambda: len(polls) >= 3)  # start, prompt, block 1
    assert len(polls) == 3
    with pytest.raises(Cancelled):
        pipe.generate(request(), should_cancel=lambda: True)


def test_cancellation_stops_inside_the_vae_decode(pipe):
    polls: list[float] = []
    steps, blocks = 2, pipe.transformer.config.num_layers
    denoised = 2 + steps * (blocks + 1)
    with pytest.raises(Cancelled):
        pipe.generate(request(num_inference_steps=steps), progress=polls.append,
                      should_cancel=lambda: len(polls) >= denoised + 1)  # the first VAE stage
    assert len(polls) == denoised + 1


def test_estimate_scales_with_size_frames_and_steps(pipe):
    base = pipe.estimate(pipe.resolve(request(num_inference_steps=4)))
    longer = pipe.estimate(pipe.resolve(request(num_inference_steps=8)))
    larger = pipe.estimate(pipe.resolve(request(width=96, height=64, num_inference_steps=4)))
    more = pipe.estimate(pipe.resolve(request(num_frames=33, num_inference_steps=4)))
    assert longer.denoise_s == pytest.approx(2 * base.denoise_s)
    assert larger.step_s > 2 * base.step_s and larger.chunk_s == pytest.approx(4 * base.chunk_s)
    assert more.chunks == 9 and more.step_s > base.step_s
    assert base.total_s == pytest.approx(base.encode_s + base.denoise_s + base.decode_s)


@pytest.mark.parametrize(
    "field,value,match",
    [
        ("width", 40, "multiple of 16"),
        ("height", 0, "height"),
        ("num_frames", 0, "num_frames"),
        ("num_inference_steps", 0, "num_inference_steps"),
        ("guidance_scale", -1.0, "guidance_scale"),
        ("flow_shift", 0.0, "flow_shift"),
        ("scheduler", "ddim", "scheduler"),
        ("seed", -3, "seed"),
        ("prompt", "  ", "prompt"),
    ],
)
def test_validation_errors(pipe, field, value, match):
    with pytest.raises(ValueError, match=match):
        pipe.generate(request(**{field: value}))


def test_image_to_video_on_t2v_checkpoint(pipe):
    image = reference_image()
    plain = pipe.generate(request()).frames
    result = pipe.generate(request(image=image))
    assert result.frames.shape == plain.shape
    assert not np.array_equal(plain, result.frames)
    assert any("latent frame 0" in note for note in result.notes)
    # decoded frame 0 is the VAE's reconstruction of the reference: with these random
    # weights that is the closest the output can be to the image itself
    z0 = first_frame_latent(pipe.vae, image_to_pixels(image, 48, 32))
    recon = next(pipe.vae.decode_chunks(pipe.vae.denormalize(z0)))
    recon = np.round((np.clip(np.array(recon[0, 0]), -1, 1) + 1) * 127.5)
    assert np.abs(result.frames[0].astype(int) - recon.astype(int)).max() <= 1
    other = pipe.generate(request(image=image, seed=99, prompt="a dog")).frames
    assert np.abs(other[0].astype(int) - result.frames[0].astype(int)).max() <= 1
    assert not np.array_equal(other[1:], result.frames[1:])


def test_wan_i2v_checkpoint_needs_and_uses_image(i2v_pipe):
    assert i2v_pipe.is_i2v_model and i2v_pipe.image_encoder is not None
    with pytest.raises(ValueError, match="needs an input image"):
        i2v_pipe.generate(request())
    a = i2v_pipe.generate(request(image=reference_image()))
    b = i2v_pipe.generate(
        request(image=reference_image().transpose(Image.Transpose.FLIP_LEFT_RIGHT))
    )
    assert a.frames.shape == (9, 32, 48, 3)
    assert not np.array_equal(a.frames, b.frames)
