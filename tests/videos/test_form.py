"""The multipart form's validation, and how a form resolves into a job plan."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vllm_mlx.errors import APIError
from vllm_mlx.videos.plan import JobPlan, finish_frames, make_plan
from vllm_mlx.videos.request import parse_request as parse_form


def error_of(fields: dict[str, str]) -> APIError:
    with pytest.raises(APIError) as info:
        parse_form(fields)
    assert info.value.status == 400
    return info.value


def test_all_seed_fields_parse() -> None:
    form = parse_form({
        "prompt": "a lake", "model": "default", "seconds": "4", "size": "64x48", "user": "u1",
        "width": "999", "height": "999", "num_frames": "80", "fps": "16",
        "num_inference_steps": "40", "guidance_scale": "5.5", "guidance_scale_2": "4",
        "boundary_ratio": "0.875", "flow_shift": "3", "true_cfg_scale": "1", "seed": "42",
        "negative_prompt": "blur", "enable_frame_interpolation": "true",
        "frame_interpolation_exp": "2", "frame_interpolation_scale": "0.5",
        "frame_interpolation_model_path": "elfgum/RIFE", "lora": "",
        "extra_params": json.dumps({"scheduler": "euler", "other": 1}),
    })
    assert (form.width, form.height) == (64, 48)  # size overrides width / height
    assert (form.seconds, form.num_frames, form.fps, form.seed) == (4, 80, 16, 42)
    assert form.num_inference_steps == 40 and form.guidance_scale == 5.5
    assert form.interpolation_exp == 2 and form.scheduler == "euler" and form.user == "u1"
    ignored = " ".join(form.notes)
    for name in ("guidance_scale_2", "boundary_ratio", "true_cfg_scale",
                 "frame_interpolation_scale", "frame_interpolation_model_path", "other"):
        assert name in ignored


@pytest.mark.parametrize(("fields", "param", "words"), [
    ({}, "prompt", "prompt is required"),
    ({"prompt": "   "}, "prompt", "prompt is required"),
    ({"size": "big"}, "size", "WIDTHxHEIGHT"),
    ({"size": "64*48"}, "size", "WIDTHxHEIGHT"),
    ({"seconds": "0"}, "seconds", "positive whole number"),
    ({"seconds": "2.5"}, "seconds", "positive whole number"),
    ({"num_inference_steps": "0"}, "num_inference_steps", "between 1 and 200"),
    ({"num_inference_steps": "201"}, "num_inference_steps", "between 1 and 200"),
    ({"num_inference_steps": "ten"}, "num_inference_steps", "must be an integer"),
    ({"guidance_scale": "21"}, "guidance_scale", "<= 20"),
    ({"guidance_scale": "nan"}, "guidance_scale", "must be"),
    ({"guidance_scale_2": "-1"}, "guidance_scale_2", ">= 0"),
    ({"boundary_ratio": "1.5"}, "boundary_ratio", "<= 1"),
    ({"flow_shift": "0"}, "flow_shift", ">= 0.01"),
    ({"flow_shift": "5e-324"}, "flow_shift", ">= 0.01"),  # found by fuzzing: ZeroDivisionError
    ({"enable_frame_interpolation": "maybe"}, "enable_frame_interpolation", "true or false"),
    ({"frame_interpolation_exp": "9"}, "frame_interpolation_exp", "between 1 and 4"),
    ({"lora": json.dumps({"name": "x", "path": "/x"})}, "lora", "not supported"),
    ({"lora": "{bad"}, "lora", "JSON object"),
    ({"extra_params": "[1]"}, "extra_params", "JSON object"),
    ({"image_reference": json.dumps({"url": "x"})}, "image_reference", "image_url"),
    ({"image_reference": json.dumps({"image_url": "data:x"}),
      "input_reference[image_url]": "data:y"}, "image_reference", "not both"),
])
def test_bad_fields_get_400_naming_the_field(fields, param, words) -> None:
    error = error_of({"prompt": "p", **fields} if "prompt" not in fields and fields else fields)
    assert error.param == param
    assert words in error.message


def test_image_reference_forms() -> None:
    ref = {"image_url": "data:image/png;base64,AAAA"}
    assert parse_form({"prompt": "p", "image_reference": json.dumps(ref)}).image_reference == ref
    sdk = parse_form({"prompt": "p", "input_reference[file_id]": "file-1"})
    assert sdk.image_reference == {"file_id": "file-1"}
    text = parse_form({"prompt": "p", "input_reference": "https://example.com/a.png"})
    assert text.image_reference == {"image_url": "https://example.com/a.png"}
    assert parse_form({"prompt": "p", "lora": "null", "image_reference": "{}"}).image_reference \
        is None


def test_plan_fills_defaults_rounds_frames_and_says_so(jobs) -> None:
    plan = make_plan(parse_form({"prompt": "p", "num_frames": "80", "seed": "7"}), jobs.pipeline)
    defaults = jobs.pipeline.defaults
    assert plan.num_frames == 81 and plan.seed == 7
    assert (plan.width, plan.height, plan.fps) == (defaults.width, defaults.height, defaults.fps)
    assert any("num_frames 80 rounded to 81" in note for note in plan.notes)
    drawn = make_plan(parse_form({"prompt": "p"}), jobs.pipeline)
    assert isinstance(drawn.seed, int)  # drawn once, then kept: a re-run gives the same video
    assert JobPlan.from_dict(json.loads(json.dumps(drawn.to_dict()))) == drawn


def test_plan_seconds_times_fps_and_interpolation(jobs) -> None:
    form = parse_form({"prompt": "p", "seconds": "2", "fps": "8",
                       "enable_frame_interpolation": "1", "frame_interpolation_exp": "2"})
    plan = make_plan(form, jobs.pipeline)
    assert plan.num_frames == 17  # 2 s * 8 fps = 16 -> 1 + 4k
    assert plan.output_frames == (17 - 1) * 4 + 1 and plan.output_fps == 32
    assert plan.seconds == "2"
    assert plan.settings()["num_frames"] == plan.output_frames


def test_plan_crops_sizes_that_are_not_multiples_of_16(jobs) -> None:
    plan = make_plan(parse_form({"prompt": "p", "size": "854x480"}), jobs.pipeline)
    assert (plan.gen_width, plan.gen_height, plan.size) == (864, 480, "854x480")
    assert any("width 854 generated at 864" in note for note in plan.notes)
    frames = np.zeros((3, 480, 864, 3), np.uint8)
    frames[:, :, 5:859] = 200  # the centre 854 columns
    out, fps = finish_frames(frames, 16, plan)
    assert out.shape == (3, 480, 854, 3) and fps == 16 and out.min() == 200


@pytest.mark.parametrize(("fields", "words"), [
    ({"size": "855x480"}, "must be even"),
    ({"width": "8"}, "between 16 and 4096"),
    ({"width": "0"}, "between 16 and 4096"),  # the form's own range said 1 to 100000
    ({"size": "1x1"}, "between 16 and 4096"),
    ({"fps": "0"}, "between 1 and 240"),
    ({"num_frames": "0"}, "between 1 and 10000"),
    ({"extra_params": json.dumps({"scheduler": "ddim"})}, "scheduler must be one of"),
])
def test_plan_rejects_what_the_model_cannot_do(jobs, fields, words) -> None:
    with pytest.raises(APIError) as info:
        make_plan(parse_form({"prompt": "p", **fields}), jobs.pipeline)
    assert info.value.status == 400 and words in info.value.message


def test_plan_limits_name_the_field_and_stay_in_range(jobs) -> None:
    most = make_plan(parse_form({"prompt": "p", "size": "16x16", "num_frames": "10000"}),
                     jobs.pipeline)
    assert most.num_frames == 9997  # 10001 would be over the limit: rounded down
    with pytest.raises(APIError) as info:
        make_plan(parse_form({"prompt": "p", "seconds": "100000"}), jobs.pipeline)
    assert info.value.param == "seconds" and "num_frames" in info.value.message
    with pytest.raises(APIError) as info:
        make_plan(parse_form({"prompt": "p", "size": "4096x4096", "num_frames": "81"}),
                  jobs.pipeline)
    assert (info.value.status, info.value.param, info.value.code) == (
        400, "num_frames", "too_large")


def test_plan_seconds_follow_num_frames_when_both_are_given(jobs) -> None:
    plan = make_plan(parse_form({"prompt": "p", "seconds": "4", "num_frames": "1",
                                 "fps": "8"}), jobs.pipeline)
    assert plan.seconds == "0.12"
    assert any("seconds 4 ignored" in note for note in plan.notes)


def test_interpolated_frames_follow_the_formula(jobs) -> None:
    plan = make_plan(parse_form({"prompt": "p", "num_frames": "5",
                                 "enable_frame_interpolation": "true"}), jobs.pipeline)
    frames = np.random.default_rng(0).integers(0, 255, (5, plan.gen_height, plan.gen_width, 3),
                                               dtype=np.uint8)
    out, fps = finish_frames(frames, plan.fps, plan)
    assert len(out) == (5 - 1) * 2 + 1 == plan.output_frames and fps == plan.fps * 2
    assert np.array_equal(out[::2], frames)  # the generated frames are kept exactly
