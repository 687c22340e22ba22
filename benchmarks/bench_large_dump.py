"""`tagwarden run --fleet` on a full-fidelity 100,000-instance describe-instances dump.

    .venv/bin/python benchmarks/bench_large_dump.py --instances 100000 --write BENCHMARKS.md

The dump is ``fleetgen.write_describe_instances`` (every field of the describe-instances sample,
plus the network interface a VPC instance has; ``indent=4`` as the AWS CLI prints it). Measured:

* the whole command, ``tagwarden run --fleet DUMP --json --out DIR``, in a child process under
  ``/usr/bin/time -v`` (peak RSS, wall time), as a user runs it;
* the loader alone, each in a child process of its own: ``json.loads`` of the whole file (what
  ``load_fleet_file`` did before it streamed) and ``load_fleet_file`` now.

The figure before the streaming loader was measured once, by hand, with the same command on the
commit before it (see ``BEFORE``): the benchmark cannot rebuild that code.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from fleetgen import DEFAULT_SEED, write_describe_instances
from markdown_sections import replace_section

SECTION = "## Large describe-instances dump"
ROOT = Path(__file__).resolve().parents[1]

# Measured once each, by hand, on 2026-11-28, same dump (seed 20261101, 739,138,490 bytes), same
# machine, with the command of BEFORE_COMMAND: on commit 6dc3618 (json.loads of the whole file, a
# deep copy of every instance in the fleet endpoint), and on 6dc3618 with only this change applied
# (streaming loader, lighter copies), so the effect of the change is apart from later commits.
BEFORE_COMMAND = "/usr/bin/time -v .venv/bin/tagwarden run --fleet dump.json --json --out /tmp/x"
ONE_OFF: tuple[dict[str, str | float | int], ...] = (
    {
        "label": "before: 6dc3618",
        "outcome": "exit 0, SUCCEEDED",
        "wall_seconds": 180.5,
        "peak_rss_kib": 2_754_792,
        "cpu": "99% CPU, load average 1.5",
        "totals": "94,029 / 58,788 / 35,241",
    },
    {
        "label": "6dc3618 + this change only",
        "outcome": "exit 0, SUCCEEDED",
        "wall_seconds": 150.4,
        "peak_rss_kib": 1_863_344,
        "cpu": "99% CPU, load average 2.3",
        "totals": "94,029 / 58,788 / 35,241",
    },
)
# The first measurement of 6dc3618, while other jobs held the CPUs (43% CPU, load average 4 to 7),
# did not finish: the execution was still RUNNING at the 300 s limit of `tagwarden run` (exit 3,
# ExecutionTimeout) after 411.1 s of wall time, at a peak RSS of 2,742,624 KiB.
FIRST_BEFORE = (
    "a first measurement of 6dc3618 while other jobs held the CPUs (43% CPU) did not finish: exit 3, "
    "ExecutionTimeout at the 300 s limit of `tagwarden run`, 411.1 s wall time, peak RSS 2,678 MiB"
)


@dataclass
class Measured:
    wall_seconds: float
    peak_rss_kib: int
    exit_status: int
    stdout: str
    stderr: str


def _measure(command: list[str]) -> Measured:
    """Run ``command`` in a child process: wall time and peak RSS (``/usr/bin/time -v`` if present)."""
    timer = shutil.which("time", path="/usr/bin")
    full = [timer, "-v", *command] if timer else command
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    done = subprocess.run(full, capture_output=True, text=True, check=False, cwd=ROOT)
    wall = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    stderr = done.stderr
    if timer:
        found = re.search(r"Maximum resident set size \(kbytes\): (\d+)", stderr)
        if found:
            peak = int(found.group(1))
        stderr = stderr.split("\tCommand being timed:", 1)[0]
    elif peak <= before:
        peak = 0  # an earlier, larger child hides this one's peak
    return Measured(wall, peak, done.returncode, done.stdout, stderr)


def _tagwarden() -> list[str]:
    script = Path(sys.executable).with_name("tagwarden")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from workflow.cli import main; sys.exit(main())"]


_LOAD_WHOLE = "import json, sys; json.loads(open(sys.argv[1], 'rb').read())"
_LOAD_STREAM = (
    "import sys; from workflow.fleet import load_fleet_file; print(len(load_fleet_file(sys.argv[1])))"
)


def _mib(kib: int) -> str:
    return f"{kib / 1024:,.0f} MiB"


def _load() -> str:
    return f"{os.getloadavg()[0]:.2f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--instances", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument(
        "--dump", type=Path, help="reuse (or write) the dump here instead of a temporary file"
    )
    parser.add_argument("--write", type=Path, help="replace this benchmark's section of this file")
    args = parser.parse_args(argv)
    loads = [_load()]
    with tempfile.TemporaryDirectory(prefix="tagwarden-large-dump-") as folder:
        dump = args.dump or Path(folder) / "describe-instances.json"
        if not dump.exists():
            started = time.perf_counter()
            write_describe_instances(dump, args.instances, args.seed)
            print(f"wrote {dump} in {time.perf_counter() - started:.0f} s", flush=True)
        size = dump.stat().st_size
        print(f"{dump}: {size:,} bytes", flush=True)
        out = Path(folder) / "out"
        run = _measure([*_tagwarden(), "run", "--fleet", str(dump), "--json", "--out", str(out)])
        loads.append(_load())
        print(
            f"run: exit {run.exit_status}, {run.wall_seconds:.1f} s, peak RSS {_mib(run.peak_rss_kib)}",
            flush=True,
        )
        whole = _measure([sys.executable, "-c", _LOAD_WHOLE, str(dump)])
        stream = _measure([sys.executable, "-c", _LOAD_STREAM, str(dump)])
        loads.append(_load())
        print(
            f"load: json.loads {whole.wall_seconds:.1f} s {_mib(whole.peak_rss_kib)}, "
            f"streaming {stream.wall_seconds:.1f} s {_mib(stream.peak_rss_kib)}",
            flush=True,
        )
    try:
        result = json.loads(run.stdout)
    except ValueError:
        result = {"status": f"no JSON output: {run.stderr.strip()[-300:]}"}
    summary = result.get("summary") or {}
    command = f".venv/bin/python benchmarks/bench_large_dump.py {' '.join(argv or sys.argv[1:])}".strip()
    columns = [
        *(
            (
                str(m["label"]),
                str(m["outcome"]),
                float(m["wall_seconds"]),
                int(m["peak_rss_kib"]),
                str(m["totals"]),
            )
            for m in ONE_OFF
        ),
        (
            "now: this run",
            f"exit {run.exit_status}, {result.get('status')}",
            run.wall_seconds,
            run.peak_rss_kib,
            f"{summary.get('total', 0):,} / {summary.get('compliant', 0):,} / "
            f"{summary.get('noncompliant', 0):,}",
        ),
    ]
    table = "\n".join(
        [
            "| `tagwarden run --fleet DUMP --json --out DIR` | " + " | ".join(c[0] for c in columns) + " |",
            "| --- |" + " ---: |" * len(columns),
            "| outcome | " + " | ".join(c[1] for c in columns) + " |",
            "| wall time | " + " | ".join(f"{c[2]:.1f} s" for c in columns) + " |",
            "| peak RSS | " + " | ".join(_mib(c[3]) for c in columns) + " |",
            "| summary: total / compliant / noncompliant | " + " | ".join(c[4] for c in columns) + " |",
        ]
    )
    section = f"""{SECTION}

