"""Forming the process group: connect, learn who is who, check that all ranks agree.

:func:`join_group` initialises ``mx.distributed`` (ring or MPI) on a helper thread so a
rank that never shows up becomes an error after ``timeout`` seconds instead of a hang,
then exchanges one record per rank with ``all_gather``: host name, pid and a fingerprint
of everything that must be equal on every rank (vllm-mlx version, model, parallel mode,
scheduler settings). A rank that differs fails the start on every rank, named.

Ranks are named after the hostfile (``VLLM_MLX_HOSTS``, set by ``vllm-mlx serve
--hostfile``), else the ring addresses (``MLX_HOSTFILE``), else the host names they report.
"""

from __future__ import annotations

import json
import os
import socket
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..engine._mlx import mx
from .launch import launched_labels

_RECORD_BYTES = 4096


class GroupError(RuntimeError):
    """The group could not form, or its ranks disagree; the message names the rank."""


@dataclass(frozen=True)
class Member:
    rank: int
    label: str  # how the user knows this rank: hostfile entry, address or host name
    host: str = ""  # what the rank's machine calls itself
    pid: int = 0

    def __str__(self) -> str:
        if self.host and self.host not in self.label:
            return f"rank {self.rank} ({self.label}, host {self.host})"
        return f"rank {self.rank} ({self.label})"


@dataclass(frozen=True)
class Group:
    handle: Any  # the mx.distributed group
    rank: int
    backend: str
    members: tuple[Member, ...]

    @property
    def size(self) -> int:
        return len(self.members)

    def peers(self) -> tuple[Member, ...]:
        return tuple(m for m in self.members if m.rank != self.rank)

    def describe_peers(self) -> str:
        """The other ranks, for messages about a peer we cannot tell apart."""
        peers = self.peers()
        if len(peers) == 1:
            return str(peers[0])
        return "one of " + ", ".join(str(m) for m in peers)


def _label(labels: list[str], rank: int) -> str:
    return labels[rank] if 0 <= rank < len(labels) else f"rank {rank}"


def _connect(backend: str) -> Any:
    return mx.distributed.init(backend=backend, strict=True)


def _init(backend: str, timeout: float, rank_hint: int) -> Any:
    box: dict[str, Any] = {}

    def connect() -> None:
        try:
            box["group"] = _connect(backend)
        except Exception as exc:  # the backend's own reason (refused, unreachable, ...)
            box["error"] = exc

    thread = threading.Thread(target=connect, name="group-init", daemon=True)
    thread.start()
    thread.join(timeout)
    labels = launched_labels()
    others = ", ".join(f"rank {i} ({label})" for i, label in enumerate(labels)
                       if i != rank_hint) or "the other ranks"
    if thread.is_alive():
        raise GroupError(f"rank {rank_hint}: the group did not form within {timeout:.0f} s; "
                         f"waiting for {others}. Is every host up, reachable on the group "
                         "ports, and running the same vllm-mlx command?")
    if "error" in box:
        me = _label(labels, rank_hint)
        raise GroupError(f"rank {rank_hint} ({me}) could not join the group ({backend}): "
                         f"{box['error']}. Check that each host's \"ips\" are its own "
                         f"addresses and that {others} can be reached")
    return box["group"]


def _exchange(handle: Any, record: dict[str, Any]) -> list[dict[str, Any]]:
    data = json.dumps(record).encode()
    if len(data) > _RECORD_BYTES:
        raise GroupError("this rank's handshake record is too long (model name?)")
    buffer = mx.zeros((1, _RECORD_BYTES), dtype=mx.uint8)
    buffer[0, :len(data)] = mx.array(list(data), dtype=mx.uint8)
    gathered = mx.distributed.all_gather(buffer, group=handle, stream=mx.cpu)
    mx.eval(gathered)
    rows = [row.tobytes().rstrip(b"\0") for row in np.asarray(gathered)]
    return [json.loads(row) for row in rows]


def _check_agreement(records: list[dict[str, Any]], members: list[Member]) -> None:
    reference = records[0]["fingerprint"]
    for record, member in zip(records[1:], members[1:]):
        theirs = record["fingerprint"]
        for key in sorted(set(reference) | set(theirs)):
            if reference.get(key) != theirs.get(key):
                raise GroupError(
                    f"{member} runs with {key}={theirs.get(key)!r} but {members[0]} with "
                    f"{key}={reference.get(key)!r}: start every rank with the same command "
                    "and the same vllm-mlx version")


def join_group(backend: str, timeout: float, fingerprint: dict[str, Any],
               rank_hint: int = 0) -> Group:
    """Connect this process to its group and check the ranks agree; raise GroupError."""
    handle = _init(backend, timeout, rank_hint)
    record = {"host": socket.gethostname(), "pid": os.getpid(), "fingerprint": fingerprint}
    try:
        records = _exchange(handle, record)
    except RuntimeError as exc:
        raise GroupError(f"rank {handle.rank()}: the group handshake failed: {exc}") from exc
    labels = launched_labels(len(records))
    members = [Member(i, _label(labels, i), str(r.get("host", "")), int(r.get("pid", 0)))
               for i, r in enumerate(records)]
    _check_agreement(records, members)
    return Group(handle, handle.rank(), backend, tuple(members))
