"""The tiny tests' byte-identity check: a folder built again holds the same files.

``assert_same_files(first, second)`` compares two folders file by file (names and bytes);
``rebuilt_twice(tmp_path, arch, **options)`` builds ``arch`` into two folders, asserts
that they are the same, and returns the first.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vllm_mlx.tiny import build_tiny_model


def assert_same_files(first: Path, second: Path) -> None:
    names = sorted(p.name for p in first.iterdir())
    assert names == sorted(p.name for p in second.iterdir())
    for name in names:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name


def rebuilt_twice(tmp_path: Path, arch: str, **options: Any) -> Path:
    first = build_tiny_model(tmp_path / "a", arch, **options)
    assert_same_files(first, build_tiny_model(tmp_path / "b", arch, **options))
    return first
