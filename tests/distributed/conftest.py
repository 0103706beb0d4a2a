"""A real group on this machine: ``vllm-mlx serve --hostfile`` with two local ranks over
the ring backend (loopback TCP), started through mlx.launch like on two Macs."""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import Server, start_server, stop_server


def free_port_pair() -> int:
    """A port p with p and p + 1 free (the ring backend listens on one per rank)."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        if port >= 65535:
            continue
        with socket.socket() as first, socket.socket() as second:
            try:
                first.bind(("127.0.0.1", port))
                second.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise RuntimeError("no two consecutive free ports")


def local_hostfile(folder: Path, ranks: int = 2) -> Path:
    path = folder / "hosts.json"
    path.write_text(json.dumps([{"ssh": "127.0.0.1", "ips": ["127.0.0.1"]}] * ranks))
    return path


def start_group(model: str, folder: Path, *extra: str, timeout: float = 180.0) -> Server:
    args = [model, "--hostfile", str(local_hostfile(folder)), "--backend", "ring",
            "--group-port", str(free_port_pair()), "--group-timeout", "60", *extra]
    return start_server(args, folder / "server.log", timeout=timeout)


def rank_pid(server: Server, rank: int) -> int:
    match = re.search(rf"rank {rank} \(.*?\) of \d+ ready \(pid (\d+)", server.output())
    assert match, server.output()
    return int(match.group(1))


@pytest.fixture(scope="module")
def group_server(tmp_path_factory) -> Iterator[Server]:
    server = start_group("tiny:qwen3", tmp_path_factory.mktemp("group"))
    yield server
    if server.process.poll() is None:
        stop_server(server)
