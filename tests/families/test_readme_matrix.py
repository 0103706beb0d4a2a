"""The README's support matrix is the script's output for today's registry: every tiny
arch has its row (regenerate with ``python scripts/support_matrix.py`` after adding one)."""

from __future__ import annotations

import re

from tests.conftest import REPO
from vllm_mlx.tiny import ARCHITECTURES


def test_every_registered_arch_has_a_row_and_no_other():
    readme = (REPO / "README.md").read_text()
    block = readme.split("<!-- support-matrix:start -->")[1].split("<!-- support-matrix:end -->")[0]
    rows = re.findall(r"^\| [^|]+ \| `tiny:(\w+)` \|", block, flags=re.MULTILINE)
    assert rows == list(ARCHITECTURES)
