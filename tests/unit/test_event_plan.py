"""An event run's plan: targets of the covered types, creators, the wait, and what it leaves out."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from tests.unit.test_events import IAM_USER, SSO, ec2_event, launch
from workflow.event_plan import events_of_records, plan_event_run
from workflow.policy import compile_policy

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
