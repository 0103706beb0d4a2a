"""Peer checks the watchdog runs while a step is slow: process gone, ring link closed."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import namedtuple

from vllm_mlx.distributed import liveness
from vllm_mlx.distributed.group import Group, Member
from vllm_mlx.distributed.liveness import PeerProbe

Addr = namedtuple("Addr", "ip port")
Conn = namedtuple("Conn", "laddr raddr status")


def _remote_group() -> Group:
    members = (Member(0, "mac1 (10.0.0.1)", "mac1", 100), Member(1, "mac2 (10.0.0.2)", "mac2",
                                                                   200))
    return Group(handle=None, rank=0, backend="ring", members=members)


def test_a_closed_ring_link_names_the_rank_it_went_to(tmp_path, monkeypatch):
    ring = tmp_path / "ring.json"
    ring.write_text(json.dumps([["10.0.0.1:5000"], ["10.0.0.2:5001"]]))
    monkeypatch.setenv("MLX_HOSTFILE", str(ring))
    links = [Conn(Addr("10.0.0.1", 40000), Addr("10.0.0.2", 5001), "ESTABLISHED"),
             Conn(Addr("10.0.0.1", 5000), Addr("10.0.0.2", 51234), "ESTABLISHED"),
             Conn(Addr("127.0.0.1", 8000), Addr("127.0.0.1", 5555), "ESTABLISHED"),
             Conn(Addr("10.0.0.1", 5000), (), "LISTEN")]
    monkeypatch.setattr(liveness, "_tcp_connections", lambda: list(links))
    probe = PeerProbe(_remote_group())
    assert len(probe._watched) == 2 and probe.dead_peer() is None
    links[2] = links[2]._replace(status="CLOSE_WAIT")  # an HTTP client: not ours to watch
    assert probe.dead_peer() is None
    links[1] = links[1]._replace(status="CLOSE_WAIT")  # rank 1's connection to us
    assert probe.dead_peer() == ("rank 1 (mac2 (10.0.0.2)) closed its ring connection "
                                 "(its process ended)")


def test_without_ring_addresses_or_psutil_nothing_is_claimed(monkeypatch):
    monkeypatch.delenv("MLX_HOSTFILE", raising=False)
    monkeypatch.setattr(liveness, "_tcp_connections", lambda: [])
    assert PeerProbe(_remote_group()).dead_peer() is None


def test_a_local_peer_whose_process_ended_is_named(monkeypatch):
    monkeypatch.delenv("MLX_HOSTFILE", raising=False)
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    members = (Member(0, "127.0.0.1", "here", 1), Member(1, "127.0.0.1", "here", child.pid))
    probe = PeerProbe(Group(handle=None, rank=0, backend="ring", members=members))
    assert probe.dead_peer() is None
    child.kill()
    child.wait()
    assert probe.dead_peer() == f"rank 1 (127.0.0.1, host here) has exited (pid {child.pid})"
