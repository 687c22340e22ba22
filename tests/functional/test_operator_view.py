"""What an operator sees while and after a scan runs: progress lines, the run graph's iterations."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from workflow.cli import main

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "describe-instances.two-regions.json"


@pytest.fixture(scope="module")
def partial_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """A run over the two-region dump plus a target without a member role (not scanned)."""
    folder = tmp_path_factory.mktemp("partial")
    targets = folder / "targets.json"
    targets.write_text(
        json.dumps([{"account_id": "111122223333"}, {"account_id": "999999999999", "regions": ["us-east-1"]}])
    )
    capture = pytest.MonkeyPatch()
    import io
    import sys

    err = io.StringIO()
    capture.setattr(sys, "stderr", err)
    try:
        status = main(
            ["run", "--fleet", str(FIXTURE), "--out", str(folder), "--targets", str(targets), "--name", "p"]
        )
    finally:
        capture.undo()
    assert status == 0, err.getvalue()
    return folder / "p", err.getvalue().splitlines()


def test_progress_lines_name_each_iteration_by_account_and_region_with_its_duration(
    partial_run: tuple[Path, list[str]],
) -> None:
    _run_dir, lines = partial_run
    listed = [line.split() for line in lines if line.split()[1:4] == ["List", "EC2", "instances"]]
    assert sorted(words[4] for words in listed) == [
        "111122223333/eu-west-1",
        "111122223333/us-east-1",
        "999999999999/us-east-1",
    ]
    assert all(re.fullmatch(r"\d+\.\d\ds", words[5]) for words in listed)
    assert any(
        line.split()[1:4] == ["Target", "not", "scanned"] and "999999999999/us-east-1" in line
        for line in lines
    )
