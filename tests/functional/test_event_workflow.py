"""The event workflow on the embedded engine: CloudTrail events in (as the Pipe hands them on),
the named resources described after their grace period, evaluated, reported as source=event, and
told at once with who created them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.functional.history import payload_sizes, states_entered
from tests.unit.builders import fleet_instance
from tests.unit.test_events import IAM_USER, SSO, ec2_event, launch
from workflow import config
from workflow.engine.local import BUCKET, CENTRAL_ACCOUNT, LocalDeployment, RunResult
from workflow.fleet import FleetInstance

MEMBER = "111111111111"
GOOD = {"Owner": "ana@example.com", "CostCenter": "CC-0001", "Environment": "prod"}
POLICY = {
    "version": 1,
    "name": "events",
    "rules": [
        {"key": "Owner", "pattern": "^[a-z]+@example\\.com$"},
        {"key": "CostCenter", "pattern": "^CC-[0-9]{4}$"},
        {"key": "Environment", "allowed_values": ["prod", "dev"]},
    ],
    "scope": {"grace_period_minutes": 15},
}


def instance(instance_id: str, tags: dict[str, str], *, account: str = CENTRAL_ACCOUNT) -> FleetInstance:
    return fleet_instance(instance_id, tags, account=account)


def in_account(event: dict[str, Any], account: str = CENTRAL_ACCOUNT) -> dict[str, Any]:
    return {**event, "account": account, "detail": {**event["detail"], "recipientAccountId": account}}


@pytest.fixture(scope="module")
def local() -> Iterator[LocalDeployment]:
    with LocalDeployment(
        [instance("i-0000000000000001", GOOD)],
        regions=["eu-west-1"],
        default_policy=POLICY,
        retry_wait_scale=0,
    ) as deployment:
        yield deployment


@pytest.fixture(autouse=True)
def _fresh(local: LocalDeployment) -> None:
    local.drain_notifications()
    local.drain_dead_letters()


def test_a_launch_tagged_within_the_grace_period_gives_no_finding(local: LocalDeployment) -> None:
    local.fleet.replace([instance("i-0000000000000a01", GOOD)])
    tagged = ec2_event(
        "CreateTags",
        {
            "userIdentity": SSO,
            "requestParameters": {
                "resourcesSet": {"items": [{"resourceId": "i-0000000000000a01"}]},
                "tagSet": {"items": [{"key": k, "value": v} for k, v in GOOD.items()]},
            },
        },
        time="2026-12-01T10:02:00Z",
    )
    events = [in_account(launch(SSO, "i-0000000000000a01")), in_account(tagged)]
    result = local.run_events(events, now="2026-12-01T10:15:00Z", name="event-tagged-in-time")
    assert result.status == "SUCCEEDED", result.cause
    assert [(f["resource_id"], f["compliant"]) for f in result.findings] == [("i-0000000000000a01", True)]
    assert result.notifications == []
    assert result.summary is not None and result.summary["source"] == "event"


def test_a_launch_never_tagged_is_a_finding_after_the_wait_naming_its_creator(local: LocalDeployment) -> None:
    local.fleet.replace([instance("i-0000000000000a02", {})])
    result = local.run_events(
        [in_account(launch(SSO, "i-0000000000000a02"))], now="2026-12-01T10:15:00Z", name="event-untagged"
    )
    assert result.status == "SUCCEEDED", result.cause
    (finding,) = result.findings
    assert finding["compliant"] is False and finding["source"] == "event"
    assert finding["created_by"] == {
        "type": "IdentityCenter",
        "principal": SSO["arn"],
        "display": "dana@example.com",
    }
    assert finding["evaluated_at"] == "2026-12-01T10:15:00+00:00"
    (message,) = result.notifications
    assert message["subject"] == "[tagwarden local] new or changed: 1 of 1 EC2 instances noncompliant"
    assert "dana@example.com" in message["body"]


def test_a_launch_seen_before_its_grace_period_ends_waits_for_it(local: LocalDeployment) -> None:
    local.fleet.replace([instance("i-0000000000000a03", {})])
    result = local.run_events(
        [in_account(launch(IAM_USER, "i-0000000000000a03"))], now="2026-12-01T10:14:58Z", name="event-wait"
    )
    assert result.status == "SUCCEEDED", result.cause
    waited = [e for e in result.history if e["type"] == "WaitStateEntered"]
    assert json.loads(waited[0]["stateEnteredEventDetails"]["input"])["wait_seconds"] == 2
    assert result.findings[0]["evaluated_at"] == "2026-12-01T10:15:00+00:00"


def test_a_deletion_of_a_required_tag_is_a_finding_at_once(local: LocalDeployment) -> None:
    without_owner = {k: v for k, v in GOOD.items() if k != "Owner"}
    local.fleet.replace([instance("i-0000000000000a04", without_owner)])
    deleted = ec2_event(
        "DeleteTags",
        {
            "userIdentity": IAM_USER,
            "requestParameters": {
                "resourcesSet": {"items": [{"resourceId": "i-0000000000000a04"}]},
                "tagSet": {"items": [{"key": "Owner"}]},
            },
        },
        time="2026-12-03T09:00:00Z",
    )
    result = local.run_events([in_account(deleted)], now="2026-12-03T09:00:30Z", name="event-deleted-tag")
    assert result.status == "SUCCEEDED", result.cause
    waited = [e for e in result.history if e["type"] == "WaitStateEntered"]
    assert json.loads(waited[0]["stateEnteredEventDetails"]["input"])["wait_seconds"] == 0
    (finding,) = result.findings
    assert [(v["code"], v["key"]) for v in finding["violations"]] == [("missing", "Owner")]
    assert "created_by" not in finding  # a tag change names no creator
    assert len(result.notifications) == 1


def test_five_hundred_launches_in_a_minute_are_one_execution_with_small_payloads(
    local: LocalDeployment,
) -> None:
    ids = [f"i-{n:017x}" for n in range(1, 501)]
    local.fleet.replace([instance(i, GOOD if n % 5 else {}) for n, i in enumerate(ids)])
    events = [in_account(launch(SSO, i, time=f"2026-12-01T10:00:{n % 60:02d}Z")) for n, i in enumerate(ids)]
    result = local.run_events(events, now="2026-12-01T10:16:00Z", name="event-burst")
    assert result.status == "SUCCEEDED", result.cause
    assert len(result.findings) == 500
    assert sum(not f["compliant"] for f in result.findings) == 100
    assert states_entered(result.history).count("Plan event run") == 1
    assert max(size for _, _, size in payload_sizes(result.history)) < 8 * 1024
    s3 = local.engine.client("s3")
    batches = s3.list_objects_v2(Bucket=BUCKET, Prefix="staging/event-batches/")["Contents"]
    assert batches  # the events travelled through S3, not through the state


def test_a_member_accounts_events_are_described_through_its_role(local: LocalDeployment) -> None:
    local.members.add_account(MEMBER)
    local.fleet.replace([instance("i-0000000000000b01", {}, account=MEMBER)])
    result = local.run_events(
        [in_account(launch(IAM_USER, "i-0000000000000b01"), MEMBER)],
        now="2026-12-01T10:15:00Z",
        name="event-member",
    )
    assert result.status == "SUCCEEDED", result.cause
    (finding,) = result.findings
    assert (finding["account_id"], finding["compliant"]) == (MEMBER, False)
    assert any(
        c["RoleArn"] == f"arn:aws:iam::{MEMBER}:role/TagwardenReadOnly" for c in local.members.assume_calls
    )


def test_an_event_run_moves_neither_the_latest_run_nor_the_drift_baseline(local: LocalDeployment) -> None:
    local.fleet.replace([instance("i-0000000000000c01", {})])
    scheduled = local.run({"notify": "never"}, name="scheduled-before-events")
    assert scheduled.status == "SUCCEEDED", scheduled.cause
    s3 = local.engine.client("s3")
    latest_before = s3.get_object(Bucket=BUCKET, Key="state/latest-run.json")["Body"].read()
    result = local.run_events(
        [in_account(launch(IAM_USER, "i-0000000000000c01"))],
        now="2026-12-01T10:15:00Z",
        name="event-after-scan",
    )
    assert result.status == "SUCCEEDED", result.cause
    assert s3.get_object(Bucket=BUCKET, Key="state/latest-run.json")["Body"].read() == latest_before
    assert result.summary is not None and result.summary["drift"]["previous_run_id"] is None


def test_a_batch_that_names_nothing_checkable_ends_without_a_report(local: LocalDeployment) -> None:
    failed = ec2_event(
        "RunInstances", {"userIdentity": IAM_USER, "errorCode": "Client.UnauthorizedOperation"}
    )
    result = local.run_events([in_account(failed), {"not": "an event"}], name="event-nothing")
    assert result.status == "SUCCEEDED", result.cause
    assert "Nothing to check" in states_entered(result.history)
    assert result.summary is None and result.notifications == []


def test_the_next_scheduled_scan_counts_an_event_finding_once_and_lists_it_fixed(
    local: LocalDeployment,
) -> None:
    fixed, still = "i-0000000000000d01", "i-0000000000000d02"
    local.fleet.replace([instance(fixed, GOOD), instance(still, GOOD)])
    before = local.run({"notify": "never"}, name="scan-before-event-findings")
    assert before.status == "SUCCEEDED", before.cause
    local.fleet.replace([instance(fixed, {}), instance(still, {})])
    events = [in_account(launch(IAM_USER, fixed)), in_account(launch(IAM_USER, still))]
    event_run = local.run_events(events, now="2026-12-01T10:15:00Z", name="event-finds-two")
    assert sum(not f["compliant"] for f in event_run.findings) == 2
    # Someone tags one of them; the next scheduled scan sees it fixed and the other still broken.
    local.fleet.replace([instance(fixed, GOOD), instance(still, {})])
    after = local.run({"notify": "always"}, name="scan-after-event-findings")
    assert after.status == "SUCCEEDED", after.cause
    assert after.summary is not None
    drift = after.summary["drift"]
    assert drift["fixed_since_event"] == [fixed]
    assert drift["already_reported_by_events"] == [still]
    assert still not in drift["newly_noncompliant"]
    (message,) = after.notifications
    assert "fixed since an event run reported them: 1" in message["body"]
    # Settled: a later scan reports neither again.
    again = local.run({"notify": "never"}, name="scan-after-settling")
    assert again.summary is not None and not again.summary["drift"].get("fixed_since_event")
    assert not again.summary["drift"].get("already_reported_by_events")


# --- through EventBridge: the buses, the rules and the Pipe --------------------------------------


def _collect_all(local: LocalDeployment, arns: list[str]) -> list[RunResult]:
    results = [local.collect(arn) for arn in arns]
    assert all(r.status == "SUCCEEDED" for r in results), [r.cause for r in results]
    return results


def test_a_member_accounts_launch_reaches_an_event_run_through_its_forwarding_rule_and_the_central_bus(
    local: LocalDeployment,
) -> None:
    local.members.add_account(MEMBER)
    local.fleet.replace(
        [instance("i-0000000000000e01", {}, account=MEMBER), instance("i-0000000000000e02", GOOD)]
    )
    events = [
        launch(IAM_USER, "i-0000000000000e01", account=MEMBER),
        launch(SSO, "i-0000000000000e02", account=CENTRAL_ACCOUNT),
    ]
    seen = len(local.routing.deliveries)
    put, arns = local.deliver_events(events, now="2026-12-01T10:15:00Z", name="routed-member")
    assert (put.queued, put.unmatched, put.refused) == (2, 0, [])
    (result,) = _collect_all(local, arns)  # one batch, one run
    assert sorted((f["account_id"], f["resource_id"], f["compliant"]) for f in result.findings) == [
        (MEMBER, "i-0000000000000e01", False),
        (CENTRAL_ACCOUNT, "i-0000000000000e02", True),
    ]
    (member_finding,) = [f for f in result.findings if f["account_id"] == MEMBER]
    assert member_finding["created_by"]["display"] == "Alice"
    hops = {(d.hop, d.account, d.rule) for d in local.routing.deliveries[seen:]}
    assert ("forward", MEMBER, "tagwarden-forward-ec2-api-calls") in hops
    assert ("queue", CENTRAL_ACCOUNT, "tagwarden-local-member-ec2-api-calls") in hops


def test_an_account_that_left_the_organisation_is_refused_by_the_central_bus(local: LocalDeployment) -> None:
    outsider = "222222222222"
    local.members.add_account(outsider)
    del local.members.accounts[outsider]  # its member stack stays; the organisation no longer has it
    put, arns = local.deliver_events(
        [launch(IAM_USER, "i-0000000000000f01", account=outsider)], name="outsider"
    )
    assert (put.queued, put.refused, arns) == (0, [outsider], [])


def test_events_of_an_account_without_forwarding_and_other_calls_go_nowhere(local: LocalDeployment) -> None:
    quiet = "333333333333"
    local.members.add_account(quiet)
    local.routing.stop_forwarding(quiet)
    stop = ec2_event("StopInstances", {"userIdentity": IAM_USER}, account=MEMBER)
    failed = ec2_event(
        "RunInstances", {"userIdentity": IAM_USER, "errorCode": "Client.InvalidAMIID"}, account=MEMBER
    )
    put, arns = local.deliver_events(
        [launch(IAM_USER, "i-0000000000000f02", account=quiet), stop, failed], name="nowhere"
    )
    assert (put.queued, put.unmatched, arns) == (0, 3, [])


def test_a_launch_in_a_region_the_schedule_does_not_scan_is_counted_and_not_checked(
    local: LocalDeployment,
) -> None:
    local.members.add_account(MEMBER)
    elsewhere = launch(IAM_USER, "i-0000000000000f03", account=MEMBER, region="ap-south-1")
    put, arns = local.deliver_events([elsewhere], now="2026-12-01T10:15:00Z", name="out-of-scope")
    assert put.queued == 1
    (result,) = _collect_all(local, arns)
    assert "Nothing to check" in states_entered(result.history)
    planned = next(e for e in result.history if e["type"] == "TaskStateExited")
    counts = json.loads(planned["stateExitedEventDetails"]["output"])["events"]
    assert counts["out_of_scope"] == [{"account_id": MEMBER, "region": "ap-south-1", "resources": 1}]


def test_five_hundred_launches_through_the_queue_are_two_pipe_batches_with_small_payloads(
    local: LocalDeployment,
) -> None:
    ids = [f"i-{n:017x}" for n in range(0x1000, 0x1000 + 500)]
    local.fleet.replace([instance(i, GOOD if n % 5 else {}) for n, i in enumerate(ids)])
    events = [
        launch(SSO, i, time=f"2026-12-01T10:00:{n % 60:02d}Z", account=CENTRAL_ACCOUNT)
        for n, i in enumerate(ids)
    ]
    put, arns = local.deliver_events(events, now="2026-12-01T10:16:00Z", name="routed-burst")
    assert put.queued == 500
    assert len(arns) == 2  # the Pipe's batches of at most 250
    results = _collect_all(local, arns)
    assert sum(len(r.findings) for r in results) == 500
    assert sum(not f["compliant"] for r in results for f in r.findings) == 100
    assert max(size for r in results for _, _, size in payload_sizes(r.history)) < 8 * 1024


@pytest.fixture
def tagging_on(local: LocalDeployment) -> Iterator[None]:
    with local.function_environment("list-instances", {config.TAG_CREATED_BY: "true"}):
        yield


def test_created_by_tagging_tags_untagged_launches_with_their_creator_and_never_overwrites_one(
    local: LocalDeployment, tagging_on: None
) -> None:
    local.members.add_account(MEMBER)
    claimed = {**GOOD, "CreatedBy": "platform-team"}
    local.fleet.replace(
        [
            instance("i-0000000000000g01", {}),
            instance("i-0000000000000g02", claimed),
            instance("i-0000000000000g03", {}, account=MEMBER),
        ]
    )
    events = [
        in_account(launch(SSO, "i-0000000000000g01", "i-0000000000000g02")),
        in_account(launch(IAM_USER, "i-0000000000000g03"), MEMBER),
    ]
    before = len(local.fleet.tagged)
    result = local.run_events(events, now="2026-12-01T10:15:00Z", name="event-tag-creators")
    assert result.status == "SUCCEEDED", result.cause
    assert sorted(local.fleet.tagged[before:]) == [  # the Map's iterations run in either order
        (MEMBER, "eu-west-1", "i-0000000000000g03", {"CreatedBy": "Alice"}),  # through the member role
        (CENTRAL_ACCOUNT, "eu-west-1", "i-0000000000000g01", {"CreatedBy": "dana@example.com"}),
    ]
    listed = [
        json.loads(e["stateExitedEventDetails"]["output"])
        for e in result.history
        if e["type"] == "TaskStateExited" and e["stateExitedEventDetails"]["name"] == "List EC2 instances"
    ]
    assert sorted(r["result"]["listing"]["created_by_tags"]["tagged"] for r in listed) == [1, 1]
    # The next look at the same resources finds the tag and leaves it alone.
    again = local.run_events(events, now="2026-12-01T10:20:00Z", name="event-tag-creators-again")
    assert again.status == "SUCCEEDED", again.cause
    assert len(local.fleet.tagged) == before + 2


def test_created_by_tagging_is_off_by_default(local: LocalDeployment) -> None:
    local.fleet.replace([instance("i-0000000000000g04", {})])
    before = len(local.fleet.tagged)
    result = local.run_events([in_account(launch(SSO, "i-0000000000000g04"))], now="2026-12-01T10:15:00Z")
    assert result.status == "SUCCEEDED", result.cause
    assert len(local.fleet.tagged) == before
