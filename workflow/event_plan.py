"""What an event run will do with a batch of queued events: the (account, region) targets and the
resources to describe in each, who created them, and how long to wait before looking.

The verdict of an event run never comes from the events: they only name resources, which the run
describes itself (through the member role) and evaluates like a scheduled run. So a malformed or
forged message can at worst make the run look at a resource it would also have scanned; it cannot
make a resource look compliant. A message that is not an EventBridge event is counted, not used.

>>> from datetime import UTC
>>> from workflow.policy import compile_policy
>>> policy = compile_policy({"version": 1, "name": "p", "rules": [{"key": "Owner"}],
...                          "scope": {"grace_period_minutes": 15}})
>>> record = {"body": '{"source": "aws.ec2", "detail-type": "AWS API Call via CloudTrail", '
...           '"account": "1", "region": "r", "detail": {"eventName": "RunInstances", '
...           '"eventTime": "2026-12-01T10:00:00Z", "userIdentity": {"type": "Root", "accountId": "1"}, '
...           '"responseElements": {"instancesSet": {"items": [{"instanceId": "i-1"}]}}}}'}
>>> plan = plan_event_run(events_of_records([record, {"body": "not json"}]), policy,
...                       now=datetime(2026, 12, 1, 10, 5, tzinfo=UTC))
>>> plan.targets, plan.wait_seconds, plan.unreadable
([{'account_id': '1', 'region': 'r', 'resource_ids': {'instance': ['i-1']}}], 600, 1)
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from workflow.events import batch_of
from workflow.policy.compiler import CompiledPolicy

# A resource whose grace period is longer than a day is judged by the next scheduled scan; the
# event state machine times out after 26 hours.
MAX_WAIT_SECONDS: Final = 24 * 3600
# The run's state carries the out-of-scope pairs: a few are enough to see where events come from.
MAX_OUT_OF_SCOPE_LISTED: Final = 20


@dataclass(frozen=True)
class EventPlan:
    targets: list[dict[str, Any]]
    created_by: dict[str, dict[str, str]]
    wait_seconds: int
    events: int
    unreadable: int
    ignored: int
    # Resources the events named of types the policy does not cover, by type.
    not_covered: dict[str, int]
    # Resources in accounts or regions the scheduled scan does not cover: at most
    # MAX_OUT_OF_SCOPE_LISTED pairs, with how many resources each.
    out_of_scope: list[dict[str, Any]] = field(default_factory=list)


def events_of_records(records: Iterable[Any]) -> tuple[list[Any], int]:
    """The events in a batch of SQS records (``{"body": "<event JSON>"}``, as an EventBridge Pipe
    hands them on), and how many bodies were not JSON objects."""
    events: list[Any] = []
    unreadable = 0
    for record in records:
        body = record.get("body") if isinstance(record, Mapping) else None
        try:
            event = json.loads(body) if isinstance(body, str) else None
        except ValueError:
            event = None
        if isinstance(event, dict):
            events.append(event)
        else:
            unreadable += 1
    return events, unreadable


def plan_event_run(
    batch: tuple[list[Any], int] | list[Any],
    policy: CompiledPolicy,
    *,
    now: datetime,
    in_scope: Callable[[str, str], bool] | None = None,
) -> EventPlan:
    """The plan for one batch: targets with the covered types' ids, creators, and the seconds to
    wait until the newest resource's grace period is over (0 for tag changes alone, or when that
    time has passed). ``in_scope(account, region)``: what the scheduled scan covers; resources
    elsewhere are counted in ``out_of_scope`` and neither described nor waited for."""
    events, unreadable = batch if isinstance(batch, tuple) else (batch, 0)
    reduced = batch_of(events, grace_seconds=policy.grace_period_seconds, in_scope=in_scope)
    covered = set(policy.resource_types)
    not_covered: dict[str, int] = {}
    targets = []
    for item in reduced.target_items():
        ids = {}
        for resource_type, named in item["resource_ids"].items():
            if resource_type in covered:
                ids[resource_type] = named
            else:
                not_covered[resource_type] = not_covered.get(resource_type, 0) + len(named)
        if ids:
            targets.append({**item, "resource_ids": ids})
    wait = 0
    if reduced.due is not None:
        wait = min(MAX_WAIT_SECONDS, max(0, int((reduced.due - now).total_seconds() + 0.999)))
    return EventPlan(
        targets=targets,
        created_by=reduced.created_by,
        wait_seconds=wait,
        events=reduced.events + unreadable,
        unreadable=unreadable,
        ignored=reduced.ignored,
        not_covered=not_covered,
        out_of_scope=[
            {"account_id": account, "region": region, "resources": count}
            for (account, region), count in sorted(reduced.out_of_scope.items())[:MAX_OUT_OF_SCOPE_LISTED]
        ],
    )
