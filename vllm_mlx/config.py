"""One typed settings object for the whole server, built from the command line.

Nothing reads configuration from the environment at run time except where a documented
compatibility name exists (the storage path); the CLI fills :class:`Settings` and passes
it down explicitly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .engine.detect import ModelKind
from .paths import cache_dir

if TYPE_CHECKING:
    from .media import MediaPolicy


def default_cache_dir() -> Path:
    return cache_dir()


@dataclass(frozen=True)
class Settings:
    model: str
    host: str = "127.0.0.1"
    port: int = 8000
    served_model_name: str | None = None
    api_key: str | None = None
    force_kind: ModelKind | None = None
    trust_remote_code: bool = False
    fast_blas: bool = True
    tool_call_parser: str | None = None  # a tool_formats name; None: from the chat template
    # generation defaults and limits
    default_max_tokens: int | None = None  # None: up to max_tokens_limit
    max_tokens_limit: int = 8192
    reasoning_parser: str = "auto"  # auto (from the chat template) | think | harmony | none
    max_waiting_requests: int = 256
    # continuous batching and caches
    max_batch_size: int = 32
    prefill_chunk_tokens: int = 256
    prefill_step_s: float = 0.5  # size chunks to about this long here (0: always the max)
    prefix_cache_bytes: int = 512 * 1024 * 1024
    vision_cache_bytes: int = 256 * 1024 * 1024
    # media
    media_roots: tuple[Path, ...] = ()
    allow_private_urls: bool = False
    max_body_bytes: int = 64 * 1024 * 1024
    default_video_fps: float = 2.0
    default_video_max_frames: int = 64
    # HTTP
    # with N streams open, a stream's next tokens may wait (N - 1) x this to share one event
    stream_pace_s: float = 0.001
    max_stream_delay_s: float = 0.05  # ... but never longer than this (0: every token at once)
    cors_origins: tuple[str, ...] = ()
    # connections (vllm_mlx.api.connections)
    header_timeout_s: float = 10.0  # request headers must be complete this long after connecting
    keep_alive_s: float = 5.0  # an idle keep-alive connection is closed after this
    max_connections: int = 1000  # open at once; waiting ones are dropped first, else 503
    storage_path: Path = field(default_factory=lambda: default_cache_dir() / "storage")
    tiny_cache_dir: Path | None = None
    log_level: str = "info"
    # live video over WebSocket (vllm_mlx.stream)
    stream_max_message_bytes: int = 8 * 1024 * 1024
    stream_max_window: int = 32
    stream_max_connections: int = 64
    # structured domain predictions (vllm_mlx.domains)
    callback_secret: str | None = None  # HMAC key for callbacks; None: one kept in storage
    session_ttl_s: float = 3600.0  # chat session_id expiry
    max_sessions: int = 1024
    pdf_timeout_s: float = 30.0  # a PDF rendering longer is killed (vllm_mlx.domains.pdf)
    pdf_memory_bytes: int = 1 << 30  # memory one PDF's renderer process may take
    pdf_workers: int = 2  # PDFs rendered at once, one child process each
    # diffusion video generation jobs (vllm_mlx.videos)
    video_model: str | None = None  # --video-model; None: `model` itself when it is one
    video_queue_size: int = 16  # jobs that may wait; more get 429
    video_max_job_seconds: float = 3600.0  # estimated longer -> 400 at submission; 0: no limit
    # SIGTERM/SIGINT: seconds in-flight requests may take to finish before they are cut off
    shutdown_grace_s: float = 30.0
    # one model across several processes or machines (vllm_mlx.distributed)
    hostfile: Path | None = None  # --hostfile: one process per host, through mlx.launch
    distributed_backend: str | None = None  # ring | mpi; None: the hostfile's, else ring
    parallel: str = "tensor"  # tensor | pipeline
    group_port: int = 32323  # ring backend: first TCP port between the ranks
    group_timeout_s: float = 120.0  # a step waiting longer on another rank fails the group
    group_size: int = 1  # processes serving the model (set by rank 0 once the group formed)
    # several models, loaded on demand (vllm_mlx.engine.registry); `model` is the default
    more_models: tuple[str, ...] = ()  # MODEL or NAME=MODEL after the first
    models_dir: Path | None = None  # every model folder below it is served by its path
    hf_cache: bool = False  # serve every model repo in the local Hugging Face cache
    max_loaded_models: int | None = None  # None: as many as the memory budget holds
    memory_budget_bytes: int | None = None  # weights loaded at once; None: a share of RAM
    idle_ttl_s: float | None = None  # unload a model idle this long (never the default)
    preload: tuple[str, ...] = ()  # models loaded at start besides the default

    @property
    def parallel_mode(self) -> str:
        """What /v1/models and /metrics report: "none" for one process."""
        return self.parallel if self.group_size > 1 else "none"

    @property
    def served_name(self) -> str:
        return self.served_model_name or self.model

    def media_policy(self, *extra_roots: Path) -> MediaPolicy:
        """Where requests may read media from: ``--media-root`` folders (and ``extra_roots``),
        and whether private URLs are allowed."""
        from .media import MediaPolicy

        return MediaPolicy(media_roots=(*self.media_roots, *extra_roots),
                           allow_private_urls=self.allow_private_urls)
