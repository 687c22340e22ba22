"""Security Hub on the embedded engine (moto's BatchImportFindings and GetFindings): findings
created, updated and archived across three runs, in batches of 100, and never archived for a
target a run did not scan."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.unit.builders import fleet_instance
from workflow import config
from workflow.engine.local import CENTRAL_ACCOUNT, LocalDeployment
from workflow.fleet import FleetInstance

POLICY = {"version": 1, "name": "hub", "rules": [{"key": "Owner"}]}
REGIONS = ["eu-west-1", "us-east-1"]


def instance(instance_id: str, region: str, *, owner: bool) -> FleetInstance:
    return fleet_instance(instance_id, {"Owner": "ana"} if owner else {}, region=region)


@pytest.fixture(scope="module")
def local() -> Iterator[LocalDeployment]:
    with LocalDeployment(
        [instance("i-0000000000000001", "eu-west-1", owner=True)],
        regions=REGIONS,
        default_policy=POLICY,
        retry_wait_scale=0,
        extra_environment={config.SECURITY_HUB: "true"},
    ) as deployment:
        yield deployment


def hub_findings(local: LocalDeployment) -> dict[str, dict[str, Any]]:
    client = local.engine.client("securityhub")
    found: dict[str, dict[str, Any]] = {}
    for page in client.get_paginator("get_findings").paginate():
        found.update({f["Id"]: f for f in page["Findings"]})
    return found


def fid(instance_id: str, region: str = "eu-west-1") -> str:
    return f"tagwarden/hub/{CENTRAL_ACCOUNT}/{region}/{instance_id}"


def test_findings_are_created_updated_and_archived_across_three_runs(local: LocalDeployment) -> None:
    bad = [instance(f"i-{n:016x}", "eu-west-1", owner=False) for n in range(0x100, 0x100 + 250)]
    far = instance("i-00000000000000f1", "us-east-1", owner=False)
    local.fleet.replace([*bad, far])
    first = local.run({"notify": "always"}, name="hub-1")
    assert first.status == "SUCCEEDED", first.cause
    found = hub_findings(local)
    assert len(found) == 251  # three batches of at most 100 for eu-west-1's 250, and us-east-1's one
    one = found[fid(bad[0].instance["InstanceId"])]
    assert (one["Compliance"]["Status"], one["Workflow"]["Status"], one["RecordState"]) == (
        "FAILED",
        "NEW",
        "ACTIVE",
    )
    assert (
        one["Resources"][0]["Id"]
        == f"arn:aws:ec2:eu-west-1:{CENTRAL_ACCOUNT}:instance/{bad[0].instance['InstanceId']}"
    )
    assert one["ProductArn"].endswith(f":product/{CENTRAL_ACCOUNT}/default")
    assert "Security Hub: 251 finding(s) imported as FAILED, 0 resolved" in first.notifications[0]["body"]

    # Run 2: the first one is fixed; the rest stay; a new one appears.
    fixed = instance(bad[0].instance["InstanceId"], "eu-west-1", owner=True)
    new = instance("i-00000000000000a1", "eu-west-1", owner=False)
    local.fleet.replace([fixed, *bad[1:], new, far])
    second = local.run({"notify": "always"}, name="hub-2")
    assert second.status == "SUCCEEDED", second.cause
    found = hub_findings(local)
    resolved = found[fid(bad[0].instance["InstanceId"])]
    assert (resolved["Compliance"]["Status"], resolved["RecordState"]) == ("PASSED", "ARCHIVED")
    assert found[fid("i-00000000000000a1")]["RecordState"] == "ACTIVE"
    kept = found[fid(bad[1].instance["InstanceId"])]
    assert kept["RecordState"] == "ACTIVE" and kept["UpdatedAt"] > one["UpdatedAt"]

    # Run 3: us-east-1 is not scanned (no data): its finding stays open; eu-west-1 is all fixed.
    local.fleet.replace([instance(i.instance["InstanceId"], "eu-west-1", owner=True) for i in [*bad, new]])
    third = local.run({"notify": "always"}, name="hub-3")
    assert third.status == "SUCCEEDED", third.cause
    found = hub_findings(local)
    assert found[fid("i-00000000000000f1", "us-east-1")]["RecordState"] == "ACTIVE"
    assert {found[fid(i.instance["InstanceId"])]["RecordState"] for i in bad} == {"ARCHIVED"}
    assert found[fid("i-00000000000000a1")]["RecordState"] == "ARCHIVED"
    assert "250 resolved (PASSED, archived)" in third.notifications[0]["body"]


def test_a_dry_run_imports_nothing(local: LocalDeployment) -> None:
    local.fleet.replace([instance("i-00000000000000d1", "eu-west-1", owner=False)])
    before = hub_findings(local)
    result = local.run({"dry_run": True, "regions": ["eu-west-1"]}, name="hub-dry")
    assert result.status == "SUCCEEDED", result.cause
    assert fid("i-00000000000000d1") not in hub_findings(local) and len(hub_findings(local)) == len(before)
