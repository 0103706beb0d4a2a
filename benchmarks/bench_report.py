"""Machine description and ``RESULTS.md`` section updates shared by the benchmarks.

Contract:

* :func:`machine_line` describes the machine in one line: CPU model (``/proc/cpuinfo`` on
  Linux, ``sysctl`` on macOS), logical cores, RAM, OS, Python, load average at call time.
* :func:`header` is the markdown preamble of one result: date (UTC), machine, the exact
  command line, the git commit (flagging uncommitted changes), and a note (e.g. "measured
  under load").
* :func:`write_section` replaces the block between ``<!-- BEGIN key -->`` and
  ``<!-- END key -->`` in a markdown file, or appends it; the rest of the file is untouched.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path

RESULTS_MD = Path(__file__).resolve().parent / "RESULTS.md"


def _cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    if sys.platform == "darwin":
        out = subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True,
                             text=True, check=False)
        return out.stdout.strip() or platform.processor()
    return platform.processor() or platform.machine()


def _ram_gib() -> float:
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024**2
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3
    except (ValueError, OSError):
        return 0.0


def machine_line() -> str:
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (f"{_cpu_model()}, {os.cpu_count()} logical cores, {_ram_gib():.1f} GiB RAM, "
            f"{platform.system()} {platform.machine()}, Python {platform.python_version()}, "
            f"load average {load}")


def code_version() -> str:
    """The checkout's commit, and whether the work tree had uncommitted changes."""
    repo = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=repo, text=True,
                              capture_output=True, timeout=30, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=repo, text=True, capture_output=True, timeout=30,
                               check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown (not a git checkout)"
    return f"{head}" + (" + uncommitted changes" if dirty else "")


def command_line() -> str:
    return "python " + " ".join(shlex.quote(a) for a in sys.argv)


def header(title: str, note: str = "") -> str:
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [f"### {title}", "", f"- Date: {now}", f"- Machine: {machine_line()}",
             f"- Command: `{command_line()}`", f"- Code: {code_version()}"]
    if note:
        lines.append(f"- Note: {note}")
    return "\n".join(lines) + "\n"


def write_section(key: str, markdown: str, path: Path = RESULTS_MD) -> None:
    """Replace (or append) the ``key`` block of ``path`` with ``markdown``."""
    begin, end = f"<!-- BEGIN {key} -->", f"<!-- END {key} -->"
    block = f"{begin}\n{markdown.rstrip()}\n{end}\n"
    text = path.read_text() if path.exists() else "# Benchmark results\n\n"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        tail = rest.split(end, 1)[1].lstrip("\n")
        text = head + block + ("\n" + tail if tail else "")
    else:
        text = text.rstrip("\n") + "\n\n" + block
    path.write_text(text)
