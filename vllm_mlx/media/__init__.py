"""Media inputs for vllm-mlx: fetch (URL, data URL, local path), decode images, sample videos.

Contract: everything a request can send as an image or a video goes through
:func:`load_source` / :func:`load_source_sync` under a :class:`MediaPolicy`, then
:func:`decode_image` or :func:`sample_video`. Every client-caused failure is a
:class:`MediaError` with ``code``, ``param`` and a 4xx ``status_code``. No web framework here.
"""

from .errors import (
    InvalidDataURL,
    InvalidImage,
    InvalidMediaParameter,
    InvalidVideo,
    MediaError,
    MediaFetchError,
    MediaNotAllowed,
    MediaTooLarge,
)
from .fetch import MediaBytes, MediaKind, load_source, load_source_sync
from .image import decode_image, load_image, to_rgb
from .policy import DEFAULT_POLICY, MediaPolicy
from .sampling import choose_frames, frame_count, sample_times, select_frame_indices
from .video import SampledVideo, sample_video
from .videoinfo import VideoInfo, probe_video

__all__ = [
    "DEFAULT_POLICY",
    "InvalidDataURL",
    "InvalidImage",
    "InvalidMediaParameter",
    "InvalidVideo",
    "MediaBytes",
    "MediaError",
    "MediaFetchError",
    "MediaKind",
    "MediaNotAllowed",
    "MediaPolicy",
    "MediaTooLarge",
    "SampledVideo",
    "VideoInfo",
    "choose_frames",
    "decode_image",
    "frame_count",
    "load_image",
    "load_source",
    "load_source_sync",
    "probe_video",
    "sample_times",
    "sample_video",
    "select_frame_indices",
    "to_rgb",
]
