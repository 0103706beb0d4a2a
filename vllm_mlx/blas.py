"""Route MLX's CPU matrix products to an optimized BLAS on Linux.

The Linux ``mlx[cpu]`` wheel links the netlib reference BLAS (~5 GFLOP/s for fp32 GEMM
on two cores). Loading OpenBLAS with ``RTLD_GLOBAL`` *before* ``mlx.core`` is imported
makes the dynamic linker bind MLX's ``cblas_*`` calls to it instead (~30x faster).

``cmeel-openblas`` (a Linux-only dependency) ships ``libopenblas.so.0``, which needs
``libgfortran.so.5``. When the system has no libgfortran, a copy of the library is made
in the user cache with that dependency pointed at the libgfortran the MLX wheel already
bundles (via ``patchelf``), so no system package is needed.

OpenBLAS's idle worker threads spin for about 2^28 cycles (tenths of a second) before they
sleep. Between MLX's small decode-step products that spinning takes a whole core from the
threads that build and run the next step: on two cores it cost batched decode of small
models about a third of its speed. So the library is loaded with a spin of 2^4 cycles
(``OPENBLAS_THREAD_TIMEOUT``, which OpenBLAS reads only while it loads; a value the user
already set is kept, and the process environment is restored afterwards).

Contract: call :func:`activate_fast_blas` before anything imports ``mlx.core``; it is
idempotent, never raises, and reports what is in use. On macOS it does nothing (MLX uses
Metal/Accelerate there).
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

from .paths import cache_dir

logger = logging.getLogger(__name__)

_OPENBLAS_RELATIVE = Path("cmeel.prefix/lib/libopenblas.so.0")
_THREAD_TIMEOUT_VAR = "OPENBLAS_THREAD_TIMEOUT"
THREAD_TIMEOUT = "4"  # log2 of the cycles an idle worker spins; OpenBLAS's floor


@dataclass(frozen=True)
class BlasInfo:
    """Which BLAS MLX's CPU kernels will call, and why."""

    name: str  # "openblas", "stock", or "accelerate/metal"
    path: str | None
    reason: str


def _site_packages() -> list[Path]:
    paths = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    return [Path(p) for p in paths]


def _find_file(relative: Path) -> Path | None:
    for root in _site_packages():
        candidate = root / relative
        if candidate.exists():
            return candidate
    return None


def _bundled_gfortran() -> Path | None:
    for root in _site_packages():
        libs = root / "mlx_cpu.libs"
        if libs.is_dir():
            for candidate in sorted(libs.glob("libgfortran*.so*")):
                return candidate
    return None


def _patched_copy(openblas: Path, gfortran: Path, cache_dir: Path) -> Path:
    """A copy of ``openblas`` whose libgfortran dependency is an absolute path."""
    key = hashlib.sha256(f"{openblas}:{openblas.stat().st_mtime_ns}:{gfortran}".encode())
    target = cache_dir / key.hexdigest()[:16] / openblas.name
    if target.exists():
        return target
    patchelf = shutil.which("patchelf") or str(Path(sysconfig.get_path("scripts")) / "patchelf")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(f".tmp{os.getpid()}")
    shutil.copy2(openblas, tmp)
    subprocess.run(
        [patchelf, "--replace-needed", "libgfortran.so.5", str(gfortran), str(tmp)],
        check=True,
        capture_output=True,
    )
    os.replace(tmp, target)
    return target


def _default_cache_dir() -> Path:
    return cache_dir("blas")


def _dlopen(library: Path) -> None:
    """Load ``library`` globally, with a short worker spin unless the user chose one."""
    if _THREAD_TIMEOUT_VAR in os.environ:
        ctypes.CDLL(str(library), mode=ctypes.RTLD_GLOBAL)
        return
    os.environ[_THREAD_TIMEOUT_VAR] = THREAD_TIMEOUT  # read by OpenBLAS's constructor only
    try:
        ctypes.CDLL(str(library), mode=ctypes.RTLD_GLOBAL)
    finally:
        del os.environ[_THREAD_TIMEOUT_VAR]


def _load_openblas(cache_dir: Path) -> BlasInfo:
    openblas = _find_file(_OPENBLAS_RELATIVE)
    if openblas is None:
        return BlasInfo("stock", None, "cmeel-openblas is not installed")
    try:
        _dlopen(openblas)
        return BlasInfo("openblas", str(openblas), "loaded with the system libgfortran")
    except OSError as exc:
        if "libgfortran" not in str(exc):
            return BlasInfo("stock", None, f"OpenBLAS failed to load: {exc}")
    gfortran = _bundled_gfortran()
    if gfortran is None:
        return BlasInfo("stock", None, "no libgfortran found for OpenBLAS")
    try:
        patched = _patched_copy(openblas, gfortran, cache_dir)
        _dlopen(patched)
    except (OSError, subprocess.SubprocessError) as exc:
        return BlasInfo("stock", None, f"OpenBLAS could not be prepared: {exc}")
    return BlasInfo("openblas", str(patched), "loaded with MLX's bundled libgfortran")


_STATE: dict[str, BlasInfo] = {}  # process-wide fact: a library can be loaded only once


def activate_fast_blas(enabled: bool = True, *, cache_dir: Path | None = None) -> BlasInfo:
    """Load OpenBLAS for MLX if possible; return which BLAS is in use."""
    if "info" in _STATE:
        return _STATE["info"]
    if sys.platform == "darwin":
        info = BlasInfo("accelerate/metal", None, "macOS build of MLX")
    elif not enabled:
        info = BlasInfo("stock", None, "disabled by settings")
    elif "mlx.core" in sys.modules:
        info = BlasInfo("stock", None, "mlx.core was imported before BLAS activation")
    elif platform.machine() not in ("x86_64", "aarch64", "AMD64"):
        info = BlasInfo("stock", None, f"unsupported machine {platform.machine()}")
    else:
        info = _load_openblas(cache_dir or _default_cache_dir())
    _STATE["info"] = info
    logger.info("BLAS for MLX CPU kernels: %s (%s)", info.name, info.reason)
    return info
