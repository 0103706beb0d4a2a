"""``vllm-mlx serve MODEL --hostfile FILE``: start one process per host with ``mlx.launch``.

The hostfile is MLX's own (read by ``mlx.launch``)::

    [{"ssh": "mac1.local", "ips": ["192.168.1.10"]},
     {"ssh": "mac2.local", "ips": ["192.168.1.11"]}]

(or ``{"backend": "ring", "envs": [...], "hosts": [...]}``). Entry ``i`` is rank ``i``;
rank 0 runs the HTTP server. ``ssh`` is where ``mlx.launch`` starts the process
(``127.0.0.1``: here, without ssh); ``ips`` are the addresses the ring backend connects.

:func:`launched_rank` and :func:`launched_labels` tell a started process its rank and how
to name each rank's host (``VLLM_MLX_HOSTS``, which the launcher sets from the hostfile).
:func:`read_hostfile` checks the file so mistakes are reported before anything starts;
:func:`launcher_command` builds the ``mlx.launch`` command that re-runs this very
``vllm-mlx`` command line on every host (``MLX_RANK`` tells a launched process it is a
rank); :func:`run_launcher` runs it, relays its output, and exits non-zero when any rank
did (``mlx.launch`` itself always exits 0, so its per-rank report lines are read).

Stopping: ``mlx.launch`` and the local ranks start with SIGINT ignored; only rank 0's
HTTP server installs a handler. The first Ctrl-C / SIGTERM here sends SIGINT to the local
processes (rank 0 drains its requests, then tells the other ranks to stop) and a Ctrl-C
character through ``mlx.launch``'s stdin forwarding (a rank on another host gets it from
its ssh terminal); a second one sends SIGTERM, a third SIGKILL.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

HOSTS_ENV = "VLLM_MLX_HOSTS"  # JSON list of one label per rank, for messages naming hosts
BACKENDS = ("ring", "mpi")
_RANK_ENV = ("MLX_RANK", "OMPI_COMM_WORLD_RANK", "PMI_RANK")
_MEANINGS = {1: "the group failed (see its message above)",
             2: "could not start (see its message above)",
             255: "ssh could not reach or log in to this host",
             -9: "killed", -15: "stopped by mlx.launch after another rank failed"}
_RANK_REPORT = re.compile(rb"Node with rank (\d+) (?:exited with code (-?\d+)|was killed)")


class HostfileError(ValueError):
    """The hostfile cannot be used; the message says which entry and why."""


@dataclass(frozen=True)
class HostEntry:
    ssh: str
    ips: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        extra = [ip for ip in self.ips if ip != self.ssh]
        return f"{self.ssh} ({', '.join(extra)})" if extra else self.ssh


@dataclass(frozen=True)
class Hostfile:
    hosts: tuple[HostEntry, ...]
    backend: str | None = None  # the file's "backend", if any


def launched_rank() -> int | None:
    """This process's rank when a launcher (mlx.launch, mpirun) started it, else None."""
    for name in _RANK_ENV:
        value = os.environ.get(name)
        if value is not None and value.strip().isdigit():
            return int(value)
    return None


def launched_labels(size_hint: int = 0) -> list[str]:
    """Per-rank labels known before the group forms (may be empty)."""
    raw = os.environ.get(HOSTS_ENV)
    if raw:
        try:
            labels = json.loads(raw)
            if isinstance(labels, list) and all(isinstance(x, str) for x in labels):
                return labels
        except json.JSONDecodeError:
            pass
    path = os.environ.get("MLX_HOSTFILE")
    if path and os.path.isfile(path):
        try:
            with open(path) as handle:
                ring = json.loads(handle.read() or "[]")
            return [", ".join(addrs) if isinstance(addrs, list) else str(addrs)
                    for addrs in ring]
        except (OSError, json.JSONDecodeError):
            pass
    return [f"rank {i}" for i in range(size_hint)]


def _entry(index: int, raw: object) -> HostEntry:
    if not isinstance(raw, dict) or not isinstance(raw.get("ssh"), str) or not raw["ssh"]:
        raise HostfileError(f"host {index} must be an object with an \"ssh\" host name")
    ips = raw.get("ips", [])
    if not isinstance(ips, list) or not all(isinstance(ip, str) and ip for ip in ips):
        raise HostfileError(f"host {index} ({raw['ssh']}): \"ips\" must be a list of addresses")
    return HostEntry(raw["ssh"], tuple(ips))


