"""The server assembly: start the engine and the video jobs, create the app, serve it.

Contract (used by ``vllm-mlx serve`` in :mod:`vllm_mlx.cli` and by rank 0 of a distributed
group in :mod:`vllm_mlx.distributed.serve`; it imports neither):

- :func:`start_engine` starts the chat engine of ``settings.model`` (on a distributed rank,
  given its :class:`GroupMember`: this process's shard, through its group and step
  coordinator); ``ModelLoadError`` when it cannot be loaded.
- :func:`serve` first checks what can fail fast: that ``host:port`` can be bound, that a
  ``tiny:`` architecture exists, that a Hub repo id is cached or downloadable (see
  :func:`~vllm_mlx.engine.loader.check_hub_reference`), and that at most one video model is
  named (``serve VIDEO --video-model VIDEO``, the same one twice, serves it alone). Then it
  chooses the BLAS before MLX loads, starts the video jobs (``--video-model``, or the served
  model when it is a video model) and the engine, logs what was loaded, and serves HTTP with
  uvicorn until SIGINT/SIGTERM (in-flight requests get up to ``shutdown_grace_s``) and shuts
  everything down. Returns the exit code: 0 after a clean stop, 2 when the address is in
  use or a model cannot be loaded (one line on stderr).
"""

from __future__ import annotations

import errno
import logging
import math
import signal
import socket
import sys
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from .config import Settings

if TYPE_CHECKING:
    import mlx.core as mx

    from .engine import Engine
    from .engine.engine import StepCoordinator
    from .engine.loaded import ShardLoader
    from .engine.registry import ModelRegistry
    from .videos.service import VideoJobs

logger = logging.getLogger("vllm_mlx")


@dataclass(frozen=True)
class GroupMember:
    """One rank's part in serving a model across a group (made by
    :mod:`vllm_mlx.distributed.serve`): the MLX group, the rank's step coordinator and the
    loader of its shard."""

    group: mx.distributed.Group
    coordinator: StepCoordinator
    shard: ShardLoader


def start_engine(settings: Settings, member: GroupMember | None = None) -> Engine:
    """The engine for ``settings.model`` (``member``: on a rank of a distributed group)."""
    from .engine import Engine, LoadOptions, StreamPace

    options = LoadOptions(force_kind=settings.force_kind, served_name=settings.served_name,
                          trust_remote_code=settings.trust_remote_code,
                          tiny_cache_dir=settings.tiny_cache_dir,
                          group=member.group if member else None, parallel=settings.parallel,
                          shard=member.shard if member else None)
    return Engine.start(settings.model, options, settings.max_waiting_requests,
                        max_batch=settings.max_batch_size,
                        prefill_chunk=settings.prefill_chunk_tokens,
                        prefix_cache_bytes=settings.prefix_cache_bytes,
                        vision_cache_bytes=settings.vision_cache_bytes,
                        coordinator=member.coordinator if member else None,
                        prefill_step_s=settings.prefill_step_s,
                        stream_pace=StreamPace(settings.stream_pace_s,
                                               settings.max_stream_delay_s))


