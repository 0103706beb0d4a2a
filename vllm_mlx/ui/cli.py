"""``vllm-mlx-chat``: the Gradio multimodal chat, on an in-process model or a running server.

    vllm-mlx-chat --model mlx-community/Qwen3-VL-4B-Instruct-3bit   # or tiny:qwen2_vl
    vllm-mlx-chat --server-url http://127.0.0.1:8000 [--media-root DIR]

Contract: exactly one of ``--model`` (the engine runs in this process) and ``--server-url``
(an OpenAI-compatible ``vllm-mlx serve``). Without Gradio installed, prints how to install
the ``ui`` extra and exits with status 1; a model that fails to load or a server that
cannot be reached exits with status 2. Serves until Ctrl-C, then shuts the backend down.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from ..engine.errors import ModelLoadError
from .backend import BackendError, ChatBackend

INSTALL_HINT = ("vllm-mlx-chat needs the optional Gradio UI: pip install 'vllm-mlx[ui]' "
                "(or: pip install 'gradio>=6,<7' openai)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vllm-mlx-chat",
        description="Gradio multimodal chat on an in-process model or a running vllm-mlx server")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", help="HF repo id, local folder or tiny:ARCH, run in-process")
    source.add_argument("--server-url", help="a running vllm-mlx serve, e.g. http://127.0.0.1:8000")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--share", action="store_true", help="create a public Gradio link")
    parser.add_argument("--title", default="vllm-mlx chat")
    remote = parser.add_argument_group("with --server-url")
    remote.add_argument("--api-key", default=os.environ.get("VLLM_MLX_API_KEY"))
    remote.add_argument("--served-model", default=None,
                        help="the model the chat starts on; a server serving several gets a "
                             "dropdown to switch (default: the server's first)")
    remote.add_argument("--media-root", type=Path, default=None, metavar="DIR",
                        help="a --media-root of the server on this machine: uploads are "
                             "staged there once and sent as paths instead of data URLs")
    local = parser.add_argument_group("with --model")
    local.add_argument("--tiny-cache-dir", type=Path, default=None)
    local.add_argument("--no-fast-blas", action="store_true")
    parser.add_argument("--log-level", default="warning")
    return parser


def missing_modules(args: argparse.Namespace) -> list[str]:
    needed = ["gradio"] + (["openai"] if args.server_url else [])
    return [name for name in needed if importlib.util.find_spec(name) is None]


def upload_folder() -> Path:
    """Where Gradio stores uploads (the only files the in-process backend may read)."""
    from gradio.utils import get_upload_folder

    path = Path(get_upload_folder()).resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def make_backend(args: argparse.Namespace) -> ChatBackend:
    """Connect to ``--server-url`` or load ``--model`` in-process (may raise
    :class:`BackendError` or ``ModelLoadError``)."""
    if args.server_url:
        from .remote import RemoteBackend

        return RemoteBackend.connect(args.server_url, api_key=args.api_key,
                                     model=args.served_model, media_root=args.media_root)
    from .local import InProcessBackend

    return InProcessBackend.start(args.model, media_roots=[upload_folder()],
                                  tiny_cache_dir=args.tiny_cache_dir,
                                  fast_blas=not args.no_fast_blas)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if missing := missing_modules(args):
        print(f"{INSTALL_HINT}\n(missing: {', '.join(missing)})", file=sys.stderr)
        return 1
    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    try:
        backend = make_backend(args)
    except (BackendError, ModelLoadError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from .app import build_chat_app

    info = backend.info
    print(f"vllm-mlx-chat: {info.model} ({info.location}); vision={info.vision} "
          f"video={info.video}; videos tab={backend.video_jobs is not None}", flush=True)
    try:
        demo = build_chat_app(backend, title=args.title)
        demo.queue(default_concurrency_limit=8).launch(
            server_name=args.host, server_port=args.port, share=args.share,
            footer_links=["api", "settings"])
    finally:
        backend.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