def read_hostfile(path: Path, backend: str | None) -> Hostfile:
    """Parse and check ``path`` for ``backend`` (None: the file's, else ring)."""
    try:
        data = json.loads(Path(path).read_text())
    except OSError as exc:
        raise HostfileError(f"cannot read the hostfile {path}: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise HostfileError(f"the hostfile {path} is not JSON: {exc}") from exc
    file_backend = (data.get("backend") or None) if isinstance(data, dict) else None
    raw_hosts = data.get("hosts") if isinstance(data, dict) else data
    if not isinstance(raw_hosts, list):
        raise HostfileError(f"{path}: expected a list of hosts, or {{\"hosts\": [...]}}")
    hosts = tuple(_entry(i, raw) for i, raw in enumerate(raw_hosts))
    if len(hosts) < 2:
        raise HostfileError(f"{path} lists {len(hosts)} host(s); a group needs at least 2 "
                            "(serve on one machine without --hostfile)")
    chosen = backend or file_backend or "ring"
    if chosen not in BACKENDS:
        raise HostfileError(f"backend {chosen!r} is not supported: use one of {BACKENDS}")
    if chosen == "ring":
        missing = [f"{i} ({h.ssh})" for i, h in enumerate(hosts) if not h.ips]
        if missing:
            raise HostfileError("the ring backend connects hosts by IP address: add \"ips\" "
                                f"to host {', '.join(missing)}")
    return Hostfile(hosts, file_backend)


def find_mlx_launch() -> str:
    beside = Path(sys.executable).with_name("mlx.launch")
    found = str(beside) if beside.is_file() else shutil.which("mlx.launch")
    if not found:
        raise HostfileError("mlx.launch was not found (it comes with the mlx package)")
    return found


def launcher_command(hostfile_path: Path, hostfile: Hostfile, backend: str, group_port: int,
                     argv: Sequence[str]) -> list[str]:
    """The mlx.launch command that runs ``vllm-mlx <argv>`` once per host."""
    labels = json.dumps([h.label for h in hostfile.hosts])
    rank_command = [sys.executable, "-m", "vllm_mlx.cli", *argv]
    return [find_mlx_launch(), "--hostfile", str(hostfile_path), "--backend", backend,
            "--starting-port", str(group_port), "--env", f"{HOSTS_ENV}={labels}",
            "--env", "PYTHONUNBUFFERED=1", "--", *rank_command]


def _relay(stream: object, failures: dict[int, int]) -> None:
    """Copy the launcher's stderr to ours, noting ranks it reports as failed."""
    for line in iter(stream.readline, b""):  # type: ignore[attr-defined]
        sys.stderr.buffer.write(line)
        sys.stderr.buffer.flush()
        match = _RANK_REPORT.search(line)
        if match:
            code = int(match.group(2)) if match.group(2) is not None else -9
            if code != 0:
                failures[int(match.group(1))] = code


def _stop_group(process: subprocess.Popen, grace: float = 20.0) -> None:
    """After the launcher ends, give its ranks ``grace`` seconds, then kill what is left."""
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        try:
            os.killpg(process.pid, 0)
        except (ProcessLookupError, PermissionError):
            return
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # inherited by mlx.launch and the ranks


def describe_failures(failures: dict[int, int], labels: Sequence[str]) -> str:
    """One line naming each failed rank's host, and what its exit status means."""
    parts = []
    for rank, code in sorted(failures.items()):
        host = f" ({labels[rank]})" if rank < len(labels) else ""
        meaning = _MEANINGS.get(code, f"signal {-code}" if code < 0 else "")
        parts.append(f"rank {rank}{host} exited with {code}" + (f": {meaning}" if meaning
                                                                 else ""))
    return "the group stopped: " + "; ".join(parts)


def run_launcher(command: list[str], labels: Sequence[str] = ()) -> int:
    """Run ``mlx.launch``: 0 when every rank exited cleanly, 2 when one could not start,
    1 otherwise."""
    print("starting the group: " + " ".join(command), file=sys.stderr, flush=True)
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stderr=subprocess.PIPE,
                               start_new_session=True, preexec_fn=_ignore_sigint)
    interrupts = 0

    def forward(signum: int, frame: FrameType | None) -> None:
        nonlocal interrupts
        interrupts += 1
        sig = (signal.SIGINT, signal.SIGTERM, signal.SIGKILL)[min(interrupts, 3) - 1]
        if interrupts == 1 and process.stdin is not None:
            with contextlib.suppress(OSError):  # remote ranks: ^C on their ssh terminal
                process.stdin.write(b"\x03")
                process.stdin.flush()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    failures: dict[int, int] = {}
    try:
        _relay(process.stderr, failures)
        process.wait()
        _stop_group(process)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if failures:
        print(f"error: {describe_failures(failures, labels)}", file=sys.stderr, flush=True)
        return 2 if {2, 255} & set(failures.values()) else 1  # 2: a rank could not start
    return 0