_Written by `benchmarks/bench_large_dump.py`; rerunning it replaces this section only._

- Command: `{command}`
- Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC
- Machine: {platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} CPUs, \
{platform.platform()}; load average {" → ".join(loads)}
- Dump: `fleetgen.write_describe_instances`, {args.instances:,} instances, seed {args.seed}, \
{size:,} bytes ({size / 2**20:,.0f} MiB); every field of the describe-instances sample plus a network \
interface per instance, `indent=4` as the AWS CLI prints it

{table}

| loading the dump alone (a process of its own) | wall time | peak RSS |
| --- | ---: | ---: |
| `json.loads` of the whole file (the loader before) | {whole.wall_seconds:.1f} s | \
{_mib(whole.peak_rss_kib)} |
| `load_fleet_file` (streaming, one reservation at a time) | {stream.wall_seconds:.1f} s | \
{_mib(stream.peak_rss_kib)} |

The first two columns were measured once each, by hand, with `{BEFORE_COMMAND}` on the same dump
and machine ({"; ".join(f"{m['label']}: {m['cpu']}" for m in ONE_OFF)}); this benchmark does not
rerun them. The last column is this run, on the current tree (later commits included); \
{FIRST_BEFORE}. Peak
RSS and wall time of the run come from `/usr/bin/time -v` around the command, in a child process. The
run's figure includes the whole engine (moto's S3 holds every page the run writes); the loader
figures isolate what reading the file costs: before, the file's bytes, its decoded text and a
parse tree with keys shared were all alive at once; now, a window of about 1 MiB of text and one
reservation beyond the instances kept, whose keys and short values are shared across the file.
Wall times on a shared 2-CPU machine show the trend, not a guarantee.
"""
    if args.write:
        replace_section(args.write, SECTION, section)
        print(f"wrote the section {SECTION!r} of {args.write}")
    else:
        print(section)
    return 0 if run.exit_status == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
