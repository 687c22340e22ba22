"""Staged remediation in member accounts: through each account's optional remediation role (the
member stack's remediation_role), and loudly failed, per action, where an account has none."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.unit.builders import instance
from workflow import config
from workflow.engine.local import LocalDeployment
from workflow.fleet import FleetInstance
from workflow.remediation import MARK_KEY

WITH_ROLE, WITHOUT_ROLE = "444455556666", "777788889999"
REGION = "eu-west-1"
POLICY = {
    "version": 1,
    "name": "members-staged",
    "rules": [{"key": "Owner"}],
    "remediation": {"stop_after_days": 3, "dry_run": False},
}


def box(account: str, instance_id: str) -> FleetInstance:
    return FleetInstance(account, REGION, instance({}, instance_id=instance_id, zone=f"{REGION}a"))


@pytest.fixture(scope="module")
def local() -> Iterator[LocalDeployment]:
    fleet = [box(WITH_ROLE, "i-00000000000000a1"), box(WITHOUT_ROLE, "i-00000000000000b1")]
    with LocalDeployment(
        fleet, regions=[REGION], retry_wait_scale=0, extra_environment={config.REMEDIATION: "true"}
    ) as deployment:
        deployment.members.add_remediation_role(WITH_ROLE)
        yield deployment


def test_a_member_account_is_remediated_through_its_role_and_one_without_the_role_fails_loudly(
    local: LocalDeployment,
) -> None:
    result = local.run(
        {
            "targets": [{"account_id": WITH_ROLE}, {"account_id": WITHOUT_ROLE}],
            "policy": POLICY,
            "notify": "always",
        },
        name="members-remediate",
    )
    assert result.status == "SUCCEEDED", result.cause
    outcomes = {(a["account_id"], a["resource_id"]): (a["action"], a["outcome"]) for a in result.actions}
    assert outcomes == {
        (WITH_ROLE, "i-00000000000000a1"): ("mark", "done"),
        (WITHOUT_ROLE, "i-00000000000000b1"): ("mark", "failed"),
    }
    [failed] = [a for a in result.actions if a["outcome"] == "failed"]
    assert "AccessDenied" in failed["error"] and "TagwardenRemediation" in failed["error"]
    fleet = local.fleet.instances_now()
    assert {t["Key"] for t in fleet["i-00000000000000a1"].get("Tags") or ()} == {MARK_KEY}
    assert not fleet["i-00000000000000b1"].get("Tags")
    # Marked through the member account's remediation role, not the read-only one.
    assumed = [c["RoleArn"] for c in local.members.assume_calls]
    assert f"arn:aws:iam::{WITH_ROLE}:role/TagwardenRemediation" in assumed
    section = (result.summary or {})["remediation"]
    assert (section["marked"], section["failed"]) == (1, 1)
    body = result.notifications[0]["body"]
    assert "Remediation: mark 1, stop 0, unmark 0;" in body
    assert (
        f"FAILED: 1 action(s), e.g. mark i-00000000000000b1: sts:AssumeRole arn:aws:iam::{WITHOUT_ROLE}"
        in body
    )
