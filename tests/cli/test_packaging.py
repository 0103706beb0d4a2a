"""The project metadata uses an SPDX license string and ``license-files`` (a TOML table
is deprecated by setuptools and stops building in February 2027)."""

from __future__ import annotations

from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")
ROOT = Path(__file__).resolve().parents[2]


def test_license_is_an_spdx_string_with_its_file():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "Apache-2.0"
    files = project["license-files"]
    assert files and all(list(ROOT.glob(pattern)) for pattern in files)
    assert "Apache License" in (ROOT / "LICENSE").read_text()
