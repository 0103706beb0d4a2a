"""Install, start, health-check and stop the servers the benchmarks compare (loopback only).

Servers (:data:`SERVERS`), all loading the same model folder:

* ``ours``: ``python -m vllm_mlx.cli serve DIR`` from this checkout, with this interpreter.
* ``vllm-mlx-0.6.0``: the PyPI release ``vllm-mlx==0.6.0`` in ``.bench-venvs/vllm-mlx-0.6.0``
  (created on first use; on Linux ``torch==2.13.0`` first, the CPU wheel on the reference
  machine, then ``vllm-mlx==0.6.0 mlx[cpu] torch==2.13.0 torchvision==0.28.*`` so pip does not
  pull a multi-GB CUDA torch; a torchvision that then fails to import is uninstalled, as it
  would break ``transformers.AutoProcessor`` and so every vision model),
  ``vllm-mlx serve DIR --continuous-batching``. Its default engine
  answers a second concurrent request with 503, so the batching engine is the fair peer. It
  has no ``ignore_eos``; clients send ``logit_bias`` on the EOS ids instead. It runs with
  ``HOME`` set inside its venv so its on-disk prefix cache never lands in the user cache.
* ``mlx-vlm``: mlx-vlm's own server, ``python -m mlx_vlm.server --model DIR`` (continuous
  batching on by default, no ``ignore_eos``: ``logit_bias`` as above). It runs from this
  interpreter's environment: mlx-vlm is a dependency of ours, so it is the same MLX build and
  needs no second install (``running(..., mlx_vlm_python=...)`` picks another interpreter).

BLAS (Linux): ours loads OpenBLAS before MLX (``vllm_mlx.blas``); the peers would otherwise
run on the ``mlx[cpu]`` wheel's reference BLAS (~30x slower fp32 GEMM) and the comparison
would measure BLAS, not serving. ``blas="same"`` (default) gives the peers the very same
OpenBLAS via ``LD_PRELOAD``, with the same short worker spin as ours
(``OPENBLAS_THREAD_TIMEOUT``, see ``vllm_mlx.blas``); ``blas="same-library"`` preloads the
library alone, so the peers' OpenBLAS spins as long as it does by default; ``blas="stock"``
runs every server, ours included (``--no-fast-blas``), on the reference BLAS. Nothing is
changed on macOS.

Contract:

* :func:`resolve_model` maps ``tiny:ARCH[:PRESET]`` to the folder built by
  ``vllm_mlx.tiny.ensure_tiny_model`` (built once), or returns an existing folder.
* :func:`ensure_peer_venv` creates/reuses a peer's venv; it raises :class:`PeerUnavailable`
  with the exact reason (pip's last lines, the import error) and never half-reports success.
* :func:`running` is a context manager: starts one server on a free 127.0.0.1 port, waits
  (bounded) until ``/health`` answers 200, yields a :class:`Server`, and stops the process
  group (SIGTERM, then SIGKILL) on exit; on Linux the server also gets SIGTERM if the
  benchmark process dies first. A server that exits or never gets healthy raises
  :class:`PeerUnavailable` with its log tail.
* :func:`eos_token_ids` reads a model folder's EOS ids (``config.json``,
  ``generation_config.json``, ``tokenizer_config.json`` + ``tokenizer.json``).

CLI::

    python benchmarks/peers.py install                      # the vllm-mlx 0.6.0 venv
    python benchmarks/peers.py check [--model tiny:qwen3] [--servers ours,vllm-mlx-0.6.0,mlx-vlm]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from vllm_mlx.blas import THREAD_TIMEOUT as BLAS_THREAD_TIMEOUT

REPO = Path(__file__).resolve().parent.parent
BLAS_CHOICES = ("same", "same-library", "stock")
VENV_ROOT = REPO / ".bench-venvs"
SERVERS = ("ours", "vllm-mlx-0.6.0", "mlx-vlm")
PEER_VENVS = {"vllm-mlx-0.6.0": "vllm-mlx==0.6.0"}
# torch==2.13.0 resolves to a local CPU wheel on the reference machine (Python 3.11, x86_64);
# torchvision 0.28 is its pair (the newer one would drag in a multi-GB CUDA torch).
LINUX_TORCH = ("torch==2.13.0", "torchvision==0.28.*")
INSTALL_TIMEOUT_S = 1800
STARTUP_TIMEOUT_S = 600.0
STOP_TIMEOUT_S = 15.0
LOG_TAIL_LINES = 25


class PeerUnavailable(RuntimeError):
    """A server that cannot be installed, started or made healthy; the message says why."""

    def summary(self) -> str:
        """The first line and the last error line of the message (for result tables)."""
        lines = [ln.strip() for ln in str(self).splitlines() if ln.strip()]
        if not lines:
            return "unknown reason"
        errors = [ln for ln in lines[1:] if "error" in ln.lower() or "exception" in ln.lower()]
        return lines[0] + (f" ... {errors[-1]}" if errors else "")


@dataclass
class Server:
    """One running server."""

    name: str
    base_url: str
    request_model: str
    supports_ignore_eos: bool
    log_path: Path
    pid: int
    notes: list[str] = field(default_factory=list)


# ----------------------------------------------------------------------------- models


def resolve_model(ref: str) -> Path:
    """The model folder for ``tiny:ARCH[:PRESET]`` (built on first use) or a folder path."""
    if ref.startswith("tiny:"):
        parts = ref.split(":")
        if len(parts) not in (2, 3):
            raise ValueError(f"expected tiny:ARCH or tiny:ARCH:PRESET, got {ref!r}")
        from vllm_mlx.tiny import ensure_tiny_model

        return Path(ensure_tiny_model(parts[1], parts[2] if len(parts) == 3 else "tiny"))
    path = Path(ref).expanduser()
    if not (path / "config.json").is_file():
        raise ValueError(f"{ref!r} is neither tiny:ARCH[:PRESET] nor a model folder")
    return path.resolve()


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _ids(value: object) -> set[int]:
    if isinstance(value, int):
        return {value}
    if isinstance(value, list):
        return {v for v in value if isinstance(v, int)}
    return set()


def eos_token_ids(model_dir: Path) -> list[int]:
    """EOS token ids declared anywhere in the folder (text config nested or not)."""
    ids: set[int] = set()
    config = _read_json(model_dir / "config.json")
    for section in (config, config.get("text_config") or {}):
        ids |= _ids(section.get("eos_token_id"))
    ids |= _ids(_read_json(model_dir / "generation_config.json").get("eos_token_id"))
    eos = _read_json(model_dir / "tokenizer_config.json").get("eos_token")
    eos_text = eos.get("content") if isinstance(eos, dict) else eos
    if isinstance(eos_text, str):
        added = _read_json(model_dir / "tokenizer.json").get("added_tokens") or []
        ids |= {t["id"] for t in added if isinstance(t, dict) and t.get("content") == eos_text}
    return sorted(ids)


# ----------------------------------------------------------------------------- venvs


def venv_python(name: str) -> Path:
    return VENV_ROOT / name / "bin" / "python"


def _marker(name: str) -> Path:
    return VENV_ROOT / name / ".bench-install.json"


def _tail(text: str, lines: int = LOG_TAIL_LINES) -> str:
    kept = [ln for ln in text.splitlines() if not ln.startswith("WARNING: Location")]
    return "\n".join(kept[-lines:])


def _pip(python: Path, args: list[str], log: Path) -> None:
    cmd = [str(python), "-m", "pip", "install", "--disable-pip-version-check", *args]
    with log.open("a") as out:
        out.write(f"\n$ {' '.join(cmd)}\n")
        out.flush()
        try:
            proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT,
                                  timeout=INSTALL_TIMEOUT_S, cwd=VENV_ROOT)
        except subprocess.TimeoutExpired as exc:
            raise PeerUnavailable(f"pip timed out after {INSTALL_TIMEOUT_S}s: {cmd}") from exc
    if proc.returncode != 0:
        raise PeerUnavailable(f"pip install {' '.join(args)} failed (exit {proc.returncode}):\n"
                              f"{_tail(log.read_text())}")


def _install_steps(pin: str) -> list[list[str]]:
    if sys.platform.startswith("linux"):
        return [[LINUX_TORCH[0]], [pin, "mlx[cpu]", *LINUX_TORCH]]
    return [[pin]]


_PROBE = (
    "import importlib.metadata as m, json\n"
    "out = {p: m.version(p) for p in ('vllm-mlx', 'mlx', 'mlx-lm', 'mlx-vlm', 'transformers')}\n"
    "import vllm_mlx.cli\n"
    "for mod in ('torchvision', 'mlx_vlm'):\n"
    "    try:\n"
    "        __import__(mod)\n"
    "        out[mod + '_import'] = 'ok'\n"
    "    except Exception as exc:\n"
    "        out[mod + '_import'] = f'{type(exc).__name__}: {exc}'[:300]\n"
    "print(json.dumps(out))\n"
)


def _probe(python: Path) -> dict[str, str]:
    """Versions in a venv, imported from outside this checkout (cwd must not shadow it)."""
    proc = subprocess.run([str(python), "-c", _PROBE], capture_output=True, text=True,
                          timeout=300, cwd=python.parent.parent)
    if proc.returncode != 0:
        raise PeerUnavailable(f"installed, but `import vllm_mlx.cli` fails:\n{_tail(proc.stderr)}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def ensure_peer_venv(name: str, *, reinstall: bool = False) -> dict[str, str]:
    """Create/reuse the peer's venv; return its package versions (or raise with the reason)."""
    pin = PEER_VENVS[name]
    python = venv_python(name)
    marker = _marker(name)
    if python.exists() and marker.exists() and not reinstall:
        return json.loads(marker.read_text())
    VENV_ROOT.mkdir(exist_ok=True)
    log = VENV_ROOT / f"{name}.install.log"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV_ROOT / name)], check=True,
                       timeout=300)
    for step in _install_steps(pin):
        _pip(python, step, log)
    versions = _probe(python)
    if versions.get("torchvision_import", "ok") != "ok":
        versions = _drop_torchvision(python, versions["torchvision_import"], log)
    marker.write_text(json.dumps(versions, indent=1))
    return versions