def serve(settings: Settings, member: GroupMember | None = None) -> int:
    """Serve ``settings.model``; ``member`` only on rank 0 of a distributed group."""
    problem = address_problem(settings.host, settings.port)
    if problem is not None:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    from .blas import activate_fast_blas

    activate_fast_blas(settings.fast_blas)  # logs which BLAS is in use
    from .engine import EngineError, ModelLoadError
    from .videos.cli import VideoModelError, start_videos

    try:
        settings = check_references(settings)
        videos = start_videos(settings)  # the video model, or None
    except (ModelLoadError, VideoModelError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if videos is not None and settings.video_model is None:  # MODEL is a video model
        return serve_app(settings, None, videos)
    try:
        engine = start_engine(settings, member)
    except ModelLoadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        if videos is not None:
            videos.shutdown()
        return 2
    _announce(engine, settings)
    try:
        models = build_registry(settings, engine)
    except (ValueError, EngineError) as exc:  # an unknown --preload name, say
        print(f"error: {exc}", file=sys.stderr)
        engine.shutdown()
        return 2
    return serve_app(settings, engine, videos, models)


def address_problem(host: str, port: int) -> str | None:
    """Why uvicorn could not listen on ``host:port`` (bound and released again here, with
    uvicorn's SO_REUSEADDR), or None when it can."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        return f"cannot listen on {host}:{port}: unknown host ({exc.strerror})"
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return (f"cannot listen on {host}:{port}: the address is already in use "
                        "(stop what uses it, or choose another --port)")
            return f"cannot listen on {host}:{port}: {exc.strerror or exc}"
    return None


def check_references(settings: Settings) -> Settings:
    """The settings to serve with, once the model references passed the checks that need
    no loading; raises ``ModelLoadError`` or ``VideoModelError`` with a one-line reason."""
    from .engine.catalog import split_alias
    from .engine.loader import check_hub_reference

    for reference in (settings.model, settings.video_model):
        if reference is not None:
            _check_tiny(reference)
            check_hub_reference(reference)
    for argument in settings.more_models:  # loaded on demand: only what fails at once here
        _check_tiny(split_alias(argument)[1])
    if settings.video_model is None:
        return settings
    from .videos.model import VideoModelError, is_video_reference

    if not is_video_reference(settings.model):
        return settings
    if settings.video_model == settings.model:  # the video model, named twice: serve it alone
        return replace(settings, video_model=None)
    raise VideoModelError(
        f"'{settings.model}' is a video model: serve it alone (it answers /v1/videos), "
        f"or give a chat model as MODEL with --video-model {settings.video_model}")


def _check_tiny(reference: str) -> None:
    """An unknown ``tiny:ARCH`` fails here, listing chat and video architectures alike."""
    from .engine import ModelLoadError
    from .engine.loader import TINY_PREFIX
    from .tiny import ARCHITECTURES
    from .videos.model import TINY_ARCHS

    if not reference.startswith(TINY_PREFIX):
        return
    arch = reference[len(TINY_PREFIX):].split(":")[0]
    if arch not in ARCHITECTURES and arch not in TINY_ARCHS:
        raise ModelLoadError(
            f"unknown tiny architecture '{arch}'; chat models: {', '.join(ARCHITECTURES)}; "
            f"video models: {', '.join(TINY_ARCHS)}")


def build_registry(settings: Settings, engine: Engine) -> ModelRegistry:
    """Every chat model this server may serve: ``engine``'s (the default, loaded), then
    ``--model``s after the first, then those found under ``--models-dir`` and in the
    Hugging Face cache (``--hf-cache``); each later one loaded when first asked for."""
    from .engine.catalog import ModelSpec, folder_specs, hub_cache_specs, named_specs
    from .engine.registry import ModelRegistry

    # the default is loaded: its size and kind come from its engine, not from its files
    default = ModelSpec(settings.served_name, settings.model)
    specs = [default, *named_specs(settings.more_models, settings.tiny_cache_dir)]
    if settings.models_dir is not None:
        specs += folder_specs(settings.models_dir)
    if settings.hf_cache:
        specs += hub_cache_specs()
    names, unique = set(), []
    for spec in specs:  # the first of a name wins
        if spec.name not in names:
            names.add(spec.name)
            unique.append(spec)
    budget = settings.memory_budget_bytes or default_memory_budget()
    registry = ModelRegistry(
        unique, lambda spec: start_engine(replace(
            settings, model=spec.reference, served_model_name=spec.name)),
        max_loaded=settings.max_loaded_models, budget=budget, idle_ttl_s=settings.idle_ttl_s)
    registry.adopt_default(engine)
    for name in settings.preload:
        registry.canonical(name)  # UnknownModel before anything starts
    return registry


MEMORY_SHARE = 0.75  # of the machine's memory, for model weights when no budget is given


def default_memory_budget() -> int:
    """A share of the machine's memory (MLX's recommended working set where it says)."""
    import psutil

    from .engine._mlx import mx

    info = mx.device_info() if hasattr(mx, "device_info") else {}
    recommended = info.get("max_recommended_working_set_size")
    total = int(recommended) if recommended else psutil.virtual_memory().total
    return int(total * MEMORY_SHARE)


def serve_app(settings: Settings, engine: Engine | None, videos: VideoJobs | None,
              models: ModelRegistry | None = None) -> int:
    """Run uvicorn on the app until it is stopped, then shut the engines (``models``, or
    ``engine``) and ``videos`` down."""
    import uvicorn

    from .api.app import create_app
    from .api.connections import ConnectionLimits, install_log_limits, uvicorn_options
    from .api.redact import redact_root_handlers, uvicorn_log_config

    secrets = (settings.api_key, settings.callback_secret)
    redact_root_handlers(secrets)  # keys never reach the logs (?api_key=..., Bearer ...)
    install_log_limits()  # hostile connections cannot flood the logs
    limits = ConnectionLimits(settings.header_timeout_s, settings.keep_alive_s,
                              settings.max_connections)

    # uvicorn shuts down gracefully on SIGINT/SIGTERM, then re-raises the signal for the
    # handler that was installed before it; a quiet one makes Ctrl-C end without a trace.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: None)
    try:
        uvicorn.run(create_app(settings, engine, videos, models), host=settings.host,
                    port=settings.port, log_level=settings.log_level,
                    timeout_graceful_shutdown=math.ceil(settings.shutdown_grace_s),
                    log_config=uvicorn_log_config(secrets),
                    ws_max_size=settings.stream_max_message_bytes, **uvicorn_options(limits))
    finally:
        if models is not None:
            models.shutdown()
        elif engine is not None:
            engine.shutdown()
        if videos is not None:
            videos.shutdown()
    return 0


def _announce(engine: Engine, settings: Settings) -> None:
    loaded = engine.model
    kind = "vision-language" if loaded.is_vision else "text-only"
    logger.info("loaded %s from %s: %s (%s)", settings.model, loaded.path, kind,
                loaded.detection.reason)
    if loaded.random_weights:
        logger.warning("%s has RANDOM weights: a test fixture, its output is noise",
                       settings.model)
    logger.info("serving as '%s' (also 'default') on http://%s:%d/v1", settings.served_name,
                settings.host, settings.port)
