"""Run the family checks and write the README's support matrix from their outcomes.

    python scripts/support_matrix.py            # run tests/families, rewrite README.md
    python scripts/support_matrix.py --check    # run, and exit 1 if README.md differs
    python scripts/support_matrix.py --fast     # leave out the slow archs (shown "skipped")

The matrix is never typed by hand: each cell is the outcome of one test of
``tests/families/test_matrix.py`` for one architecture (pass, fail, or not applicable),
plus what the tests recorded (prefix-cache tokens reused on a follow-up turn, whether
the family shares vision prefill passes). The block sits between two HTML comments in
README.md.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
START, END = "<!-- support-matrix:start -->", "<!-- support-matrix:end -->"
COLUMNS = (  # (test function, column heading)
    ("test_detection", "detected"),
    ("test_parity", "parity"),
    ("test_batched_equals_single", "batched"),
    ("test_other_image_never_gets_this_images_state", "media isolation"),
    ("test_follow_up_turn", "prefix cache"),
    ("test_over_http", "HTTP"),
    ("test_quantized_4bit", "4-bit"),
)
CASE = re.compile(r"(?P<test>\w+)\[(?P<arch>[^\]]+)\]")


def run_checks(junit: Path, fast: bool) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    marks = "not slow" if fast else "slow or not slow"
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                    "-m", marks, "-o", "junit_family=xunit1", "-rs",
                    "tests/families/test_matrix.py", f"--junitxml={junit}"],
                   cwd=REPO, env=env, check=False)


def outcomes(junit: Path) -> dict[tuple[str, str], tuple[str, dict[str, str]]]:
    """(test, arch) -> ("pass" | "fail" | "skip", recorded properties)."""
    found = {}
    for case in ET.parse(junit).iter("testcase"):
        match = CASE.fullmatch(case.get("name", ""))
        if not match:
            continue
        state = "pass"
        if case.find("failure") is not None or case.find("error") is not None:
            state = "fail"
        elif case.find("skipped") is not None:
            state = "skip"
        props = {p.get("name", ""): p.get("value", "") for p in case.iter("property")}
        found[(match["test"], match["arch"])] = (state, props)
    return found


def cell(test: str, result: tuple[str, dict[str, str]] | None) -> str:
    if result is None:
        return "n/a"
    state, props = result
    if state != "pass":
        return {"fail": "**fails**", "skip": "skipped"}[state]
    if test == "test_follow_up_turn":
        reused = int(props.get("prefix_tokens_reused", "0"))
        return f"yes ({reused} tokens reused)" if reused else "yes (cache off)"
    return "yes"


def render(results: dict[tuple[str, str], tuple[str, dict[str, str]]]) -> str:
    from vllm_mlx.tiny import ARCHITECTURES

    heads = ["family", "tiny arch", "kind", *(h for _, h in COLUMNS), "grouped vision prefill"]
    lines = ["| " + " | ".join(heads) + " |", "|" + "---|" * len(heads)]
    for name, arch in ARCHITECTURES.items():
        family = re.split(r":| \(", arch.notes)[0].strip(" .") or name
        ran = any(arch_name == name for _, arch_name in results)
        cells = [cell(test, results.get((test, name))) if ran else "not run"
                 for test, _ in COLUMNS]
        parity = results.get(("test_parity", name), ("", {}))[1]
        grouped = {"True": "yes", "False": "no"}.get(parity.get("grouped_vision_prefill", ""),
                                                      "n/a") if arch.is_vision else "n/a"
        kind = "vision" if arch.is_vision else "text"
        lines.append("| " + " | ".join([family, f"`tiny:{name}`", kind, *cells, grouped])
                     + " |")
    return "\n".join([START, *lines, END])


def replaced(text: str, block: str) -> str:
    if START not in text:
        raise SystemExit(f"README.md has no {START} marker")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    return head + block + tail


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if README.md differs")
    parser.add_argument("--junit", type=Path, help="use this JUnit XML instead of running")
    parser.add_argument("--fast", action="store_true", help="leave out the slow archs")
    parser.add_argument("--keep-junit", type=Path, help="also save the run's JUnit XML here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        junit = args.junit or Path(tmp) / "families.xml"
        if args.junit is None:
            run_checks(junit, args.fast)
            if args.keep_junit:
                args.keep_junit.write_bytes(junit.read_bytes())
        block = render(outcomes(junit))
    text = README.read_text()
    new = replaced(text, block)
    if args.check:
        print("README matrix is up to date" if new == text else "README matrix differs")
        return 0 if new == text else 1
    README.write_text(new)
    print(block)
    return 0


if __name__ == "__main__":
    sys.exit(main())
