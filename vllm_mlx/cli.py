"""``vllm-mlx``: ``serve`` a model, ``stream`` a camera or video to a server, or build a
``tiny-model`` fixture.

``serve`` turns flags into one :class:`Settings` and hands it to :func:`vllm_mlx.server.serve`
(or, with ``--hostfile``, to :mod:`vllm_mlx.distributed.serve`), which checks the address
and the model reference, loads the model (failing fast with a one-line message and exit
code 2), logs what was loaded, and runs uvicorn until Ctrl-C, then shuts the engine down.
Every option's help states its default and unit (:mod:`vllm_mlx.cli_help`); ``--version``
prints the version. The top of the package: nothing imports this module.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from . import __version__
from .cli_help import HelpFormatter
from .config import Settings, default_cache_dir
from .engine.detect import ModelKind
from .openai.reasoning import CHOICES as REASONING_PARSERS
from .openai.tool_formats import FORMATS as TOOL_FORMATS
from .server import serve

DESCRIPTION = ("vllm-mlx: serve a model (serve), stream a camera or video to a server "
               "(stream), or build a random-weight test model (tiny-model).")
VIDEO_PRESETS = ("mid", "tiny-i2v")  # tiny:wan2_1's presets besides tiny (vllm_mlx.diffusion)

def _serve_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="serve a model with the OpenAI-compatible API",
                       description="Serve a model with the OpenAI-compatible API.",
                       formatter_class=HelpFormatter)
    p.add_argument("model", nargs="+", metavar="MODEL",
                   help="HF repo id, local folder, or tiny:ARCH (random weights); several: the "
                        "first is the default and is loaded at start, the others when first "
                        "asked for; NAME=MODEL serves MODEL as NAME")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (0.0.0.0: every interface)")
    p.add_argument("--port", type=int, default=8000, help="TCP port to listen on")
    p.add_argument("--served-model-name", default=None, metavar="NAME",
                   help="model name clients send and /v1/models lists (default: MODEL as "
                        "given; 'default' is always accepted too)")
    p.add_argument("--api-key", default=None,
                   help="require this key on every route (default: none, no key needed)")
    _engine_args(p)
    _http_args(p)
    _model_args(p)
    _feature_args(p)
    _models_args(p)
    _distributed_args(p)


def _engine_args(p: argparse.ArgumentParser) -> None:
    """Generation limits, batching, prefill and the caches."""
    p.add_argument("--max-tokens", type=int, default=None, metavar="TOKENS",
                   help="max_tokens of a request that gives none (default: up to "
                        "--max-tokens-limit, or where the context ends)")
    p.add_argument("--max-tokens-limit", type=int, default=8192, metavar="TOKENS",
                   help="largest max_tokens a request may ask for, in tokens")
    p.add_argument("--max-waiting-requests", type=int, default=256, metavar="N",
                   help="requests queued beyond the running batch; more get 429")
    p.add_argument("--max-batch-size", type=int, default=32, metavar="N",
                   help="requests decoded together (continuous batching)")
    p.add_argument("--prefill-chunk", type=int, default=256, metavar="TOKENS",
                   help="prompt tokens prefilled per scheduler step, at most")
    p.add_argument("--prefill-step-seconds", type=float, default=0.5, metavar="SECONDS",
                   help="text models: fewer tokens per prefill step where a step of "
                        "--prefill-chunk would take more seconds than this here (measured at "
                        "load), so streams and newcomers wait less; 0 turns it off")
    p.add_argument("--prefix-cache-mb", type=float, default=512.0, metavar="MIB",
                   help="memory for reusable prompt KV, in MiB (0 disables the prefix cache)")
    p.add_argument("--vision-cache-mb", type=float, default=256.0, metavar="MIB",
                   help="memory for reusable vision-encoder outputs, in MiB (0 disables it)")


def _milliseconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < 1e6:  # also refuses nan
        raise argparse.ArgumentTypeError(f"{text!r}: give milliseconds, 0 or more")
    return value


def _http_args(p: argparse.ArgumentParser) -> None:
    """What a client may send, from where, and how connections are kept."""
    p.add_argument("--media-root", action="append", default=[], metavar="DIR",
                   help="allow local media paths under DIR (repeatable; default: none, local "
                        "paths are refused)")
    p.add_argument("--allow-private-urls", action="store_true",
                   help="allow media URLs that resolve to private or loopback addresses")
    p.add_argument("--max-body-mb", type=float, default=64.0, metavar="MIB",
                   help="largest request body accepted, in MiB")
    p.add_argument("--cors-origin", action="append", default=[], metavar="ORIGIN",
                   help="let browser pages from ORIGIN call the API (repeatable; default: "
                        "none, no CORS headers)")
    p.add_argument("--header-timeout", type=float, default=10.0, metavar="SECONDS",
                   help="close a connection whose request headers are not complete this many "
                        "seconds after it connected or after its last response (default: 10)")
    p.add_argument("--keep-alive-timeout", type=float, default=5.0, metavar="SECONDS",
                   help="close an idle keep-alive connection after this many seconds "
                        "(default: 5)")
    p.add_argument("--max-connections", type=int, default=1000, metavar="N",
                   help="HTTP and WebSocket connections open at once; past it the one waiting "
                        "longest for its headers is dropped, else the newcomer gets 503 "
                        "(default: 1000, fewer if the file descriptor limit is lower)")
    p.add_argument("--stream-pace-ms", type=_milliseconds, default=1.0, metavar="MS",
                   help="with N streamed replies open, a stream's next tokens may wait up to "
                        "(N - 1) x MS to go out together in one event, so many clients cost "
                        "the server less per token; one stream is never held (default: 1)")
    p.add_argument("--max-stream-delay-ms", type=_milliseconds, default=50.0, metavar="MS",
                   help="the longest --stream-pace-ms may hold tokens back (default: 50; 0 "
                        "sends every token as soon as it is decoded)")


def _model_args(p: argparse.ArgumentParser) -> None:
    """How the model is loaded, where things are stored, and logging."""
    kind = p.add_mutually_exclusive_group()
    kind.add_argument("--mllm", action="store_true",
                      help="force vision-language mode (default: detected from config.json)")
    kind.add_argument("--text", action="store_true", help="force text-only mode")
    p.add_argument("--trust-remote-code", action="store_true",
                   help="run Python code that comes with the model (its own classes)")
    p.add_argument("--no-fast-blas", action="store_true",
                   help="keep the mlx-cpu wheel's reference BLAS (Linux)")
    p.add_argument("--storage-path", type=Path, default=None, metavar="DIR",
                   help="predictions database, uploaded files, video jobs (default: "
                        "$VLLM_MLX_STORAGE_PATH or $VLLM_OMNI_STORAGE_PATH, else the user "
                        "cache)")
    p.add_argument("--tiny-cache-dir", type=Path, default=None, metavar="DIR",
                   help="where tiny:ARCH models are built (default: the user cache)")
    p.add_argument("--reasoning-parser", default="auto", choices=REASONING_PARSERS,
                   metavar="NAME",
                   help="how replies' reasoning is told from the answer: think (<think> "
                        "tags; also qwen3, deepseek_r1), harmony (gpt-oss channels; also "
                        "gpt_oss) or none (default: auto, from the chat template)")
    p.add_argument("--tool-call-parser", default=None, choices=sorted(TOOL_FORMATS),
                   metavar="NAME",
                   help="the form of the model's tool calls: " + ", ".join(sorted(TOOL_FORMATS))
                        + " (default: from the chat template, else hermes)")
    p.add_argument("--log-level", default="info",
                   help="least severe log messages shown: debug, info, warning or error")


def _feature_args(p: argparse.ArgumentParser) -> None:
    """Live video, predictions, PDFs, video jobs and shutdown."""
    p.add_argument("--stream-max-message-mb", type=float, default=8.0, metavar="MIB",
                   help="live video: largest WebSocket message, in MiB (larger ones close "
                        "with 1009)")
    p.add_argument("--stream-max-window", type=int, default=32, metavar="FRAMES",
                   help="live video: most frames a connection may analyse at once")
    p.add_argument("--stream-max-connections", type=int, default=64, metavar="N",
                   help="live video: most WebSocket connections open at once")
    p.add_argument("--callback-secret", default=None,
                   help="HMAC-SHA256 key signing prediction callbacks (default: a random key "
                        "kept in the storage folder)")
    p.add_argument("--session-ttl", type=float, default=3600.0, metavar="SECONDS",
                   help="seconds an idle chat session_id is kept")
    p.add_argument("--max-sessions", type=int, default=1024, metavar="N",
                   help="most chat session_ids kept (the least recently used go first)")
    p.add_argument("--pdf-timeout", type=float, default=30.0, metavar="SECONDS",
                   help="a PDF whose rendering takes more seconds than this is refused")
    p.add_argument("--pdf-memory-mb", type=int, default=1024, metavar="MIB",
                   help="memory one PDF's renderer process may take, in MiB")
    p.add_argument("--pdf-workers", type=int, default=2, metavar="N",
                   help="PDFs rendered at once, one child process each")
    p.add_argument("--video-model", default=None, metavar="PATH_OR_ID",
                   help="also generate videos (/v1/videos) with this Wan model: a Diffusers "
                        "folder, a Hub repo id or tiny:wan2_1 (default: none; a video MODEL "
                        "alone serves only videos)")
    p.add_argument("--video-queue-size", type=int, default=16, metavar="JOBS",
                   help="video jobs that may wait; more are refused with 429")
    p.add_argument("--video-max-job-seconds", type=float, default=3600.0, metavar="SECONDS",
                   help="refuse (400) a video job estimated to take longer than this here "
                        "(measured at load; default: %(default)s s; 0: no limit)")
    p.add_argument("--shutdown-grace", type=float, default=30.0, metavar="SECONDS",
                   help="on SIGTERM/Ctrl-C, stop accepting connections and let in-flight "
                        "requests finish for up to this many seconds (a second Ctrl-C cuts it "
                        "short)")


def _models_args(p: argparse.ArgumentParser) -> None:
    group = p.add_argument_group("several models, loaded on demand")
    group.add_argument("--models-dir", type=Path, default=None, metavar="DIR",
                       help="also serve every model folder below DIR, named by its path "
                            "(default: none)")
    group.add_argument("--hf-cache", action="store_true",
                       help="also serve every model repo in the local Hugging Face cache, "
                            "named by its repo id")
    group.add_argument("--max-loaded-models", type=int, default=None, metavar="N",
                       help="models loaded at once; loading one more unloads the least "
                            "recently used idle one (default: as many as --memory-budget "
                            "holds)")
    group.add_argument("--memory-budget", type=float, default=None, metavar="GIB",
                       help="GiB of weights loaded at once (default: 3/4 of the machine's "
                            "memory)")
    group.add_argument("--idle-ttl", type=float, default=None, metavar="SECONDS",
                       help="unload a model idle this long; a request's 'ttl' overrides it "
                            "(default: never; the first MODEL always stays loaded)")
    group.add_argument("--preload", action="append", default=[], metavar="NAME",
                       help="also load this model at start (repeatable; default: only the "
                            "first MODEL)")


def _distributed_args(p: argparse.ArgumentParser) -> None:
    group = p.add_argument_group("one model across several Macs (MLX distributed)")
    group.add_argument("--hostfile", type=Path, default=None,
                       help="mlx.launch hostfile: start one process per host, rank 0 serves "
                            "(default: none, one process here)")
    group.add_argument("--backend", choices=("ring", "mpi"), default=None,
                       help="MLX distributed backend (default: the hostfile's, else ring)")
    group.add_argument("--parallel", choices=("tensor", "pipeline"), default="tensor",
                       help="split every layer across hosts, or give each host some layers")
    group.add_argument("--group-port", type=int, default=32323, metavar="PORT",
                       help="ring backend: first TCP port the hosts connect on")
    group.add_argument("--group-timeout", type=float, default=120.0, metavar="SECONDS",
                       help="a step waiting more seconds than this on another host fails "
                            "the group")


def _tiny_parser(sub: argparse._SubParsersAction) -> None:
    from .tiny.cli import add_arguments
    from .videos.model import TINY_ARCHS

    p = sub.add_parser("tiny-model", help="write a random-weight model of a real architecture",
                       description="Write a random-weight model folder of a real "
                                   "architecture (a test fixture: its output is noise).",
                       formatter_class=HelpFormatter)
    add_arguments(p, video_archs=TINY_ARCHS, video_presets=VIDEO_PRESETS)


def _stream_parser(sub: argparse._SubParsersAction) -> None:
    from .stream.cli import add_parser

    add_parser(sub)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vllm-mlx", description=DESCRIPTION,
                                     formatter_class=HelpFormatter,
                                     epilog="Run 'vllm-mlx COMMAND --help' for its options.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _serve_parser(sub)
    _tiny_parser(sub)
    _stream_parser(sub)
    return parser


def _storage_path(flag: Path | None) -> Path:
    import os

    # VLLM_OMNI_STORAGE_PATH: the name vLLM-Omni's video API uses (seed 002)
    env = os.environ.get("VLLM_MLX_STORAGE_PATH") or os.environ.get("VLLM_OMNI_STORAGE_PATH")
    return (flag or (Path(env) if env else default_cache_dir() / "storage")).expanduser()


def settings_from_args(args: argparse.Namespace) -> Settings:
    force = ModelKind.VISION if args.mllm else ModelKind.TEXT if args.text else None
    return Settings(
        model=args.model[0], more_models=tuple(args.model[1:]), host=args.host, port=args.port,
        served_model_name=args.served_model_name, api_key=args.api_key, force_kind=force,
        trust_remote_code=args.trust_remote_code, fast_blas=not args.no_fast_blas,
        tool_call_parser=args.tool_call_parser,
        default_max_tokens=args.max_tokens, max_tokens_limit=args.max_tokens_limit,
        max_waiting_requests=args.max_waiting_requests, max_batch_size=args.max_batch_size,
        prefill_chunk_tokens=args.prefill_chunk, prefill_step_s=args.prefill_step_seconds,
        prefix_cache_bytes=int(args.prefix_cache_mb * 1024 * 1024),
        vision_cache_bytes=int(args.vision_cache_mb * 1024 * 1024),
        media_roots=tuple(Path(r).expanduser().resolve() for r in args.media_root),
        allow_private_urls=args.allow_private_urls,
        max_body_bytes=int(args.max_body_mb * 1024 * 1024),
        cors_origins=tuple(args.cors_origin), header_timeout_s=args.header_timeout,
        keep_alive_s=args.keep_alive_timeout, max_connections=args.max_connections,
        stream_pace_s=args.stream_pace_ms / 1000,
        max_stream_delay_s=args.max_stream_delay_ms / 1000,
        storage_path=_storage_path(args.storage_path),
        tiny_cache_dir=args.tiny_cache_dir, log_level=args.log_level,
        reasoning_parser=args.reasoning_parser,
        stream_max_message_bytes=int(args.stream_max_message_mb * 1024 * 1024),
        stream_max_window=args.stream_max_window,
        stream_max_connections=args.stream_max_connections,
        callback_secret=args.callback_secret, session_ttl_s=args.session_ttl,
        max_sessions=args.max_sessions, pdf_timeout_s=args.pdf_timeout,
        pdf_memory_bytes=args.pdf_memory_mb * 1024 * 1024, pdf_workers=args.pdf_workers,
        video_model=args.video_model, video_queue_size=args.video_queue_size,
        video_max_job_seconds=args.video_max_job_seconds,
        shutdown_grace_s=args.shutdown_grace,
        hostfile=args.hostfile, distributed_backend=args.backend, parallel=args.parallel,
        group_port=args.group_port, group_timeout_s=args.group_timeout,
        models_dir=args.models_dir, hf_cache=args.hf_cache,
        max_loaded_models=args.max_loaded_models,
        memory_budget_bytes=(int(args.memory_budget * (1 << 30))
                             if args.memory_budget is not None else None),
        idle_ttl_s=args.idle_ttl, preload=tuple(args.preload),
    )


def tiny_model(args: argparse.Namespace) -> int:
    from .tiny.cli import build
    from .videos.model import TINY_ARCHS

    if args.arch in TINY_ARCHS:  # diffusion video models (vllm_mlx.diffusion)
        from .videos.cli import tiny_video_model

        if args.cache or not args.out:
            print(f"error: --arch {args.arch} needs OUT (serve tiny:{args.arch} builds it into "
                  "the cache itself)", file=sys.stderr)
            return 2
        return tiny_video_model(args)
    try:
        path = build(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(path)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    level = getattr(args, "log_level", "info").upper()
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.command == "serve":
        settings = settings_from_args(args)
        if settings.hostfile is not None:
            from .distributed.serve import serve_distributed

            if settings.more_models or settings.models_dir or settings.hf_cache:
                print("error: --hostfile serves one model across the group: give one MODEL "
                      "and no --models-dir / --hf-cache", file=sys.stderr)
                return 2

            return serve_distributed(settings, list(sys.argv[1:] if argv is None else argv))
        return serve(settings)
    if args.command == "stream":
        from .stream.cli import main as stream_main

        return stream_main(args)
    return tiny_model(args)


if __name__ == "__main__":
    sys.exit(main())
