"""Step "Remediate" (a policy's ``remediation``, on a deployment that allows it): mark, stop and
unmark instances as :mod:`workflow.remediation` decides, record every action, and tell the owners.

Order of work, so that nothing is done that is not recorded:

1. read the run's persisted findings (a verdict that is in S3, never one being built) and the
   policy's record, and plan;
2. act per (account, region) with the step's own role, or the member account's remediation role;
   every call's failure is caught and recorded against its action, never left to escape after
   something was changed;
3. before a stop, describe the instance again: still running, still carrying the mark we placed,
   still noncompliant by the policy (evaluated afresh), not in an Auto Scaling group, not
   stop-protected, and within the run's limit;
4. write the actions (``reports/actions/dt=/run=/actions.jsonl.gz``, the ``actions`` table), the
   notices for the owners' digests, the record (a conditional write: a concurrent run of the same
   policy is merged, not overwritten) and the summary's ``remediation`` section;
5. then, if anything failed, raise :class:`RemediationIncomplete`, which the state machine records
   without failing a run whose report is persisted.

A dry run (the policy's default) changes nothing on EC2 and records what it would have done.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, date, datetime
from typing import Any, Final

from botocore.exceptions import BotoCoreError, ClientError

from workflow import layout
from workflow.aws import Credentials, assume_role, error_code, translate
from workflow.config import RemediateConfig
from workflow.errors import RemediationIncomplete, WorkflowError
from workflow.evaluator import evaluate_instance
from workflow.policy import compile_policy
from workflow.policy.compiler import CompiledPolicy
from workflow.remediation import ASG_TAG, MARK, MARK_KEY, STOP, UNMARK, Action, Plan, plan_remediation
from workflow.steps.event_run import SOURCE as EVENT_SOURCE
from workflow.storage import (
    get_json,
    get_json_and_etag,
    iter_jsonl_gz,
    put_json,
    put_json_if_unchanged,
    put_jsonl_gz,
)
from workflow.targets import execution_account, member_role_arn

# CreateTags and DeleteTags take up to 1,000 resource ids; a smaller batch keeps one refused id
# from costing a long one-by-one retry.
TAG_BATCH: Final = 200
DESCRIBE_BATCH: Final = 200
RECORD_WRITE_ATTEMPTS: Final = 3

Ec2Factory = Callable[[str, Credentials | None], Any]


class _Outcome:
    """What happened to each planned action: recorded rows and counts."""

    def __init__(self, run: dict[str, Any], dry_run: bool, stamp: str) -> None:
        self.rows: list[dict[str, Any]] = []
        self.counts: Counter[str] = Counter()
        self.skipped: Counter[str] = Counter()
        self.failed: list[str] = []
        self.stopped: list[str] = []
        self.dry_run = dry_run
        self._run, self._stamp = run, stamp

    def record(
        self, action: Action, outcome: str, *, reason: str | None = None, error: str | None = None
    ) -> None:
        """``outcome``: done, dry_run, skipped or failed."""
        self.rows.append(
            {
                "run_id": self._run["run_id"],
                "policy_name": self._run["policy_name"],
                "at": self._stamp,
                "account_id": action.account_id,
                "region": action.region,
                "resource_id": action.instance_id,
                "owner": action.owner,
                "action": action.kind,
                "outcome": outcome,
                "dry_run": self.dry_run,
                "stop_on": action.stop_on,
                "reason": reason or action.reason,
                "error": error,
            }
        )
        if outcome in ("done", "dry_run"):
            self.counts[action.kind] += 1
            if action.kind == STOP:
                self.stopped.append(action.instance_id)
        elif outcome == "skipped":
            self.skipped[reason or action.reason] += 1
        else:
            self.failed.append(f"{action.kind} {action.instance_id}: {error}")


def _message(err: Exception, what: str) -> str:
    if isinstance(err, (ClientError, BotoCoreError)):
        return str(translate(err, what))
    return f"{what}: {err}"


def _chunks(items: list[Action], size: int) -> Iterator[list[Action]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class _Target:
    """One (account, region): its EC2 client and the policy to check instances again with."""

    def __init__(self, ec2: Any, outcome: _Outcome, dry_run: bool) -> None:
        self.ec2, self.outcome, self.dry_run = ec2, outcome, dry_run

    def tag(self, actions: list[Action], *, unmark: bool) -> list[Action]:
        """Mark (or unmark) in batches; a refused batch is tried one instance at a time. Returns
        the actions that failed."""
        failed: list[Action] = []
        by_value: dict[str | None, list[Action]] = {}
        for action in actions:
            by_value.setdefault(None if unmark else action.stop_on, []).append(action)
        for value, group in by_value.items():
            for batch in _chunks(group, TAG_BATCH):
                if self.dry_run:
                    for action in batch:
                        self.outcome.record(action, "dry_run")
                    continue
                if self._try_tag([a.instance_id for a in batch], value, unmark=unmark):
                    for action in batch:
                        self.outcome.record(action, "done")
                    continue
                for action in batch:  # a refused batch: find which instance, one at a time
                    try:
                        self._tag_call([action.instance_id], value, unmark=unmark)
                        self.outcome.record(action, "done")
                    except Exception as err:  # recorded against the action
                        self.outcome.record(action, "failed", error=_message(err, action.kind))
                        failed.append(action)
        return failed

    def _try_tag(self, ids: list[str], value: str | None, *, unmark: bool) -> bool:
        try:
            self._tag_call(ids, value, unmark=unmark)
        except (ClientError, BotoCoreError):
            return False
        return True

    def _tag_call(self, ids: list[str], value: str | None, *, unmark: bool) -> None:
        if unmark:
            self.ec2.delete_tags(Resources=ids, Tags=[{"Key": MARK_KEY}])
        else:
            self.ec2.create_tags(Resources=ids, Tags=[{"Key": MARK_KEY, "Value": value}])

    def describe(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        paginator = self.ec2.get_paginator("describe_instances")
        for page in paginator.paginate(InstanceIds=ids):
            for reservation in page.get("Reservations", []):
                for instance in reservation.get("Instances", []):
                    found[instance["InstanceId"]] = {**instance, "OwnerId": reservation.get("OwnerId")}
        return found

    def stop_protected(self, instance_id: str) -> bool:
        answer = self.ec2.describe_instance_attribute(InstanceId=instance_id, Attribute="disableApiStop")
        return bool((answer.get("DisableApiStop") or {}).get("Value"))

    def stop(self, instance_id: str) -> None:
        self.ec2.stop_instances(InstanceIds=[instance_id])


def _unknown_id(err: ClientError) -> bool:
    return error_code(err).startswith("InvalidInstanceID")


def _describe_all(target: _Target, actions: list[Action]) -> dict[str, dict[str, Any]]:
    """The candidates described again; an id EC2 no longer knows is absent. Any other error
    (throttling, a refused call) is raised: it says nothing about whether an instance exists."""
    found: dict[str, dict[str, Any]] = {}
    for batch in _chunks(actions, DESCRIBE_BATCH):
        ids = [a.instance_id for a in batch]
        try:
            found.update(target.describe(ids))
        except ClientError as err:
            if not _unknown_id(err):
                raise
            # One unknown id fails the whole request: ask one by one.
            for instance_id in ids:
                try:
                    found.update(target.describe([instance_id]))
                except ClientError as one:
                    if not _unknown_id(one):
                        raise
    return found


def _stop_candidates(
    target: _Target,
    actions: list[Action],
    policy: CompiledPolicy,
    budget: list[int],
    plan: Plan,
    now: datetime,
) -> None:
    """Check each candidate afresh, then stop it (or, in a dry run, say it would) within budget."""
    outcome = target.outcome
    try:
        fresh = _describe_all(target, actions)
    except Exception as err:  # every candidate records the failure
        for action in actions:
            outcome.record(action, "failed", error=_message(err, "DescribeInstances"))
        return
    for action in actions:
        instance = fresh.get(action.instance_id)
        if instance is None:
            _forget(plan, action)
            outcome.record(action, "skipped", reason="no longer exists")
            continue
        tags = {t["Key"]: t.get("Value", "") for t in instance.get("Tags") or ()}
        state = (instance.get("State") or {}).get("Name")
        if state != "running":
            outcome.record(action, "skipped", reason=f"not running ({state})")
            continue
        if ASG_TAG in tags:
            outcome.record(action, "skipped", reason="in an Auto Scaling group")
            continue
        if not target.dry_run and tags.get(MARK_KEY) != action.stop_on:
            outcome.record(action, "skipped", reason="its mark changed since the scan")
            continue
        finding = evaluate_instance(
            instance, policy, region=action.region, account_id=action.account_id, now=now
        )
        if finding["compliant"]:
            _forget(plan, action)
            target.tag(
                [replace(action, kind=UNMARK, reason="compliant when checked before the stop")], unmark=True
            )
            continue
        try:
            if target.stop_protected(action.instance_id):
                outcome.record(action, "skipped", reason="stop protection is on")
                continue
            if budget[0] <= 0:
                outcome.record(action, "skipped", reason="the run's stop limit was reached")
                continue
            if not target.dry_run:
                target.stop(action.instance_id)
            budget[0] -= 1  # only a stop that happened (or, in a dry run, would) counts
            outcome.record(action, "dry_run" if target.dry_run else "done")
            plan.pending.pop(action.instance_id, None)  # stopped: no longer "marked for a later stop"
        except Exception as err:  # recorded against the action
            outcome.record(action, "failed", error=_message(err, "stop"))


def _forget(plan: Plan, action: Action) -> None:
    plan.records.pop(action.key, None)
    plan.pending.pop(action.instance_id, None)


def _unplaced(plan: Plan, actions: list[Action]) -> None:
    """Marks that were not placed: the next run marks them with a fresh date (no stop without a
    visible mark for the whole stop_after_days)."""
    for action in actions:
        plan.records.get(action.key, {}).pop("stop_on", None)
        plan.records.get(action.key, {}).pop("mode", None)
        plan.pending.pop(action.instance_id, None)


def _read_record(s3: Any, bucket: str, key: str) -> tuple[dict[str, dict[str, Any]], str | None]:
    document, etag = get_json_and_etag(s3, bucket, key)
    if document is None:
        return {}, None
    instances = document.get("instances") if isinstance(document, dict) else None
    if not isinstance(instances, dict) or not all(_well_formed(k, v) for k, v in instances.items()):
        raise RemediationIncomplete(
            f"the remediation record s3://{bucket}/{key} is not a Tagwarden record; nothing was done "
            "(move it away to start the record afresh: every mark is then placed again with a new date)"
        )
    return instances, etag


def _well_formed(key: Any, entry: Any) -> bool:
    if not (isinstance(key, str) and key.count("/") >= 2 and isinstance(entry, dict)):
        return False
    try:
        for field in ("noncompliant_since", "stop_on"):
            if field in entry:
                date.fromisoformat(entry[field])
    except (TypeError, ValueError):
        return False
    return True


def _write_record(
    s3: Any,
    bucket: str,
    key: str,
    plan: Plan,
    etag: str | None,
    run_id: str,
) -> None:
    """Write the record if nobody else did meanwhile; else keep their entries for every instance
    this run did not decide about and ours for those it did, and try again."""
    records = plan.records
    for _ in range(RECORD_WRITE_ATTEMPTS):
        if put_json_if_unchanged(s3, bucket, key, {"run_id": run_id, "instances": records}, etag):
            return
        theirs, etag = _read_record(s3, bucket, key)
        merged = {k: v for k, v in theirs.items() if not plan.owns(k)}
        merged.update({k: v for k, v in plan.records.items() if plan.owns(k)})
        records = merged
    raise RemediationIncomplete(
        f"the remediation record s3://{bucket}/{key} kept changing under concurrent runs; "
        "this run's actions are in its actions table"
    )


def remediate(
    event: dict[str, Any],
    config: RemediateConfig,
    *,
    s3: Any,
    ec2_factory: Ec2Factory,
    sts: Any = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Mark, stop and unmark the run's instances as its policy's ``remediation`` says.

    Dates are the run's (``run.started_at``, when its findings were evaluated); ``now`` stamps the
    actions and re-evaluates an instance before its stop.

    Returns ``{"enabled", "dry_run", "marked", "stopped", "unmarked", "skipped", "failed",
    "actions_key"}``; raises :class:`RemediationIncomplete` after recording everything when an
    action failed.
    """
    run, report = event["run"], event["report"]
    bucket = run["bucket"]
    # The day the findings were evaluated decides (a redrive days later decides the same).
    evaluated = datetime.fromisoformat(run["started_at"])
    now = now or datetime.now(UTC)
    policy = compile_policy(get_json(s3, bucket, run["policy_key"]))
    settings = policy.remediation
    if settings is None:
        return {"enabled": False}
    summary = get_json(s3, bucket, report["summary_key"])
    scanned = set(summary.get("scanned_targets") or {})
    state_key = layout.remediation_state_key(policy.name)
    records, etag = _read_record(s3, bucket, state_key)
    plan = plan_remediation(
        iter_jsonl_gz(s3, bucket, report["findings_key"]),
        records,
        settings=settings,
        today=evaluated.date(),
        scanned=scanned,
        # An event run has findings for the resources its events named only.
        prune=run.get("source") != EVENT_SOURCE,
    )
    outcome = _Outcome(run, settings.dry_run, now.strftime("%Y-%m-%dT%H:%M:%SZ"))
    limit = min(settings.max_stops_per_run, config.max_stops_per_run)
    _act(plan, run, config, outcome, policy, limit, s3=s3, ec2_factory=ec2_factory, sts=sts, now=now)

    actions_key = layout.actions_key(run["dt"], run["run_id"])
    put_jsonl_gz(s3, bucket, actions_key, outcome.rows)
    notices_key = layout.remediation_notices_key(run["run_id"])
    put_json(s3, bucket, notices_key, {"dry_run": settings.dry_run, "stop_on": plan.pending})
    _write_record(s3, bucket, state_key, plan, etag, run["run_id"])
    section = {
        "dry_run": settings.dry_run,
        "marked": outcome.counts[MARK],
        "stopped": outcome.counts[STOP],
        "unmarked": outcome.counts[UNMARK],
        "stopped_ids": sorted(outcome.stopped),
        "skipped": dict(outcome.skipped.most_common()),
        "failed": len(outcome.failed),
        "failures": outcome.failed[:10],
        "waiting": plan.waiting,
        "ineligible": dict(plan.ineligible),
        "marked_now": len(plan.pending),
        "max_stops_per_run": limit,
        "notify_owner": settings.notify_owner,
        "actions_key": actions_key,
        "notices_key": notices_key,
    }
    put_json(s3, bucket, report["summary_key"], {**summary, "remediation": section})
    if outcome.failed:
        raise RemediationIncomplete(
            f"{len(outcome.failed)} remediation action(s) failed (for example {outcome.failed[0]}); "
            "the others are done and every one is in the run's actions table"
        )
    return {
        "enabled": True,
        "dry_run": settings.dry_run,
        "marked": section["marked"],
        "stopped": section["stopped"],
        "unmarked": section["unmarked"],
        "skipped": sum(outcome.skipped.values()),
        "failed": 0,
        "actions_key": actions_key,
    }


