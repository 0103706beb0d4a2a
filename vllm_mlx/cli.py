"""``vllm-mlx``: ``serve`` a model, or build a ``tiny-model`` fixture.

``serve`` turns flags into one :class:`Settings`, chooses the BLAS before MLX loads,
loads the model (failing fast with a readable message and exit code 2), prints what
was loaded, and runs uvicorn until Ctrl-C, then shuts the engine down.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from .config import Settings, default_cache_dir
from .engine.detect import ModelKind

logger = logging.getLogger("vllm_mlx")


def _serve_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="serve a model with the OpenAI-compatible API")
    p.add_argument("model", help="HF repo id, local folder, or tiny:ARCH (random weights)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--served-model-name", default=None)
    p.add_argument("--api-key", default=None, help="require this key on every route")
    p.add_argument("--max-tokens", type=int, default=256, help="default max_tokens")
    p.add_argument("--max-tokens-limit", type=int, default=8192)
    p.add_argument("--max-waiting-requests", type=int, default=256)
    p.add_argument("--media-root", action="append", default=[], metavar="DIR",
                   help="allow local media paths under DIR (repeatable)")
    p.add_argument("--allow-private-urls", action="store_true",
                   help="allow media URLs that resolve to private or loopback addresses")
    p.add_argument("--max-body-mb", type=float, default=64.0)
    p.add_argument("--cors-origin", action="append", default=[], metavar="ORIGIN")
    kind = p.add_mutually_exclusive_group()
    kind.add_argument("--mllm", action="store_true", help="force vision-language mode")
    kind.add_argument("--text", action="store_true", help="force text-only mode")
    p.add_argument("--trust-remote-code", action="store_true")
    p.add_argument("--no-fast-blas", action="store_true",
                   help="keep the mlx-cpu wheel's reference BLAS (Linux)")
    p.add_argument("--storage-path", type=Path, default=None)
    p.add_argument("--tiny-cache-dir", type=Path, default=None,
                   help="where tiny:ARCH models are built (default: the user cache)")
    p.add_argument("--log-level", default="info")


def _tiny_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tiny-model", help="write a random-weight model of a real architecture")
    p.add_argument("out", type=Path)
    p.add_argument("--arch", required=True)
    p.add_argument("--preset", default="tiny")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dtype", default="float32")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vllm-mlx", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    _serve_parser(sub)
    _tiny_parser(sub)
    return parser


def settings_from_args(args: argparse.Namespace) -> Settings:
    force = ModelKind.VISION if args.mllm else ModelKind.TEXT if args.text else None
    return Settings(
        model=args.model, host=args.host, port=args.port,
        served_model_name=args.served_model_name, api_key=args.api_key, force_kind=force,
        trust_remote_code=args.trust_remote_code, fast_blas=not args.no_fast_blas,
        default_max_tokens=args.max_tokens, max_tokens_limit=args.max_tokens_limit,
        max_waiting_requests=args.max_waiting_requests,
        media_roots=tuple(Path(r).expanduser().resolve() for r in args.media_root),
        allow_private_urls=args.allow_private_urls,
        max_body_bytes=int(args.max_body_mb * 1024 * 1024),
        cors_origins=tuple(args.cors_origin),
        storage_path=args.storage_path or default_cache_dir() / "storage",
        tiny_cache_dir=args.tiny_cache_dir, log_level=args.log_level,
    )


def serve(settings: Settings) -> int:
    from .blas import activate_fast_blas

    blas = activate_fast_blas(settings.fast_blas)
    from .engine import Engine, LoadOptions, ModelLoadError

    logger.info("BLAS: %s (%s)", blas.name, blas.reason)
    options = LoadOptions(force_kind=settings.force_kind, served_name=settings.served_name,
                          trust_remote_code=settings.trust_remote_code,
                          tiny_cache_dir=settings.tiny_cache_dir)
    try:
        engine = Engine.start(settings.model, options, settings.max_waiting_requests)
    except ModelLoadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    _announce(engine, settings)
    import uvicorn

    from .api.app import create_app

    try:
        uvicorn.run(create_app(settings, engine), host=settings.host, port=settings.port,
                    log_level=settings.log_level, timeout_graceful_shutdown=5)
    finally:
        engine.shutdown()
    return 0


def _announce(engine: object, settings: Settings) -> None:
    loaded = engine.model  # type: ignore[attr-defined]
    kind = "vision-language" if loaded.is_vision else "text-only"
    logger.info("loaded %s from %s: %s (%s)", settings.model, loaded.path, kind,
                loaded.detection.reason)
    if loaded.random_weights:
        logger.warning("%s has RANDOM weights: a test fixture, its output is noise",
                       settings.model)
    logger.info("serving as '%s' (also 'default') on http://%s:%d/v1", settings.served_name,
                settings.host, settings.port)


def tiny_model(args: argparse.Namespace) -> int:
    from .tiny import build_tiny_model

    try:
        path = build_tiny_model(args.out, args.arch, args.preset, seed=args.seed,
                                dtype=args.dtype)
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
        return serve(settings_from_args(args))
    return tiny_model(args)


if __name__ == "__main__":
    sys.exit(main())
