"""`tagwarden run` with a policy that remediates: the local run marks the dump's noncompliant
running instances (in memory: the dump file is never changed), writes `actions.jsonl`, and
`tagwarden query` reads it as the `actions` table, partitioned like the run."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from workflow import cli

ACCOUNT = "111122223333"  # the dump's OwnerId, not the engine's account: listed as "self"
POLICY = {
    "version": 1,
    "name": "local-staged",
    "rules": [{"key": "Owner"}],
    "remediation": {"stop_after_days": 5, "dry_run": False},
}


def instance(instance_id: str, tags: dict[str, str], state: str = "running") -> dict[str, Any]:
    return {
        "InstanceId": instance_id,
        "InstanceType": "t3.micro",
        "LaunchTime": "2025-06-01T08:00:00+00:00",
        "Placement": {"AvailabilityZone": "eu-west-1a"},
        "State": {"Name": state},
        "Tags": [{"Key": k, "Value": v} for k, v in tags.items()],
    }


def test_a_local_run_records_its_actions_and_query_reads_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dump = {
        "Reservations": [
            {
                "OwnerId": ACCOUNT,
                "ReservationId": "r-1",
                "Instances": [
                    instance("i-0000000000000001", {}),
                    instance("i-0000000000000002", {"Owner": "ana"}),
                    instance("i-0000000000000003", {}, state="stopped"),
                ],
            }
        ]
    }
    fleet, policy, out = tmp_path / "fleet.json", tmp_path / "policy.json", tmp_path / "out"
    fleet.write_text(json.dumps(dump), encoding="utf-8")
    policy.write_text(json.dumps(POLICY), encoding="utf-8")
    before = fleet.read_bytes()
    argv = ["run", "--fleet", str(fleet), "--policy", str(policy), "--out", str(out), "--name", "r1"]
    assert cli.main([*argv, "--json", "--notify", "never"]) == 0
    capsys.readouterr()
    actions = [json.loads(line) for line in (out / "r1" / "actions.jsonl").read_text().splitlines()]
    assert [(a["resource_id"], a["action"], a["outcome"], a["account_id"]) for a in actions] == [
        ("i-0000000000000001", "mark", "done", ACCOUNT)
    ]
    summary = json.loads((out / "r1" / "summary.json").read_text())
    assert summary["remediation"]["marked"] == 1 and summary["remediation"]["ineligible"] == {
        "not_running": 1
    }
    assert fleet.read_bytes() == before  # the mark is on the in-memory fleet only
    evaluated = date.fromisoformat(summary["evaluated_at"][:10])
    assert actions[0]["stop_on"] == (evaluated + timedelta(days=5)).isoformat()

    sql = "SELECT run, dt, action, outcome, count(*) AS n FROM actions GROUP BY ALL"
    assert cli.main(["query", sql, "--local", str(out), "--format", "json"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert (row["run"], row["dt"], row["action"], row["outcome"], row["n"]) == (
        "r1",
        summary["evaluated_at"][:10],
        "mark",
        "done",
        1,
    )
    # The summary's section is the runs table's remediation column (its extra keys ignored).
    sql = "SELECT remediation.marked AS marked, remediation.ineligible AS ineligible FROM runs"
    assert cli.main(["query", sql, "--local", str(out), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == [{"marked": 1, "ineligible": {"not_running": 1}}]
