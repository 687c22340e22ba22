"""`tagwarden run`: a real execution on the embedded engine from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from workflow.cli import main

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "describe-instances.two-regions.json"


def test_run_on_a_describe_instances_dump_prints_one_json_object(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(["run", "--fleet", str(FIXTURE), "--out", str(tmp_path), "--json", "--name", "dump-run"])
    out = capsys.readouterr().out
    assert status == 0
    document = json.loads(out)
    assert document["status"] == "SUCCEEDED"
    assert document["execution_arn"].endswith(":execution:tagwarden:dump-run")
    assert document["summary"] == {
        "total": 3,
        "compliant": 1,
        "noncompliant": 2,
        "exempt": 0,
        "compliance_percentage": 33.33,
    }
    assert document["incomplete"] is False and document["exit_status"] == 0
    assert document["coverage"]["targets"]["not_scanned"] == 0
    findings = [json.loads(line) for line in Path(document["findings_path"]).read_text().splitlines()]
    assert {f["instance_id"]: f["account_id"] for f in findings} == {
        "i-0a00000000000001": "111122223333",
        "i-0a00000000000002": "111122223333",
        "i-0b00000000000001": "444455556666",
    }
    by_id = {f["instance_id"]: f for f in findings}
    assert by_id["i-0a00000000000001"]["launch_time"] == "2025-06-01T08:00:00+00:00"
    assert by_id["i-0b00000000000001"]["state"] == "running"
    run_dir = tmp_path / "dump-run"
    assert {p.name for p in run_dir.iterdir()} >= {
        "findings.jsonl",
        "summary.json",
        "history.json",
        "notifications.json",
    }
    history = json.loads((run_dir / "history.json").read_text())
    assert history[0]["type"] == "ExecutionStarted" and history[-1]["type"] == "ExecutionSucceeded"
    [notification] = json.loads((run_dir / "notifications.json").read_text())
    assert notification["subject"] == "[tagwarden local] 2 of 3 EC2 instances noncompliant"


def test_fail_on_violations_exits_1_and_drift_spans_local_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "--fleet", str(FIXTURE), "--out", str(tmp_path), "--json", "--name", "first"]) == 0
    status = main(
        [
            "run",
            "--fleet",
            str(FIXTURE),
            "--out",
            str(tmp_path),
            "--json",
            "--name",
            "second",
            "--fail-on-violations",
        ]
    )
    assert status == 1
    summary = json.loads((tmp_path / "second" / "summary.json").read_text())
    drift = summary["drift"]
    assert (drift["previous_run_id"], drift["newly_noncompliant"], drift["newly_compliant"]) == (
        "first",
        [],
        [],
    )
    capsys.readouterr()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--fleet", "missing.json"], "missing.json: $: cannot read file: No such file or directory"),
        (["--regions", "us-east-1,mars-north-1x"], "--regions: 'mars-north-1x' is not an AWS region name"),
        (["--name", "has space"], "--name: 1 to 80 letters, digits"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    assert main(["run", "--out", str(tmp_path), *args]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [err.strip()]
    assert message in err
    assert "Traceback" not in err


def test_invalid_policy_is_refused_before_any_execution(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = tmp_path / "policy.json"
    policy.write_text(
        json.dumps({"version": 1, "name": "p", "rules": [{"key": "Owner", "pattern": "(?=a)a"}]})
    )
    assert main(["run", "--policy", str(policy), "--out", str(tmp_path / "out")]) == 2
    assert "$.rules[0].pattern: not supported: a lookahead (?=...)" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_reusing_a_run_name_is_refused_like_execution_already_exists_and_keeps_the_first_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["run", "--fleet", str(FIXTURE), "--out", str(tmp_path), "--json", "--name", "same-name"]
    assert main(args) == 0
    first = {p.name: p.read_bytes() for p in (tmp_path / "same-name").iterdir()}
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--name: a run named 'same-name' already exists" in err
    assert {p.name: p.read_bytes() for p in (tmp_path / "same-name").iterdir()} == first
    assert [p.name for p in tmp_path.iterdir()] == ["same-name"]


def test_organization_mode_scans_every_account_of_the_dump_through_its_role(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(
        ["run", "--fleet", str(FIXTURE), "--out", str(tmp_path), "--json", "--organization", "--name", "org"]
    )
    document = json.loads(capsys.readouterr().out)
    summary = json.loads((tmp_path / "org" / "summary.json").read_text())
    assert set(summary["by_account"]) == {"111122223333", "444455556666"}
    scanned = {(t["account_id"], t["region"]) for t in summary["targets"] if t["status"] == "ok"}
    assert scanned == {("111122223333", "us-east-1"), ("444455556666", "eu-west-1")}
    # The dump has nothing for the other (account, region) pairs of the organisation (the
    # management account has no instance at all): they are not scanned, never "clean".
    not_scanned = {(t["account_id"], t["region"]) for t in summary["coverage"]["not_scanned"]}
    assert ("123456789012", "us-east-1") in not_scanned and ("111122223333", "eu-west-1") in not_scanned
    assert all("no data in the given dumps" in t["reason"] for t in summary["coverage"]["not_scanned"])
    assert (status, document["partial"]) == (4, True)


def test_a_target_without_a_member_role_makes_a_partial_scan_not_a_failure(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    targets = tmp_path / "targets.json"
    targets.write_text(
        json.dumps([{"account_id": "111122223333"}, {"account_id": "999999999999", "regions": ["us-east-1"]}])
    )
    status = main(
        [
            "run",
            "--fleet",
            str(FIXTURE),
            "--out",
            str(tmp_path),
            "--json",
            "--targets",
            str(targets),
            "--name",
            "t",
        ]
    )
    document = json.loads(capsys.readouterr().out)
    assert status == 4  # an incomplete scan is never a success
    assert document["partial"] is True
    assert document["summary"]["total"] == 2  # 111122223333's two instances
    summary = json.loads((tmp_path / "t" / "summary.json").read_text())
    failed = {
        (t["account_id"], t["region"]): t["reason"] for t in summary["targets"] if t["status"] == "error"
    }
    assert "AccessDenied" in failed.pop(("999999999999", "us-east-1"))
    # 111122223333 has no instance in eu-west-1 in the dump: not scanned, not "empty".
    assert failed == {
        ("111122223333", "eu-west-1"): "DescribeInstances in 111122223333 eu-west-1: OptInRequired: "
        "not scanned (no data in the given dumps for this account in eu-west-1)"
    }


def test_an_unreadable_targets_file_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(["run", "--targets", str(tmp_path / "missing.json"), "--out", str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2
    assert err == [f"--targets: cannot read {tmp_path / 'missing.json'}: No such file or directory"]
