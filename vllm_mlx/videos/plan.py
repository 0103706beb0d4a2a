"""A validated request + the model's defaults -> the exact settings a job runs with.

Contract: :func:`make_plan` resolves a :class:`~vllm_mlx.videos.request.VideoRequest` against
the pipeline (``WanPipeline.resolve``: defaults, ranges, ``num_frames`` rounded to ``1 + 4k``)
and returns a :class:`JobPlan` - every setting explicit, the seed drawn now - so a job
re-run after a restart produces the same video; :meth:`JobPlan.generation` is what the
worker hands the pipeline, as it is (no second resolution). Bad values raise ``APIError`` 400.

- ``num_frames`` defaults to ``seconds * fps`` when ``seconds`` is given.
- The model works in multiples of 16 pixels: another even ``width`` / ``height`` is
  generated at the next multiple of 16 and centre-cropped back (said in ``notes``).
- Frame interpolation by ``2**exp`` gives ``(N-1) * 2**exp + 1`` frames at ``fps * 2**exp``;
  it needs an output of at least ``MIN_INTERPOLATION_SIDE`` (32) pixels a side (400 before
  the job runs, not a failure after all its steps).

:func:`finish_frames` applies the crop and the interpolation to generated frames.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import APIError
from .request import MAX_SIDE, SIDE_MULTIPLE, VideoRequest

if TYPE_CHECKING:
    from PIL.Image import Image

    from ..diffusion.pipeline import WanPipeline
    from ..diffusion.request import ResolvedRequest, VideoGenRequest

# Generated pixels x frames a job may ask for: twice Wan's largest preset (1280x720, 81
# frames). Beyond it the latents and attention would not fit a laptop, and the job would
# be accepted only to fail (or take the machine down) later.
MAX_PIXEL_FRAMES = 2 * 1280 * 720 * 81


@dataclass(frozen=True)
class JobPlan:
    prompt: str
    negative_prompt: str
    width: int  # output size
    height: int
    gen_width: int  # generated size (multiples of 16), centre-cropped to the output size
    gen_height: int
    num_frames: int  # generated frames (1 + 4k)
    fps: int
    num_inference_steps: int
    guidance_scale: float
    flow_shift: float
    seed: int
    scheduler: str
    max_sequence_length: int
    interpolation_exp: int
    seconds: str
    notes: tuple[str, ...] = ()

    @property
    def size(self) -> str:
        return f"{self.width}x{self.height}"

    @property
    def output_frames(self) -> int:
        return (self.num_frames - 1) * 2**self.interpolation_exp + 1

    @property
    def output_fps(self) -> int:
        return self.fps * 2**self.interpolation_exp

    def generation(self, image: Image | None = None) -> ResolvedRequest:
        """The pipeline's request: these settings, already resolved, with ``image``."""
        from ..diffusion.request import ResolvedRequest

        return ResolvedRequest(
            prompt=self.prompt, negative_prompt=self.negative_prompt, width=self.gen_width,
            height=self.gen_height, num_frames=self.num_frames, fps=self.fps,
            num_inference_steps=self.num_inference_steps, guidance_scale=self.guidance_scale,
            flow_shift=self.flow_shift, seed=self.seed, scheduler=self.scheduler, image=image,
            max_sequence_length=self.max_sequence_length,
        )

    def settings(self) -> dict[str, Any]:
        """The effective settings, as reported in the job record."""
        return {"num_frames": self.output_frames, "fps": self.output_fps,
                "num_inference_steps": self.num_inference_steps,
                "guidance_scale": self.guidance_scale, "flow_shift": self.flow_shift,
                "seed": self.seed, "scheduler": self.scheduler}

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobPlan:
        names = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in names}
        values["notes"] = tuple(values.get("notes", ()))
        return cls(**values)