def _act(
    plan: Plan,
    run: dict[str, Any],
    config: RemediateConfig,
    outcome: _Outcome,
    policy: CompiledPolicy,
    limit: int,
    *,
    s3: Any,
    ec2_factory: Ec2Factory,
    sts: Any,
    now: datetime,
) -> None:
    """Carry out the plan per (account, region); every failure is recorded, none escapes."""
    by_target: dict[tuple[str, str], list[Action]] = {}
    for action in plan.actions:
        by_target.setdefault((action.account_id, action.region), []).append(action)
    own_account = execution_account(run)
    # Who listed a target acts on it: the step's own role where the run listed "self" (whatever
    # the instances' OwnerId), the member account's remediation role where a member role listed.
    items = get_json(s3, run["bucket"], run["targets_key"]) if "targets_key" in run else []
    member_targets = {(i["account_id"], i["region"]) for i in items if i["account_id"] != layout.SELF_ACCOUNT}
    self_regions = {i["region"] for i in items if i["account_id"] == layout.SELF_ACCOUNT}
    budget = [limit]
    for (account, region), actions in sorted(by_target.items()):
        credentials: Credentials | None = None
        own = (account, region) not in member_targets and (region in self_regions or account == own_account)
        if not own:
            role_arn = member_role_arn(account, config.remediation_role_name, region)
            try:
                credentials = assume_role(
                    sts,
                    role_arn,
                    session_name=f"tagwarden-remediate-{run['run_id']}",
                    external_id=config.member_external_id,
                )
            except WorkflowError as err:
                for action in actions:
                    outcome.record(action, "failed", error=str(err))
                _unplaced(plan, [a for a in actions if a.kind == MARK])
                continue
        target = _Target(ec2_factory(region, credentials), outcome, outcome.dry_run)
        _unplaced(plan, target.tag([a for a in actions if a.kind == MARK], unmark=False))
        target.tag([a for a in actions if a.kind == UNMARK], unmark=True)
        stops = [a for a in actions if a.kind == STOP]
        if stops:
            _stop_candidates(target, stops, policy, budget, plan, now)
