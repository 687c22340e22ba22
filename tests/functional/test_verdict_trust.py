"""A verdict you can trust, from the command line on the embedded engine: never green for what was
not scanned, drift that survives scoped runs and other policies, run folders that are whole or
absent, one instance one finding."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from workflow import local_run
from workflow.cli import main
from workflow.engine.local import CENTRAL_ACCOUNT
from workflow.fleet import demo_fleet

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "fixtures" / "describe-instances.two-regions.json"


def run(capsys: pytest.CaptureFixture[str], out: Path, *args: str) -> tuple[int, dict[str, Any]]:
    """``tagwarden run --json``: the exit status and the printed document."""
    status = main(["run", "--out", str(out), "--json", *args])
    printed = capsys.readouterr().out
    return status, json.loads(printed) if printed.strip() else {}


def summary_of(out: Path, name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((out / name / "summary.json").read_text())
    return document


def notifications_of(out: Path, name: str) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = json.loads((out / name / "notifications.json").read_text())
    return messages


# -- never green for what was not scanned -----------------------------------------------------------


def test_an_empty_dump_is_nothing_evaluated_exit_4_never_100_percent(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty.json"
    empty.write_text('{"Reservations": []}')
    status, document = run(
        capsys, tmp_path / "out", "--fleet", str(empty), "--fail-on-violations", "--name", "e"
    )
    assert status == 4
    assert document["summary"]["total"] == 0 and document["summary"]["compliance_percentage"] is None
    summary = summary_of(tmp_path / "out", "e")
    assert summary["totals"]["compliance_percentage"] is None
    assert summary["coverage"]["nothing_evaluated"] is True
    [message] = notifications_of(tmp_path / "out", "e")  # told although nothing is noncompliant
    assert "NOTHING EVALUATED" in message["subject"]


def test_the_table_says_nothing_evaluated_instead_of_a_percentage(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "--out", str(tmp_path), "--regions", "eu-north-1", "--name", "typo"]) == 4
    captured = capsys.readouterr()
    assert "nothing evaluated" in captured.out and "100.0%" not in captured.out
    assert "NOTHING EVALUATED" in captured.out
    assert (
        "eu-north-1: DescribeInstances in 123456789012 eu-north-1: OptInRequired: not scanned (no data"
        in (" ".join(captured.out.split()))
    )
    assert "incomplete scan" in captured.err


def test_a_region_the_dump_has_no_data_for_is_not_scanned_not_clean(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, document = run(
        capsys, tmp_path, "--fleet", str(FIXTURE), "--regions", "us-east-1,eu-north-1", "--name", "r"
    )
    assert status == 4
    assert document["partial"] is True and document["incomplete"] is True
    coverage = document["coverage"]
    assert coverage["regions_scanned"] == ["us-east-1"]
    assert coverage["regions_not_scanned"] == ["eu-north-1"]
    [missing] = coverage["not_scanned"]
    assert missing["region"] == "eu-north-1" and "no data in the given dumps" in missing["reason"]
    assert document["summary"]["total"] == 2  # what was scanned is still reported


def test_every_assume_role_failing_is_exit_4_and_notified_whatever_the_notify_mode(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    targets = tmp_path / "targets.json"
    targets.write_text(json.dumps([{"account_id": "999999999999"}, {"account_id": "888888888888"}]))
    for notify in ("violations", "never"):
        status, document = run(
            capsys,
            tmp_path / "out",
            "--fleet",
            str(FIXTURE),
            "--targets",
            str(targets),
            "--fail-on-violations",
            "--notify",
            notify,
            "--name",
            f"denied-{notify}",
        )
        assert status == 4
        assert document["summary"]["total"] == 0 and document["summary"]["compliance_percentage"] is None
        assert document["coverage"]["targets"]["scanned"] == 0
        [message] = notifications_of(tmp_path / "out", f"denied-{notify}")
        assert message["subject"].startswith("[tagwarden local] PARTIAL scan: NOTHING EVALUATED")
        assert message["attributes"]["severity"] == "high"
        assert "AccessDenied" in message["body"]


def test_out_of_scope_instances_are_counted_by_state_not_silently_skipped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, document = run(capsys, tmp_path, "--name", "demo")
    assert status == 0
    instances = document["coverage"]["instances"]
    terminated = sum(
        1
        for reservation in demo_fleet()["Reservations"]
        for instance in reservation["Instances"]
        if instance["State"]["Name"] == "terminated"
    )
    assert terminated > 0
    assert instances["out_of_scope"] == {"terminated": terminated}
    assert instances["listed"] == instances["in_scope"] + terminated == instances["evaluated"] + terminated
    capsys.readouterr()
    main(["run", "--out", str(tmp_path), "--name", "demo-table"])
    assert f"out of scope: {terminated} terminated" in capsys.readouterr().out


# -- drift compares like with like ------------------------------------------------------------------


def test_a_region_limited_run_between_full_runs_makes_no_false_drift(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, tmp_path, "--name", "full-1")[0] == 0
    assert run(capsys, tmp_path, "--regions", "us-east-1", "--name", "east-only")[0] == 0
    east = summary_of(tmp_path, "east-only")["drift"]
    assert east["previous_run_id"] == "full-1"
    assert east["targets_compared"] == [f"{CENTRAL_ACCOUNT}/us-east-1"]
    assert (east["newly_noncompliant"], east["newly_compliant"]) == ([], [])  # not "82 newly compliant"
    assert run(capsys, tmp_path, "--notify", "new_violations", "--name", "full-2")[0] == 0
    full = summary_of(tmp_path, "full-2")["drift"]
    assert full["previous_run_id"] == "full-1"  # the narrower run never became the baseline
    assert full["targets_compared_count"] == 3
    assert (full["newly_noncompliant"], full["newly_compliant"]) == ([], [])
    assert full["evaluated"]["drop_percentage"] == 0.0
    assert notifications_of(tmp_path, "full-2") == []  # nothing new: no false alert


def test_a_manual_run_with_another_policy_never_moves_the_scheduled_baseline(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, tmp_path, "--name", "baseline-1")[0] == 0
    security = str(ROOT / "policies" / "security.json")
    assert run(capsys, tmp_path, "--policy", security, "--name", "security-1")[0] in (0, 1)
    assert summary_of(tmp_path, "security-1")["drift"]["previous_run_id"] is None
    assert run(capsys, tmp_path, "--notify", "new_violations", "--name", "baseline-2")[0] == 0
    drift = summary_of(tmp_path, "baseline-2")["drift"]
    assert drift["previous_run_id"] == "baseline-1"
    assert (drift["newly_noncompliant"], drift["newly_compliant"]) == ([], [])
    assert notifications_of(tmp_path, "baseline-2") == []


# -- run folders are whole or absent ---------------------------------------------------------------


def test_an_out_that_is_a_file_is_refused_before_scanning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[bool] = []
    monkeypatch.setattr("workflow.engine.local.LocalDeployment.__enter__", lambda self: started.append(True))
    a_file = tmp_path / "file"
    a_file.write_text("x")
    for out in (a_file, a_file / "below"):
        assert main(["run", "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("--out: ") and err.count("\n") == 1
    assert started == []


@pytest.mark.skipif(os.geteuid() != 0 and os.name != "posix", reason="needs /proc")
def test_an_out_that_cannot_be_created_is_refused_before_scanning(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["run", "--out", "/proc/tagwarden-out"]) == 2
    assert capsys.readouterr().err.startswith("--out: cannot create /proc/tagwarden-out")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_out_is_refused_before_scanning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tmp_path.chmod(0o555)
    try:
        assert main(["run", "--out", str(tmp_path)]) == 2
    finally:
        tmp_path.chmod(0o755)
    assert capsys.readouterr().err.startswith("--out: cannot write in")


def test_a_write_failing_midway_leaves_no_folder_and_report_still_shows_the_last_whole_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert run(capsys, tmp_path, "--fleet", str(FIXTURE), "--name", "whole")[0] == 0
    real = local_run._create_file

    def disk_full(path: Path, chunks: Any) -> None:
        if path.name == "findings.jsonl":
            raise OSError(28, "No space left on device")
        real(path, chunks)

    monkeypatch.setattr(local_run, "_create_file", disk_full)
    assert main(["run", "--out", str(tmp_path), "--fleet", str(FIXTURE), "--name", "torn"]) == 2
    err = capsys.readouterr().err
    assert "No space left on device" in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["whole"]  # nothing torn, nothing staged
    assert main(["report", "--local", str(tmp_path), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["run_id"] == "whole"


def test_report_and_query_ignore_folders_without_a_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, tmp_path, "--fleet", str(FIXTURE), "--name", "done")[0] == 0
    (tmp_path / "zz-failed").mkdir()
    (tmp_path / "zz-failed" / "history.json").write_text("[]")
    (tmp_path / "zz-failed" / "findings.jsonl").write_text("")
    (tmp_path / ".tagwarden-partial-x" / "zz-later").mkdir(parents=True)
    assert main(["report", "--local", str(tmp_path), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["run_id"] == "done"
    assert main(["query", "noncompliant_latest_run", "--local", str(tmp_path), "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows and {row["run_id"] for row in rows} == {"done"}


def test_a_symlink_in_place_of_the_run_folder_is_never_followed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    (out / "r1").symlink_to(elsewhere)
    assert main(["run", "--out", str(out), "--name", "r1"]) == 2
    assert "--name: a run named 'r1' already exists" in capsys.readouterr().err
    assert list(elsewhere.iterdir()) == []


def test_run_files_are_created_exclusively_and_never_through_a_symlink(tmp_path: Path) -> None:
    target = tmp_path / "target.txt"
    target.write_text("keep")
    (tmp_path / "link.txt").symlink_to(target)
    with pytest.raises(OSError, match=r"exists|symbolic"):
        local_run._create_file(tmp_path / "link.txt", ["overwritten"])
    assert target.read_text() == "keep"


# -- one instance, one finding ---------------------------------------------------------------------


def test_the_same_dump_twice_evaluates_each_instance_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, document = run(
        capsys, tmp_path, "--fleet", str(FIXTURE), "--fleet", str(FIXTURE), "--name", "twice"
    )
    assert status == 0
    listed = sum(len(r["Instances"]) for r in json.loads(FIXTURE.read_text())["Reservations"])
    assert document["summary"]["total"] == 3
    assert document["coverage"]["instances"]["duplicates_in_dumps"] == listed
    assert document["coverage"]["instances"]["listed"] == listed
    findings = (tmp_path / "twice" / "findings.jsonl").read_text().splitlines()
    assert len(findings) == len({json.loads(f)["instance_id"] for f in findings}) == 3


def test_a_dump_listing_an_instance_twice_keeps_the_last_listing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    document = json.loads(FIXTURE.read_text())
    reservation = document["Reservations"][0]
    changed = json.loads(json.dumps(reservation))
    changed["Instances"] = [changed["Instances"][0]]
    changed["Instances"][0]["Tags"] = [{"Key": "Owner", "Value": "last@example.com"}]
    document["Reservations"].append(changed)
    dump = tmp_path / "dump.json"
    dump.write_text(json.dumps(document))
    status, printed = run(capsys, tmp_path / "out", "--fleet", str(dump), "--name", "dup")
    assert status == 0 and printed["summary"]["total"] == 3
    findings = [
        json.loads(line) for line in (tmp_path / "out" / "dup" / "findings.jsonl").read_text().splitlines()
    ]
    [kept] = [f for f in findings if f["instance_id"] == changed["Instances"][0]["InstanceId"]]
    assert kept["tags"]["Owner"] == "last@example.com"
