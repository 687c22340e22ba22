"""BENCHMARKS.md is shared: each benchmark replaces only its own ``## ...`` section."""

from __future__ import annotations

import os
import platform
from datetime import UTC, datetime
from pathlib import Path


def section_header(heading: str, script: str, command: str, loads: list[str]) -> str:
    """The lines every section starts with: who writes it, the command, date, machine and load."""
    return f"""{heading}

_Written by `benchmarks/{script}`; rerunning it replaces this section only._

- Command: `{command}`
- Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC
- Machine: {platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} CPUs, \
{platform.platform()}; load average {" → ".join(loads)}"""


def replace_section(path: Path, heading: str, section: str) -> None:
    """Replace the section that starts with ``heading`` in ``path`` (or add it), keeping every other one."""
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    if not text.strip():
        text = "# Benchmarks\n\nFigures measured by `make bench`; each section is written by its benchmark.\n"
    lines = text.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.rstrip() == heading), None)
    if start is None:
        new = text.rstrip("\n") + "\n\n" + section
    else:
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
        rest = "".join(lines[end:])
        new = "".join(lines[:start]) + section + ("\n" + rest if rest else "")
    path.write_text(new.rstrip("\n") + "\n", encoding="utf-8")
