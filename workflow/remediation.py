"""Staged remediation (a policy's ``remediation``): which noncompliant instances to mark, which
marked ones to stop and which to unmark. Pure: the step (:mod:`workflow.steps.remediate`) does the
AWS calls, this decides, so every decision is tested with plain fixtures.

One instance's lifecycle, run after run:

- noncompliant and eligible (``running`` or ``pending``, not in an Auto Scaling group): noted the
  first day; ``mark_after_days`` later it is marked with :data:`MARK_KEY`, whose value is its stop
  date (the mark's day plus ``stop_after_days``);
- still noncompliant on or after that date: a stop candidate; the step describes it again, checks
  it is still running, marked by us, noncompliant, not stop-protected, and stops at most
  ``max_stops_per_run`` instances (the others stay marked for the next run);
- compliant again (fixed, exempted, in its grace period): unmarked and forgotten.

The record (``state/remediation/<policy name>.json``), not the tag, is the source of truth: a mark
someone changed or removed is put back with the recorded date (and the stop waits a run: it needs
the mark in place when the run starts), a mark Tagwarden did not place is replaced by a fresh one,
so nobody can have an instance stopped by tagging it, and a record made in a dry run never counts
as a real mark.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, Final

from workflow.policy.compiler import RemediationSettings
from workflow.policy.document import MARK_KEY
from workflow.report import target_key

__all__ = [
    "ASG_TAG",
    "MARK_KEY",
    "Action",
    "Plan",
    "RemediationSettings",
    "owner_notices",
    "plan_remediation",
    "record_key",
]

# EC2 Auto Scaling tags its instances with this; users cannot set or remove ``aws:`` tags.
ASG_TAG: Final = "aws:autoscaling:groupName"
MARKABLE_STATES: Final = frozenset({"pending", "running"})

MARK: Final = "mark"
UNMARK: Final = "unmark"
STOP: Final = "stop"

Record = dict[str, Any]


def record_key(account_id: str, region: str, instance_id: str) -> str:
    """How the record names one instance.

    >>> record_key("111122223333", "eu-west-1", "i-0abc")
    '111122223333/eu-west-1/i-0abc'
    """
    return f"{account_id}/{region}/{instance_id}"


@dataclass(frozen=True)
class Action:
    """One thing to do to one instance (before the step's checks and the per-run limit)."""

    kind: str  # mark | unmark | stop
    account_id: str
    region: str
    instance_id: str
    owner: str | None
    stop_on: str | None
    reason: str

    @property
    def key(self) -> str:
        return record_key(self.account_id, self.region, self.instance_id)


@dataclass
class Plan:
    actions: list[Action] = field(default_factory=list)
    # The record after this run's decisions (the step amends it with what failed).
    records: dict[str, Record] = field(default_factory=dict)
    # Noncompliant and eligible, not marked yet (mark_after_days has not passed).
    waiting: int = 0
    # Noncompliant, never marked: reason -> instances.
    ineligible: Counter[str] = field(default_factory=Counter)
    # Marked (or, in a dry run, would be) after this run, stop date ahead: resource id -> date.
    pending: dict[str, str] = field(default_factory=dict)
    # The record keys this run decided (its findings', and the ones it dropped), and the targets
    # whose every entry it decided (scanned, pruned): on a concurrent write, the other run's
    # entries win for every other key.
    decided: set[str] = field(default_factory=set)
    owned_targets: set[str] = field(default_factory=set)

    def owns(self, key: str) -> bool:
        account, region, _ = key.split("/", 2)
        return key in self.decided or target_key(account, region) in self.owned_targets


def _mode(settings: RemediationSettings) -> str:
    return "dry_run" if settings.dry_run else "real"


def plan_remediation(
    findings: Iterable[Mapping[str, Any]],
    records: Mapping[str, Record],
    *,
    settings: RemediationSettings,
    today: date,
    scanned: Iterable[str],
    prune: bool = True,
) -> Plan:
    """Decide this run's marks, unmarks and stop candidates from its instance findings.

    ``records`` is the previous record (:func:`record_key` -> record), ``scanned`` the target keys
    (:func:`workflow.report.target_key`) the run scanned: records of other targets are kept as
    they are, records of scanned targets without a finding (terminated, out of scope) are dropped,
    unless ``prune`` is false (an event run has findings for the resources its events named only).

    >>> finding = {"resource_type": "instance", "account_id": "111122223333", "region": "eu-west-1",
    ...            "resource_id": "i-1", "state": "running", "tags": {}, "compliant": False}
    >>> plan = plan_remediation([finding], {}, settings=RemediationSettings(stop_after_days=7),
    ...                         today=date(2026, 12, 1), scanned=["111122223333/eu-west-1"])
    >>> [(a.kind, a.instance_id, a.stop_on) for a in plan.actions]
    [('mark', 'i-1', '2026-12-08')]
    """
    scanned_targets = set(scanned)
    mode = _mode(settings)
    plan = Plan()
    seen: set[str] = set()
    for finding in findings:
        if finding.get("resource_type", "instance") != "instance":
            continue
        account, region = str(finding.get("account_id")), str(finding.get("region"))
        instance_id = str(finding.get("resource_id") or finding.get("instance_id"))
        key = record_key(account, region, instance_id)
        seen.add(key)
        _decide(plan, finding, records.get(key), key, settings=settings, mode=mode, today=today)
    plan.decided = set(seen)
    plan.owned_targets = scanned_targets if prune else set()
    for key, record in records.items():
        if key in seen:
            continue
        account, region, _ = key.split("/", 2)
        if prune and target_key(account, region) in scanned_targets:
            plan.decided.add(key)  # gone or out of scope: forgotten
        else:
            plan.records[key] = dict(record)
    plan.actions.sort(key=lambda a: (a.kind, a.stop_on or "", a.key))
    return plan


def _decide(
    plan: Plan,
    finding: Mapping[str, Any],
    record: Record | None,
    key: str,
    *,
    settings: RemediationSettings,
    mode: str,
    today: date,
) -> None:
    tags: Mapping[str, str] = finding.get("tags") or {}
    mark = tags.get(MARK_KEY)
    account, region, instance_id = key.split("/", 2)
    owner = finding.get("owner")

    def act(kind: str, stop_on: str | None, reason: str) -> None:
        plan.actions.append(Action(kind, account, region, instance_id, owner, stop_on, reason))

    ours = record.get("stop_on") if record and record.get("mode") == mode else None
    if finding.get("compliant"):
        if mark is not None or ours is not None:
            act(UNMARK, ours, "compliant")
        return
    if ASG_TAG in tags:
        plan.ineligible["auto_scaling_group"] += 1
        if mark is not None:
            act(UNMARK, ours, "in an Auto Scaling group: never stopped")
        return
    since = (record or {}).get("noncompliant_since") or today.isoformat()
    kept: Record = {"noncompliant_since": since}
    if ours is not None:
        kept.update(stop_on=ours, mode=mode)
        plan.records[key] = kept
        plan.pending[instance_id] = ours
        if mode == "real" and mark != ours:
            # Changed or removed by someone: back with the recorded date; the stop waits a run.
            act(MARK, ours, "restored" if mark is None else f"restored (was {mark[:40]!r})")
        elif today >= date.fromisoformat(ours) and finding.get("state") == "running":
            act(STOP, ours, "noncompliant on or after its stop date")
        return
    plan.records[key] = kept
    if finding.get("state") not in MARKABLE_STATES:
        plan.ineligible["not_running"] += 1
        return
    if today < date.fromisoformat(since) + timedelta(days=settings.mark_after_days):
        plan.waiting += 1
        return
    stop_on = (today + timedelta(days=settings.stop_after_days)).isoformat()
    kept.update(stop_on=stop_on, mode=mode)
    plan.pending[instance_id] = stop_on
    reason = "noncompliant"
    if mark is not None and mode == "real":
        reason = f"noncompliant; replaces a mark Tagwarden did not place ({mark[:40]!r})"
    act(MARK, stop_on, reason)


def owner_notices(notices: Mapping[str, Any], stopped: Iterable[str]) -> dict[str, str]:
    """The line each marked or stopped instance gets in its owner's digest.

    ``notices`` is what the step wrote for the run (``{"dry_run", "stop_on": {id: date}}``).

    >>> owner_notices({"dry_run": False, "stop_on": {"i-1": "2026-12-08"}}, ["i-2"])["i-1"]
    'Marked for stop: Tagwarden stops it on 2026-12-08 unless it is fixed by then.'
    >>> owner_notices({"dry_run": False, "stop_on": {}}, ["i-2"])["i-2"]
    'Stopped by Tagwarden in this run: still noncompliant on its stop date. Fix the tags, then start it.'
    """
    lines: dict[str, str] = {}
    dry_run = bool(notices.get("dry_run"))
    for instance_id, stop_on in (notices.get("stop_on") or {}).items():
        lines[str(instance_id)] = (
            f"Remediation dry run: would be stopped on {stop_on} unless fixed by then "
            "(nothing is stopped while the policy's remediation is a dry run)."
            if dry_run
            else f"Marked for stop: Tagwarden stops it on {stop_on} unless it is fixed by then."
        )
    for instance_id in stopped:
        lines[str(instance_id)] = (
            "Remediation dry run: would have been stopped in this run (still noncompliant on its stop date)."
            if dry_run
            else "Stopped by Tagwarden in this run: still noncompliant on its stop date. "
            "Fix the tags, then start it."
        )
    return lines
