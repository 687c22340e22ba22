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
    assert status == 4, err.getvalue()  # a partial scan (workflow.verdict)
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
    # Anything not scanned is loud: its own word, the target and the reason.
    [unscanned] = [line for line in lines if "Target not scanned  999999999999" in line]
    assert unscanned.startswith("  NOT SCANNED  Target not scanned  999999999999/us-east-1  ")
    assert "AccessDenied" in unscanned


def test_violations_by_rule_says_how_many_rows_it_left_out_and_where_to_see_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    keys = [f"Key{i:02d}" for i in range(12)]
    policy = tmp_path / "twelve.json"
    policy.write_text(json.dumps({"version": 1, "name": "twelve", "rules": [{"key": k} for k in keys]}))
    status = main(
        ["run", "--fleet", str(FIXTURE), "--policy", str(policy), "--out", str(tmp_path), "--name", "r"]
    )
    out = capsys.readouterr().out
    assert status == 0
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert len(summary["by_rule"]) == 12
    shown = [key for key in keys if f"{key}:missing" in out]
    assert len(shown) == 10
    assert f"+2 more (tagwarden report --local {tmp_path} --run r)" in " ".join(out.split())


def test_several_region_dumps_make_one_run_as_readmes_describe_regions_loop_does(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """README's loop writes one describe-instances dump per region; one run takes them all."""
    document = json.loads(FIXTURE.read_text())
    dumps = []
    for region in ("us-east-1", "eu-west-1"):
        reservations = [
            {
                **r,
                "Instances": [
                    i for i in r["Instances"] if i["Placement"]["AvailabilityZone"].startswith(region)
                ],
            }
            for r in document["Reservations"]
        ]
        dump = tmp_path / f"dump-{region}.json"
        dump.write_text(json.dumps({"Reservations": [r for r in reservations if r["Instances"]]}))
        dumps += ["--fleet", str(dump)]
    assert main(["run", *dumps, "--out", str(tmp_path), "--json", "--name", "all"]) == 0
    assert json.loads(capsys.readouterr().out)["summary"]["total"] == 3
    summary = json.loads((tmp_path / "all" / "summary.json").read_text())
    assert set(summary["by_region"]) == {"us-east-1", "eu-west-1"}


def test_ctrl_c_while_the_summary_prints_keeps_the_runs_exit_status(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import os
    import signal

    from workflow import local_run

    printed = local_run._print_summary

    def interrupted(summary: dict[str, object], run_dir: Path) -> None:
        os.kill(os.getpid(), signal.SIGINT)  # the user presses Ctrl-C once the folder is written
        printed(summary, run_dir)  # type: ignore[arg-type]

    monkeypatch.setattr(local_run, "_print_summary", interrupted)
    before = signal.getsignal(signal.SIGINT)
    status = main(["run", "--fleet", str(FIXTURE), "--out", str(tmp_path), "--name", "r"])
    assert status == 0, capsys.readouterr().err
    assert "Report folder" in capsys.readouterr().out
    assert (tmp_path / "r" / "summary.json").exists()
    assert signal.getsignal(signal.SIGINT) is before  # main gave the handler back
