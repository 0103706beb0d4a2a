"""``vllm-mlx serve MODEL --hostfile FILE``: the launcher, or one rank of the group.

Run by a user (no launcher rank variable set), it checks the hostfile and runs
``mlx.launch``, which starts this same command line once per host. Run as a rank, it
joins the group (:func:`~.group.join_group`), then

- rank 0 serves HTTP exactly as ``vllm-mlx serve`` does (:func:`vllm_mlx.server.serve`),
  its engine wrapped in a
  :class:`~.coordinator.Leader`; when the group fails it stops the server (requests in
  flight get the error first) and exits 1;
- every other rank runs the same engine behind a :class:`~.coordinator.Follower`, with no
  HTTP, until rank 0 says stop (exit 0) or the group fails (exit 1). Ctrl-C is left to
  rank 0, which stops the others once its server has drained.

Exit codes: 0 clean stop; 1 the group failed while serving; 2 could not start (hostfile,
group that did not form, model that cannot be split this way). A rank ends with
``os._exit`` once its work is done: the ring backend's threads may still be running when
the interpreter would tear down, which aborts the process ("terminate called without an
active exception") instead of exiting 0.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import sys
from typing import TYPE_CHECKING, Any, NoReturn

from ..config import Settings
from .launch import (
    HostfileError,
    launched_labels,
    launched_rank,
    launcher_command,
    read_hostfile,
    run_launcher,
)

if TYPE_CHECKING:
    from .group import Group

logger = logging.getLogger(__name__)


def serve_distributed(settings: Settings, argv: list[str]) -> int:
    rank = launched_rank()
    if rank is None:
        return _launch(settings, argv)
    _exit_now(_serve_rank(settings, rank))


def _launch(settings: Settings, argv: list[str]) -> int:
    assert settings.hostfile is not None
    try:
        if settings.video_model is not None:
            raise HostfileError("--video-model cannot be combined with --hostfile")
        hostfile = read_hostfile(settings.hostfile, settings.distributed_backend)
        backend = settings.distributed_backend or hostfile.backend or "ring"
        # The ranks learn the backend the launcher chose (argparse keeps the last value).
        command = launcher_command(settings.hostfile, hostfile, backend, settings.group_port,
                                   [*argv, "--backend", backend])
    except HostfileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return run_launcher(command, [h.label for h in hostfile.hosts])


def fingerprint(settings: Settings) -> dict[str, Any]:
    """What must be equal on every rank for their schedulers to take the same steps."""
    from .. import __version__

    return {"vllm_mlx": __version__, "model": settings.model, "parallel": settings.parallel,
            "max_batch_size": settings.max_batch_size,
            "prefill_chunk_tokens": settings.prefill_chunk_tokens,
            "prefix_cache_bytes": settings.prefix_cache_bytes,
            "vision_cache_bytes": settings.vision_cache_bytes,
            "force_kind": settings.force_kind.value if settings.force_kind else None}


def _exit_now(code: int, message: str | None = None) -> NoReturn:
    """Exit without waiting for an MLX thread that may be stuck in a collective."""
    if message:
        print(message, file=sys.stderr)
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _share_cores(rank: int) -> None:
    """Ranks started on the same host split its cores between their BLAS thread pools
    (Linux CPU; on a Mac the GPU computes). Oversubscribed, with the ring backend's
    waiting threads spinning, a one-machine group runs many times slower."""
    labels = launched_labels()
    sharing = labels.count(labels[rank]) if rank < len(labels) else 1
    if sharing > 1 and "OPENBLAS_NUM_THREADS" not in os.environ:
        threads = max(1, (os.cpu_count() or 1) // sharing)
        os.environ["OPENBLAS_NUM_THREADS"] = str(threads)
        logger.info("%d ranks share this host: %d BLAS thread(s) each", sharing, threads)


def _serve_rank(settings: Settings, rank: int) -> int:
    from ..blas import activate_fast_blas

    _share_cores(rank)
    activate_fast_blas(settings.fast_blas)  # before anything imports mlx.core
    from .group import GroupError, join_group

    if settings.parallel == "pipeline" and settings.prefix_cache_bytes:
        # Ranks hold different numbers of layers, so a byte budget would evict differently.
        logger.info("pipeline parallel: the prefix cache is off")
        settings = dataclasses.replace(settings, prefix_cache_bytes=0)
    backend = settings.distributed_backend or "ring"
    try:
        group = join_group(backend, settings.group_timeout_s, fingerprint(settings), rank)
    except GroupError as exc:
        _exit_now(2, f"error: {exc}")
    settings = dataclasses.replace(settings, group_size=group.size)
    me = group.members[group.rank]
    logger.info("%s of %d ready (pid %d, %s parallel over %s)", me, group.size, me.pid,
                settings.parallel, backend)
    if group.rank == 0:
        return _lead(settings, group)
    return _follow(settings, group)


def _stop_server(message: str) -> None:
    # uvicorn turns SIGTERM into a graceful shutdown; the requests in flight already
    # received the error, so they end at once.
    os.kill(os.getpid(), signal.SIGTERM)


def _lead(settings: Settings, group: Group) -> int:
    from ..server import GroupMember, serve
    from .coordinator import Leader
    from .sharding import load_sharded

    leader = Leader(group, settings.group_timeout_s, on_failure=_stop_server)
    code = serve(settings, GroupMember(group.handle, leader, load_sharded))
    if leader.failure is not None:
        _exit_now(1, f"error: {leader.failure}")
    return code


def _follow(settings: Settings, group: Group) -> int:
    from ..engine import ModelLoadError
    from ..server import GroupMember, start_engine
    from .coordinator import Follower
    from .sharding import load_sharded

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # rank 0 stops us once it has drained
    follower = Follower(group, settings.group_timeout_s)
    try:
        engine = start_engine(settings, GroupMember(group.handle, follower, load_sharded))
    except ModelLoadError as exc:
        _exit_now(2, f"error: rank {group.rank}: {exc}")
    follower.done.wait()
    if follower.failure is not None:
        _exit_now(1, f"error: rank {group.rank}: {follower.failure}")
    engine.shutdown()
    logger.info("rank %d: rank 0 stopped the group", group.rank)
    return 0
