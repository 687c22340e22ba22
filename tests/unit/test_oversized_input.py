"""Oversized input is refused early, in bounded time and memory, with one clear line.

The limits: a policy file is read up to MAX_POLICY_BYTES + 1 (1 MiB), a policy holds at most 200
rules (schema ``maxItems``), a fleet file above MAX_FLEET_BYTES (1536 MiB) is refused by its size
before a byte is read. Sparse files (``truncate``) make the big cases cost nothing on disk.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from workflow import cli
from workflow.errors import FleetError, PolicyError
from workflow.fleet import MAX_FLEET_BYTES, load_fleet_file
from workflow.policy import MAX_POLICY_BYTES, load_policy_document, read_policy_file

MiB = 1024 * 1024
ROOT = Path(__file__).resolve().parents[2]


class ProductBug(AssertionError):
    """The failure an xfail test expects, apart from its preconditions' assertions."""


class _TooSlow(Exception):
    pass


@contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Interrupt the block after ``seconds`` (SIGALRM; the test runs in the main thread)."""

    def expire(*_: Any) -> None:
        raise _TooSlow(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def measured(call: Callable[[], Any]) -> tuple[BaseException | None, float, int]:
    """What ``call`` raised, how long it took and the peak of memory it allocated (tracemalloc)."""
    tracemalloc.start()
    started = time.perf_counter()
    raised: BaseException | None = None
    try:
        call()
    except Exception as err:
        raised = err
    elapsed = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return raised, elapsed, peak


def sparse(path: Path, size: int) -> Path:
    with open(path, "wb") as handle:
        handle.truncate(size)
    return path


# -- policies --------------------------------------------------------------------------------------


def test_a_10_mb_policy_file_is_refused_after_reading_only_its_first_mib(tmp_path: Path) -> None:
    path = tmp_path / "policy.json"
    path.write_bytes(b'{"version": 1, "name": "big", "description": "' + b"x" * (10 * MiB) + b'"}')

    raised, elapsed, peak = measured(lambda: read_policy_file(path))

    assert isinstance(raised, PolicyError)
    assert raised.lines() == [f"{path}: $: file is larger than 1024 KiB; a tag policy never needs that"]
    assert peak < MAX_POLICY_BYTES + 2 * MiB  # the first MiB and change, never the 10
    assert elapsed < 2


def test_a_sparse_10_gib_policy_file_and_an_endless_stream_are_refused_as_quickly(tmp_path: Path) -> None:
    for source in (sparse(tmp_path / "huge.json", 10 * 1024 * MiB), Path("/dev/zero")):
        raised, elapsed, peak = measured(lambda source=source: read_policy_file(source))
        assert isinstance(raised, PolicyError)
        assert [p.message for p in raised.problems] == [
            "file is larger than 1024 KiB; a tag policy never needs that"
        ]
        assert peak < MAX_POLICY_BYTES + 2 * MiB
        assert elapsed < 2


def test_tagwarden_validate_of_an_oversized_policy_exits_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = sparse(tmp_path / "huge.json", 10 * MiB)

    assert cli.main(["validate", str(path)]) == 2

    assert capsys.readouterr().err.splitlines() == [
        f"{path}: $: file is larger than 1024 KiB; a tag policy never needs that"
    ]


def many_rules(count: int, **rule: Any) -> dict[str, Any]:
    return {"version": 1, "name": "many", "rules": [{"key": f"Key{i}", **rule} for i in range(count)]}


def test_a_policy_with_10000_rules_is_rejected_at_its_rules_list() -> None:
    with time_limit(20), pytest.raises(PolicyError) as rejected:
        load_policy_document(many_rules(10_000))

    assert [p.path for p in rejected.value.problems] == ["$.rules"]


def test_a_policy_with_10000_patterned_rules_is_rejected_within_seconds() -> None:
    try:
        with time_limit(5), pytest.raises(PolicyError) as rejected:
            load_policy_document(many_rules(10_000, pattern="^[a-z]+$"))
    except _TooSlow as slow:
        raise ProductBug(f"10,000 rules not rejected: {slow}") from None
    assert [p.path for p in rejected.value.problems] == ["$.rules"]


def test_too_many_rules_is_one_short_line_naming_the_limit() -> None:
    with pytest.raises(PolicyError) as rejected:
        load_policy_document(many_rules(201))

    [problem] = rejected.value.problems
    assert problem.path == "$.rules"
    if len(problem.message) > 200 or "200" not in problem.message:
        raise ProductBug(f"a {len(problem.message)}-character message: {problem.message[:120]}...")


# -- fleet files --------------------------------------------------------------------------------------


def test_a_2_gib_fleet_file_is_refused_by_its_size_before_a_byte_is_read(tmp_path: Path) -> None:
    path = sparse(tmp_path / "describe-instances.json", 2048 * MiB)
    assert 2048 * MiB > MAX_FLEET_BYTES

    raised, elapsed, peak = measured(lambda: load_fleet_file(path))

    assert isinstance(raised, FleetError)
    assert raised.lines() == [
        f"{path}: $: file is 2048 MiB, above the 1536 MiB limit; "
        "split it by region (aws ec2 describe-instances --region ...)"
    ]
    assert peak < MiB
    assert elapsed < 1


def test_tagwarden_run_with_a_2_gib_fleet_exits_2_with_one_line_before_starting_anything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = sparse(tmp_path / "describe-instances.json", 2048 * MiB)
    started = time.perf_counter()

    assert cli.main(["run", "--fleet", str(path), "--out", str(tmp_path / "out")]) == 2

    assert time.perf_counter() - started < 2  # no engine was started
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith(f"{path}: $: file is 2048 MiB, above the 1536 MiB limit")
    assert not (tmp_path / "out").exists()


_ENDLESS_FLEET = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (1536 * 2**20, 1536 * 2**20))
import workflow.fleet as fleet
fleet.MAX_FLEET_BYTES = 16 * 2**20  # the limit scaled down: the check, not the size, is under test
try:
    fleet.load_fleet_file("/dev/zero")
except fleet.FleetError as err:
    print("refused:", err.lines()[0])
except MemoryError:
    print("MemoryError")
"""


def test_an_endless_fleet_stream_is_refused_at_the_size_limit() -> None:
    if not Path("/dev/zero").exists():
        pytest.skip("needs /dev/zero")
    done = subprocess.run(
        [sys.executable, "-c", _ENDLESS_FLEET],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=False,
    )
    output = done.stdout.strip()
    if not output.startswith("refused: /dev/zero: $: "):
        raise ProductBug(f"an endless fleet stream gave {output or done.stderr[-300:]!r}")
    assert "above the 16 MiB limit" in output