def _side(name: str, value: int, notes: list[str]) -> int:
    if not SIDE_MULTIPLE <= value <= MAX_SIDE:
        raise APIError(400, f"{name} must be between {SIDE_MULTIPLE} and {MAX_SIDE}, "
                       f"got {value}", param=name, code="invalid_value")
    if value % 2:
        raise APIError(400, f"{name} must be even (H.264 yuv420p), got {value}",
                       param=name, code="invalid_value")
    generated = -(-value // SIDE_MULTIPLE) * SIDE_MULTIPLE
    if generated != value:
        notes.append(f"{name} {value} generated at {generated} and centre-cropped: the model "
                     f"works in multiples of {SIDE_MULTIPLE} pixels")
    return generated


def _duration(form: VideoRequest, frames: int, fps: int, notes: list[str]) -> str:
    """The requested ``seconds`` when they set the length, else the clip's real length."""
    actual = f"{round(frames / fps, 2):g}"
    if form.seconds is not None and form.num_frames is None:
        return str(form.seconds)
    if form.seconds is not None and actual != str(form.seconds):
        notes.append(f"seconds {form.seconds} ignored: num_frames {form.num_frames} at {fps} "
                     f"fps makes {actual} s")
    return actual


def _resolve(pipeline: WanPipeline, request: VideoGenRequest, form: VideoRequest
             ) -> ResolvedRequest:
    """``pipeline.resolve``; its ``ValueError`` (which starts with the field's name) -> 400."""
    try:
        return pipeline.resolve(request)
    except ValueError as exc:
        message = str(exc)
        param = message.split(" ", 1)[0]
        if param == "num_frames" and form.num_frames is None and form.seconds is not None:
            param = "seconds"
            message = f"seconds {form.seconds} at {request.fps} fps: {message}"
        known = {f.name for f in dataclasses.fields(VideoRequest)}
        raise APIError(400, message, param=param if param in known else None,
                       code="invalid_value") from None


def _check_interpolation(plan: JobPlan) -> None:
    from ..diffusion.video_io import MIN_INTERPOLATION_SIDE

    if plan.interpolation_exp and min(plan.width, plan.height) < MIN_INTERPOLATION_SIDE:
        raise APIError(400, f"frame interpolation needs a width and height of at least "
                       f"{MIN_INTERPOLATION_SIDE} pixels (motion-compensated, ffmpeg's "
                       f"minterpolate), got {plan.size}: ask for a larger size or turn "
                       "enable_frame_interpolation off",
                       param="enable_frame_interpolation", code="invalid_value")


def _check_work(plan: JobPlan) -> None:
    work = plan.gen_width * plan.gen_height * plan.num_frames
    if work > MAX_PIXEL_FRAMES:
        raise APIError(400, f"{plan.gen_width}x{plan.gen_height} with {plan.num_frames} frames is "
                       f"{work / 1e6:.0f}M pixel-frames, over this server's limit of "
                       f"{MAX_PIXEL_FRAMES / 1e6:.0f}M: ask for fewer frames or a smaller size",
                       param="num_frames", code="too_large")


def make_plan(form: VideoRequest, pipeline: WanPipeline, image: Image | None = None
              ) -> JobPlan:
    """Resolve ``form`` on ``pipeline`` (a ``WanPipeline``); ``APIError`` 400 when invalid."""
    defaults = pipeline.defaults
    width = form.width if form.width is not None else defaults.width
    height = form.height if form.height is not None else defaults.height
    notes: list[str] = []
    gen_width, gen_height = _side("width", width, notes), _side("height", height, notes)
    fps = form.fps if form.fps is not None else defaults.fps
    frames = form.num_frames
    if frames is None and form.seconds is not None:
        frames = form.seconds * fps
    request = dataclasses.replace(
        _base_request(form, image), width=gen_width, height=gen_height, num_frames=frames, fps=fps
    )
    resolved = _resolve(pipeline, request, form)
    plan = JobPlan(
        prompt=resolved.prompt, negative_prompt=resolved.negative_prompt, width=width,
        height=height, gen_width=gen_width, gen_height=gen_height,
        num_frames=resolved.num_frames, fps=resolved.fps,
        num_inference_steps=resolved.num_inference_steps,
        guidance_scale=resolved.guidance_scale, flow_shift=resolved.flow_shift,
        seed=resolved.seed, scheduler=resolved.scheduler,
        max_sequence_length=resolved.max_sequence_length,
        interpolation_exp=form.interpolation_exp, seconds="",
        notes=(*resolved.notes, *notes, *form.notes),
    )
    _check_work(plan)
    _check_interpolation(plan)
    said: list[str] = []
    seconds = _duration(form, plan.output_frames, plan.output_fps, said)
    return dataclasses.replace(plan, seconds=seconds, notes=(*plan.notes, *said))


def _base_request(form: VideoRequest, image: Image | None) -> VideoGenRequest:
    from ..diffusion import VideoGenRequest

    return VideoGenRequest(
        prompt=form.prompt, negative_prompt=form.negative_prompt,
        num_inference_steps=form.num_inference_steps, guidance_scale=form.guidance_scale,
        flow_shift=form.flow_shift, seed=form.seed, scheduler=form.scheduler, image=image,
        max_sequence_length=form.max_sequence_length,
    )


def finish_frames(frames: np.ndarray, fps: int, plan: JobPlan) -> tuple[np.ndarray, float]:
    """Centre-crop to the output size, then interpolate; returns ``(frames, fps)``."""
    top = (frames.shape[1] - plan.height) // 2
    left = (frames.shape[2] - plan.width) // 2
    frames = frames[:, top:top + plan.height, left:left + plan.width]
    if plan.interpolation_exp:
        from ..diffusion import interpolate_frames

        frames, fps = interpolate_frames(np.ascontiguousarray(frames), fps,
                                         plan.interpolation_exp)
    return np.ascontiguousarray(frames), fps