def _drop_torchvision(python: Path, error: str, log: Path) -> dict[str, str]:
    """Uninstall a torchvision that cannot import (PyPI's wheel beside a CPU torch build).

    A broken torchvision is worse than none: transformers then fails to import
    ``AutoProcessor``, so mlx-vlm (and every vision model) fails; without it transformers
    uses its PIL processors, as in our own environment, which has no torchvision.
    """
    with log.open("a") as out:
        subprocess.run([str(python), "-m", "pip", "uninstall", "-y", "torchvision"],
                       stdout=out, stderr=subprocess.STDOUT, timeout=300, check=False)
    versions = _probe(python)
    versions["torchvision"] = f"uninstalled after install: import failed with {error}"
    return versions


# ----------------------------------------------------------------------------- servers


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def openblas_path() -> str | None:
    """The OpenBLAS our server loads (Linux), for LD_PRELOAD into the peers."""
    if not sys.platform.startswith("linux"):
        return None
    from vllm_mlx.blas import activate_fast_blas

    return activate_fast_blas().path


def _command(name: str, model_dir: Path, port: int, blas: str,
             mlx_vlm_python: str) -> tuple[list[str], dict[str, str], str, bool]:
    """(argv, extra env, request model name, honours ignore_eos) for one server."""
    common = ["--host", "127.0.0.1", "--port", str(port)]
    if name == "ours":
        argv = [sys.executable, "-m", "vllm_mlx.cli", "serve", str(model_dir), *common,
                "--log-level", "warning"]
        return argv + (["--no-fast-blas"] if blas == "stock" else []), {}, "default", True
    if name == "vllm-mlx-0.6.0":
        home = VENV_ROOT / name / "home"
        home.mkdir(parents=True, exist_ok=True)
        argv = [str(VENV_ROOT / name / "bin" / "vllm-mlx"), "serve", str(model_dir), *common,
                "--continuous-batching"]
        return argv, {"HOME": str(home)}, str(model_dir), False
    if name == "mlx-vlm":
        argv = [mlx_vlm_python, "-m", "mlx_vlm.server", "--model", str(model_dir), *common,
                "--log-level", "WARNING"]
        return argv, {}, str(model_dir), False
    raise ValueError(f"unknown server {name!r}; known: {', '.join(SERVERS)}")


