"""An event run's plan: targets of the covered types, creators, the wait, and what it leaves out."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.unit.test_events import IAM_USER, SSO, ec2_event, launch
from workflow import config
from workflow.errors import ConfigurationError
from workflow.event_plan import events_of_records, plan_event_run
from workflow.policy import compile_policy
from workflow.targets import Scope

POLICY = compile_policy(
    {
        "version": 1,
        "name": "p",
        "resource_types": ["instance", "volume"],
        "rules": [{"key": "Owner"}],
        "scope": {"grace_period_minutes": 15},
    }
)


def records(*events: Any) -> list[dict[str, str]]:
    return [
        {"messageId": str(n), "body": json.dumps(e) if not isinstance(e, str) else e}
        for n, e in enumerate(events)
    ]


def test_a_launch_waits_out_the_grace_period_from_its_own_time() -> None:
    plan = plan_event_run(
        events_of_records(records(launch(SSO, "i-0aaa"))),
        POLICY,
        now=datetime(2026, 12, 1, 10, 1, tzinfo=UTC),
    )
    assert plan.wait_seconds == 14 * 60
    assert plan.created_by["i-0aaa"]["display"] == "dana@example.com"


def test_a_batch_seen_after_its_grace_period_is_evaluated_at_once() -> None:
    plan = plan_event_run(
        events_of_records(records(launch(SSO, "i-0aaa"))),
        POLICY,
        now=datetime(2026, 12, 1, 11, 0, tzinfo=UTC),
    )
    assert plan.wait_seconds == 0


def test_types_the_policy_does_not_cover_are_counted_not_described() -> None:
    snapshot = ec2_event(
        "CreateSnapshot", {"userIdentity": IAM_USER, "responseElements": {"snapshotId": "snap-1"}}
    )
    volume = ec2_event("CreateVolume", {"userIdentity": IAM_USER, "responseElements": {"volumeId": "vol-1"}})
    plan = plan_event_run(
        events_of_records(records(snapshot, volume)), POLICY, now=datetime(2026, 12, 1, 11, tzinfo=UTC)
    )
    assert plan.targets == [
        {"account_id": "111122223333", "region": "eu-west-1", "resource_ids": {"volume": ["vol-1"]}}
    ]
    assert plan.not_covered == {"snapshot": 1}


def test_messages_that_are_not_events_are_counted_and_never_stop_the_batch() -> None:
    batch = records("{not json", "[1, 2]", {"source": "aws.s3"}, launch(IAM_USER, "i-0aaa"))
    batch.append({"no": "body"})  # type: ignore[dict-item]
    plan = plan_event_run(events_of_records(batch), POLICY, now=datetime(2026, 12, 1, 11, tzinfo=UTC))
    assert (plan.events, plan.unreadable, plan.ignored) == (5, 3, 1)
    assert [t["resource_ids"] for t in plan.targets] == [{"instance": ["i-0aaa"]}]


def in_place(event: dict[str, Any], account: str, region: str) -> dict[str, Any]:
    detail = {**event["detail"], "recipientAccountId": account, "awsRegion": region}
    return {**event, "account": account, "region": region, "detail": detail}


def test_events_outside_the_scheduled_scans_scope_are_counted_and_neither_described_nor_waited_for() -> None:
    scope = Scope.of_input(
        {"targets": [{"account_id": "111111111111", "regions": ["eu-west-1"]}]},
        default_regions=("us-east-1",),
    )
    inside = in_place(launch(SSO, "i-0in"), "111111111111", "eu-west-1")
    other_region = in_place(
        launch(SSO, "i-0region", time="2026-12-01T10:20:00Z"), "111111111111", "us-east-1"
    )
    other_account = in_place(launch(SSO, "i-0acct1", "i-0acct2"), "222222222222", "eu-west-1")
    plan = plan_event_run(
        events_of_records(records(inside, other_region, other_account)),
        POLICY,
        now=datetime(2026, 12, 1, 10, 1, tzinfo=UTC),
        in_scope=lambda account, region: scope.covers(account, region, own_account="999999999999"),
    )
    assert plan.targets == [
        {"account_id": "111111111111", "region": "eu-west-1", "resource_ids": {"instance": ["i-0in"]}}
    ]
    # The out-of-scope launch at 10:20 would have made the batch wait until 10:35.
    assert plan.wait_seconds == 14 * 60
    assert plan.out_of_scope == [
        {"account_id": "111111111111", "region": "us-east-1", "resources": 1},
        {"account_id": "222222222222", "region": "eu-west-1", "resources": 2},
    ]


def test_a_single_account_deployment_checks_only_its_own_account_and_regions() -> None:
    scope = Scope.of_input({}, default_regions=("eu-west-1",))
    assert scope.covers("999999999999", "eu-west-1", own_account="999999999999")
    assert not scope.covers("999999999999", "us-east-1", own_account="999999999999")
    assert not scope.covers("111111111111", "eu-west-1", own_account="999999999999")
    organization = Scope.of_input({"organization": True}, default_regions=("eu-west-1",))
    assert organization.covers("111111111111", "eu-west-1", own_account="999999999999")
    assert not organization.covers("111111111111", "ap-south-1", own_account="999999999999")


def test_the_cloudtrail_records_account_and_region_win_over_a_rewritten_envelope() -> None:
    # A bus-to-bus forward may restamp the envelope (moto's does); the record is CloudTrail's own.
    event = {**in_place(launch(SSO, "i-0fwd"), "111111111111", "eu-west-1"), "account": "999999999999"}
    event["region"] = "us-east-1"
    plan = plan_event_run([event], POLICY, now=datetime(2026, 12, 1, 11, tzinfo=UTC))
    assert [(t["account_id"], t["region"]) for t in plan.targets] == [("111111111111", "eu-west-1")]


@pytest.mark.parametrize(
    "raw",
    ['{"targets": [{"account_id": "12"}]}', "[1, 2]", "not json", '{"targets": "all"}'],
)
def test_a_malformed_event_scope_stops_the_plan_step_naming_the_variable(raw: str) -> None:
    env = {
        config.REPORT_BUCKET: "b",
        config.DEFAULT_POLICY_URI: "s3://b/p.json",
        config.DEFAULT_REGIONS: "eu-west-1",
        config.EVENT_SCOPE: raw,
    }
    with pytest.raises(ConfigurationError, match=config.EVENT_SCOPE):
        config.EventPlanConfig.from_env(env)


def test_the_plan_step_needs_the_deployments_regions() -> None:
    with pytest.raises(ConfigurationError, match=config.DEFAULT_REGIONS):
        config.EventPlanConfig.from_env({config.REPORT_BUCKET: "b", config.DEFAULT_POLICY_URI: "s3://b/p"})
