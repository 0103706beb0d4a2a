"""OpenBLAS is loaded for MLX with a short idle spin, and the environment is left as it was."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from vllm_mlx import blas

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="OpenBLAS is loaded on Linux only")

_PROBE = """
import ctypes, json, os
from vllm_mlx.blas import activate_fast_blas
info = activate_fast_blas()
timeout = ctypes.CDLL(info.path).openblas_thread_timeout() if info.path else None
print(json.dumps({"name": info.name, "timeout": timeout,
                  "env": os.environ.get("OPENBLAS_THREAD_TIMEOUT")}))
"""


def _probe(**env: str) -> dict:
    clean = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    out = subprocess.run([sys.executable, "-c", _PROBE], env={**clean, **env},
                         capture_output=True, text=True, timeout=120, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    if result["name"] != "openblas":
        pytest.skip(f"OpenBLAS not in use here: {result['name']}")
    return result


def test_openblas_workers_spin_briefly_and_the_environment_is_restored() -> None:
    result = _probe()
    assert result["timeout"] == int(blas.THREAD_TIMEOUT)
    assert result["env"] is None


def test_a_spin_the_user_chose_is_kept() -> None:
    result = _probe(OPENBLAS_THREAD_TIMEOUT="20")
    assert result["timeout"] == 20
    assert result["env"] == "20"
