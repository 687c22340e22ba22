"""Staged remediation on the embedded engine, across days (the process clock moved with
time-machine): mark, still noncompliant after the date, stop, fixed, unmark; with the limits
(running only, never in an Auto Scaling group or stop-protected, at most N stops a run), a mark
someone else placed or changed, the actions table and the owners' digests; then the same as a dry
run, which changes nothing."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
import time_machine

from tests.unit.builders import instance
from tests.unit.test_events import SSO, launch
from workflow import config, layout
from workflow.engine.local import BUCKET, CENTRAL_ACCOUNT, LocalDeployment, RunResult
from workflow.errors import PermanentError
from workflow.fleet import FleetInstance
from workflow.remediation import ASG_TAG, MARK_KEY

REGION = "eu-west-1"
POLICY = {
    "version": 1,
    "name": "staged",
    "rules": [{"key": "Owner"}],
    "remediation": {"mark_after_days": 0, "stop_after_days": 7, "dry_run": False, "max_stops_per_run": 1},
}
DRY_POLICY = {**POLICY, "name": "staged-dry", "remediation": {**POLICY["remediation"], "dry_run": True}}


def box(instance_id: str, tags: dict[str, str] | None = None, *, state: str = "running") -> FleetInstance:
    return FleetInstance(
        CENTRAL_ACCOUNT,
        REGION,
        instance(
            tags or {},
            instance_id=instance_id,
            state=state,
            zone=f"{REGION}a",
            launched="2026-11-01T00:00:00+00:00",
        ),
    )


@pytest.fixture(scope="module")
def local() -> Iterator[LocalDeployment]:
    with LocalDeployment(
        [box("i-00000000000000aa", {"Owner": "ana"})],
        regions=[REGION],
        default_policy=POLICY,
        retry_wait_scale=0,
        extra_environment={config.REMEDIATION: "true"},
    ) as deployment:
        yield deployment


def on(day: str) -> Any:
    return time_machine.travel(datetime.fromisoformat(f"{day}T06:00:00+00:00"), tick=True)


def run(local: LocalDeployment, day: str, name: str, **document: Any) -> RunResult:
    with on(day):
        result = local.run({"notify": "always", **document}, name=name)
    assert result.status == "SUCCEEDED", result.cause
    return result


def fleet_now(local: LocalDeployment) -> dict[str, dict[str, Any]]:
    """Every instance as the endpoint serves it now: id -> state and tags."""
    return {
        instance_id: {
            "state": item["State"]["Name"],
            "tags": {t["Key"]: t["Value"] for t in item.get("Tags") or ()},
        }
        for instance_id, item in local.fleet.instances_now().items()
    }


def actions(local: LocalDeployment, result: RunResult) -> list[dict[str, Any]]:
    summary = result.summary or {}
    key = summary["remediation"]["actions_key"]
    body = local.engine.client("s3").get_object(Bucket=BUCKET, Key=key)["Body"].read()
    return [json.loads(line) for line in gzip.decompress(body).splitlines() if line.strip()]


def rows(found: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    return {(r["resource_id"], r["action"], r["outcome"]) for r in found}


def test_mark_then_stop_after_the_date_within_the_limits_then_unmark_once_fixed(
    local: LocalDeployment,
) -> None:
    local.fleet.replace(
        [
            box("i-00000000000000a1"),  # noncompliant: marked, then stopped
            box("i-00000000000000a2"),  # noncompliant: marked, then over the run's limit of one stop
            box("i-00000000000000a3"),  # noncompliant: marked, then stop-protected
            box("i-00000000000000a4", {"Owner": "ana"}),  # compliant: never touched
            box("i-00000000000000a5", {ASG_TAG: "web"}),  # Auto Scaling group: never marked
            box("i-00000000000000a6", state="stopped"),  # not running: never marked
            box("i-00000000000000a7", {"Owner": "ana", MARK_KEY: "2026-01-01"}),  # compliant, stray mark
        ]
    )
    first = run(local, "2026-12-01", "stage-1")
    fleet = fleet_now(local)
    marked = {i for i, f in fleet.items() if MARK_KEY in f["tags"]}
    assert marked == {"i-00000000000000a1", "i-00000000000000a2", "i-00000000000000a3"}
    assert {fleet[i]["tags"][MARK_KEY] for i in marked} == {"2026-12-08"}
    section = (first.summary or {})["remediation"]
    assert (section["dry_run"], section["marked"], section["unmarked"], section["stopped"]) == (
        False,
        3,
        1,
        0,
    )
    assert section["ineligible"] == {"auto_scaling_group": 1, "not_running": 1}
    assert rows(actions(local, first)) == {
        ("i-00000000000000a1", "mark", "done"),
        ("i-00000000000000a2", "mark", "done"),
        ("i-00000000000000a3", "mark", "done"),
        ("i-00000000000000a7", "unmark", "done"),
    }
    body = first.notifications[0]["body"]
    assert "Remediation: mark 3, stop 0, unmark 1;\n  3 marked for a later stop" in body
    unowned = [d for d in first.digests if d["attributes"]["owner"] == "(no owner)"]
    assert unowned and "Marked for stop: Tagwarden stops it on 2026-12-08" in unowned[0]["body"]

    # Before the date nothing is stopped; someone removes a1's mark: it is put back, same date.
    local.fleet.replace(
        [
            box(
                i,
                {k: v for k, v in f["tags"].items() if i != "i-00000000000000a1" or k != MARK_KEY},
                state=f["state"],
            )
            for i, f in fleet.items()
        ]
    )
    second = run(local, "2026-12-05", "stage-2")
    assert rows(actions(local, second)) == {("i-00000000000000a1", "mark", "done")}
    assert fleet_now(local)["i-00000000000000a1"]["tags"][MARK_KEY] == "2026-12-08"

    # After the date: one stop (the limit), one over the limit, one stop-protected.
    local.fleet.stop_protected.add("i-00000000000000a3")
    third = run(local, "2026-12-09", "stage-3")
    found = actions(local, third)
    stops = {r["resource_id"]: (r["outcome"], r["reason"]) for r in found if r["action"] == "stop"}
    assert stops["i-00000000000000a1"] == ("done", "noncompliant on or after its stop date")
    assert stops["i-00000000000000a2"] == ("skipped", "the run's stop limit was reached")
    assert stops["i-00000000000000a3"] == ("skipped", "stop protection is on")
    fleet = fleet_now(local)
    assert fleet["i-00000000000000a1"]["state"] == "stopped"
    assert {
        fleet[i]["state"] for i in ("i-00000000000000a2", "i-00000000000000a3", "i-00000000000000a5")
    } == {"running"}
    assert (third.summary or {})["remediation"]["stopped_ids"] == ["i-00000000000000a1"]
    assert "stopped: i-00000000000000a1" in third.notifications[0]["body"]
    unowned = [d for d in third.digests if d["attributes"]["owner"] == "(no owner)"]
    assert "Stopped by Tagwarden in this run" in unowned[0]["body"]

    # Next day: a2 goes (within the limit again); a1 is fixed while stopped: unmarked.
    local.fleet.replace(
        [
            box(i, {**f["tags"], "Owner": "bo"} if i == "i-00000000000000a1" else f["tags"], state=f["state"])
            for i, f in fleet.items()
        ]
    )
    fourth = run(local, "2026-12-10", "stage-4")
    assert rows(actions(local, fourth)) >= {
        ("i-00000000000000a1", "unmark", "done"),
        ("i-00000000000000a2", "stop", "done"),
    }
    fleet = fleet_now(local)
    assert MARK_KEY not in fleet["i-00000000000000a1"]["tags"]
    assert fleet["i-00000000000000a2"]["state"] == "stopped"
    record = json.loads(
        local.engine.client("s3")
        .get_object(Bucket=BUCKET, Key=layout.remediation_state_key("staged"))["Body"]
        .read()
    )
    assert "i-00000000000000a1" not in json.dumps(record)


def test_a_mark_someone_else_placed_never_stops_an_instance(local: LocalDeployment) -> None:
    # A tagger marks a running, noncompliant instance with a date long past.
    local.fleet.replace([box("i-00000000000000b1", {MARK_KEY: "2020-01-01"})])
    result = run(local, "2026-12-20", "stray-1")
    found = actions(local, result)
    assert [(r["action"], r["outcome"], r["stop_on"]) for r in found] == [("mark", "done", "2026-12-27")]
    assert "replaces a mark Tagwarden did not place" in found[0]["reason"]
    assert fleet_now(local)["i-00000000000000b1"] == {"state": "running", "tags": {MARK_KEY: "2026-12-27"}}


def test_a_dry_run_records_what_it_would_do_and_changes_nothing(local: LocalDeployment) -> None:
    local.fleet.replace([box("i-00000000000000c1"), box("i-00000000000000c2")])
    first = run(local, "2026-12-01", "dry-1", policy=DRY_POLICY)
    assert rows(actions(local, first)) == {
        ("i-00000000000000c1", "mark", "dry_run"),
        ("i-00000000000000c2", "mark", "dry_run"),
    }
    assert "Remediation (dry run, nothing changed): would mark 2" in first.notifications[0]["body"]
    unowned = [d for d in first.digests if d["attributes"]["owner"] == "(no owner)"]
    assert "Remediation dry run: would be stopped on 2026-12-08" in unowned[0]["body"]
    assert all(MARK_KEY not in f["tags"] for f in fleet_now(local).values())

    later = run(local, "2026-12-09", "dry-2", policy=DRY_POLICY)
    assert rows(actions(local, later)) == {
        ("i-00000000000000c1", "stop", "dry_run"),
        ("i-00000000000000c2", "stop", "skipped"),  # the limit applies to a dry run too
    }
    assert {f["state"] for f in fleet_now(local).values()} == {"running"}

    local.fleet.replace([box("i-00000000000000c1", {"Owner": "ana"}), box("i-00000000000000c2")])
    fixed = run(local, "2026-12-10", "dry-3", policy=DRY_POLICY)
    assert ("i-00000000000000c1", "unmark", "dry_run") in rows(actions(local, fixed))
    assert all(f["state"] == "running" and MARK_KEY not in f["tags"] for f in fleet_now(local).values())


def test_an_event_run_marks_a_noncompliant_launch_and_keeps_the_other_marks(local: LocalDeployment) -> None:
    local.fleet.replace([box("i-00000000000000e1"), box("i-00000000000000e2")])
    run(local, "2026-12-21", "event-before")  # a scheduled run marks both
    local.fleet.replace(
        [*[box(i, f["tags"]) for i, f in fleet_now(local).items()], box("i-00000000000000e3")]
    )
    event = launch(SSO, "i-00000000000000e3", account=CENTRAL_ACCOUNT, region=REGION)
    result = local.run_events([event], now="2026-12-22T10:15:00Z", name="event-launch")
    assert result.status == "SUCCEEDED", result.cause
    assert rows(result.actions) == {("i-00000000000000e3", "mark", "done")}
    assert fleet_now(local)["i-00000000000000e3"]["tags"][MARK_KEY] == "2026-12-29"
    record = json.loads(
        local.engine.client("s3")
        .get_object(Bucket=BUCKET, Key=layout.remediation_state_key("staged"))["Body"]
        .read()
    )
    # The instances the events did not name keep their marks' dates.
    dates = {k.rsplit("/", 1)[1]: v.get("stop_on") for k, v in record["instances"].items()}
    assert {i: dates.get(i) for i in ("i-00000000000000e1", "i-00000000000000e2", "i-00000000000000e3")} == {
        "i-00000000000000e1": "2026-12-28",
        "i-00000000000000e2": "2026-12-28",
        "i-00000000000000e3": "2026-12-29",
    }


def test_a_failing_remediation_is_recorded_notified_and_never_fails_the_run(
    local: LocalDeployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    local.fleet.replace([box("i-00000000000000f1")])

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise PermanentError("injected: the remediation record cannot be read")

    monkeypatch.setattr("lambdas.remediate.remediate", refuse)
    result = run(local, "2027-01-05", "remediation-fails")
    states = [
        e["stateEnteredEventDetails"]["name"] for e in result.history if "stateEnteredEventDetails" in e
    ]
    assert "Remediation failed" in states and states[-1] == "Scan complete"
    assert "Remediation FAILED (PermanentError: " in result.notifications[0]["body"]
    assert MARK_KEY not in fleet_now(local)["i-00000000000000f1"]["tags"]


def test_a_deployment_that_does_not_allow_remediation_says_so_and_changes_nothing(
    local: LocalDeployment,
) -> None:
    local.fleet.replace([box("i-00000000000000f2")])
    with local.function_environment("validate-input", {config.REMEDIATION: "false"}):
        result = run(local, "2027-01-06", "remediation-not-allowed")
    assert "this deployment does not allow it" in result.notifications[0]["body"]
    assert "remediation" not in (result.summary or {}) and result.actions == []
    assert MARK_KEY not in fleet_now(local)["i-00000000000000f2"]["tags"]
