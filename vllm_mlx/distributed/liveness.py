"""Is every peer rank still there? Cheap local checks for a step that takes long.

Why: when a rank dies in the middle of a forward pass, MLX 0.32's ring backend reports
"connection to a peer was lost" but the evaluation on the surviving ranks never returns
(a single collective does raise; a graph of several does not). So a slow step is checked
from the outside, without any traffic of our own:

- a peer on this machine (same host name in the handshake): is its process still alive
  (not gone, not a zombie)?
- the ring backend's own TCP connections to the peers (addresses from ``MLX_HOSTFILE``):
  is each still ESTABLISHED? A peer process that died, on any machine that is still up,
  has closed its end.

A peer whose machine vanished (power, cable) keeps its connection open: only the group
timeout catches that. :meth:`PeerProbe.dead_peer` never raises; it returns a sentence
naming the rank, or None.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from typing import Any

from .group import Group, Member

_ALIVE_TCP = "ESTABLISHED"


def _ring_addresses() -> list[set[tuple[str, int]]]:
    """Per rank, the (ip, port) pairs the ring backend listens on."""
    path = os.environ.get("MLX_HOSTFILE")
    if not path or not os.path.isfile(path):
        return []
    try:
        with open(path) as handle:
            ranks = json.loads(handle.read() or "[]")
        out = []
        for addresses in ranks:
            pairs = set()
            for address in addresses:
                host, _, port = str(address).rpartition(":")
                pairs.add((socket.gethostbyname(host), int(port)))
            out.append(pairs)
        return out
    except (OSError, ValueError):
        return []


def _process_gone(pid: int) -> bool:
    try:
        import psutil

        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except ImportError:
        pass
    except Exception:  # psutil.NoSuchProcess and friends: the process is gone
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _tcp_connections() -> list[Any]:
    try:
        import psutil

        process = psutil.Process()
        listing = getattr(process, "net_connections", None) or process.connections
        return list(listing(kind="tcp"))
    except Exception:  # no psutil, or the platform refuses: skip this check
        return []


class PeerProbe:
    def __init__(self, group: Group) -> None:
        self.group = group
        me = group.members[group.rank]
        self._local_peers = [m for m in group.peers() if m.host == me.host and m.pid]
        ring = _ring_addresses()
        self._own = ring[group.rank] if len(ring) == group.size else set()
        self._listen = {pair: rank for rank, pairs in enumerate(ring) if rank != group.rank
                        for pair in pairs} if self._own else {}
        self._watched = self._ring_links()  # (laddr, raddr) -> the peer it goes to

    def _peer_by_ip(self, ip: str) -> Member | None:
        ranks = {rank for (host, _), rank in self._listen.items() if host == ip}
        return self.group.members[ranks.pop()] if len(ranks) == 1 else None

    def _ring_links(self) -> dict[tuple[Any, Any], Member | None]:
        links: dict[tuple[Any, Any], Member | None] = {}
        for conn in _tcp_connections():
            if not conn.raddr or conn.status != _ALIVE_TCP:
                continue
            local, remote = (conn.laddr.ip, conn.laddr.port), (conn.raddr.ip, conn.raddr.port)
            if remote in self._listen:  # we connected to that rank's ring address
                links[(local, remote)] = self.group.members[self._listen[remote]]
            elif local in self._own:  # that rank connected to ours
                links[(local, remote)] = self._peer_by_ip(remote[0])
        return links

    def dead_peer(self) -> str | None:
        """A sentence naming a peer that is gone, or None if none is known to be."""
        with contextlib.suppress(Exception):
            for member in self._local_peers:
                if _process_gone(member.pid):
                    return f"{member} has exited (pid {member.pid})"
            if self._watched:
                alive = {((c.laddr.ip, c.laddr.port), (c.raddr.ip, c.raddr.port))
                         for c in _tcp_connections() if c.raddr and c.status == _ALIVE_TCP}
                for link, peer in self._watched.items():
                    if link not in alive:
                        who = str(peer) if peer else self.group.describe_peers()
                        return f"{who} closed its ring connection (its process ended)"
        return None
