"""Exemptions that expire, on the embedded engine: in force before their last day (and announced
when it is near), a violation of their own after it; the summary and the findings table say
which exemption applied."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.unit.builders import fleet_instance
from tests.unit.test_events import SSO, launch
from workflow.engine.local import BUCKET, CENTRAL_ACCOUNT, LocalDeployment
from workflow.exemption_files import new_exemption_file
from workflow.fleet import FleetInstance
from workflow.policy import compile_policy

TODAY = datetime.now(UTC).date()


def instance(instance_id: str) -> FleetInstance:
    return fleet_instance(instance_id, {"Name": instance_id}, launched="2026-01-01T00:00:00+00:00")


def policy(expires: str) -> dict[str, Any]:
    return {
        "version": 1,
        "name": "expiry",
        "rules": [{"key": "Owner"}],
        "exemptions": [
            {
                "id": "legacy-batch",
                "instance_ids": ["i-0000000000000e01"],
                "expires": expires,
                "reason": "migrating off by year end",
                "approved_by": "cto@example.com",
            }
        ],
    }


@pytest.fixture(scope="module")
def local() -> Iterator[LocalDeployment]:
    fleet = [instance("i-0000000000000e01"), instance("i-0000000000000e02")]
    with LocalDeployment(
        fleet, regions=["eu-west-1"], default_policy=policy("2099-01-01"), retry_wait_scale=0
    ) as d:
        yield d


def test_before_its_last_day_the_exemption_exempts_and_the_notification_says_it_ends_soon(
    local: LocalDeployment,
) -> None:
    soon = (TODAY + timedelta(days=3)).isoformat()
    result = local.run({"notify": "always", "policy": policy(soon)}, name="exemption-in-force")
    assert result.status == "SUCCEEDED", result.cause
    by_id = {f["resource_id"]: f for f in result.findings}
    assert by_id["i-0000000000000e01"]["exempt"] is True
    assert by_id["i-0000000000000e01"]["exemption"] == {
        "id": "legacy-batch",
        "expires": soon,
        "expired": False,
    }
    assert by_id["i-0000000000000e02"]["compliant"] is False
    assert result.summary is not None
    assert result.summary["exemptions"] == {"legacy-batch": {"expires": soon, "exempted": 1, "expired": 0}}
    (message,) = result.notifications
    assert (
        f"Exemptions expiring within 14 days:\n  legacy-batch  expires {soon}, 1 resource(s)"
        in message["body"]
    )


def test_after_its_last_day_the_finding_says_exemption_expired_on_top_of_the_real_violations(
    local: LocalDeployment,
) -> None:
    lapsed = (TODAY - timedelta(days=1)).isoformat()
    result = local.run({"notify": "always", "policy": policy(lapsed)}, name="exemption-expired")
    assert result.status == "SUCCEEDED", result.cause
    finding = next(f for f in result.findings if f["resource_id"] == "i-0000000000000e01")
    assert (finding["compliant"], finding["exempt"]) == (False, False)
    assert [v["code"] for v in finding["violations"]] == ["missing", "exemption_expired"]
    (message,) = result.notifications
    assert (
        f"Exemptions that expired (their resources are judged again):\n  legacy-batch  expired {lapsed}"
        in (message["body"])
    )
    assert "exemption_expired" in message["body"]  # in the worst rules


def test_an_exemption_file_in_the_bucket_applies_and_a_bad_one_is_named_not_fatal(
    local: LocalDeployment,
) -> None:
    s3 = local.engine.client("s3")
    good, key = new_exemption_file(
        "i-0000000000000e02", days=10, reason="decommissioning", approved_by="cto@example.com", today=TODAY
    )
    s3.put_object(Bucket=BUCKET, Key=key, Body=json.dumps(good).encode())
    s3.put_object(Bucket=BUCKET, Key="exemptions/broken.json", Body=b'{"id": "x", "instance_ids": ["i-1"]}')
    try:
        result = local.run({"notify": "always"}, name="exemption-files")
        events = local.run_events(
            [launch(SSO, "i-0000000000000e02", account=CENTRAL_ACCOUNT)],
            now="2026-12-01T10:15:00Z",
            name="exemption-files-event",
        )
    finally:
        for name in (key, "exemptions/broken.json"):
            s3.delete_object(Bucket=BUCKET, Key=name)
    assert result.status == "SUCCEEDED", result.cause
    finding = next(f for f in result.findings if f["resource_id"] == "i-0000000000000e02")
    assert finding["exempt"] is True and finding["exemption"]["id"] == good["id"]
    assert result.summary is not None
    files = result.summary["exemption_files"]
    assert files["loaded"] == [good["id"]] and files["refused_count"] == 1
    assert files["refused"][0]["key"] == "exemptions/broken.json"
    (message,) = result.notifications
    assert "Exemption files not used (1; the others apply):\n  exemptions/broken.json: " in message["body"]
    # The policy's own hash: drift still compares this run with the runs of the same policy.
    assert result.summary["policy"]["sha256"] == compile_policy(policy("2099-01-01")).sha256
    # Event runs read the files too.
    assert events.status == "SUCCEEDED", events.cause
    assert events.findings[0]["exempt"] is True