def _versions_note(name: str, mlx_vlm_python: str) -> str:
    if name == "vllm-mlx-0.6.0":
        v = json.loads(_marker(name).read_text())
        dropped = ("; torchvision uninstalled (its PyPI wheel does not import beside the CPU "
                   "torch)" if "torchvision" in v else "")
        return (f"vllm-mlx {v['vllm-mlx']} (mlx {v['mlx']}, mlx-lm {v['mlx-lm']}, "
                f"mlx-vlm {v['mlx-vlm']}) in .bench-venvs/{name}{dropped}")
    code = ("import importlib.metadata as m; print(' '.join(p + ' ' + m.version(p) for p in "
            "('mlx', 'mlx-lm', 'mlx-vlm')))")
    python = sys.executable if name == "ours" else mlx_vlm_python
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=VENV_ROOT if VENV_ROOT.exists() else None)
    env = "this checkout" if name == "ours" else f"{python}"
    return f"{name}: {out.stdout.strip() or out.stderr.strip()[-200:]} ({env})"


def _die_with_parent() -> None:
    """In the child (Linux): get SIGTERM if the benchmark dies without stopping us."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None).prctl(pr_set_pdeathsig, signal.SIGTERM)


def _wait_healthy(proc: subprocess.Popen, base_url: str, log: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise PeerUnavailable(f"server exited with code {proc.returncode} before /health "
                                  f"answered:\n{_tail(log.read_text(errors='replace'))}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{base_url}/health", timeout=2).status_code == 200:
                return
        time.sleep(0.5)
    raise PeerUnavailable(f"/health did not answer 200 within {timeout_s:.0f}s:\n"
                          f"{_tail(log.read_text(errors='replace'))}")


def _blas_mapped(pid: int) -> str:
    """Which BLAS libraries the server process has mapped (Linux), to confirm LD_PRELOAD."""
    try:
        maps = Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return "mapped BLAS: unknown"
    names = {Path(line.split()[-1]).name for line in maps.splitlines() if "/" in line}
    libs = sorted(n for n in names if n.startswith("lib") and "blas" in n.lower())
    return f"mapped BLAS: {', '.join(libs) or 'none'}"


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=STOP_TIMEOUT_S)


@contextlib.contextmanager
def running(name: str, model_dir: Path, *, log_dir: Path, blas: str = "same",
            mlx_vlm_python: str = sys.executable,
            startup_timeout_s: float = STARTUP_TIMEOUT_S) -> Iterator[Server]:
    """Start ``name`` on a free loopback port, wait for health, yield it, stop it."""
    if name in PEER_VENVS:
        ensure_peer_venv(name)
    port = free_port()
    argv, extra, request_model, ignore_eos = _command(name, model_dir, port, blas,
                                                      mlx_vlm_python)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1", **extra}
    env.pop("PYTHONPATH", None)
    notes = [_versions_note(name, mlx_vlm_python)]
    preload = openblas_path() if blas.startswith("same") and name != "ours" else None
    if preload:
        env["LD_PRELOAD"] = preload
        notes.append(f"LD_PRELOAD={preload} (same OpenBLAS as ours)")
        if blas == "same":
            env.setdefault("OPENBLAS_THREAD_TIMEOUT", BLAS_THREAD_TIMEOUT)
            notes.append(f"OPENBLAS_THREAD_TIMEOUT={env['OPENBLAS_THREAD_TIMEOUT']} (as ours)")
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / f"{name}-{port}.log"
    cwd = REPO if name == "ours" else log_dir  # a peer must not import this checkout
    with log.open("w") as out:
        out.write(f"$ {' '.join(argv)}\n")
        out.flush()
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd,
                                start_new_session=True, preexec_fn=_die_with_parent)
    try:
        base_url = f"http://127.0.0.1:{port}"
        _wait_healthy(proc, base_url, log, startup_timeout_s)
        notes.append(_blas_mapped(proc.pid))
        yield Server(name, base_url, request_model, ignore_eos, log, proc.pid, notes)
    finally:
        _stop(proc)


# ----------------------------------------------------------------------------- CLI


def _check_one(name: str, model_dir: Path, args: argparse.Namespace) -> str:
    eos = eos_token_ids(model_dir)
    try:
        with running(name, model_dir, log_dir=Path(args.log_dir), blas=args.blas) as server:
            body = {"model": server.request_model, "max_tokens": 8, "temperature": 0,
                    "messages": [{"role": "user", "content": "Say hello."}],
                    "logit_bias": {str(i): -100 for i in eos}}
            resp = httpx.post(f"{server.base_url}/v1/chat/completions", json=body, timeout=300)
            usage = resp.json().get("usage") if resp.status_code == 200 else resp.text[:300]
            return f"{name}: HTTP {resp.status_code}, usage {usage}; {'; '.join(server.notes)}"
    except PeerUnavailable as exc:
        return f"{name}: UNAVAILABLE: {exc}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    inst = sub.add_parser("install", help="create/reuse the peer venvs")
    inst.add_argument("--peer", action="append", choices=sorted(PEER_VENVS))
    inst.add_argument("--reinstall", action="store_true")
    chk = sub.add_parser("check", help="start each server, send one request, stop it")
    chk.add_argument("--model", default="tiny:qwen3")
    chk.add_argument("--servers", default=",".join(SERVERS))
    chk.add_argument("--blas", choices=BLAS_CHOICES, default="same")
    chk.add_argument("--log-dir", default=str(VENV_ROOT / "logs"))
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.command == "install":
        for name in args.peer or sorted(PEER_VENVS):
            try:
                print(f"{name}: {ensure_peer_venv(name, reinstall=args.reinstall)}")
            except PeerUnavailable as exc:
                print(f"{name}: UNAVAILABLE: {exc}")
        return 0
    model_dir = resolve_model(args.model)
    print(f"model {args.model} -> {model_dir}; machine {platform.machine()} {sys.platform}")
    for name in args.servers.split(","):
        print(_check_one(name.strip(), model_dir, args), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
