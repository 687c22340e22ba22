"""The event workflow's own steps: store a batch of queued events (the EventBridge Pipe's
enrichment, so the execution input is a claim check), and plan the run from it ("Plan event run").

The rest of an event run is the scheduled run's steps: List (just the named resources, through
the member role), Evaluate, Persist report (as ``source: event``), Register partitions, Notify.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, Final

from workflow import layout
from workflow.config import EventPlanConfig, EventsConfig
from workflow.errors import InvalidInput, Problem
from workflow.event_plan import events_of_records, plan_event_run
from workflow.exemption_files import stage_run_policy
from workflow.policy import compile_policy, load_policy_document
from workflow.steps.validate_input import policy_run_fields, read_policy_object, remediation_field
from workflow.storage import get_json, put_json
from workflow.targets import execution_account

SOURCE: Final = "event"
# A Pipe hands on at most 10,000 SQS messages per batch; anything larger is not a Pipe's.
MAX_BATCH_MESSAGES: Final = 10_000


def store_event_batch(
    records: Any, config: EventsConfig, *, s3: Any, now: datetime | None = None
) -> dict[str, Any]:
    """Store the Pipe's batch of SQS records in S3 and return its key, the execution's input.

    >>> import json
    >>> class S3:
    ...     def put_object(self, **request): self.key = request["Key"]; return {}
    >>> out = store_event_batch([{"body": "{}"}], EventsConfig("b", "s3://b/p.json"), s3=S3(),
    ...                         now=datetime(2026, 12, 1, 10, tzinfo=UTC))
    >>> out["batch_key"].startswith("staging/event-batches/20261201T100000Z-"), out["messages"]
    (True, 1)
    """
    batch = list(records) if isinstance(records, list) else []
    if len(batch) > MAX_BATCH_MESSAGES:
        raise InvalidInput(
            [
                Problem(
                    "$", f"{len(batch)} messages in one batch; a Pipe hands on at most {MAX_BATCH_MESSAGES}"
                )
            ]
        )
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    key = layout.event_batch_key(f"{stamp}-{uuid.uuid4().hex[:12]}")
    put_json(s3, config.report_bucket, key, batch)
    return {"batch_key": key, "messages": len(batch)}


def _now_of(document: dict[str, Any], started: datetime) -> datetime:
    """The run's "now": the execution's start, or (a local run's ``--now``) the input's ``now``."""
    text = document.get("now")
    if not isinstance(text, str):
        return started
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput([Problem("$.now", f"{text!r} is not an ISO 8601 time")]) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def plan_event_run_step(event: dict[str, Any], config: EventPlanConfig, *, s3: Any) -> dict[str, Any]:
    """Plan an event run: the same ``run`` a scheduled run's Validate input makes (so the later
    steps are the same), with ``source: event``; the targets; and the seconds to wait.

    ``event`` is ``{"input": {"batch_key", ["now"]}, "execution": {"id", "name", "start_time"}}``.
    The run evaluates as of ``max(now, due)``: after the newest launch's grace period, so a launch
    tagged within it is compliant by then.
    """
    document = event.get("input") or {}
    execution = event["execution"]
    if not isinstance(document, dict) or not isinstance(document.get("batch_key"), str):
        raise InvalidInput([Problem("$.batch_key", "an event run's input names its stored batch")])
    started = datetime.fromisoformat(execution["start_time"].replace("Z", "+00:00"))
    now = _now_of(document, started)
    policy_doc = load_policy_document(
        read_policy_object(s3, config.default_policy_uri, "default policy"), name="deployed"
    )
    policy = compile_policy(policy_doc)
    records = get_json(s3, config.report_bucket, document["batch_key"])
    own = execution_account({"execution_id": execution["id"]})
    scope = config.scope
    plan = plan_event_run(
        events_of_records(records if isinstance(records, list) else []),
        policy,
        now=now,
        in_scope=lambda account, region: scope.covers(account, region, own_account=own),
    )
    run_id = execution["name"]
    items = [
        {
            **item,
            "account_id": layout.SELF_ACCOUNT if item["account_id"] == own else item["account_id"],
            # Who created which of this target's resources (the list step may tag them).
            "creators": {
                resource_id: plan.created_by[resource_id]["display"]
                for ids in item["resource_ids"].values()
                for resource_id in ids
                if resource_id in plan.created_by
            },
        }
        for item in plan.targets
    ]
    counts = {
        "messages": plan.events,
        "unreadable": plan.unreadable,
        "ignored": plan.ignored,
        "not_covered": plan.not_covered,
        "out_of_scope": plan.out_of_scope,
    }
    evaluate_at = datetime.fromtimestamp(now.timestamp() + plan.wait_seconds, UTC)
    exemption_files = stage_run_policy(s3, config.report_bucket, layout.policy_key(run_id), policy_doc)
    put_json(s3, config.report_bucket, layout.targets_manifest_key(run_id), items)
    put_json(s3, config.report_bucket, layout.creators_key(run_id), plan.created_by)
    return {
        "valid": True,
        "wait_seconds": plan.wait_seconds,
        # The Map's items: no resource ids (the List step reads them from the manifest), so the
        # state stays small however many resources the events named.
        "targets": [
            {"account_id": item["account_id"], "region": item["region"], "event_index": index}
            for index, item in enumerate(items)
        ],
        "events": counts,
        "run": {
            "run_id": run_id,
            "execution_id": execution["id"],
            "source": SOURCE,
            "dt": evaluate_at.date().isoformat(),
            "started_at": evaluate_at.isoformat(),
            "bucket": config.report_bucket,
            **policy_run_fields(policy, run_id),
            "regions": sorted({item["region"] for item in items}),
            "notify": "violations",
            "dry_run": False,
            **remediation_field(policy, allowed=config.remediation, dry_run=False),
            "targets_key": layout.targets_manifest_key(run_id),
            "target_count": len(items),
            "accounts": len({item["account_id"] for item in items}),
            "member_role_name": config.member_role_name,
            "max_concurrency": config.max_concurrency,
            "fanout": "inline",
            "creators_key": layout.creators_key(run_id),
            "events": counts,
            **({"exemption_files": exemption_files} if exemption_files else {}),
        },
    }
