"""Loading a model while other models serve: on a thread of the lowest CPU priority.

A load is CPU work (reading and converting the weights: about 1.5 of 2 cores for a second
or two on the `small` presets), and on a machine with few cores it took that share from
the engines already decoding: their clients' first tokens came twice as late while it
ran. :func:`load_quietly` runs :func:`~.loader.load_model` on a thread of its own at the
lowest priority (on Linux, where niceness is per thread and the threads MLX starts from it
inherit it), so a load takes only the CPU the serving engines leave idle; the caller's
thread, which goes on to calibrate and decode, keeps its priority. Elsewhere (macOS, where
decoding runs on the GPU) the thread runs as is. The thread's MLX streams are released
before it ends, as every thread's must be.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from typing import Any

from ._mlx import mx
from .loaded import LoadedModel, LoadOptions
from .loader import load_model

LOWEST_PRIORITY = 19  # the largest nice value


def load_quietly(reference: str, options: LoadOptions | None) -> LoadedModel:
    """:func:`load_model` on a lowest-priority thread; its result or its error."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        _lower_this_threads_priority()
        try:
            outcome["model"] = load_model(reference, options)
        except BaseException as exc:  # raised again in the caller's thread
            outcome["error"] = exc
        finally:
            mx.synchronize()
            mx.clear_streams()

    thread = threading.Thread(target=run, name="mlx-load", daemon=True)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["model"]


def _lower_this_threads_priority() -> None:
    if sys.platform != "linux":
        return
    with contextlib.suppress(OSError):  # refused in a sandbox: it loads at normal priority
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), LOWEST_PRIORITY)
